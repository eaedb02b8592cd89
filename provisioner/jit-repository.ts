import { randomUUID } from 'node:crypto';
import type { Database, Queryable } from '../core/db/database.js';
import type { Computer, JitAccountRecord, JitAccountState, Organization, SessionRecord, SessionState } from '../core/domain.js';

type R = Record<string, unknown>;
const d = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v)));
const dn = (v: unknown): Date | null => (v === null || v === undefined ? null : d(v));
const arr = (v: unknown): string[] => (Array.isArray(v) ? (v as string[]) : []);

function toSession(r: R): SessionRecord {
  return {
    id: String(r.id),
    personId: (r.person_id as string | null) ?? null,
    personLogin: String(r.person_login),
    computerId: (r.computer_id as string | null) ?? null,
    computerName: String(r.computer_name),
    protocol: r.protocol as SessionRecord['protocol'],
    accountType: r.account_type as SessionRecord['accountType'],
    accountId: (r.account_id as string | null) ?? null,
    accountName: (r.account_name as string | null) ?? null,
    store: (r.store as string | null) ?? null,
    state: r.state as SessionState,
    leaseExpiresAt: d(r.lease_expires_at),
    groups: arr(r.groups),
    createdAt: d(r.created_at),
    startedAt: dn(r.started_at),
    endedAt: dn(r.ended_at),
    endReason: (r.end_reason as string | null) ?? null,
    errorCode: (r.error_code as string | null) ?? null,
    holder: (r.holder as string | null) ?? null,
  };
}

function toAccount(r: R): JitAccountRecord {
  return {
    id: String(r.id),
    store: String(r.store),
    name: String(r.name),
    mode: r.mode as JitAccountRecord['mode'],
    ownerKey: String(r.owner_key),
    personId: (r.person_id as string | null) ?? null,
    organizationId: (r.organization_id as string | null) ?? null,
    computerId: (r.computer_id as string | null) ?? null,
    state: r.state as JitAccountState,
    passwordEnc: (r.password_enc as string | null) ?? null,
    groups: arr(r.groups),
    keep: Boolean(r.keep),
    location: (r.location as string | null) ?? null,
    createdAt: d(r.created_at),
    updatedAt: d(r.updated_at),
  };
}

export function toComputer(r: R): Computer {
  return {
    id: String(r.id),
    organizationId: String(r.organization_id),
    name: String(r.name),
    address: String(r.address),
    protocols: arr(r.protocols) as Computer['protocols'],
    sshPort: Number(r.ssh_port),
    rdpPort: Number(r.rdp_port),
    domainStore: (r.domain_store as string | null) ?? null,
    localStore: (r.local_store as string | null) ?? null,
    jit: typeof r.jit === 'string' ? JSON.parse(r.jit) : r.jit,
    policy: (typeof r.policy === 'string' ? JSON.parse(r.policy) : r.policy) as Record<string, unknown>,
    restricted: Boolean(r.restricted),
    labels: (typeof r.labels === 'string' ? JSON.parse(r.labels) : (r.labels ?? {})) as Record<string, string>,
  };
}

const LIVE = "('pending','provisioning','active','ending')";

/** One group an elevated session holds for an existing account (migration 011). */
export interface ElevationRecord {
  id: string;
  sessionId: string;
  store: string;
  accountName: string;
  group: string;
  /** False: the account was a member before the session; jitgate never removes such a membership. */
  addedByJitgate: boolean;
  state: 'adding' | 'active' | 'removed';
  createdAt: Date;
}

function toElevation(r: R): ElevationRecord {
  return {
    id: String(r.id), sessionId: String(r.session_id), store: String(r.store), accountName: String(r.account_name), group: String(r.grp),
    addedByJitgate: Boolean(r.added_by_jitgate), state: r.state as ElevationRecord['state'], createdAt: d(r.created_at),
  };
}

/** SQL for the JIT engine; the same on PostgreSQL and PGlite. */
export class JitRepository {
  constructor(readonly db: Database) {}

  async installationId(preferred?: string): Promise<string> {
    const rows = await this.db.query<{ value: string }>("SELECT value #>> '{}' AS value FROM settings WHERE key = 'installation_id'");
    if (rows[0]) return rows[0].value;
    const id = preferred ?? randomUUID().replace(/-/g, '').slice(0, 8);
    await this.db.query("INSERT INTO settings (key, value) VALUES ('installation_id', to_jsonb($1::text)) ON CONFLICT (key) DO NOTHING", [id]);
    const again = await this.db.query<{ value: string }>("SELECT value #>> '{}' AS value FROM settings WHERE key = 'installation_id'");
    return again[0]!.value;
  }

