import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { migrate } from '../core/db/migrations.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import { silentLogger } from '../core/logging.js';
import { FsRecordingStore } from '../recorder/fs-recording.store.js';
import type { RecordingMeta } from '../recorder/recorder.js';
import type { RecordingStore, RecordingWriteHandle } from '../recorder/recording.store.js';
import { createRecorder, type Recorder } from '../recorder/session-recorder.js';
import { parseStreamRecord } from '../recorder/stream.format.js';

/**
 * A disk that stops: every file the store creates goes through a Writable
 * whose writes wait for `release()` (a stalled NFS mount, a full disk
 * queue), then reach the real file.
 */
class PausableStore implements RecordingStore {
  readonly inner: FsRecordingStore;
  /** The last stream handed out: its writableLength is what the recorder holds in memory. */
  last: Writable | undefined;
  #open!: () => void;
  #gate!: Promise<void>;
  constructor(root: string) {
    this.inner = new FsRecordingStore(root);
    this.pause();
  }
  pause(): void {
    this.#gate = new Promise((r) => (this.#open = r));
  }
  release(): void {
    this.#open();
  }
  async create(relPath: string, opts: { highWaterMark: number }): Promise<RecordingWriteHandle> {
    const real = await this.inner.create(relPath, opts);
    const gated = new Writable({
      highWaterMark: opts.highWaterMark,
      write: (chunk: Buffer, _enc, cb) => {
        void this.#gate.then(() => (real.stream.write(chunk) ? cb() : real.stream.once('drain', () => cb())));
      },
    });
    this.last = gated;
    return {
      stream: gated,
      finish: async () => {
        await new Promise<void>((resolve, reject) => {
          gated.once('finish', resolve).once('error', reject);
          gated.end();
        });
        await real.finish();
      },
    };
  }
  pathFor: RecordingStore['pathFor'] = (...a) => this.inner.pathFor(...a);
  ensureDir: RecordingStore['ensureDir'] = (p) => this.inner.ensureDir(p);
  absolute: RecordingStore['absolute'] = (p) => this.inner.absolute(p);
  stat: RecordingStore['stat'] = (p) => this.inner.stat(p);
  hash: RecordingStore['hash'] = (p) => this.inner.hash(p);
  openRead: RecordingStore['openRead'] = (p) => this.inner.openRead(p);
  protect: RecordingStore['protect'] = (p) => this.inner.protect(p);
  readTail: RecordingStore['readTail'] = (p, n) => this.inner.readTail(p, n);
  truncate: RecordingStore['truncate'] = (p, n) => this.inner.truncate(p, n);
  remove: RecordingStore['remove'] = (p) => this.inner.remove(p);
}

const HWM = 64 * 1024;
const CAP = 512 * 1024;
const CHUNK = Buffer.alloc(16 * 1024, 'x'); // plain ASCII: one JSON event is ~16 KiB + 30 bytes

/** Resolves true if `p` settles before the event loop has turned a few times. */
async function settlesSoon(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  return done;
}

