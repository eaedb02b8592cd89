import { BoundedSink, DEFAULT_HARD_CAP, type SinkResult } from './bounded-sink.js';
import type { RecordingWriteHandle } from './recording.store.js';

/**
 * asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): one JSON
 * header line, then one JSON array per event `[time, code, data]`, time in
 * seconds since the start with microsecond precision. Codes: "o" output,
 * "i" input, "r" resize ("COLSxROWS"), "m" marker — jitgate writes a marker
 * where bytes were dropped because the writer was past its hard cap.
 */
export interface AsciicastHeader {
  width: number;
  height: number;
  /** Unix time (seconds) of time 0. */
  timestamp: number;
  term: string;
  shell?: string | undefined;
  title: string;
  command?: string | undefined;
  /** Our own header field: who, where, which session. */
  jitgate: {
    sessionId: string;
    recordingId: string;
    computer: string;
    account: string | null;
    person: string;
    protocol: string;
    /** The session ran in a break-glass window (docs/access-requests.md). */
    breakGlass?: boolean;
    accessRequestId?: string;
    /** A four-eyes session: a moderator watched (presence in `recordings.metadata`). */
    moderated?: boolean;
  };
}

export function asciicastHeaderLine(h: AsciicastHeader): string {
  const env: Record<string, string> = { TERM: h.term };
  if (h.shell) env.SHELL = h.shell;
  const obj: Record<string, unknown> = { version: 2, width: h.width, height: h.height, timestamp: h.timestamp, env, title: h.title };
  if (h.command) obj.command = h.command;
  obj.jitgate = h.jitgate;
  return JSON.stringify(obj) + '\n';
}

export type AsciicastCode = 'o' | 'i' | 'r' | 'm';

/** One event line; `seconds` is rendered with exactly six decimals (microseconds). */
export function asciicastEventLine(seconds: number, code: AsciicastCode, data: string): string {
  return `[${seconds.toFixed(6)}, ${JSON.stringify(code)}, ${JSON.stringify(data)}]\n`;
}

export interface AsciicastWriterOptions {
  recordInput: boolean;
  /** Monotonic milliseconds (default performance.now). */
  clock?: () => number;
  hardCap?: number;
}

/**
 * A live asciicast writer on a file stream with bounded memory. Output and
 * input bytes are UTF-8 decoded with one streaming decoder per direction, so a
 * character split across two chunks is emitted whole with the later chunk.
 * (Native TextDecoder + JSON.stringify: a byte-level JS escaper measured
 * about half as fast.)
 */
export class AsciicastWriter {
  readonly #sink: BoundedSink;
  readonly #clock: () => number;
  readonly #t0: number;
  readonly #recordInput: boolean;
  readonly #out = new TextDecoder('utf-8', { fatal: false });
  readonly #in = new TextDecoder('utf-8', { fatal: false });

  constructor(handle: RecordingWriteHandle, header: AsciicastHeader, opts: AsciicastWriterOptions) {
    this.#clock = opts.clock ?? (() => performance.now());
    this.#t0 = this.#clock();
    this.#recordInput = opts.recordInput;
    this.#sink = new BoundedSink(handle, {
      hardCap: opts.hardCap ?? DEFAULT_HARD_CAP,
      gapRecord: (n) => asciicastEventLine(this.#elapsed(), 'm', `jitgate: ${n} bytes not recorded (writer over its memory cap)`),
    });
    this.#sink.push(asciicastHeaderLine(header), 0);
  }

  #elapsed(): number {
    return Math.max(0, this.#clock() - this.#t0) / 1000;
  }

  get droppedBytes(): number {
    return this.#sink.droppedBytes;
  }

  get queuedBytes(): number {
    return this.#sink.queuedBytes;
  }

  output(data: Uint8Array): boolean {
    if (this.#sink.closing) return false;
    const text = this.#out.decode(data, { stream: true });
    if (text === '') return this.#sink.ready;
    return this.#sink.push(asciicastEventLine(this.#elapsed(), 'o', text), data.length);
  }

  input(data: Uint8Array): boolean {
    if (!this.#recordInput || this.#sink.closing) return !this.#sink.closing;
    const text = this.#in.decode(data, { stream: true });
    if (text === '') return this.#sink.ready;
    return this.#sink.push(asciicastEventLine(this.#elapsed(), 'i', text), data.length);
  }

  resize(cols: number, rows: number): void {
    if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols <= 0 || rows <= 0) return;
    this.#sink.push(asciicastEventLine(this.#elapsed(), 'r', `${cols}x${rows}`), 0);
  }

  drained(): Promise<void> {
    return this.#sink.drained();
  }

  /** Flush the decoders (an incomplete trailing character becomes U+FFFD), end and sync the file. */
  close(): Promise<SinkResult> {
    const trailer: string[] = [];
    if (!this.#sink.closing) {
      const o = this.#out.decode();
      if (o) trailer.push(asciicastEventLine(this.#elapsed(), 'o', o));
      if (this.#recordInput) {
        const i = this.#in.decode();
        if (i) trailer.push(asciicastEventLine(this.#elapsed(), 'i', i));
      }
    }
    return this.#sink.finish(trailer);
  }
}
