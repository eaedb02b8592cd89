import { BoundedSink, DEFAULT_HARD_CAP, type SinkResult } from './bounded-sink.js';
import type { RecordingWriteHandle } from './recording.store.js';
import { encodeEndFrame, encodeFrameHeader, encodeGapFrame, encodeStreamPreamble, type StreamHeader } from './stream.format.js';

/** Writes a `.jsr` stream record (see stream.format.ts) on a file stream with bounded memory. */
export class StreamWriter {
  readonly #sink: BoundedSink;
  readonly #clock: () => number;
  readonly #t0: number;

  constructor(handle: RecordingWriteHandle, header: StreamHeader, opts: { clock?: () => number; hardCap?: number } = {}) {
    this.#clock = opts.clock ?? (() => performance.now());
    this.#t0 = this.#clock();
    this.#sink = new BoundedSink(handle, { hardCap: opts.hardCap ?? DEFAULT_HARD_CAP, gapRecord: (n) => encodeGapFrame(this.#ms(), n) });
    this.#sink.push(encodeStreamPreamble(header), 0);
  }

  #ms(): number {
    return this.#clock() - this.#t0;
  }

  get droppedBytes(): number {
    return this.#sink.droppedBytes;
  }

  get queuedBytes(): number {
    return this.#sink.queuedBytes;
  }

  write(direction: 'in' | 'out' | 'err', data: Uint8Array): boolean {
    if (this.#sink.closing) return false;
    if (data.length === 0) return this.#sink.ready;
    const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return this.#sink.push([encodeFrameHeader(direction, this.#ms(), data.length), bytes], data.length);
  }

  drained(): Promise<void> {
    return this.#sink.drained();
  }

  close(exitCode: number | null = null): Promise<SinkResult> {
    // the end frame reports what was dropped up to now (a later gap frame cannot follow it)
    return this.#sink.finish([encodeEndFrame(this.#ms(), exitCode, this.#sink.droppedBytes)]);
  }
}
