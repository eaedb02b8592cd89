import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FsRecordingStore } from '../recorder/fs-recording.store.js';
import { encodeFrame, parseStreamRecord, STREAM_MAGIC, type StreamHeader } from '../recorder/stream.format.js';
import { StreamWriter } from '../recorder/stream.writer.js';

const root = mkdtempSync(join(tmpdir(), 'jg-jsr-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('binary stream record (.jsr)', () => {
  it('round-trips header, direction-tagged frames with times, and the end frame with the exit code', async () => {
    const store = new FsRecordingStore(root);
    const sessionId = randomUUID();
    const recordingId = randomUUID();
    const rel = store.pathFor(sessionId, recordingId, 'jsr', new Date());
    const header: StreamHeader = { version: 1, recordingId, sessionId, kind: 'exec', command: 'tar czf - /etc', person: 'alice', computer: 'web01', account: null, startedAt: 1_790_000_000_000 };
    let now = 10;
    const w = new StreamWriter(await store.create(rel, { highWaterMark: 1 << 20 }), header, { clock: () => now });
    const big = randomBytes(3 << 20); // larger than the high-water mark: one frame
    const script: [('in' | 'out' | 'err'), number, Buffer][] = [
      ['in', 5, Buffer.from('password? no: just stdin\n')],
      ['out', 17, Buffer.from([0, 1, 2, 255, 254, 0x1b])],
      ['err', 1000, Buffer.from('tar: removing leading /\n')],
      ['out', 1500, big],
    ];
    for (const [dir, dt, data] of script) {
      now += dt;
      w.write(dir, data);
      await w.drained();
    }
    expect(w.write('out', Buffer.alloc(0))).toBe(true); // empty writes are no frame
    now += 3;
    await w.close(3);
    const buf = readFileSync(store.absolute(rel));
    expect(buf.subarray(0, 4).equals(STREAM_MAGIC)).toBe(true);
    expect(buf[4]).toBe(1);
    const parsed = parseStreamRecord(buf);
    expect(parsed.header).toEqual(header);
    expect(parsed.frames.map((f) => [f.direction, f.ms])).toEqual([
      ['in', 5],
      ['out', 22],
      ['err', 1022],
      ['out', 2522],
    ]);
    parsed.frames.forEach((f, i) => expect(f.data.equals(script[i]![2])).toBe(true));
    expect(parsed.end).toEqual({ exitCode: 3, droppedBytes: 0 });
    expect(parsed.trailingBytes).toBe(0);
    // frame layout: u8 direction, u32 BE ms, u32 BE length, bytes
    expect([...encodeFrame('err', 0x01020304, Buffer.from('xy'))]).toEqual([2, 1, 2, 3, 4, 0, 0, 0, 2, 0x78, 0x79]);
  });

  it('a record cut mid-frame (writer crashed) parses up to the last whole frame', async () => {
    const store = new FsRecordingStore(root);
    const rel = store.pathFor(randomUUID(), randomUUID(), 'jsr', new Date());
    const header: StreamHeader = { version: 1, recordingId: randomUUID(), sessionId: randomUUID(), kind: 'sftp', command: null, person: 'bob', computer: 'db01', account: 'bob_x', startedAt: 0 };
    const w = new StreamWriter(await store.create(rel, { highWaterMark: 1 << 20 }), header);
    w.write('out', Buffer.from('one'));
    w.write('out', Buffer.from('two'));
    await w.close(null);
    const buf = readFileSync(store.absolute(rel));
    const endFrameLen = 9 + JSON.stringify({ exitCode: null, droppedBytes: 0 }).length;
    const cut = parseStreamRecord(buf.subarray(0, buf.length - endFrameLen - 1));
    expect(cut.frames.map((f) => f.data.toString())).toEqual(['one']);
    expect(cut.end).toBeNull();
    expect(cut.trailingBytes).toBe(11);
    expect(parseStreamRecord(buf).end).toEqual({ exitCode: null, droppedBytes: 0 });
    expect(() => parseStreamRecord(Buffer.from('JGSX\x01\0\0\0\0'))).toThrow(/magic/);
  });
});
