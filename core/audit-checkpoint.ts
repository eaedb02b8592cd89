import { mkdir, open, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { checkpointLine, checkpointSignatureValid, parseCheckpoints, signCheckpoint, type AuditCheckpoint, type CheckpointInFile } from './audit-chain.js';
import type { AuditLog } from './audit.js';
import { verifyAuditChain } from './audit-verify.js';
import { CoreErrors, JitgateError } from './errors.js';

/**
 * Anchors the head of the audit chain outside the database: every `every`
 * events this process records, every `intervalMs` when the chain moved
 * (whoever appended), after this process's first event and at close, it
 * signs `{seq, link, at, count}` of the newest committed event with the
 * audit key and appends it as one line to the checkpoint file, and hands it
 * to listeners (audit forwarding). Someone who can delete rows but cannot
 * read the key then cannot hide that the chain once reached further.
 *
 * Several gateways and workers may share one database and one file: each
 * checkpoint is of a committed prefix (AuditLog.head) and each line is one
 * write(2) on an O_APPEND descriptor, so lines from several processes
 * interleave whole. Before signing, it checks that the chain still extends
 * the last checkpoint it knows (its own, else the newest in the file): it
 * never signs a chain that was cut or rewritten, it logs instead.
 */

export interface CheckpointLog {
  error(obj: object, msg: string): void;
}

export interface AuditCheckpointerOptions {
  audit: AuditLog;
  /** The audit key (the same one the AuditLog links with). */
  key: Buffer;
  /** Checkpoint file (JSON lines, created 0600). */
  file: string;
  /** Checkpoint after this many events recorded by this process. */
  every: number;
  /** And at this period when the chain moved (0: never by time). */
  intervalMs: number;
  log?: CheckpointLog;
  /** Who signs, written into each checkpoint; default `<hostname>:<pid>`. */
  by?: string;
}

/** How much of the file's end is read to find the newest checkpoint (lines are ~400 bytes). */
const TAIL_BYTES = 64 * 1024;

export class AuditCheckpointer {
  readonly #o: AuditCheckpointerOptions;
  readonly #listeners: ((c: AuditCheckpoint) => void)[] = [];
  #sinceLast = 0;
  #recordedAny = false;
  /** The newest checkpoint this process trusts (its own, or the file's at start). */
  #last: { seq: number; link: string } | null | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #started = false;

  constructor(opts: AuditCheckpointerOptions) {
    this.#o = opts;
    opts.audit.addSink(() => this.#onEvent());
  }

  /** Start the periodic checkpoint (timer unref'd: it never keeps the process alive). */
  start(): void {
    this.#started = true;
    if (this.#timer || this.#o.intervalMs <= 0) return;
    this.#timer = setInterval(() => void this.checkpoint().catch(() => undefined), this.#o.intervalMs);
    this.#timer.unref();
  }

  /** Called with each checkpoint written (audit forwarding). Must not throw. */
  onCheckpoint(fn: (c: AuditCheckpoint) => void): void {
    this.#listeners.push(fn);
  }

  /**
   * Sign and append a checkpoint of the newest committed event, unless the
   * chain did not move since the last one. Serialised within the process.
   */
  checkpoint(): Promise<AuditCheckpoint | null> {
    const run = this.#queue.then(() => this.#take());
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Stop the timer and write a last checkpoint (clean shutdown) when this
   * process ran as a service or recorded events: a read-only command
   * (`audit verify`, `check`) leaves the file alone.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    if (!this.#started && !this.#recordedAny) return;
    await this.checkpoint().catch((err: unknown) => this.#o.log?.error({ err }, 'audit checkpoint at shutdown failed'));
  }

  #onEvent(): void {
    if (this.#closed) return;
    this.#sinceLast++;
    const first = !this.#recordedAny;
    this.#recordedAny = true;
    // The first event anchors at once (e.g. the switch to a keyed chain after an upgrade).
    if (first || this.#sinceLast >= this.#o.every) {
      this.#sinceLast = 0;
      void this.checkpoint().catch((err: unknown) => this.#o.log?.error({ err }, 'audit checkpoint failed'));
    }
  }

  async #take(): Promise<AuditCheckpoint | null> {
    const { audit, key, file } = this.#o;
    const head = await audit.head();
    if (!head) return null;
    if (this.#last === undefined) this.#last = await newestInFile(file, key);
    const last = this.#last;
    if (last && last.seq === head.seq && last.link === head.hash) return null;
    if (last) {
      const broken = await this.#extends(last, head.seq);
      if (broken) {
        this.#o.log?.error({ lastCheckpointSeq: last.seq, headSeq: head.seq, problem: broken }, 'audit chain does not extend the last checkpoint: not signing it (run jitgate audit verify)');
        return null;
      }
    }
    const cp = signCheckpoint(key, {
      seq: head.seq,
      link: head.hash,
      at: new Date().toISOString(),
      // verified contiguous from 1 (by `audit verify` and, since the last checkpoint, just now)
      count: head.seq,
      keyedFrom: await audit.keyedFrom(),
      by: this.#o.by ?? `${hostname()}:${process.pid}`,
    });
    await appendLine(file, checkpointLine(cp));
    this.#last = { seq: cp.seq, link: cp.link };
    for (const fn of this.#listeners) {
      try {
        fn(cp);
      } catch {
        // forwarding must never break checkpointing
      }
    }
    return cp;
  }

  /** Undefined when the chain from `last` to `headSeq` holds, else what is wrong, in words. */
  async #extends(last: { seq: number; link: string }, headSeq: number): Promise<string | undefined> {
    const { audit, key } = this.#o;
    if (headSeq < last.seq) return `the chain ends at event ${headSeq}, before the last checkpoint (event ${last.seq}): newest events deleted`;
    const at = await audit.list({ afterSeq: last.seq - 1, limit: 1 });
    if (at[0]?.seq !== last.seq || at[0].hash !== last.link) return `event ${last.seq} is not the one the last checkpoint signed`;
    const audit_ = audit;
    async function* upToHead() {
      for await (const e of audit_.events(last.seq)) {
        if (e.seq > headSeq) return;
        yield e;
      }
    }
    const r = await verifyAuditChain({ events: upToHead(), key, start: last, keyedFromSetting: await audit.keyedFrom() });
    return r.ok ? undefined : r.reason;
  }
}

/** Append one whole line with a single write on an O_APPEND descriptor (lines of concurrent writers never mix). */
async function appendLine(file: string, line: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const fh = await open(file, 'a', 0o600);
  try {
    const buf = Buffer.from(`${line}\n`, 'utf8');
    const { bytesWritten } = await fh.write(buf, 0, buf.length);
    if (bytesWritten !== buf.length) throw new JitgateError(CoreErrors.JIT_ERR_AUDIT_CHECKPOINT_FILE, { reason: `short write to ${file}` });
  } finally {
    await fh.close();
  }
}

/** The newest validly signed checkpoint near the end of the file, null when there is none. */
async function newestInFile(file: string, key: Buffer): Promise<{ seq: number; link: string } | null> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, TAIL_BYTES);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    const { checkpoints } = parseCheckpoints(buf.toString('utf8'), file);
    let best: AuditCheckpoint | null = null;
    for (const { checkpoint: c } of checkpoints) if (checkpointSignatureValid(key, c) && (!best || c.seq > best.seq)) best = c;
    return best ? { seq: best.seq, link: best.link } : null;
  } finally {
    await fh.close();
  }
}

export interface CheckpointSources {
  items: CheckpointInFile[];
  malformed: { source: string; line: number }[];
  missing: string[];
}

/**
 * Every checkpoint in these files (the checkpoint file, or a forwarded copy
 * of the audit stream: event lines are skipped). A missing file is listed,
 * not thrown: `audit verify` reports it.
 */
export async function readCheckpointFiles(paths: readonly string[]): Promise<CheckpointSources> {
  const out: CheckpointSources = { items: [], malformed: [], missing: [] };
  for (const p of paths) {
    let text: string;
    try {
      text = await readFile(p, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        out.missing.push(p);
        continue;
      }
      throw new JitgateError(CoreErrors.JIT_ERR_AUDIT_CHECKPOINT_FILE, { reason: `${p}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }, { cause: err });
    }
    const r = parseCheckpoints(text, p);
    out.items.push(...r.checkpoints);
    out.malformed.push(...r.malformed.map((line) => ({ source: p, line })));
  }
  return out;
}