  async getComputer(id: string): Promise<Computer | null> {
    const rows = await this.db.query('SELECT * FROM computers WHERE id = $1', [id]);
    return rows[0] ? toComputer(rows[0]) : null;
  }

  async listComputers(): Promise<Computer[]> {
    const rows = await this.db.query('SELECT * FROM computers ORDER BY name');
    return rows.map(toComputer);
  }

  /** By `name` (when unique) or `organization/name`. */
  async findComputers(ref: string): Promise<Computer[]> {
    const slash = ref.indexOf('/');
    const rows =
      slash > 0
        ? await this.db.query('SELECT c.* FROM computers c JOIN organizations o ON o.id = c.organization_id WHERE o.name = $1 AND c.name = $2', [ref.slice(0, slash), ref.slice(slash + 1)])
        : await this.db.query('SELECT * FROM computers WHERE name = $1', [ref]);
    return rows.map(toComputer);
  }

  async getOrganization(id: string): Promise<Organization | null> {
    const rows = await this.db.query<{ id: string; name: string; shared_code: string }>('SELECT id, name, shared_code FROM organizations WHERE id = $1', [id]);
    const r = rows[0];
    return r ? { id: r.id, name: r.name, sharedCode: r.shared_code } : null;
  }

  async insertSession(s: Pick<SessionRecord, 'id' | 'personId' | 'personLogin' | 'computerId' | 'computerName' | 'protocol' | 'accountType' | 'leaseExpiresAt' | 'holder'>): Promise<SessionRecord> {
    const rows = await this.db.query(
      `INSERT INTO sessions (id, person_id, person_login, computer_id, computer_name, protocol, account_type, state, lease_expires_at, holder)
       VALUES ($1,$2,$3,$4,$5,$6,$7,'pending',$8,$9) RETURNING *`,
      [s.id, s.personId, s.personLogin, s.computerId, s.computerName, s.protocol, s.accountType, s.leaseExpiresAt, s.holder],
    );
    return toSession(rows[0]!);
  }

  async getSession(id: string, q: Queryable = this.db): Promise<SessionRecord | null> {
    const rows = await q.query('SELECT * FROM sessions WHERE id = $1', [id]);
    return rows[0] ? toSession(rows[0]) : null;
  }

  /** Move a session to `to` only from one of `from`; returns the new row or null when it was not in `from`. */
  async transitionSession(id: string, from: SessionState[], to: SessionState, extra: { endReason?: string; errorCode?: string } = {}, q: Queryable = this.db): Promise<SessionRecord | null> {
    const rows = await q.query(
      `UPDATE sessions SET state = $2,
         started_at = CASE WHEN $2 = 'active' AND started_at IS NULL THEN now() ELSE started_at END,
         ended_at = CASE WHEN $2 IN ('ended','failed') THEN now() ELSE ended_at END,
         end_reason = coalesce($4, end_reason), error_code = coalesce($5, error_code)
       WHERE id = $1 AND state = ANY($3::text[]) RETURNING *`,
      [id, to, from, extra.endReason ?? null, extra.errorCode ?? null],
    );
    return rows[0] ? toSession(rows[0]) : null;
  }

  async linkSessionAccount(id: string, account: JitAccountRecord): Promise<void> {
    await this.db.query('UPDATE sessions SET account_id = $2, account_name = $3, store = $4 WHERE id = $1', [id, account.id, account.name, account.store]);
  }

  async setSessionStore(id: string, store: string): Promise<void> {
    await this.db.query('UPDATE sessions SET store = $2 WHERE id = $1', [id, store]);
  }

  /** Record a group in the session's lease before adding it (intent log). */
  async addSessionGroup(id: string, group: string): Promise<void> {
    await this.db.query('UPDATE sessions SET groups = array_append(groups, $2) WHERE id = $1 AND NOT ($2 = ANY(groups))', [id, group]);
  }

  async removeSessionGroup(id: string, group: string): Promise<void> {
    await this.db.query('UPDATE sessions SET groups = array_remove(groups, $2) WHERE id = $1', [id, group]);
  }

  async extendLease(id: string, until: Date): Promise<void> {
    await this.db.query('UPDATE sessions SET lease_expires_at = $2 WHERE id = $1', [id, until]);
  }

  async liveSessions(): Promise<SessionRecord[]> {
    return (await this.db.query(`SELECT * FROM sessions WHERE state IN ${LIVE} ORDER BY created_at`)).map(toSession);
  }

  async listSessions(limit = 200): Promise<SessionRecord[]> {
    return (await this.db.query('SELECT * FROM sessions ORDER BY created_at DESC LIMIT $1', [limit])).map(toSession);
  }

