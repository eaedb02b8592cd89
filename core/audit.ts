import { AUDIT_GENESIS, KEYED_ALG, LEGACY_ALG, keyedLink, legacyLink, type AuditAlg, type CheckpointInFile } from './audit-chain.js';
import { verifyAuditChain, type AuditVerifyReport } from './audit-verify.js';
import type { Database, Queryable } from './db/database.js';

/**
 * The audit trail for security teams: an append-only table in which every
 * event carries an HMAC over the previous event's link and its own content,
 * with a key kept outside the database (core/audit-key.ts), so an edited,
 * inserted or deleted row breaks the chain and nobody without the key can
 * rebuild it; signed checkpoints outside the database
 * (core/audit-checkpoint.ts) catch deletion of the newest events
 * (`jitgate audit verify`, docs/audit.md). Separate from logs.
 */
export const AUDIT_TYPES = [
  'session.requested',
  'session.denied',
  'session.started',
  'session.ended',
  'session.failed',
  'account.created',
  'account.reused',
  'account.group_added',
  'account.group_removed',
  'account.disabled',
  'account.enabled',
  'account.password_rotated',
  'account.password_revealed',
  'account.deleted',
  'account.rolled_back',
  'account.logged_off',
  'reconcile.forgotten',
  'lease.expired',
  'reconcile.removed',
  'reconcile.completed',
  'session.terminated',
  'session.extended',
  // An admin or auditor started (data.phase 'started') or stopped ('stopped') watching a live session, read-only (SSH or RDP).
  'session.watch',
  // Trust on first use is gone (issue 12); kept so older trails still read.
  'session.host_key_recorded',
  'computer.host_key_pinned',
  'computer.host_key_unpinned',
  'auth.signed_in',
  'auth.sign_in_failed',
  'auth.signed_out',
  'auth.locked',
  'auth.totp_enrolled',
  'auth.recovery_code_used',
  'auth.password_changed',
  'auth.session_revoked',
  'auth.bootstrap',
  'auth.ssh_key_added',
  'auth.ssh_key_removed',
  // Sign-in through identity providers (issue 15): just-in-time creation, role/org changes from the provider, deprovisioning, back-channel logout.
  'auth.person_provisioned',
  'auth.person_updated',
  'auth.deprovisioned',
  'auth.backchannel_logout',
  // Passkeys (issue 15): enrolled, renamed, revoked (by the person); a step-up confirmation before connecting. Sign-ins with one are auth.signed_in with factor passkey.
  'auth.passkey_enrolled',
  'auth.passkey_renamed',
  'auth.passkey_revoked',
  'auth.step_up',
  // Recovery codes issued at a passkey-only person's first passkey, or regenerated under My account (data.reason).
  'auth.recovery_codes_issued',
  // Invitations (issue 15): an admin made a one-time link, the invitee used it, a used/expired/withdrawn link was refused, an admin withdrew one.
  'auth.invitation_created',
  'auth.invitation_used',
  'auth.invitation_refused',
  'auth.invitation_revoked',
  'admin.changed',
  'access.denied',
  'recording.started',
  'recording.completed',
  'recording.viewed',
  'recording.verified',
  // A file moved through an RDP session's redirected drive (gateway/rdp/rdp-streams.ts): name, bytes, outcome.
  'rdp.file.upload',
  'rdp.file.download',
  // Access requests with approval (issue 16, docs/access-requests.md): the whole life of a request and its window.
  'access_request.requested',
  'access_request.notified',
  'access_request.decided',
  'access_request.approved',
  'access_request.denied',
  'access_request.expired',
  'access_request.revoked',
  'access_request.cancelled',
  'access_request.used',
  'access_request.break_glass',
  'access_request.granted',
  'access_request.settings_changed',
  // Evidence (issue 19, docs/evidence.md): a recording file downloaded, a session's evidence bundle exported, a recording deleted by retention, a legal hold set or lifted (data.hold).
  'recording.downloaded',
  'recording.evidence_exported',
  'recording.deleted',
  'session.legal_hold',
  // Four-eyes sessions (docs/access-requests.md "Four-eyes sessions").
  'session.moderation',
] as const;

export type AuditType = (typeof AUDIT_TYPES)[number];
export type AuditOutcome = 'success' | 'failure' | 'denied';

export interface AuditEventInput {
  type: AuditType;
  /** Who: a person's login, `system:<component>` for jitgate itself. */
  actor: string;
  outcome: AuditOutcome;
  sessionId?: string | null;
  computer?: string | null;
  account?: string | null;
  /** Extra facts (group, store, error code...). Never secrets. */
  data?: Record<string, string | number | boolean | null | string[]>;
}

