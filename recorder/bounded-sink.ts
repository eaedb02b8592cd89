import type { RecordingWriteHandle } from './recording.store.js';

/** Above this many queued bytes `output()` returns false (the caller should pause its source). */
export const DEFAULT_HIGH_WATER_MARK = 1 << 20;
/** Above this many queued bytes data is dropped (and counted, and marked in the recording) instead of queued. */
export const DEFAULT_HARD_CAP = 8 << 20;

export interface BackpressureOptions {
  highWaterMark?: number;
  hardCap?: number;
}

export interface SinkResult {
  /** Payload bytes not recorded because the queue was above the hard cap (or the disk failed). */
  droppedBytes: number;
  /** The first write error, if the disk failed. */
  error: Error | null;
}

/**
 * A file stream with bounded memory. The stream's own highWaterMark is ours
 * (set when the store opened it), so `write()`'s return value and its
 * 'drain' event are the backpressure signal. A caller that ignores `false`
 * and keeps writing past `hardCap` queued bytes loses those bytes: they are
 * counted, and `gapRecord` (format-specific) is written before the next
 * accepted record so a replay shows where output is missing.
 *
 * `finish()` never waits on the caller: it resolves pending `drained()`
 * promises at once, writes the trailer past the cap (it is tiny) and waits
 * only for the disk.
 */
export class BoundedSink {
  readonly #handle: RecordingWriteHandle;
  readonly #hardCap: number;
  readonly #gapRecord: (droppedBytes: number) => string | Buffer;
  #dropped = 0;
  #gapPending = 0;
  #error: Error | null = null;
  #closing = false;
  #waiters: (() => void)[] = [];
  #finishing: Promise<SinkResult> | undefined;

  constructor(handle: RecordingWriteHandle, opts: { hardCap: number; gapRecord: (droppedBytes: number) => string | Buffer }) {
    this.#handle = handle;
    this.#hardCap = opts.hardCap;
    this.#gapRecord = opts.gapRecord;
    const wake = () => this.#wake();
    handle.stream.on('drain', wake);
    handle.stream.on('close', wake);
    handle.stream.on('error', (err: Error) => {
      this.#error ??= err;
      wake();
    });
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Whether a caller may write now (not closing, not failed, below the high-water mark). */
  get ready(): boolean {
    const s = this.#handle.stream;
    return !this.#closing && !this.#error && !s.destroyed && !s.writableNeedDrain;
  }

  /** Bytes currently queued in memory, not yet on disk. */
  get queuedBytes(): number {
    return this.#handle.stream.writableLength;
  }

  get droppedBytes(): number {
    return this.#dropped;
  }

  /**
   * Queue one encoded record carrying `payloadBytes` bytes of session data.
   * Returns whether the caller may keep writing (false: pause until `drained()`).
   * After `finish()` began, records are ignored (a proxy racing its own close).
   */
  push(record: string | Buffer | readonly Buffer[], payloadBytes: number): boolean {
    if (this.#closing) return false;
    const s = this.#handle.stream;
    if (this.#error || s.destroyed) {
      this.#dropped += payloadBytes;
      return false;
    }
    const parts = typeof record === 'string' || Buffer.isBuffer(record) ? null : record;
    const len = parts ? parts.reduce((n, b) => n + b.length, 0) : typeof record === 'string' ? Buffer.byteLength(record) : (record as Buffer).length;
    if (s.writableLength + len > this.#hardCap) {
      this.#dropped += payloadBytes;
      this.#gapPending += payloadBytes;
      return false;
    }
    if (this.#gapPending > 0) {
      s.write(this.#gapRecord(this.#gapPending));
      this.#gapPending = 0;
    }
    if (!parts) return s.write(record as string | Buffer);
    // A record in parts (a frame header and the relayed bytes as they came): queued without
    // copying them into one buffer. The parts are never changed after this, as for any
    // chunk written to a stream; the file stream writes queued chunks with one writev.
    let ok = true;
    for (const part of parts) ok = s.write(part);
    return ok;
  }

  /** Resolves once the queue is below the high-water mark (or the recording is closing or failed). */
  drained(): Promise<void> {
    const s = this.#handle.stream;
    if (this.#closing || this.#error || s.destroyed || !s.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Write the trailer records, end the file, wait for the disk, fsync, close. */
  finish(trailer: (string | Buffer)[] = []): Promise<SinkResult> {
    this.#finishing ??= this.#finish(trailer);
    return this.#finishing;
  }

  async #finish(trailer: (string | Buffer)[]): Promise<SinkResult> {
    this.#closing = true;
    this.#wake();
    const s = this.#handle.stream;
    if (!this.#error && !s.destroyed) {
      if (this.#gapPending > 0) s.write(this.#gapRecord(this.#gapPending));
      this.#gapPending = 0;
      for (const t of trailer) s.write(t);
    }
    try {
      await this.#handle.finish();
    } catch (err) {
      this.#error ??= err as Error;
    }
    return { droppedBytes: this.#dropped, error: this.#error };
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const r of w) r();
  }
}