  /** Other sessions still holding a lease on `accountId`. */
  async otherLiveLeases(accountId: string, exceptSession: string): Promise<SessionRecord[]> {
    return (await this.db.query(`SELECT * FROM sessions WHERE account_id = $1 AND id <> $2 AND state IN ('provisioning','active')`, [accountId, exceptSession])).map(toSession);
  }

  async insertAccount(a: Omit<JitAccountRecord, 'createdAt' | 'updatedAt' | 'location'>): Promise<JitAccountRecord> {
    const rows = await this.db.query(
      `INSERT INTO jit_accounts (id, store, name, mode, owner_key, person_id, organization_id, computer_id, state, password_enc, groups, keep)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) RETURNING *`,
      [a.id, a.store, a.name, a.mode, a.ownerKey, a.personId, a.organizationId, a.computerId, a.state, a.passwordEnc, a.groups, a.keep],
    );
    return toAccount(rows[0]!);
  }

  async getAccount(id: string): Promise<JitAccountRecord | null> {
    const rows = await this.db.query('SELECT * FROM jit_accounts WHERE id = $1', [id]);
    return rows[0] ? toAccount(rows[0]) : null;
  }

  async findKeptAccount(store: string, mode: 'named' | 'shared', ownerKey: string): Promise<JitAccountRecord | null> {
    const rows = await this.db.query(
      "SELECT * FROM jit_accounts WHERE store = $1 AND mode = $2 AND owner_key = $3 AND keep AND state IN ('active','idle') ORDER BY created_at DESC LIMIT 1",
      [store, mode, ownerKey],
    );
    return rows[0] ? toAccount(rows[0]) : null;
  }

  async updateAccount(id: string, patch: { state?: JitAccountState; passwordEnc?: string | null; location?: string }): Promise<void> {
    await this.db.query(
      `UPDATE jit_accounts SET
         state = coalesce($2, state),
         password_enc = CASE WHEN $3 THEN $4 ELSE password_enc END,
         location = coalesce($5, location),
         deleted_at = CASE WHEN $2 = 'deleted' THEN now() ELSE deleted_at END,
         updated_at = now()
       WHERE id = $1`,
      [id, patch.state ?? null, patch.passwordEnc !== undefined, patch.passwordEnc ?? null, patch.location ?? null],
    );
  }

  /** creating → active once the store made the account; false when the row was released meanwhile. */
  async markAccountCreated(id: string, location: string | null): Promise<boolean> {
    const rows = await this.db.query(
      "UPDATE jit_accounts SET state = 'active', location = coalesce($2, location), updated_at = now() WHERE id = $1 AND state = 'creating' RETURNING id",
      [id, location],
    );
    return rows.length === 1;
  }

  /** Every session that ever used the account (any state): the reconciler's proof that its use is over. */
  async sessionsOfAccount(accountId: string): Promise<SessionRecord[]> {
    return (await this.db.query('SELECT * FROM sessions WHERE account_id = $1', [accountId])).map(toSession);
  }

  /** The database's clock: account rows are stamped with it, so the reconciler compares with it too. */
  async dbNow(): Promise<Date> {
    const rows = await this.db.query<{ now: unknown }>('SELECT now() AS now');
    return d(rows[0]!.now);
  }

  /** Live sessions that were requested more than `timeoutMs` ago and never became active. */
  async stuckProvisioning(now: Date, timeoutMs: number): Promise<SessionRecord[]> {
    return (
      await this.db.query(`SELECT * FROM sessions WHERE state IN ('pending','provisioning') AND created_at + ($1::double precision * interval '1 millisecond') <= $2`, [timeoutMs, now])
    ).map(toSession);
  }

  /** Live sessions held open by a gateway (holder not null), with their holder. */
  async heldLiveSessions(): Promise<SessionRecord[]> {
    return (await this.db.query(`SELECT * FROM sessions WHERE state IN ${LIVE} AND holder IS NOT NULL`)).map(toSession);
  }

  /** Forget a row for an account that never existed (name collision before create). */
  async deleteAccountRow(id: string): Promise<void> {
    await this.db.query('DELETE FROM jit_accounts WHERE id = $1', [id]);
  }

  async accountsInStore(store: string): Promise<JitAccountRecord[]> {
    return (await this.db.query("SELECT * FROM jit_accounts WHERE store = $1 AND state <> 'deleted'", [store])).map(toAccount);
  }

  async listAccounts(includeDeleted = false): Promise<JitAccountRecord[]> {
    return (await this.db.query(`SELECT * FROM jit_accounts ${includeDeleted ? '' : "WHERE state <> 'deleted'"} ORDER BY created_at`)).map(toAccount);
  }

