import { randomBytes, randomUUID } from 'node:crypto';
import type { AuditLog } from '../../core/audit.js';
import type { Database, Queryable } from '../../core/db/database.js';
import { CoreErrors, JitgateError } from '../../core/errors.js';
import { canAssignRole, canManagePerson, isAdmin, readScope, roleNeedsOrganization } from '../access-policy.js';
import { AuthErrors } from './errors.js';
import type { ClientInfo } from './identity.service.js';
import { checkPasswordPolicy } from './password.js';
import { createPerson, LOGIN_PATTERN, normalizeLogin, sha256hex } from './people.js';
import type { Principal, Role } from './principal.js';

/** How long an invitation link stays usable unless the admin says otherwise. */
export const INVITATION_TTL_HOURS = 72;
/** The longest an admin may choose (30 days): a link is a password-equivalent while it is open. */
export const INVITATION_MAX_TTL_HOURS = 720;

export type InvitationState = 'open' | 'used' | 'expired' | 'revoked';

export interface NewInvitation {
  login: string;
  displayName: string;
  email: string | null;
  role: Role;
  organizationId: string | null;
  /** Default INVITATION_TTL_HOURS, at most INVITATION_MAX_TTL_HOURS. */
  ttlHours?: number;
}

/** What admins see of an invitation (never the token or its hash). */
export interface InvitationView {
  id: string;
  login: string;
  displayName: string;
  email: string | null;
  role: Role;
  organizationId: string | null;
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  state: InvitationState;
}

/** What the invitee sees before choosing a password. */
export interface InvitationPreview {
  login: string;
  displayName: string;
  role: Role;
  organizationName: string | null;
  expiresAt: string;
}

type Row = {
  id: string;
  login: string;
  display_name: string;
  email: string | null;
  role: Role;
  organization_id: string | null;
  created_by: string;
  created_at: Date | string;
  expires_at: Date | string;
  used_at: Date | string | null;
  revoked_at: Date | string | null;
};

const COLS = 'i.id, i.login, i.display_name, i.email, i.role, i.organization_id, i.created_by, i.created_at, i.expires_at, i.used_at, i.revoked_at';
const toDate = (v: Date | string): Date => (v instanceof Date ? v : new Date(v));

/** Where a link stands at `now`: used and withdrawn win over expired (the more useful thing to tell). */
export function invitationState(r: { used_at: Date | string | null; revoked_at: Date | string | null; expires_at: Date | string }, now: Date): InvitationState {
  if (r.used_at !== null) return 'used';
  if (r.revoked_at !== null) return 'revoked';
  return toDate(r.expires_at).getTime() <= now.getTime() ? 'expired' : 'open';
}

/** The stored form of a token: a label keeps it apart from sign-in and bootstrap hashes. */
export function invitationTokenHash(token: string): string {
  return sha256hex(`invitation:${token}`);
}

function view(r: Row, now: Date): InvitationView {
  return {
    id: r.id, login: r.login, displayName: r.display_name, email: r.email, role: r.role, organizationId: r.organization_id,
    createdBy: r.created_by, createdAt: toDate(r.created_at).toISOString(), expiresAt: toDate(r.expires_at).toISOString(),
    usedAt: r.used_at === null ? null : toDate(r.used_at).toISOString(), state: invitationState(r, now),
  };
}

const validation = (reason: string) => new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason });

/**
 * Invitations instead of admin-typed passwords (docs/auth.md "Invitations"):
 * an admin invites a login with a role in an organization; the link
 * `/invite#<token>` is shown once (the fragment never reaches a server log,
 * as with `/setup#<token>`); only the token's SHA-256 is stored. Using it
 * creates the person with the password they choose and opens a half-done
 * sign-in whose next step is the usual TOTP enrollment. A used, expired or
 * withdrawn link is refused with its own code, and the refusal is audited.
 */
export class Invitations {
  readonly #db: Database;
  readonly #audit: AuditLog;
  readonly #now: () => Date;

  constructor(deps: { db: Database; audit: AuditLog; now?: () => Date }) {
    this.#db = deps.db;
    this.#audit = deps.audit;
    this.#now = deps.now ?? (() => new Date());
  }

