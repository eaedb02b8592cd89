/**
 * Write throughput of the asciicast writer: 256 MiB of terminal output in
 * 16 KiB chunks, honouring backpressure (await drained() whenever output()
 * returns false), to a real file in a temp directory, including the final
 * flush + fsync. Also the .jsr stream writer and the SHA-256 pass done at
 * close. Run: node --import tsx bench/recorder.bench.ts [MiB]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsciicastWriter } from '../recorder/asciicast.writer.js';
import { DEFAULT_HIGH_WATER_MARK } from '../recorder/bounded-sink.js';
import { FsRecordingStore } from '../recorder/fs-recording.store.js';
import { StreamWriter } from '../recorder/stream.writer.js';

const MiB = 1 << 20;
const total = Number(process.argv[2] ?? 256) * MiB;
const CHUNK = 16 * 1024;

/** Typical terminal output: text lines with colour escapes (JSON-escaped as \u001b). */
function terminalChunk(): Buffer {
  const line = '\x1b[32mdrwxr-xr-x\x1b[0m  2 alice users  4096 Nov 23 15:57 \x1b[1;34mrecordings\x1b[0m — ok ✓\r\n';
  return Buffer.from(line.repeat(Math.ceil(CHUNK / Buffer.byteLength(line)))).subarray(0, CHUNK);
}

async function run(name: string, make: (store: FsRecordingStore, rel: (ext: 'cast' | 'jsr') => string) => Promise<{ write(b: Buffer): boolean; drained(): Promise<void>; close(): Promise<unknown> }>, chunk: Buffer) {
  const dir = mkdtempSync(join(tmpdir(), 'jg-bench-'));
  const store = new FsRecordingStore(dir);
  let relPath = '';
  const w = await make(store, (ext) => (relPath = store.pathFor(randomUUID(), randomUUID(), ext, new Date())));
  let waits = 0;
  const t0 = performance.now();
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!w.write(chunk)) {
      waits++;
      await w.drained();
    }
  }
  await w.close();
  const tWrite = performance.now() - t0;
  const h = await store.hash(relPath);
  const tHash = performance.now() - t0 - tWrite;
  const mbps = (total / MiB / (tWrite / 1000)).toFixed(1);
  console.log(
    `${name.padEnd(22)} ${(total / MiB).toFixed(0)} MiB in ${(tWrite / 1000).toFixed(2)} s = ${mbps} MiB/s of session output; file ${(h!.size / MiB).toFixed(1)} MiB; ${waits} backpressure waits; sha256 at close ${(h!.size / MiB / (tHash / 1000)).toFixed(0)} MiB/s; rss ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB`,
  );
  rmSync(dir, { recursive: true, force: true });
}

const text = terminalChunk();
const ascii = Buffer.alloc(CHUNK, 'a');
for (const [label, chunk] of [['terminal text', text], ['plain ascii', ascii]] as const) {
  await run(`asciicast (${label})`, async (store, rel) => {
    const w = new AsciicastWriter(await store.create(rel('cast'), { highWaterMark: DEFAULT_HIGH_WATER_MARK }), { width: 80, height: 24, timestamp: 0, term: 'xterm', title: 'bench', jitgate: { sessionId: '', recordingId: '', computer: '', account: null, person: '', protocol: 'ssh' } }, { recordInput: false });
    return { write: (b) => w.output(b), drained: () => w.drained(), close: () => w.close() };
  }, chunk);
}
await run('stream record (.jsr)', async (store, rel) => {
  const w = new StreamWriter(await store.create(rel('jsr'), { highWaterMark: DEFAULT_HIGH_WATER_MARK }), { version: 1, recordingId: '', sessionId: '', kind: 'exec', command: null, person: '', computer: '', account: null, startedAt: 0 });
  return { write: (b) => w.write('out', b), drained: () => w.drained(), close: () => w.close(0) };
}, text);
