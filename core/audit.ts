import { createHash } from 'node:crypto';
import type { Database, Queryable } from './db/database.js';

/**
 * The audit trail for security teams: an append-only table in which every
 * event carries the SHA-256 of the previous one, so an edited, inserted or
 * deleted row breaks the chain (`jitgate audit verify`). Separate from logs.
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
  'lease.expired',
  'reconcile.removed',
  'reconcile.completed',
  'session.terminated',
  'session.extended',
  'session.host_key_recorded',
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
  'admin.changed',
  'access.denied',
  'recording.started',
  'recording.completed',
  'recording.viewed',
  'recording.verified',
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
  hash: string;
}

const GENESIS = '0'.repeat(64);
const AUDIT_LOCK = 73_461_002;

function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const keys = Object.keys(v as Record<string, unknown>).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

function chainHash(prevHash: string, e: { seq: number; at: Date; type: string; actor: string; outcome: string; sessionId: string | null; computer: string | null; account: string | null; data: unknown }): string {
  const body = canonical({
    seq: e.seq,
    at: e.at.toISOString(),
    type: e.type,
    actor: e.actor,
    outcome: e.outcome,
    sessionId: e.sessionId,
    computer: e.computer,
    account: e.account,
    data: e.data,
  });
  return createHash('sha256').update(prevHash).update('\n').update(body).digest('hex');
}

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

type AuditRow = {
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
};

function fromRow(r: AuditRow): AuditEvent {
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
  };
}

/**
 * Head of the chain per embedded (PGlite) database, as last committed by this
 * process. PGlite is single-process (its directory is locked) and runs one
 * transaction at a time, so the head read back is the head we wrote; it saves
 * a query per event. Never used on PostgreSQL, where other processes append.
 */
const embeddedHead = new WeakMap<Database, { seq: number; hash: string }>();

export class AuditLog {
  readonly #db: Database;
  readonly #sinks: AuditSink[] = [];

  constructor(db: Database) {
    this.#db = db;
  }

  addSink(sink: AuditSink): void {
    this.#sinks.push(sink);
  }

  /** Append one event; serialised across processes by an advisory lock. */
  async record(input: AuditEventInput, tx?: Queryable): Promise<AuditEvent> {
    const run = async (q: Queryable): Promise<AuditEvent> => {
      // Serialise appenders across connections (PostgreSQL). PGlite is one
      // connection whose transactions already run one at a time.
      if (this.#db.kind !== 'pglite') await q.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
      const cached = tx ? undefined : embeddedHead.get(this.#db);
      const last = cached ? [cached] : await q.query<{ seq: string | number; hash: string }>('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
      const prevHash = last[0]?.hash ?? GENESIS;
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
      const hash = chainHash(prevHash, ev);
      await q.query(
        'INSERT INTO audit_events (seq, at, type, actor, session_id, computer, account, outcome, data, prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)',
        [seq, at, ev.type, ev.actor, ev.sessionId, ev.computer, ev.account, ev.outcome, JSON.stringify(ev.data), prevHash, hash],
      );
      // Inside the (exclusive) transaction, so the next appender sees it; dropped again if the commit fails.
      if (!tx && this.#db.kind === 'pglite') embeddedHead.set(this.#db, { seq, hash });
      return { ...ev, prevHash, hash };
    };
    let event: AuditEvent;
    if (tx) {
      // The caller's transaction may still roll back: forget the head.
      embeddedHead.delete(this.#db);
      event = await run(tx);
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
    return rows.map(fromRow);
  }

  /**
   * Walk the whole chain. Returns the first broken sequence number, if any:
   * an edited row fails its own hash, a deleted row breaks the next row's
   * prev_hash (or leaves a gap in seq).
   */
  async verify(): Promise<{ ok: true; count: number } | { ok: false; count: number; brokenAt: number; reason: string }> {
    let prev = GENESIS;
    let expectSeq = 1;
    let count = 0;
    let after = 0;
    for (;;) {
      const batch = await this.list({ afterSeq: after, limit: 5000 });
      if (batch.length === 0) break;
      for (const e of batch) {
        count++;
        if (e.seq !== expectSeq) return { ok: false, count, brokenAt: e.seq, reason: `sequence gap: expected ${expectSeq}` };
        if (e.prevHash !== prev) return { ok: false, count, brokenAt: e.seq, reason: 'previous-hash link broken (row deleted or inserted)' };
        const h = chainHash(prev, e);
        if (h !== e.hash) return { ok: false, count, brokenAt: e.seq, reason: 'row content does not match its hash (edited)' };
        prev = e.hash;
        expectSeq++;
        after = e.seq;
      }
    }
    return { ok: true, count };
  }
}
