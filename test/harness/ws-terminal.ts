/**
 * A websocket terminal client for tests and benchmarks: speaks the browser
 * terminal protocol of docs/api.md (binary = terminal bytes, text = JSON
 * control) and lets a test wait for conditions instead of sleeping.
 */
import { WebSocket } from 'ws';

export interface ControlMessage {
  type: string;
  [k: string]: unknown;
}

export interface WsTerminalOptions {
  headers?: Record<string, string>;
  /** Milliseconds a `waitFor…` call waits by default; 60 s. */
  timeoutMs?: number;
}

export class WsTerminal {
  readonly ws: WebSocket;
  /** Every control message received, in order. */
  readonly messages: ControlMessage[] = [];
  readonly #decoder = new TextDecoder('utf-8');
  /** Decoded output chunks; `text` joins them on demand (a growing string re-flattened per frame is quadratic). */
  readonly #chunks: string[] = [];
  #joined = '';
  #joinedChunks = 0;
  #outputLength = 0;
  readonly #timeoutMs: number;
  readonly #waiters = new Set<() => void>();
  closeCode: number | null = null;
  closeReason = '';
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Time of the first binary frame after each `send` (for latency measurements). */
  lastSendAt = 0;
  firstByteAfterSend: number | null = null;

  constructor(url: string, opts: WsTerminalOptions = {}) {
    this.#timeoutMs = opts.timeoutMs ?? 60_000;
    this.ws = new WebSocket(url, { headers: opts.headers ?? {} });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        if (this.firstByteAfterSend === null && this.lastSendAt > 0) this.firstByteAfterSend = performance.now() - this.lastSendAt;
        this.#chunks.push(this.#decoder.decode(data, { stream: true }));
        this.#outputLength += data.length;
      } else {
        try {
          this.messages.push(JSON.parse(data.toString('utf8')) as ControlMessage);
        } catch {
          this.messages.push({ type: 'unparsable', raw: data.toString('utf8') });
        }
      }
      this.#notify();
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString('utf8');
        this.#notify();
        resolve({ code, reason: this.closeReason });
      });
    });
    this.ws.on('error', () => this.#notify());
  }

  #notify(): void {
    for (const w of this.#waiters) w();
  }

  /** Terminal output so far, decoded as UTF-8. */
  get text(): string {
    if (this.#joinedChunks < this.#chunks.length) {
      this.#joined += this.#chunks.slice(this.#joinedChunks).join('');
      this.#joinedChunks = this.#chunks.length;
    }
    return this.#joined;
  }

  get outputBytes(): number {
    return this.#outputLength;
  }

  /** Resolve once `cond()` holds; reject after the timeout (saying what was seen) or when it cannot hold any more. */
  waitFor<T>(what: string, cond: () => T | null | undefined | false, timeoutMs = this.#timeoutMs): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        let v: T | null | undefined | false;
        try {
          v = cond();
        } catch (err) {
          done();
          reject(err as Error);
          return;
        }
        if (v) {
          done();
          resolve(v);
        } else if (this.closeCode !== null) {
          done();
          reject(new Error(`closed (${this.closeCode} ${this.closeReason}) while waiting for ${what}; messages: ${JSON.stringify(this.messages)}; output tail: ${JSON.stringify(this.text.slice(-300))}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${what}; messages: ${JSON.stringify(this.messages)}; output tail: ${JSON.stringify(this.text.slice(-300))}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  waitForMessage(type: string, timeoutMs?: number): Promise<ControlMessage> {
    return this.waitFor(`a "${type}" message`, () => this.messages.find((m) => m.type === type), timeoutMs);
  }

  /**
   * Wait until the output (from `fromOffset` characters on) matches. Only the
   * new output (plus 4 KiB of overlap) is scanned on each frame, so waiting
   * through megabytes of output stays linear; matches must be shorter than that.
   */
  waitForOutput(re: RegExp, fromOffset = 0, timeoutMs?: number): Promise<RegExpMatchArray> {
    const all = this.text;
    let tail = all.slice(fromOffset);
    let seen = this.#chunks.length;
    return this.waitFor(`output matching ${String(re)}`, () => {
      if (this.#chunks.length > seen) {
        tail += this.#chunks.slice(seen).join('');
        seen = this.#chunks.length;
      }
      const m = tail.match(re);
      if (!m && tail.length > 65536) tail = tail.slice(-4096);
      return m;
    }, timeoutMs);
  }

  async opened(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return;
    await new Promise<void>((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('close', (code) => reject(new Error(`closed with ${code} before opening`)));
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    });
  }

  /** Type keys (binary frame). */
  send(keys: string | Buffer): void {
    this.lastSendAt = performance.now();
    this.firstByteAfterSend = null;
    this.ws.send(typeof keys === 'string' ? Buffer.from(keys, 'utf8') : keys, { binary: true });
  }

  resize(cols: number, rows: number): void {
    this.ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  }

  close(): void {
    this.ws.close(1000);
  }

  /** Whether the socket ended (any code) within the timeout. */
  async waitClosed(timeoutMs = this.#timeoutMs): Promise<{ code: number; reason: string }> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.closed,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`not closed after ${timeoutMs} ms; messages: ${JSON.stringify(this.messages)}`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}
