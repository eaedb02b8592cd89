import { randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import type { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import type { Logger } from '../core/logging.js';
import { AsciicastWriter } from './asciicast.writer.js';
import { DEFAULT_HARD_CAP, DEFAULT_HIGH_WATER_MARK, type SinkResult } from './bounded-sink.js';
import { FsRecordingStore } from './fs-recording.store.js';
import { appendManifest, entryFromRow, NEVER_STARTED } from './manifest.js';
import type {
  RdpRecordingSlot,
  RecordingMeta,
  RecordingSummary,
  SessionRecorder,
  StreamRecording,
  TerminalRecording,
  TerminalRecordingOptions,
} from './recorder.js';
import { contentTypeFor, isUuid, parseRelPath, type RecordingExt, type RecordingStore } from './recording.store.js';
import { StreamWriter } from './stream.writer.js';
import { checkRecording, integrityOf, verifyRecordings, type RecordingIntegrity, type RecordingRow, type VerifyReport } from './verify.js';

export interface RecorderDeps {
  db: Database;
  audit: AuditLog;
  log: Logger;
  /** Recordings directory (`recordings.dir`, default `<dataDir>/recordings`). */
  dir: string;
  /** 32-byte HMAC key of the manifest (recorder/signing-key.ts `loadSigningKey`). */
  signingKey: Buffer;
  /** guacd's view of `dir` (`guacd.recordingDir`), when guacd runs elsewhere (a container). */
  guacdDir?: string | undefined;
  /** Another store (tests); default: files under `dir`. */
  store?: RecordingStore;
  highWaterMark?: number;
  hardCap?: number;
  /** Monotonic milliseconds for event times (tests). */
  clock?: () => number;
  /**
   * Called after a recording is sealed (closed, or recovered after its writer
   * died), outside the live path: the wiring enqueues its search indexing
   * (provisioner/search-index.jobs.ts). Errors are logged, never thrown.
   */
  onSealed?: (recordingId: string) => Promise<void>;
}

/** What the replay API needs (gateway/api defines the same shape). */
export interface RecordingFiles {
  open(recordingId: string): Promise<{
    stream: NodeJS.ReadableStream;
    contentType: string;
    size: number;
    integrity: 'ok' | 'mismatch' | 'unsigned' | 'missing';
  } | null>;
}

type Kind = 'terminal' | 'exec' | 'sftp' | 'rdp';
const ACTOR = 'system:recorder';
const HASH_CACHE_ENTRIES = 10_000;

/**
 * The recorder: writers for pty sessions (asciicast v2), exec/SFTP channels
 * (stream records) and RDP slots (guacd's own files); each closed recording
 * is hashed, signed into the manifest, indexed in `recordings` and audited.
 * Also the read side for replay (`open`) and `verify`.
 */
export class Recorder implements SessionRecorder, RecordingFiles {
  readonly store: RecordingStore;
  readonly #d: RecorderDeps;
  readonly #log: Logger;
  readonly #guacdRoot: string;
  readonly #hashes = new Map<string, { sha256: string; size: number; fingerprint: string }>();

  constructor(deps: RecorderDeps) {
    this.#d = deps;
    this.store = deps.store ?? new FsRecordingStore(deps.dir);
    this.#log = deps.log.child({ component: 'recorder' });
    this.#guacdRoot = deps.guacdDir ?? (this.store instanceof FsRecordingStore ? this.store.root : deps.dir);
  }

  async startTerminal(meta: RecordingMeta, opts: TerminalRecordingOptions): Promise<TerminalRecording> {
    const { recordingId, relPath, handle } = await this.#begin(meta, 'terminal', 'cast');
    const w = new AsciicastWriter(
      handle,
      {
        width: opts.cols,
        height: opts.rows,
        timestamp: Math.floor(Date.now() / 1000),
        term: opts.term ?? 'xterm-256color',
        shell: opts.shell,
        title: `${meta.personLogin} on ${meta.computerName}${meta.account ? ` as ${meta.account}` : ''}`,
        command: opts.command,
        jitgate: {
          sessionId: meta.sessionId, recordingId, computer: meta.computerName, account: meta.account, person: meta.personLogin, protocol: meta.protocol,
          ...(meta.metadata?.breakGlass ? { breakGlass: true } : {}),
          ...(meta.metadata?.accessRequestId ? { accessRequestId: meta.metadata.accessRequestId } : {}),
          ...(meta.metadata?.moderated ? { moderated: true } : {}),
        },
      },
      { recordInput: opts.recordInput, clock: this.#d.clock, hardCap: this.#d.hardCap ?? DEFAULT_HARD_CAP },
    );
    let closing: Promise<RecordingSummary> | undefined;
    return {
      recordingId,
      output: (d) => w.output(d),
      input: (d) => w.input(d),
      resize: (c, r) => w.resize(c, r),
      drained: () => w.drained(),
      close: () => (closing ??= w.close().then((res) => this.#seal(meta, recordingId, 'terminal', relPath, res))),
    };
  }

  async startStream(meta: RecordingMeta, kind: 'exec' | 'sftp', command?: string): Promise<StreamRecording> {
    const { recordingId, relPath, handle } = await this.#begin(meta, kind, 'jsr');
    const w = new StreamWriter(
      handle,
      {
        version: 1,
        recordingId,
        sessionId: meta.sessionId,
        kind,
        command: command ?? null,
        person: meta.personLogin,
        computer: meta.computerName,
        account: meta.account,
        startedAt: Date.now(),
      },
      { clock: this.#d.clock, hardCap: this.#d.hardCap ?? DEFAULT_HARD_CAP },
    );
    let closing: Promise<RecordingSummary> | undefined;
    return {
      recordingId,
      write: (dir, d) => w.write(dir, d),
      drained: () => w.drained(),
      close: (exitCode) => (closing ??= w.close(exitCode ?? null).then((res) => this.#seal(meta, recordingId, kind, relPath, res))),
    };
  }

  async startRdp(meta: RecordingMeta): Promise<RdpRecordingSlot> {
    const recordingId = randomUUID();
    const relPath = this.store.pathFor(meta.sessionId, recordingId, 'guac', new Date());
    await this.store.ensureDir(relPath);
    await this.#index(meta, recordingId, 'rdp', relPath);
    const guacdPath = posix.join(this.#guacdRoot, posix.dirname(relPath));
    const guacdName = posix.basename(relPath);
    let closing: Promise<RecordingSummary | null> | undefined;
    const sealFile = async (): Promise<RecordingSummary> => {
      await this.store.protect(relPath);
      return this.#seal(meta, recordingId, 'rdp', relPath, { droppedBytes: 0, error: null });
    };
    return {
      recordingId,
      guacdPath,
      guacdName,
      close: () =>
        (closing ??= (async () => {
          if (!(await this.store.stat(relPath))) {
            // guacd accepted the connection and should have written: a real gap, left unsigned for `verify` to report.
            await this.#fail(meta, recordingId, 'rdp', 'guacd wrote no recording file');
            this.#log.warn({ sessionId: meta.sessionId, recordingId, guacdPath, guacdName }, 'guacd wrote no recording');
            return null;
          }
          return sealFile();
        })()),
      neverStarted: (reason) =>
        (closing ??= (async () => {
          if (await this.store.stat(relPath)) return sealFile();
          await this.#neverStarted(meta, recordingId, 'rdp', reason);
          return null;
        })()),
    };
  }

  /** Read a recording for replay (null: unknown id, or no file). Integrity is checked against the signed manifest first (a full hash). */
  async open(recordingId: string): Promise<{ stream: NodeJS.ReadableStream; contentType: string; size: number; integrity: RecordingIntegrity } | null> {
    if (!isUuid(recordingId)) return null;
    const rows = await this.#d.db.query<RecordingRow & Record<string, unknown>>('SELECT * FROM recordings WHERE id = $1', [recordingId]);
    const row = rows[0];
    if (!row) return null;
    let ext: RecordingExt;
    try {
      ext = parseRelPath(row.path).ext;
    } catch {
      this.#log.error({ recordingId }, 'recording row has a path jitgate did not generate');
      return null;
    }
    const integrity = await this.#integrityOfRow(row);
    const file = await this.store.openRead(row.path);
    if (!file) return null;
    return { stream: file.stream, contentType: contentTypeFor(ext), size: file.size, integrity };
  }

  /** `ok | mismatch | unsigned | missing` for one recording (null: unknown id). */
  async integrity(recordingId: string): Promise<RecordingIntegrity | null> {
    if (!isUuid(recordingId)) return null;
    const row = (await this.#d.db.query<RecordingRow & Record<string, unknown>>('SELECT * FROM recordings WHERE id = $1', [recordingId]))[0];
    return row ? this.#integrityOfRow(row) : null;
  }

  async #integrityOfRow(row: RecordingRow): Promise<RecordingIntegrity> {
    const entryRows =
      row.manifest_seq === null
        ? []
        : await this.#d.db.query<Parameters<typeof entryFromRow>[0] & Record<string, unknown>>('SELECT * FROM recording_manifest WHERE seq = $1', [Number(row.manifest_seq)]);
    const check = await checkRecording(row, entryRows[0] ? entryFromRow(entryRows[0]) : undefined, this.#d.signingKey, (p) => this.#cachedHash(p));
    return integrityOf(check.status);
  }

  /**
   * SHA-256 for the replay API's integrity badges: reused while the file's
   * fingerprint (inode, size, mtime, ctime) is unchanged, so listing
   * recordings does not re-read every file. `verify` always hashes in full.
   */
  async #cachedHash(relPath: string): Promise<{ sha256: string; size: number } | null> {
    const st = await this.store.stat(relPath);
    if (!st) return null;
    const hit = st.fingerprint ? this.#hashes.get(relPath) : undefined;
    if (hit && hit.fingerprint === st.fingerprint) return hit;
    const h = await this.store.hash(relPath);
    if (h && st.fingerprint) {
      // re-stat: only cache a hash of content that did not change while it was read
      const after = await this.store.stat(relPath);
      if (after?.fingerprint === st.fingerprint) {
        this.#hashes.delete(relPath);
        this.#hashes.set(relPath, { ...h, fingerprint: st.fingerprint });
        if (this.#hashes.size > HASH_CACHE_ENTRIES) this.#hashes.delete(this.#hashes.keys().next().value!);
      }
    }
    return h;
  }

  /**
   * Seal recordings whose writer died with its gateway (SIGKILL, power loss):
   * rows still open whose session has ended (teardown done, so no gateway can
   * still be writing) for at least `graceMs`, and whose file is in this
   * gateway's store. An asciicast loses its incomplete last line (so it still
   * replays; counted in `dropped_bytes`); stream records and guacd's RDP files
   * are sealed as found. Then the file is hashed, signed into
   * the manifest and audited as `recording.completed` (outcome failure,
   * reason "interrupted"). Files on another gateway's disk are left to it.
   * Safe to run on several gateways at once.
   */
  async recoverInterrupted(opts: { graceMs?: number; now?: Date } = {}): Promise<{ sealed: number; elsewhere: number }> {
    const before = new Date((opts.now ?? new Date()).getTime() - (opts.graceMs ?? 60_000));
    const rows = await this.#d.db.query<{ id: string; session_id: string; kind: Kind; path: string; computer_name: string | null; account_name: string | null; person_login: string | null }>(
      `SELECT r.id, r.session_id, r.kind, r.path, s.computer_name, s.account_name, s.person_login
         FROM recordings r JOIN sessions s ON s.id = r.session_id
        WHERE r.ended_at IS NULL AND r.kind IN ('terminal', 'exec', 'sftp', 'rdp')
          AND s.state IN ('ended', 'failed') AND coalesce(s.ended_at, r.started_at) < $1
        ORDER BY r.started_at`,
      [before],
    );
    let sealed = 0;
    let elsewhere = 0;
    for (const r of rows) {
      if (!(await this.store.stat(r.path))) {
        elsewhere++;
        continue;
      }
      const done = await this.#d.db.transaction(async (tx) => {
        // Claim the row first: another gateway sealing the same shared directory backs off here.
        const claimed = await tx.query('UPDATE recordings SET ended_at = now() WHERE id = $1 AND ended_at IS NULL RETURNING id', [r.id]);
        if (!claimed.length) return false;
        const dropped = r.kind === 'terminal' ? await this.#dropPartialLine(r.path) : 0;
        // guacd wrote it as its own user; readable by us only from now on (as a normal close does).
        if (r.kind === 'rdp') await this.store.protect(r.path);
        const h = await this.store.hash(r.path);
        const e = h ? await appendManifest(tx, this.#d.signingKey, { recordingId: r.id, sha256: h.sha256, sizeBytes: h.size }) : null;
        await tx.query('UPDATE recordings SET size_bytes = $2, sha256 = $3, manifest_seq = $4, dropped_bytes = $5 WHERE id = $1', [
          r.id, h?.size ?? null, h?.sha256 ?? null, e?.seq ?? null, dropped,
        ]);
        await this.#d.audit.record(
          {
            type: 'recording.completed', actor: ACTOR, outcome: 'failure', sessionId: r.session_id,
            ...(r.computer_name ? { computer: r.computer_name } : {}), ...(r.account_name ? { account: r.account_name } : {}),
            data: { recordingId: r.id, kind: r.kind, sha256: h?.sha256 ?? null, sizeBytes: h?.size ?? 0, droppedBytes: dropped, reason: 'interrupted: the gateway stopped while recording; sealed as found' },
          },
          tx,
        );
        return true;
      });
      if (done) {
        sealed++;
        this.#sealed(r.id);
        this.#log.warn({ recordingId: r.id, sessionId: r.session_id }, 'interrupted recording sealed as found');
      }
    }
    return { sealed, elsewhere };
  }

  /** Cut an asciicast back to its last complete line; returns the bytes dropped. */
  async #dropPartialLine(relPath: string): Promise<number> {
    const st = await this.store.stat(relPath);
    if (!st || st.size === 0) return 0;
    for (let n = 64 * 1024; ; n *= 16) {
      const tail = await this.store.readTail(relPath, n);
      if (!tail || tail.length === 0 || tail[tail.length - 1] === 0x0a) return 0;
      const nl = tail.lastIndexOf(0x0a);
      if (nl >= 0 || tail.length >= st.size) {
        const keep = st.size - tail.length + nl + 1;
        await this.store.truncate(relPath, keep);
        return st.size - keep;
      }
    }
  }

  verify(opts: { recordingId?: string } = {}): Promise<VerifyReport> {
    return verifyRecordings({ db: this.#d.db, store: this.store, signingKey: this.#d.signingKey }, opts);
  }

  async #begin(meta: RecordingMeta, kind: Kind, ext: RecordingExt) {
    const recordingId = randomUUID();
    const relPath = this.store.pathFor(meta.sessionId, recordingId, ext, new Date());
    await this.#index(meta, recordingId, kind, relPath);
    try {
      const handle = await this.store.create(relPath, { highWaterMark: this.#d.highWaterMark ?? DEFAULT_HIGH_WATER_MARK });
      return { recordingId, relPath, handle };
    } catch (err) {
      this.#log.error({ err, sessionId: meta.sessionId, recordingId }, 'recording file could not be created');
      // The caller refuses the session (no recording, no session): nothing ran, so nothing is missing.
      await this.#neverStarted(meta, recordingId, kind, 'file could not be created').catch(() => undefined);
      throw err;
    }
  }

  /** The row exists from the start, so a recording whose writer died is still found (verify shows it in progress). */
  async #index(meta: RecordingMeta, recordingId: string, kind: Kind, relPath: string): Promise<void> {
    await this.#d.db.transaction(async (tx) => {
      await tx.query('INSERT INTO recordings (id, session_id, kind, path, started_at, metadata) VALUES ($1,$2,$3,$4,now(),$5::jsonb)', [
        recordingId, meta.sessionId, kind, relPath, JSON.stringify(meta.metadata ?? {}),
      ]);
      await this.#d.audit.record(
        {
          type: 'recording.started',
          actor: ACTOR,
          outcome: 'success',
          sessionId: meta.sessionId,
          computer: meta.computerName,
          account: meta.account,
          data: { recordingId, kind, person: meta.personLogin, ...(meta.metadata?.breakGlass ? { breakGlass: true } : {}), ...(meta.metadata?.moderated ? { moderated: true } : {}) },
        },
        tx,
      );
    });
  }

  /** Close a recording that has no file: unsigned row, `recording.completed` with outcome failure. */
  async #fail(meta: RecordingMeta, recordingId: string, kind: Kind, reason: string): Promise<void> {
    await this.#d.db.transaction(async (tx) => {
      await tx.query('UPDATE recordings SET ended_at = now() WHERE id = $1', [recordingId]);
      await this.#d.audit.record(
        { type: 'recording.completed', actor: ACTOR, outcome: 'failure', sessionId: meta.sessionId, computer: meta.computerName, account: meta.account, data: { recordingId, kind, reason } },
        tx,
      );
    });
  }

  /**
   * Close a recording whose session never ran: signed into the manifest with
   * the `never-started` marker, so `verify` accepts it and a row edited to
   * look never started (without the key) does not pass.
   */
  async #neverStarted(meta: RecordingMeta, recordingId: string, kind: Kind, reason: string): Promise<void> {
    await this.#d.db.transaction(async (tx) => {
      const e = await appendManifest(tx, this.#d.signingKey, { recordingId, sha256: NEVER_STARTED, sizeBytes: 0 });
      await tx.query('UPDATE recordings SET ended_at = now(), never_started = true, size_bytes = 0, sha256 = NULL, manifest_seq = $2 WHERE id = $1', [recordingId, e.seq]);
      await this.#d.audit.record(
        {
          type: 'recording.completed', actor: ACTOR, outcome: 'failure', sessionId: meta.sessionId, computer: meta.computerName, account: meta.account,
          data: { recordingId, kind, neverStarted: true, reason },
        },
        tx,
      );
    });
  }

  /** Hash the file as it is on disk, sign it into the manifest, index and audit, in one transaction. */
  async #seal(meta: RecordingMeta, recordingId: string, kind: Kind, relPath: string, res: SinkResult): Promise<RecordingSummary> {
    const h = await this.store.hash(relPath);
    const sha256 = h?.sha256 ?? '';
    const size = h?.size ?? 0;
    if (res.error) this.#log.error({ err: res.error, sessionId: meta.sessionId, recordingId }, 'recording write failed');
    if (res.droppedBytes > 0) this.#log.warn({ sessionId: meta.sessionId, recordingId, droppedBytes: res.droppedBytes }, 'recording dropped bytes');
    const entry = await this.#d.db.transaction(async (tx) => {
      const e = h ? await appendManifest(tx, this.#d.signingKey, { recordingId, sha256, sizeBytes: size }) : null;
      await tx.query('UPDATE recordings SET size_bytes = $2, sha256 = $3, manifest_seq = $4, ended_at = now(), dropped_bytes = $5 WHERE id = $1', [
        recordingId,
        h ? size : null,
        h ? sha256 : null,
        e?.seq ?? null,
        res.droppedBytes,
      ]);
      const failed = !h || res.error !== null;
      await this.#d.audit.record(
        {
          type: 'recording.completed',
          actor: ACTOR,
          outcome: failed ? 'failure' : 'success',
          sessionId: meta.sessionId,
          computer: meta.computerName,
          account: meta.account,
          data: {
            recordingId,
            kind,
            sha256: h ? sha256 : null,
            sizeBytes: size,
            droppedBytes: res.droppedBytes,
            ...(failed ? { reason: h ? 'write failed' : 'file missing' } : {}),
          },
        },
        tx,
      );
      return e;
    });
    if (h) this.#sealed(recordingId);
    return { recordingId, sizeBytes: size, sha256, manifestSeq: entry?.seq ?? 0, droppedBytes: res.droppedBytes };
  }

  /** Hand a sealed recording to search indexing; never delays or fails the close. */
  #sealed(recordingId: string): void {
    const hook = this.#d.onSealed;
    if (!hook) return;
    void hook(recordingId).catch((err: unknown) => this.#log.error({ err, recordingId }, 'could not enqueue search indexing'));
  }
}

/**
 * Wiring for the lead:
 *   const signingKey = loadSigningKey({ configured: cfg.recordings.signingKey, dataDir: cfg.dataDir });
 *   const recorder = createRecorder({ db, audit, log, dir: recordingsDir(cfg), signingKey, guacdDir: cfg.guacd.recordingDir });
 * `recorder` is the SessionRecorder for the proxies and the RecordingFiles for the API.
 */
export function createRecorder(deps: RecorderDeps): Recorder {
  return new Recorder(deps);
}