  /** Create an invitation; returns it with the one-time path to hand over. Earlier open links for the same login are withdrawn. */
  async create(actor: Principal, input: NewInvitation): Promise<{ invitation: InvitationView; path: string; token: string }> {
    if (!isAdmin(actor)) throw new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: 'invite people' });
    const login = normalizeLogin(input.login);
    if (!LOGIN_PATTERN.test(login)) throw validation('login: a letter, then up to 31 letters, digits, ".", "_" or "-"');
    if (roleNeedsOrganization(input.role) && input.organizationId === null) throw validation(`organizationId: a ${input.role} belongs to an organization`);
    if (!canAssignRole(actor, input.role, input.organizationId)) throw new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: `invite a ${input.role} in this organization` });
    const ttl = input.ttlHours ?? INVITATION_TTL_HOURS;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > INVITATION_MAX_TTL_HOURS) throw validation(`ttlHours: 1 to ${INVITATION_MAX_TTL_HOURS}`);
    const now = this.#now();
    const token = randomBytes(32).toString('base64url');
    const id = randomUUID();
    const rows = await this.#db.transaction(async (tx) => {
      if (input.organizationId !== null) {
        const org = await tx.query<{ allowed: boolean }>('SELECT local_passwords_allowed AS allowed FROM organizations WHERE id = $1', [input.organizationId]);
        if (!org[0]) throw validation('organizationId: no such organization');
        // Its people sign in through the identity provider and appear at their first sign-in (gateway/auth/identity.service.ts).
        if (org[0].allowed === false) throw validation('organizationId: this organization forbids local passwords; its people sign in through their identity provider');
      }
      if ((await tx.query('SELECT 1 FROM people WHERE login = $1', [login])).length > 0) {
        throw new JitgateError(CoreErrors.JIT_ERR_CONFLICT, { reason: `login ${login} is taken` });
      }
      const withdrawn = await tx.query<{ id: string }>(
        'UPDATE invitations SET revoked_at = $2 WHERE login = $1 AND used_at IS NULL AND revoked_at IS NULL RETURNING id',
        [login, now],
      );
      const inserted = await tx.query<Row>(
        `INSERT INTO invitations AS i (id, token_hash, login, display_name, email, role, organization_id, created_by, created_at, expires_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) RETURNING ${COLS}`,
        [id, invitationTokenHash(token), login, input.displayName.trim(), input.email, input.role, input.organizationId, actor.login, now, new Date(now.getTime() + ttl * 3_600_000)],
      );
      await this.#audit.record(
        {
          type: 'auth.invitation_created', actor: actor.login, outcome: 'success',
          data: { invitation: id, login, role: input.role, organizationId: input.organizationId, expiresAt: toDate(inserted[0]!.expires_at).toISOString(), supersedes: withdrawn.map((w) => w.id) },
        },
        tx,
      );
      return inserted;
    });
    return { invitation: view(rows[0]!, now), path: `/invite#${token}`, token };
  }

  /** Invitations the admin may see: all for global admins, their organization's (no global-admin ones) for org admins. Newest first. */
  async list(actor: Principal): Promise<InvitationView[]> {
    if (!isAdmin(actor)) throw new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: 'list invitations' });
    const scope = readScope(actor);
    const rows = scope.kind === 'all'
      ? await this.#db.query<Row>(`SELECT ${COLS} FROM invitations i ORDER BY i.created_at DESC LIMIT 500`)
      : scope.kind === 'org'
        ? await this.#db.query<Row>(`SELECT ${COLS} FROM invitations i WHERE i.organization_id = $1 AND i.role <> 'global_admin' ORDER BY i.created_at DESC LIMIT 500`, [scope.organizationId])
        : [];
    const now = this.#now();
    return rows.filter((r) => canManagePerson(actor, { id: r.id, role: r.role, organizationId: r.organization_id })).map((r) => view(r, now));
  }

  /** Withdraw an open invitation (its link stops working). Out of scope or unknown → 404. */
  async revoke(actor: Principal, id: string): Promise<void> {
    const notFound = () => new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'invitation' });
    if (!/^[0-9a-f-]{36}$/i.test(id)) throw notFound();
    await this.#db.transaction(async (tx) => {
      const rows = await tx.query<Row>(`SELECT ${COLS} FROM invitations i WHERE i.id = $1 FOR UPDATE`, [id]);
      const r = rows[0];
      if (!r || !canManagePerson(actor, { id: r.id, role: r.role, organizationId: r.organization_id })) throw notFound();
      const state = invitationState(r, this.#now());
      if (state !== 'open') throw new JitgateError(CoreErrors.JIT_ERR_CONFLICT, { reason: `the invitation is already ${state}` });
      await tx.query('UPDATE invitations SET revoked_at = $2 WHERE id = $1', [id, this.#now()]);
      await this.#audit.record({ type: 'auth.invitation_revoked', actor: actor.login, outcome: 'success', data: { invitation: id, login: r.login, organizationId: r.organization_id } }, tx);
    });
  }

  async #find(token: string, q: Queryable, lock: boolean): Promise<(Row & { organization_name: string | null }) | null> {
    if (token.length < 16 || token.length > 128) return null;
    const rows = await q.query<Row & { organization_name: string | null }>(
      `SELECT ${COLS}, o.name AS organization_name FROM invitations i LEFT JOIN organizations o ON o.id = i.organization_id WHERE i.token_hash = $1${lock ? ' FOR UPDATE OF i' : ''}`,
      [invitationTokenHash(token)],
    );
    return rows[0] ?? null;
  }

  #refusal(r: Row | null, now: Date): JitgateError | null {
    if (!r) return new JitgateError(AuthErrors.JIT_ERR_AUTH_INVITATION_UNKNOWN);
    const state = invitationState(r, now);
    if (state === 'used') return new JitgateError(AuthErrors.JIT_ERR_AUTH_INVITATION_USED);
    if (state === 'revoked') return new JitgateError(AuthErrors.JIT_ERR_AUTH_INVITATION_REVOKED);
    if (state === 'expired') return new JitgateError(AuthErrors.JIT_ERR_AUTH_INVITATION_EXPIRED, { expiredAt: toDate(r.expires_at).toISOString() });
    return null;
  }

  async #auditRefusal(r: Row | null, err: JitgateError, client: ClientInfo, step: 'check' | 'accept'): Promise<void> {
    await this.#audit.record({
      type: 'auth.invitation_refused', actor: r?.login ?? 'anonymous', outcome: 'denied',
      data: { step, code: err.code, invitation: r?.id ?? null, ip: client.ip },
    });
  }

  /** What the invitee is invited as; throws the link's refusal (unknown, used, expired, withdrawn). */
  async preview(token: string, client: ClientInfo): Promise<InvitationPreview> {
    const r = await this.#find(token, this.#db, false);
    const refusal = this.#refusal(r, this.#now());
    if (refusal) {
      await this.#auditRefusal(r, refusal, client, 'check');
      throw refusal;
    }
    return { login: r!.login, displayName: r!.display_name, role: r!.role, organizationName: r!.organization_name, expiresAt: toDate(r!.expires_at).toISOString() };
  }

  /**
   * Use the link: create the person with `password` (policy-checked before
   * the link is spent), mark the link used, and open a half-done sign-in
   * with `openSignIn` in the same transaction (TOTP enrollment next). Two
   * concurrent uses: the row lock lets one through, the other sees 'used'.
   */
  async accept(
    token: string,
    password: string,
    client: ClientInfo,
    openSignIn: (personId: string, client: ClientInfo, q: Queryable) => Promise<{ token: string }>,
  ): Promise<{ token: string; login: string }> {
    const peek = await this.#find(token, this.#db, false);
    // A weak password must not burn the link: checked before anything is spent.
    if (peek && !this.#refusal(peek, this.#now())) checkPasswordPolicy(password, peek.login);
    const r = await this.#db.transaction(async (tx) => {
      const row = await this.#find(token, tx, true);
      const refusal = this.#refusal(row, this.#now());
      if (refusal) return { kind: 'refused', refusal, row } as const;
      const inv = row!;
      const person = await createPerson(tx, {
        login: inv.login, displayName: inv.display_name || inv.login, role: inv.role, organizationId: inv.organization_id, email: inv.email, password,
      });
      await tx.query('UPDATE invitations SET used_at = $2, person_id = $3 WHERE id = $1', [inv.id, this.#now(), person.id]);
      await this.#audit.record(
        { type: 'auth.invitation_used', actor: person.login, outcome: 'success', data: { invitation: inv.id, invitedBy: inv.created_by, role: inv.role, organizationId: inv.organization_id, ip: client.ip } },
        tx,
      );
      const s = await openSignIn(person.id, client, tx);
      return { kind: 'used', token: s.token, login: person.login } as const;
    });
    if (r.kind === 'refused') {
      await this.#auditRefusal(r.row, r.refusal, client, 'accept');
      throw r.refusal;
    }
    return { token: r.token, login: r.login };
  }
}