  /** Live leases per account id (for the reconciler). */
  async liveLeaseAccountIds(now: Date, graceMs: number): Promise<Set<string>> {
    const rows = await this.db.query<{ account_id: string }>(
      `SELECT DISTINCT account_id FROM sessions WHERE account_id IS NOT NULL AND state IN ('provisioning','active','ending') AND lease_expires_at + ($1::double precision * interval '1 millisecond') > $2`,
      [graceMs, now],
    );
    return new Set(rows.map((r) => r.account_id));
  }

  async expiredLiveSessions(now: Date, graceMs: number): Promise<SessionRecord[]> {
    return (
      await this.db.query(`SELECT * FROM sessions WHERE state IN ${LIVE} AND lease_expires_at + ($1::double precision * interval '1 millisecond') <= $2`, [graceMs, now])
    ).map(toSession);
  }

  // --- elevation (migration 011) ------------------------------------------

  /** The existing account an admin mapped the person to on `store`; null: the store's default rule applies. */
  async personAccount(personId: string, store: string): Promise<string | null> {
    const rows = await this.db.query<{ account_name: string }>('SELECT account_name FROM person_accounts WHERE person_id = $1 AND store = $2', [personId, store]);
    return rows[0]?.account_name ?? null;
  }

  /** An elevated session: the existing account and its store (no jit_accounts row: jitgate does not own it). */
  async setSessionElevated(id: string, accountName: string, store: string): Promise<void> {
    await this.db.query('UPDATE sessions SET account_id = NULL, account_name = $2, store = $3 WHERE id = $1', [id, accountName, store]);
  }

  async insertElevation(e: Omit<ElevationRecord, 'createdAt'>): Promise<ElevationRecord> {
    const rows = await this.db.query(
      'INSERT INTO elevations (id, session_id, store, account_name, grp, added_by_jitgate, state) VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING *',
      [e.id, e.sessionId, e.store, e.accountName, e.group, e.addedByJitgate, e.state],
    );
    return toElevation(rows[0]!);
  }

  async getElevation(id: string): Promise<ElevationRecord | null> {
    const rows = await this.db.query('SELECT * FROM elevations WHERE id = $1', [id]);
    return rows[0] ? toElevation(rows[0]) : null;
  }

  async setElevationState(id: string, state: ElevationRecord['state']): Promise<void> {
    await this.db.query("UPDATE elevations SET state = $2, removed_at = CASE WHEN $2 = 'removed' THEN now() ELSE removed_at END WHERE id = $1", [id, state]);
  }

  async elevationsOfSession(sessionId: string): Promise<ElevationRecord[]> {
    return (await this.db.query('SELECT * FROM elevations WHERE session_id = $1 ORDER BY created_at', [sessionId])).map(toElevation);
  }

  /** Every elevation not yet removed (the reconciler's work list). */
  async openElevations(): Promise<ElevationRecord[]> {
    return (await this.db.query("SELECT * FROM elevations WHERE state <> 'removed' ORDER BY created_at")).map(toElevation);
  }

  /**
   * Open memberships jitgate added for the same account and group (other
   * than `exceptId`), with their session's state and lease: a membership
   * jitgate added is shared by every session that found it there.
   */
  async openJitgateElevations(store: string, accountName: string, group: string, exceptId: string | null): Promise<(ElevationRecord & { session: { state: string; leaseExpiresAt: Date } })[]> {
    const rows = await this.db.query(
      `SELECT e.*, s.state AS session_state, s.lease_expires_at AS session_lease FROM elevations e JOIN sessions s ON s.id = e.session_id
       WHERE e.store = $1 AND lower(e.account_name) = lower($2) AND e.grp = $3 AND e.added_by_jitgate AND e.state <> 'removed' AND e.id <> coalesce($4::uuid, '00000000-0000-0000-0000-000000000000'::uuid)`,
      [store, accountName, group, exceptId],
    );
    return rows.map((r) => ({ ...toElevation(r), session: { state: String(r.session_state), leaseExpiresAt: d(r.session_lease) } }));
  }

  // --- leased locks -------------------------------------------------------

  async tryLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const rows = await this.db.query(
      `INSERT INTO locks (key, owner, expires_at) VALUES ($1, $2, now() + ($3::double precision * interval '1 millisecond'))
       ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
         WHERE locks.expires_at < now() OR locks.owner = EXCLUDED.owner
       RETURNING owner`,
      [key, owner, ttlMs],
    );
    return rows.length === 1;
  }

  /** Extend a lock `owner` still holds; never takes one (a renewal racing the unlock must not re-create it). */
  async renewLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE locks SET expires_at = now() + ($3::double precision * interval '1 millisecond') WHERE key = $1 AND owner = $2 RETURNING owner`,
      [key, owner, ttlMs],
    );
    return rows.length === 1;
  }

  async unlock(key: string, owner: string): Promise<void> {
    await this.db.query('DELETE FROM locks WHERE key = $1 AND owner = $2', [key, owner]);
  }
}
