import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isJitgateError } from '../core/errors.js';
import { ByteStreamParser, InstructionParser, encodeInstruction, encodeInstructionUtf16 } from '../gateway/rdp/guac-protocol.js';
import { PeerParser } from './harness/guacd-peer.js';

/**
 * The Guacamole instruction format against golden files written by an
 * independent encoder (Python's len() for code points, UTF-16 units from
 * utf-16-le): lengths in code points for guacd, in UTF-16 units for
 * guacamole-common-js 1.5.0.
 */
const dir = new URL('./golden/guacamole/', import.meta.url);
const cases = JSON.parse(readFileSync(new URL('instructions.json', dir), 'utf8')) as string[][];
const goldenCp = readFileSync(new URL('instructions.codepoint.guac', dir));
const goldenU16 = readFileSync(new URL('instructions.utf16.guac', dir), 'utf8');

describe('Guacamole instruction encoding (golden files)', () => {
  it('counts lengths in Unicode code points for guacd (astral characters count 1)', () => {
    const out = cases.map(([op, ...args]) => encodeInstruction(op as string, ...args)).join('');
    expect(out).toBe(goldenCp.toString('utf8'));
    // The emoji case really differs between the two conventions.
    expect(encodeInstruction('name', 'alice 😀 ok 𝄞')).toBe('4.name,12.alice 😀 ok 𝄞;');
  });

  it('counts lengths in UTF-16 units for guacamole-common-js 1.5.0', () => {
    const out = cases.map(([op, ...args]) => encodeInstructionUtf16(op as string, ...args)).join('');
    expect(out).toBe(goldenU16);
    expect(encodeInstructionUtf16('name', 'alice 😀 ok 𝄞')).toBe('4.name,14.alice 😀 ok 𝄞;');
  });

  it('the independent byte-level peer parser reads the golden stream to the same instructions', () => {
    expect(new PeerParser().push(goldenCp)).toEqual(cases);
  });
});

describe('streaming parser', () => {
  it('parses guacd bytes split at every byte position (UTF-8 characters and instructions split across chunks)', () => {
    for (let i = 1; i < goldenCp.length; i++) {
      const p = new ByteStreamParser();
      const got = [...p.push(goldenCp.subarray(0, i)), ...p.push(goldenCp.subarray(i))];
      expect(got, `split at byte ${i}`).toEqual(cases);
    }
  });

  it('parses guacd bytes split at every pair of positions and byte by byte', () => {
    const n = goldenCp.length;
    for (let i = 1; i < n; i += 3) {
      for (let j = i + 1; j < n; j += 5) {
        const p = new ByteStreamParser();
        const got = [...p.push(goldenCp.subarray(0, i)), ...p.push(goldenCp.subarray(i, j)), ...p.push(goldenCp.subarray(j))];
        expect(got, `split at ${i},${j}`).toEqual(cases);
      }
    }
    const p = new ByteStreamParser();
    const got = [];
    for (let i = 0; i < n; i++) got.push(...p.push(goldenCp.subarray(i, i + 1)));
    expect(got).toEqual(cases);
  });

  it('parses browser text (UTF-16 lengths) split at every position, including between surrogate halves', () => {
    for (let i = 1; i < goldenU16.length; i++) {
      const p = new InstructionParser('utf16');
      const got = [...p.push(goldenU16.slice(0, i)), ...p.push(goldenU16.slice(i))];
      expect(got, `split at ${i}`).toEqual(cases);
    }
  });

  it('waits for more input rather than returning a partial instruction', () => {
    const p = new ByteStreamParser();
    expect(p.push(Buffer.from('4.name,12.alice '))).toEqual([]);
    expect(p.push(Buffer.from('😀 ok 𝄞'))).toEqual([]);
    expect(p.push(Buffer.from(';3.nop;'))).toEqual([['name', 'alice 😀 ok 𝄞'], ['nop']]);
  });

  it('rejects malformed input with JIT_ERR_RDP_PROTOCOL', () => {
    const bad = ['x.select;', '3.abc!', '4.size,4.1024:', `99999999999.x;`, '2.ab,-1.x;'];
    for (const b of bad) {
      let err: unknown;
      try {
        new InstructionParser('codepoint').push(b);
      } catch (e) {
        err = e;
      }
      expect(isJitgateError(err) && err.code === 'JIT_ERR_RDP_PROTOCOL', b).toBe(true);
    }
  });

  it('refuses an instruction larger than the limit instead of buffering without bound', () => {
    const p = new InstructionParser('codepoint', 1000);
    expect(() => p.push('5000.' + 'a'.repeat(100))).toThrow(/too long/);
    const q = new InstructionParser('codepoint', 1000);
    expect(q.push('3.img,' + '900.' + 'a'.repeat(450))).toEqual([]);
    expect(q.push('a'.repeat(450) + ';')).toEqual([['img', 'a'.repeat(900)]]);
    const r = new InstructionParser('codepoint', 1000);
    expect(() => r.push('3.img,900.' + 'a'.repeat(900) + ',900.' + 'b'.repeat(200))).toThrow(/too long/);
  });
});
