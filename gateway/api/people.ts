import { randomUUID } from 'node:crypto';
import { hash } from '@node-rs/argon2';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { canAssignRole, canManagePerson, canSeePerson, isUuid, readScope, roleNeedsOrganization } from '../access-policy.js';
import { accessOverview } from '../access-overview.js';
import { ROLES, type Principal, type Role } from '../auth/principal.js';
import type { ApiDeps } from './deps.js';
import { conflict, ensure, FieldValidationError, isForeignKeyViolation, isUniqueViolation, iso, json, notFound, parseBody, principalOf } from './http.js';
import { grantsOf, labelsOf } from '../teams/team-grants.js';

const login = z.string().regex(/^[a-z][a-z0-9._-]{1,63}$/, 'lower-case letters, digits, dot, dash, underscore; 2-64, starting with a letter');
const displayName = z.string().trim().min(1).max(200);
const email = z.email().max(320).nullable();
const role = z.enum(ROLES as [Role, ...Role[]]);
const password = z.string().min(12, 'at least 12 characters').max(1024);
const organizationId = z.uuid().nullable();

const createBody = z.strictObject({ login, displayName, email: email.default(null), role, organizationId, password });
const patchBody = z.strictObject({
  displayName: displayName.optional(),
  email: email.optional(),
  role: role.optional(),
  organizationId: organizationId.optional(),
  disabled: z.boolean().optional(),
  /** Only `false`: unlock after too many failed sign-ins. */
  locked: z.literal(false).optional(),
  /** A new initial password (the person keeps their TOTP). */
  password: password.optional(),
});

type PersonRow = {
  id: string; login: string; display_name: string; email: string | null; role: Role; organization_id: string | null;
  totp_enabled: boolean; disabled: boolean; locked_until: Date | string | null; must_change_password: boolean;
};
const COLS = 'id, login, display_name, email, role, organization_id, totp_enabled, disabled, locked_until, must_change_password';
const out = (r: PersonRow) => {
  const locked = r.locked_until !== null && new Date(iso(r.locked_until)!).getTime() > Date.now();
  return {
    id: r.id, login: r.login, displayName: r.display_name, email: r.email, role: r.role, organizationId: r.organization_id,
    totpEnabled: Boolean(r.totp_enabled), disabled: Boolean(r.disabled),
    locked,
    /** When the lockout after failed sign-ins ends (null: not locked). */
    lockedUntil: locked ? iso(r.locked_until) : null,
    /** An admin set the password; the person must change it before anything else. */
    mustChangePassword: Boolean(r.must_change_password),
  };
};

function checkShape(r: Role, org: string | null): void {
  if (roleNeedsOrganization(r) && org === null) throw new FieldValidationError({ organizationId: `a ${r} belongs to an organization` });
}

