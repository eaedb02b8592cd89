import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AsciicastWriter, type AsciicastHeader } from '../recorder/asciicast.writer.js';
import { FsRecordingStore } from '../recorder/fs-recording.store.js';

const GOLDEN = join(import.meta.dirname, 'golden', 'asciicast');
const root = mkdtempSync(join(tmpdir(), 'jg-cast-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SESSION = '11111111-2222-4333-8444-555555555555';
const HEADER: AsciicastHeader = {
  width: 80,
  height: 24,
  timestamp: 1_790_000_000,
  term: 'xterm-256color',
  shell: '/bin/bash',
  title: 'alice on web01 as alice_k3x9q2',
  jitgate: { sessionId: SESSION, recordingId: '', computer: 'web01', account: 'alice_k3x9q2', person: 'alice', protocol: 'ssh' },
};
const enc = (s: string) => new TextEncoder().encode(s);

/** A scripted session with a controllable clock; returns the file written. */
async function script(recordInput: boolean, recordingId: string): Promise<string> {
  const store = new FsRecordingStore(root);
  const rel = store.pathFor(SESSION, recordingId, 'cast', new Date(Date.UTC(2026, 10, 23)));
  const handle = await store.create(rel, { highWaterMark: 1 << 20 });
  let now = 5000; // monotonic ms; time 0 is the writer's creation
  const w = new AsciicastWriter(handle, { ...HEADER, jitgate: { ...HEADER.jitgate, recordingId } }, { recordInput, clock: () => now });
  now += 100.25;
  w.output(enc('hello\r\n'));
  now += 150.25;
  w.input(enc('ls\r'));
  now += 1.0004; // sub-microsecond part is rounded away
  const cafe = Buffer.from('café ok\r\n', 'utf8'); // é = C3 A9, split between two chunks
  w.output(cafe.subarray(0, 4));
  now += 10;
  w.output(cafe.subarray(4));
  const smile = Buffer.from('😀!', 'utf8'); // F0 9F 98 80 split over three chunks
  now += 10;
  w.output(smile.subarray(0, 2));
  w.output(smile.subarray(2, 3));
  now += 10;
  w.output(smile.subarray(3));
  now += 500;
  w.resize(100, 30);
  w.input(Buffer.from([0x03])); // ^C
  now += 733.0678;
  w.output(enc('\x1b[1mbold\x1b[0m "quoted" \\ back\r\n'));
  now += 1;
  w.output(Buffer.from([0xe2, 0x82])); // first two bytes of € and then the session ends
  await w.close();
  return store.absolute(rel);
}

function golden(name: string, actual: string): void {
  const p = join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN) writeFileSync(p, actual);
  expect(actual).toBe(readFileSync(p, 'utf8'));
}

describe('asciicast v2 writer', () => {
  it('writes the scripted session exactly as the golden file (input recorded)', async () => {
    const file = await script(true, 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee');
    const text = readFileSync(file, 'utf8');
    golden('session-input-on.cast', text);
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown);
    const header = lines[0] as Record<string, unknown>;
    expect(header).toMatchObject({ version: 2, width: 80, height: 24, timestamp: 1_790_000_000, env: { TERM: 'xterm-256color', SHELL: '/bin/bash' } });
    expect(header.jitgate).toEqual({ sessionId: SESSION, recordingId: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee', computer: 'web01', account: 'alice_k3x9q2', person: 'alice', protocol: 'ssh' });
    const events = lines.slice(1) as [number, string, string][];
    // times never go backwards; codes are o/i/r only
    for (let i = 1; i < events.length; i++) expect(events[i]![0]).toBeGreaterThanOrEqual(events[i - 1]![0]);
    expect(events.map((e) => e[1])).toEqual(['o', 'i', 'o', 'o', 'o', 'r', 'i', 'o', 'o']);
    // the split characters arrive whole with the chunk that completes them
    expect(events.filter((e) => e[1] === 'o').map((e) => e[2])).toEqual(['hello\r\n', 'caf', 'é ok\r\n', '😀!', '\x1b[1mbold\x1b[0m "quoted" \\ back\r\n', '\ufffd']);
    expect(events[5]).toEqual([0.7815, 'r', '100x30']);
    expect(events[7]![0]).toBe(1.514568); // 1514.5682 ms: microsecond precision
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('omits input events when recordInput is off', async () => {
    const text = readFileSync(await script(false, 'aaaaaaaa-bbbb-4ccc-8ddd-ffffffffffff'), 'utf8');
    golden('session-input-off.cast', text);
    expect(text).not.toContain('"i"');
    expect(text).not.toContain('ls\\r');
  });
});