export interface AuditEvent extends Required<Omit<AuditEventInput, 'data'>> {
  seq: number;
  at: Date;
  data: Record<string, unknown>;
  prevHash: string;
  /** This event's link: HMAC-SHA256 (`alg` hmac-sha256) or, on rows older than migration 8, SHA-256. */
  hash: string;
  alg: AuditAlg;
}

const AUDIT_LOCK = 73_461_002;
/** settings row: the first HMAC-keyed event (written once, when the chain switches). */
export const KEYED_FROM_SETTING = 'audit.keyed_from';

export interface AuditSink {
  /** Receives each committed event (file/syslog forwarding). Must not throw. */
  (event: AuditEvent): void;
}

export interface AuditQuery {
  type?: string;
  actor?: string;
  computer?: string;
  account?: string;
  sessionId?: string;
  since?: Date;
  until?: Date;
  limit?: number;
  afterSeq?: number;
}

export type AuditRow = {
  seq: string | number;
  at: Date | string;
  type: string;
  actor: string;
  session_id: string | null;
  computer: string | null;
  account: string | null;
  outcome: string;
  data: Record<string, unknown> | string;
  prev_hash: string;
  hash: string;
  alg: string;
};

export function auditEventFromRow(r: AuditRow): AuditEvent {
  return {
    seq: Number(r.seq),
    at: r.at instanceof Date ? r.at : new Date(r.at),
    type: r.type as AuditType,
    actor: r.actor,
    outcome: r.outcome as AuditOutcome,
    sessionId: r.session_id,
    computer: r.computer,
    account: r.account,
    data: typeof r.data === 'string' ? (JSON.parse(r.data) as Record<string, unknown>) : r.data,
    prevHash: r.prev_hash,
    hash: r.hash,
    alg: r.alg as AuditAlg,
  };
}

/**
 * Head of the chain per embedded (PGlite) database, as last committed by this
 * process. PGlite is single-process (its directory is locked) and runs one
 * transaction at a time, so the head read back is the head we wrote; it saves
 * a query per event. Never used on PostgreSQL, where other processes append.
 */
const embeddedHead = new WeakMap<Database, { seq: number; hash: string; alg: string }>();

export interface AuditLogOptions {
  /**
   * 32-byte HMAC key (core/audit-key.ts `loadAuditKey`). Without it events
   * are chained with the unkeyed SHA-256 of old (unit tests, tools); every
   * process of an installation passes it (app/main.ts).
   */
  key?: Buffer;
}

export interface AuditVerifyOptions {
  /** Signed checkpoints kept outside the database (core/audit-checkpoint.ts `readCheckpointFiles`). */
  checkpoints?: { items: CheckpointInFile[]; malformed: { source: string; line: number }[]; missing: string[] };
}

/** Whether a queryable is a whole database (it can open transactions) rather than one transaction. */
function isDatabase(q: Queryable): q is Database {
  return typeof (q as Partial<Database>).transaction === 'function';
}

export class AuditLog {
  readonly #db: Database;
  readonly #sinks: AuditSink[] = [];
  readonly #key: Buffer | undefined;

  constructor(db: Database, opts: AuditLogOptions = {}) {
    this.#db = db;
    this.#key = opts.key;
  }

  /** Whether events are HMAC-keyed (a key was given). */
  get keyed(): boolean {
    return this.#key !== undefined;
  }

  addSink(sink: AuditSink): void {
    this.#sinks.push(sink);
  }