export function peopleRoutes(deps: ApiDeps) {
  const { db, audit } = deps;
  const hashPassword = deps.hashPassword ?? ((pw: string) => hash(pw));

  /** Terminate every live session of `login`, wherever it runs (the holding gateway audits and tears down). */
  async function endLiveSessionsOf(login: string, by: string): Promise<void> {
    const live = (await deps.liveSessions.list()).filter((l) => l.personLogin === login);
    for (const l of live) await deps.liveSessions.terminate(l.sessionId, by);
  }

  async function load(p: Principal, id: string): Promise<PersonRow> {
    if (!isUuid(id)) throw notFound('person');
    const rows = await db.query<PersonRow>(`SELECT ${COLS} FROM people WHERE id = $1`, [id]);
    const r = rows[0];
    if (!r || !canSeePerson(p, { id: r.id, role: r.role, organizationId: r.organization_id })) throw notFound('person');
    return r;
  }
  const ref = (r: PersonRow) => ({ id: r.id, role: r.role, organizationId: r.organization_id });
  const fkField = (err: unknown) => {
    if (isForeignKeyViolation(err)) return new FieldValidationError({ organizationId: 'no such organization' });
    if (isUniqueViolation(err)) return conflict('a person with this login exists');
    return err;
  };

  return async (app: FastifyInstance): Promise<void> => {
    app.get('/people', async (req) => {
      const p = principalOf(req);
      const scope = readScope(p);
      let rows: PersonRow[];
      if (p.role === 'technician' || scope.kind === 'none') rows = await db.query<PersonRow>(`SELECT ${COLS} FROM people WHERE id = $1`, [p.personId]);
      else if (scope.kind === 'all') rows = await db.query<PersonRow>(`SELECT ${COLS} FROM people ORDER BY login`);
      else rows = await db.query<PersonRow>(`SELECT ${COLS} FROM people WHERE organization_id = $1 ORDER BY login`, [scope.organizationId]);
      return rows.filter((r) => canSeePerson(p, ref(r))).map(out);
    });

    app.post('/people', async (req, reply) => {
      const p = principalOf(req);
      ensure(p.role === 'global_admin' || p.role === 'org_admin', 'create people');
      const b = parseBody(createBody, req.body);
      if (b.password.toLowerCase().includes(b.login)) throw new FieldValidationError({ password: 'must not contain the login' });
      checkShape(b.role, b.organizationId);
      ensure(canAssignRole(p, b.role, b.organizationId), `create a ${b.role} in this organization`);
      const id = randomUUID();
      const pwHash = await hashPassword(b.password);
      try {
        const rows = await db.query<PersonRow>(
          // An admin chose this password: the person changes it at first sign-in (enforced by gateway/auth).
          `INSERT INTO people (id, login, display_name, email, role, organization_id, password_hash, must_change_password) VALUES ($1,$2,$3,$4,$5,$6,$7,true) RETURNING ${COLS}`,
          [id, b.login, b.displayName, b.email, b.role, b.organizationId, pwHash],
        );
        await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', account: null, data: { action: 'person.created', id, login: b.login, role: b.role, organizationId: b.organizationId } });
        return reply.status(201).send(out(rows[0]!));
      } catch (err) {
        throw fkField(err);
      }
    });

    app.patch<{ Params: { id: string } }>('/people/:id', async (req) => {
      const p = principalOf(req);
      const cur = await load(p, req.params.id);
      const self = cur.id === p.personId;
      const b = parseBody(patchBody, req.body);
      // Everyone may change their own display name and e-mail; the rest is administration.
      const adminFields = (['role', 'organizationId', 'disabled', 'locked', 'password'] as const).filter((k) => b[k] !== undefined);
      if (!self || adminFields.length) ensure(canManagePerson(p, ref(cur)), `change ${cur.login}`);
      if (self) ensure(b.role === undefined && b.organizationId === undefined && b.disabled === undefined, 'change your own role, organization or status');
      const nextRole = b.role ?? cur.role;
      const nextOrg = b.organizationId !== undefined ? b.organizationId : cur.organization_id;
      if (nextRole !== cur.role || nextOrg !== cur.organization_id) {
        checkShape(nextRole, nextOrg);
        ensure(canAssignRole(p, nextRole, nextOrg), `make ${cur.login} a ${nextRole} in this organization`);
      }
      if (b.password?.toLowerCase().includes(cur.login)) throw new FieldValidationError({ password: 'must not contain the login' });
      const pwHash = b.password !== undefined ? await hashPassword(b.password) : null;
      let rows: PersonRow[];
      try {
        rows = await db.query<PersonRow>(
          `UPDATE people SET display_name = coalesce($2, display_name), email = CASE WHEN $3 THEN $4 ELSE email END, role = $5, organization_id = $6,
             disabled = coalesce($7, disabled), locked_until = CASE WHEN $8 THEN NULL ELSE locked_until END,
             failed_logins = CASE WHEN $8 THEN 0 ELSE failed_logins END, password_hash = coalesce($9, password_hash),
             must_change_password = (must_change_password OR $9::text IS NOT NULL)
           WHERE id = $1 RETURNING ${COLS}`,
          [cur.id, b.displayName ?? null, b.email !== undefined, b.email ?? null, nextRole, nextOrg, b.disabled ?? null, b.locked === false, pwHash],
        );
      } catch (err) {
        throw fkField(err);
      }
      if (!rows[0]) throw notFound('person');
      // Grants are for technicians of the computer's organization: a new role or organization ends them.
      if (nextRole !== cur.role || nextOrg !== cur.organization_id) await db.query('DELETE FROM grants WHERE person_id = $1', [cur.id]);
      // Teams are of one organization: a move ends the old organization's memberships.
      if (nextOrg !== cur.organization_id) await db.query('DELETE FROM team_members m USING teams t WHERE t.id = m.team_id AND m.person_id = $1 AND t.organization_id IS DISTINCT FROM $2', [cur.id, nextOrg]);
      const fields = Object.keys(b);
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'person.changed', id: cur.id, login: cur.login, fields, role: nextRole, organizationId: nextOrg } });
      if (b.locked === false && cur.locked_until !== null) {
        await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'person.unlocked', id: cur.id, login: cur.login, lockedUntil: iso(cur.locked_until), organizationId: nextOrg } });
      }
      if (b.password !== undefined) {
        await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'person.password_reset', id: cur.id, login: cur.login, organizationId: nextOrg, mustChange: true } });
      }
      if (b.disabled === true || nextRole !== cur.role || nextOrg !== cur.organization_id || b.password !== undefined) {
        // What they were allowed yesterday ends now: sign-ins and every live session, on every gateway.
        if (deps.revokeAuthSessions) await deps.revokeAuthSessions(cur.id);
        await endLiveSessionsOf(cur.login, p.login);
      }
      return out(rows[0]);
    });

    app.delete<{ Params: { id: string } }>('/people/:id', async (req, reply) => {
      const p = principalOf(req);
      const cur = await load(p, req.params.id);
      ensure(canManagePerson(p, ref(cur)), `delete ${cur.login}`);
      ensure(cur.id !== p.personId, 'delete yourself');
      if (deps.revokeAuthSessions) await deps.revokeAuthSessions(cur.id);
      try {
        await db.query('DELETE FROM people WHERE id = $1', [cur.id]);
      } catch (err) {
        if (isForeignKeyViolation(err)) throw conflict(`${cur.login} is still referenced; disable the person instead`);
        throw err;
      }
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'person.deleted', id: cur.id, login: cur.login, organizationId: cur.organization_id } });
      await endLiveSessionsOf(cur.login, p.login);
      return reply.status(204).send();
    });

    /**
     * Which computers the person reaches, through what (gateway/access-overview.ts), with
     * each computer's JIT settings: for admins and auditors who see the person, and for the person.
     */
    app.get<{ Params: { id: string } }>('/people/:id/access', async (req) => {
      const p = principalOf(req);
      const cur = await load(p, req.params.id);
      const computers = await db.query<{ id: string; name: string; organization_id: string; organization_name: string; restricted: boolean; protocols: string[]; jit: unknown; address: string; labels: unknown }>(
        `SELECT c.id, c.name, c.organization_id, o.name AS organization_name, c.restricted, c.protocols, c.jit, c.address, c.labels
           FROM computers c JOIN organizations o ON o.id = c.organization_id
          WHERE $1::uuid IS NULL OR c.organization_id = $1 ORDER BY o.name, lower(c.name)`,
        [cur.role === 'global_admin' ? null : cur.organization_id],
      );
      const grants = await db.query<{ computer_id: string; created_at: Date | string }>('SELECT computer_id, created_at FROM grants WHERE person_id = $1', [cur.id]);
      const grantedAt = new Map(grants.map((g) => [g.computer_id, iso(g.created_at)]));
      // A technician without an organization reaches nothing; the query above would list every computer for them.
      const candidates = cur.organization_id === null && cur.role !== 'global_admin' ? [] : computers;
      const byTeam = await grantsOf(db, { personId: cur.id, role: cur.role, organizationId: cur.organization_id });
      const teamGranted = new Set(candidates.filter((c) => byTeam({ id: c.id, organizationId: c.organization_id, labels: labelsOf(c.labels) })).map((c) => c.id));
      const reach = accessOverview(ref(cur), candidates.map((c) => ({ ...c, organizationId: c.organization_id })), new Set(grantedAt.keys()), teamGranted);
      const lockedUntil = cur.locked_until !== null && new Date(iso(cur.locked_until)!).getTime() > Date.now() ? iso(cur.locked_until) : null;
      return {
        person: { id: cur.id, login: cur.login, role: cur.role, organizationId: cur.organization_id },
        // What stops them right now, whatever the list says.
        blocked: cur.disabled ? 'disabled' : lockedUntil ? 'locked' : cur.must_change_password ? 'must-change-password' : null,
        lockedUntil,
        computers: reach.map(({ computer: c, via }) => ({
          id: c.id, name: c.name, address: c.address, organizationId: c.organization_id, organizationName: c.organization_name,
          protocols: c.protocols, restricted: Boolean(c.restricted), via, grantedAt: grantedAt.get(c.id) ?? null, jit: json(c.jit),
        })),
      };
    });

    app.post<{ Params: { id: string } }>('/people/:id/reset-mfa', async (req, reply) => {
      const p = principalOf(req);
      const cur = await load(p, req.params.id);
      ensure(canManagePerson(p, ref(cur)) && cur.id !== p.personId, `reset the second factor of ${cur.login}`);
      await db.query("UPDATE people SET totp_enabled = false, totp_secret_enc = NULL, recovery_codes = '[]' WHERE id = $1", [cur.id]);
      if (deps.revokeAuthSessions) await deps.revokeAuthSessions(cur.id);
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'person.mfa_reset', id: cur.id, login: cur.login, organizationId: cur.organization_id } });
      // A reset second factor may be a stolen one: what it opened ends too, on every gateway.
      await endLiveSessionsOf(cur.login, p.login);
      return reply.status(204).send();
    });

    // Revoke every passkey of a person (lost or stolen authenticator; issue 15). Their own are revoked
    // one by one under My account; this is the admin's, within their organization, audited with the
    // names removed. Like an MFA reset it signs them out and ends what they have open: a stolen passkey
    // may be what opened it. Someone with no password left signs in again through an invitation.
    app.post<{ Params: { id: string } }>('/people/:id/reset-passkeys', async (req) => {
      const p = principalOf(req);
      const cur = await load(p, req.params.id);
      ensure(canManagePerson(p, ref(cur)) && cur.id !== p.personId, `reset the passkeys of ${cur.login}`);
      const removed = await db.transaction(async (tx) => {
        const rows = await tx.query<{ name: string }>('DELETE FROM passkeys WHERE person_id = $1 RETURNING name', [cur.id]);
        // A passkey-only person's recovery codes stood in for those passkeys: they go too (new ones come with the next first passkey).
        await tx.query("UPDATE people SET recovery_codes = '[]' WHERE id = $1 AND NOT totp_enabled", [cur.id]);
        await audit.record(
          { type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'person.passkeys_reset', id: cur.id, login: cur.login, organizationId: cur.organization_id, passkeys: rows.map((r) => r.name) } },
          tx,
        );
        return rows.length;
      });
      if (deps.revokeAuthSessions) await deps.revokeAuthSessions(cur.id);
      await endLiveSessionsOf(cur.login, p.login);
      return { removed };
    });
  };
}
