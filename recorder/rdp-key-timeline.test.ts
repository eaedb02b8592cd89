import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CodePointParser, KeyTimeline, keyTimeline, keysymChar } from './rdp-key-timeline.js';

/**
 * Golden test: a recording fragment in guacd's format (code-point lengths;
 * `key,<keysym>,<pressed>,<timestamp>` as guacd 1.5/1.6 writes with
 * recording-include-keys) → the timeline the replay shows. The expected
 * file is written by hand from the fragment, not from this code's output.
 */
const dir = new URL('./testdata/', import.meta.url);
const fragment = readFileSync(new URL('rdp-keys.guac', dir), 'utf8');
const expected: unknown = JSON.parse(readFileSync(new URL('rdp-keys.timeline.json', dir), 'utf8'));

function instructions(text: string, chunk = text.length): string[][] {
  const out: string[][] = [];
  const p = new CodePointParser();
  for (let i = 0; i < text.length; i += chunk) p.push(text.slice(i, i + chunk), (op, args) => out.push([op, ...args]));
  return out;
}

describe('key/clipboard timeline of an RDP recording', () => {
  it('matches the golden timeline', () => {
    expect(keyTimeline(instructions(fragment))).toEqual(expected);
  });

  it('gives the same entries when the recording arrives in pieces (as the replay streams it)', () => {
    const t = new KeyTimeline();
    const p = new CodePointParser();
    for (let i = 0; i < fragment.length; i += 7) p.push(fragment.slice(i, i + 7), (op, args) => t.push(op, args));
    expect(t.entries).toEqual(expected);
  });

  it('is empty for a recording without keys or clipboard (recordInput off)', () => {
    const noKeys = instructions(fragment).filter((i) => i[0] !== 'key' && !(['clipboard', 'blob', 'end'].includes(i[0] as string) && i[1] === '2'));
    expect(keyTimeline(noKeys)).toEqual([]);
  });

  it('maps keysyms: Latin-1, Unicode, none for function keys', () => {
    expect(keysymChar(0x41)).toBe('A');
    expect(keysymChar(0xe9)).toBe('é');
    expect(keysymChar(0x0100263a)).toBe('☺');
    expect(keysymChar(0xff0d)).toBeNull();
  });
});