  /** Append one event; serialised across processes by an advisory lock. */
  async record(input: AuditEventInput, tx?: Queryable): Promise<AuditEvent> {
    // A caller's queryable that is a Database (a pool) is no transaction: on it the advisory
    // lock below would be released when its own statement ends, before the insert, and two
    // processes would append the same seq. Such an append runs in a transaction of its own.
    const inTx = tx && !isDatabase(tx) ? tx : undefined;
    const run = async (q: Queryable): Promise<AuditEvent> => {
      // Serialise appenders across connections (PostgreSQL). PGlite is one
      // connection whose transactions already run one at a time.
      if (this.#db.kind !== 'pglite') await q.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
      const cached = inTx ? undefined : embeddedHead.get(this.#db);
      const last = cached ? [cached] : await q.query<{ seq: string | number; hash: string; alg: string }>('SELECT seq, hash, alg FROM audit_events ORDER BY seq DESC LIMIT 1');
      const prevHash = last[0]?.hash ?? AUDIT_GENESIS;
      const seq = Number(last[0]?.seq ?? 0) + 1;
      // Millisecond precision: what PostgreSQL stores round-trips exactly.
      const at = new Date(Math.floor(Date.now()));
      const ev = {
        seq,
        at,
        type: input.type,
        actor: input.actor,
        outcome: input.outcome,
        sessionId: input.sessionId ?? null,
        computer: input.computer ?? null,
        account: input.account ?? null,
        data: input.data ?? {},
      };
      const alg = this.#key ? KEYED_ALG : LEGACY_ALG;
      const hash = this.#key ? keyedLink(this.#key, prevHash, ev) : legacyLink(prevHash, ev);
      await q.query(
        'INSERT INTO audit_events (seq, at, type, actor, session_id, computer, account, outcome, data, prev_hash, hash, alg) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)',
        [seq, at, ev.type, ev.actor, ev.sessionId, ev.computer, ev.account, ev.outcome, JSON.stringify(ev.data), prevHash, hash, alg],
      );
      if (alg === KEYED_ALG && last[0]?.alg !== KEYED_ALG) {
        // The switch from unkeyed to keyed: remembered so that verify calls unkeyed rows after it a downgrade.
        await q.query('INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', [KEYED_FROM_SETTING, JSON.stringify(seq)]);
      }
      // Inside the (exclusive) transaction, so the next appender sees it; dropped again if the commit fails.
      if (!inTx && this.#db.kind === 'pglite') embeddedHead.set(this.#db, { seq, hash, alg });
      return { ...ev, prevHash, hash, alg };
    };
    let event: AuditEvent;
    if (inTx) {
      // The caller's transaction may still roll back: forget the head.
      embeddedHead.delete(this.#db);
      event = await run(inTx);
    } else {
      try {
        event = await this.#db.transaction(run);
      } catch (err) {
        embeddedHead.delete(this.#db);
        throw err;
      }
    }
    for (const sink of this.#sinks) {
      try {
        sink(event);
      } catch {
        // forwarding must never break the audited operation
      }
    }
    return event;
  }

  async list(q: AuditQuery = {}): Promise<AuditEvent[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, v: unknown) => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (q.type) add('type = ?', q.type);
    if (q.actor) add('actor = ?', q.actor);
    if (q.computer) add('computer = ?', q.computer);
    if (q.account) add('account = ?', q.account);
    if (q.sessionId) add('session_id = ?', q.sessionId);
    if (q.since) add('at >= ?', q.since);
    if (q.until) add('at < ?', q.until);
    if (q.afterSeq !== undefined) add('seq > ?', q.afterSeq);
    params.push(Math.min(q.limit ?? 1000, 100_000));
    const rows = await this.#db.query<AuditRow>(
      `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq ASC LIMIT $${params.length}`,
      params,
    );
    return rows.map(auditEventFromRow);
  }

  /**
   * The newest committed event (null: empty). Appenders hold an advisory lock
   * until they commit, so event n commits before n+1 is even written: what
   * this reads is the head of a committed prefix, safe to checkpoint.
   */
  async head(): Promise<{ seq: number; hash: string; alg: string } | null> {
    const rows = await this.#db.query<{ seq: string | number; hash: string; alg: string }>('SELECT seq, hash, alg FROM audit_events ORDER BY seq DESC LIMIT 1');
    return rows[0] ? { seq: Number(rows[0].seq), hash: rows[0].hash, alg: rows[0].alg } : null;
  }

  /** The first HMAC-keyed event as the settings say (null: the chain has not switched). */
  async keyedFrom(): Promise<number | null> {
    const rows = await this.#db.query<{ value: unknown }>('SELECT value FROM settings WHERE key = $1', [KEYED_FROM_SETTING]);
    const v = rows[0]?.value;
    const n = typeof v === 'string' ? Number(JSON.parse(v)) : Number(v);
    return rows[0] && Number.isSafeInteger(n) ? n : null;
  }

  /** Events in seq order, from `afterSeq` on, read in batches. */
  async *events(afterSeq = 0): AsyncGenerator<AuditEvent> {
    let after = afterSeq;
    for (;;) {
      const batch = await this.list({ afterSeq: after, limit: 5000 });
      if (batch.length === 0) return;
      yield* batch;
      after = batch.at(-1)!.seq;
    }
  }

  /**
   * Walk the whole chain (core/audit-verify.ts): edited rows fail their
   * link, deleted rows leave a seq gap or break the next row's previous
   * link, unkeyed rows after the switch are a downgrade and, given the
   * checkpoints, a table behind the latest one was truncated.
   */
  async verify(opts: AuditVerifyOptions = {}): Promise<AuditVerifyReport> {
    return verifyAuditChain({
      events: this.events(),
      key: this.#key,
      keyedFromSetting: await this.keyedFrom(),
      ...(opts.checkpoints ? { checkpoints: opts.checkpoints } : {}),
    });
  }
}