describe('recorder backpressure', () => {
  let db: Database;
  let dir: string;
  let store: PausableStore;
  let rec: Recorder;

  beforeAll(async () => {
    db = await PgliteDatabase.open();
    await migrate(db);
    dir = mkdtempSync(join(tmpdir(), 'jg-bp-'));
    store = new PausableStore(dir);
    rec = createRecorder({ db, audit: new AuditLog(db), log: silentLogger(), dir, signingKey: Buffer.alloc(32, 9), store, highWaterMark: HWM, hardCap: CAP });
  });
  afterAll(async () => {
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function meta(): Promise<RecordingMeta> {
    const id = randomUUID();
    await db.query(
      "INSERT INTO sessions (id, person_login, computer_name, protocol, account_type, state, lease_expires_at) VALUES ($1,'bob','db01','ssh','existing','active', now() + interval '1 hour')",
      [id],
    );
    return { sessionId: id, personLogin: 'bob', computerName: 'db01', account: null, protocol: 'ssh', startedAt: new Date() };
  }

  it('output() returns false above the high-water mark and drained() resolves once the disk catches up; nothing is lost', async () => {
    store.pause();
    const t = await rec.startTerminal(await meta(), { cols: 80, rows: 24, recordInput: false });
    let n = 0;
    while (t.output(CHUNK)) n++;
    n++;
    expect(n).toBeLessThanOrEqual(Math.ceil(HWM / CHUNK.length) + 1);
    const drained = t.drained();
    expect(await settlesSoon(drained)).toBe(false); // the disk is paused: still above the mark
    store.release();
    await drained;
    expect(t.output(CHUNK)).toBe(true);
    const sum = await t.close();
    expect(sum.droppedBytes).toBe(0);
    const lines = readFileSync(store.absolute((await db.query<{ path: string }>('SELECT path FROM recordings WHERE id = $1', [t.recordingId]))[0]!.path), 'utf8').trimEnd().split('\n');
    expect(lines.length - 1).toBe(n + 1);
  });

  it('a caller ignoring false: memory stays under the hard cap, dropped bytes are counted and marked in the recording', async () => {
    store.pause();
    const t = await rec.startTerminal(await meta(), { cols: 80, rows: 24, recordInput: false });
    const total = 8 << 20; // 16× the cap
    let maxQueued = 0;
    for (let sent = 0; sent < total; sent += CHUNK.length) {
      t.output(CHUNK);
      maxQueued = Math.max(maxQueued, store.last!.writableLength);
    }
    expect(maxQueued).toBeGreaterThan(CAP - CHUNK.length - 100);
    expect(maxQueued).toBeLessThanOrEqual(CAP);
    store.release();
    const sum = await t.close();
    expect(sum.droppedBytes).toBeGreaterThan(total - CAP - CHUNK.length);
    const path = store.absolute((await db.query<{ path: string }>('SELECT path FROM recordings WHERE id = $1', [t.recordingId]))[0]!.path);
    const events = readFileSync(path, 'utf8').trimEnd().split('\n').slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    const recorded = events.filter((e) => e[1] === 'o').reduce((a, e) => a + e[2].length, 0);
    expect(recorded + sum.droppedBytes!).toBe(total);
    expect(recorded).toBeLessThanOrEqual(CAP);
    const marker = events.find((e) => e[1] === 'm');
    expect(marker![2]).toBe(`jitgate: ${sum.droppedBytes} bytes not recorded (writer over its memory cap)`);
    const [row] = await db.query<{ dropped_bytes: string }>('SELECT dropped_bytes FROM recordings WHERE id = $1', [t.recordingId]);
    expect(Number(row!.dropped_bytes)).toBe(sum.droppedBytes);
    expect((await rec.verify({ recordingId: t.recordingId })).ok).toBe(true);
  });

  it('stream records: a gap frame, then the end frame, when the cap was hit', async () => {
    store.pause();
    const s = await rec.startStream(await meta(), 'sftp');
    const total = 2 << 20;
    for (let sent = 0; sent < total; sent += CHUNK.length) s.write('out', CHUNK);
    store.release();
    const sum = await s.close(0);
    const path = store.absolute((await db.query<{ path: string }>('SELECT path FROM recordings WHERE id = $1', [s.recordingId]))[0]!.path);
    const parsed = parseStreamRecord(readFileSync(path));
    const gap = parsed.frames.find((f) => f.direction === 'gap')!;
    expect(Number(gap.data.readBigUInt64BE())).toBe(sum.droppedBytes);
    const recorded = parsed.frames.filter((f) => f.direction === 'out').reduce((a, f) => a + f.data.length, 0);
    expect(recorded + sum.droppedBytes!).toBe(total);
    expect(parsed.end).toEqual({ exitCode: 0, droppedBytes: sum.droppedBytes });
  });

  it('close() while the disk is paused and a caller waits in drained(): the waiter is released, close completes once the disk moves, late writes are ignored', async () => {
    store.pause();
    const t = await rec.startTerminal(await meta(), { cols: 80, rows: 24, recordInput: true });
    while (t.output(CHUNK));
    const waiting = t.drained();
    const closing = t.close();
    expect(await settlesSoon(waiting)).toBe(true); // no deadlock: close wakes the paused caller
    expect(t.output(CHUNK)).toBe(false); // after close began
    expect(t.input(CHUNK)).toBe(false);
    expect(await settlesSoon(closing)).toBe(false); // still waiting for the disk, as it must
    store.release();
    const sum = await closing;
    expect(sum.sizeBytes).toBeGreaterThan(HWM);
    expect((await rec.verify({ recordingId: t.recordingId })).recordings[0]!.status).toBe('ok');
  });

  it('close() with writes pending on a real file stream flushes them all', async () => {
    const plain = createRecorder({ db, audit: new AuditLog(db), log: silentLogger(), dir, signingKey: Buffer.alloc(32, 9), highWaterMark: HWM, hardCap: 64 << 20 });
    const t = await plain.startTerminal(await meta(), { cols: 80, rows: 24, recordInput: false });
    for (let i = 0; i < 1024; i++) t.output(CHUNK); // 16 MiB queued at once, no waiting
    const sum = await t.close();
    const path = plain.store.absolute((await db.query<{ path: string }>('SELECT path FROM recordings WHERE id = $1', [t.recordingId]))[0]!.path);
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(1025);
    expect(sum.droppedBytes).toBe(0);
  });
});
