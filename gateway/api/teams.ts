import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { toComputer } from '../../provisioner/jit-repository.js';
import { canConnect, canManageTeams, canSeePerson, canSeeTeams, isUuid, readScope } from '../access-policy.js';
import { openWindowFor } from '../access-requests/access-window.js';
import type { Principal, Role } from '../auth/principal.js';
import { labelsOf, personHasGrant } from '../teams/team-grants.js';
import { canBeMember, formatLabels, selectorSchema } from '../teams/team-policy.js';
import type { ApiDeps } from './deps.js';
import { conflict, ensure, FieldValidationError, iso, isUniqueViolation, notFound, parseBody, principalOf } from './http.js';

/**
 * Teams, their members and their grants by label selector (docs/api.md
 * "Teams and labels"). Org admins manage their organization's teams, global
 * admins every team; auditors read. Every decision is in
 * gateway/teams/team-policy.ts.
 */

const teamName = z.string().min(1, 'required').max(63, 'at most 63 characters').regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'letters, digits, space, dot, dash, underscore, starting with a letter or digit');
const syncGroups = z.array(z.string().min(1).max(512)).max(50, 'at most 50 groups');
const createBody = z.strictObject({
  organizationId: z.uuid().optional(),
  name: teamName,
  description: z.string().max(500, 'at most 500 characters').optional(),
  syncGroups: syncGroups.optional(),
});
const patchBody = z.strictObject({ name: teamName.optional(), description: z.string().max(500, 'at most 500 characters').optional(), syncGroups: syncGroups.optional() });
const grantBody = z.strictObject({ selector: selectorSchema });

type TeamRow = { id: string; organization_id: string; name: string; description: string; sync_groups: string[]; created_at: Date | string };
const COLS = 'id, organization_id, name, description, sync_groups, created_at';
const teamOut = (r: TeamRow) => ({ id: r.id, organizationId: r.organization_id, name: r.name, description: r.description, syncGroups: r.sync_groups, createdAt: iso(r.created_at) });

export function teamRoutes(deps: ApiDeps) {
  const { db, audit, liveSessions } = deps;

  /** The team if `p` may read it; 404 otherwise (no existence oracle across organizations). */
  async function load(p: Principal, id: string): Promise<TeamRow> {
    if (!isUuid(id)) throw notFound('team');
    const [t] = await db.query<TeamRow>(`SELECT ${COLS} FROM teams WHERE id = $1`, [id]);
    if (!t || !canSeeTeams(p, t.organization_id)) throw notFound('team');
    return t;
  }

  async function manageable(p: Principal, id: string, action: string): Promise<TeamRow> {
    const t = await load(p, id);
    ensure(canManageTeams(p, t.organization_id), `${action} of team ${t.name}`);
    return t;
  }

  async function details(t: TeamRow) {
    const members = await db.query<{ person_id: string; login: string; display_name: string; role: Role; source: string }>(
      'SELECT m.person_id, p.login, p.display_name, p.role, m.source FROM team_members m JOIN people p ON p.id = m.person_id WHERE m.team_id = $1 ORDER BY p.login',
      [t.id],
    );
    const grants = await db.query<{ id: string; selector: unknown; created_at: Date | string }>('SELECT id, selector, created_at FROM team_grants WHERE team_id = $1 ORDER BY created_at, id', [t.id]);
    return {
      ...teamOut(t),
      members: members.map((m) => ({ personId: m.person_id, login: m.login, displayName: m.display_name, role: m.role, source: m.source })),
      grants: grants.map((g) => ({ id: g.id, selector: labelsOf(g.selector), text: formatLabels(labelsOf(g.selector)), createdAt: iso(g.created_at) })),
    };
  }

  /**
   * Access just narrowed for `personIds` (left a team, a team grant went):
   * end their live sessions on computers they may no longer connect to, on
   * every gateway, decided on what the database says now.
   */
  async function endSessionsWithoutAccess(personIds: readonly string[], by: string): Promise<void> {
    const ids = new Set(personIds);
    for (const l of await liveSessions.list()) {
      if (!l.personId || !ids.has(l.personId)) continue;
      const [s] = await db.query<{ computer_id: string | null }>('SELECT computer_id FROM sessions WHERE id = $1', [l.sessionId]);
      const [row] = s?.computer_id ? await db.query('SELECT * FROM computers WHERE id = $1', [s.computer_id]) : [];
      const [who] = await db.query<{ id: string; login: string; role: Role; organization_id: string | null }>('SELECT id, login, role, organization_id FROM people WHERE id = $1', [l.personId]);
      if (!row || !who) continue;
      const c = toComputer(row);
      const granted = (await personHasGrant(db, c.id, who.id)) || (await openWindowFor(db, c.id, who.id)) !== null;
      const principal: Principal = { personId: who.id, login: who.login, displayName: '', role: who.role, organizationId: who.organization_id, authSessionId: '' };
      if (!canConnect(principal, c, granted)) await liveSessions.terminate(l.sessionId, by);
    }
  }

  const nameTaken = (err: unknown) => (isUniqueViolation(err) ? conflict('the organization already has a team with this name') : err);

  return async (app: FastifyInstance): Promise<void> => {
    app.get('/teams', async (req) => {
      const p = principalOf(req);
      const scope = readScope(p);
      if (p.role === 'technician' || scope.kind === 'none') return [];
      const rows =
        scope.kind === 'all'
          ? await db.query<TeamRow & { members: number; grants: number }>(
              `SELECT ${COLS}, (SELECT count(*) FROM team_members m WHERE m.team_id = teams.id)::int AS members, (SELECT count(*) FROM team_grants g WHERE g.team_id = teams.id)::int AS grants FROM teams ORDER BY lower(name), id`,
            )
          : await db.query<TeamRow & { members: number; grants: number }>(
              `SELECT ${COLS}, (SELECT count(*) FROM team_members m WHERE m.team_id = teams.id)::int AS members, (SELECT count(*) FROM team_grants g WHERE g.team_id = teams.id)::int AS grants FROM teams WHERE organization_id = $1 ORDER BY lower(name), id`,
              [scope.organizationId],
            );
      return rows.filter((r) => canSeeTeams(p, r.organization_id)).map((r) => ({ ...teamOut(r), memberCount: Number(r.members), grantCount: Number(r.grants) }));
    });

    app.get<{ Params: { id: string } }>('/teams/:id', async (req) => details(await load(principalOf(req), req.params.id)));

    app.post('/teams', async (req, reply) => {
      const p = principalOf(req);
      const b = parseBody(createBody, req.body);
      const organizationId = b.organizationId ?? p.organizationId;
      if (!organizationId) throw new FieldValidationError({ organizationId: 'required' });
      ensure(canManageTeams(p, organizationId), 'create teams in this organization');
      const id = randomUUID();
      let rows: TeamRow[];
      try {
        rows = await db.query<TeamRow>(`INSERT INTO teams (id, organization_id, name, description, sync_groups) VALUES ($1,$2,$3,$4,$5) RETURNING ${COLS}`, [
          id, organizationId, b.name, b.description ?? '', b.syncGroups ?? [],
        ]);
      } catch (err) {
        throw nameTaken(err);
      }
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'team.created', id, name: b.name, syncGroups: b.syncGroups ?? [], organizationId } });
      return reply.status(201).send(await details(rows[0]!));
    });

    app.patch<{ Params: { id: string } }>('/teams/:id', async (req) => {
      const p = principalOf(req);
      const t = await manageable(p, req.params.id, 'change');
      const b = parseBody(patchBody, req.body);
      let rows: TeamRow[];
      try {
        rows = await db.query<TeamRow>(
          `UPDATE teams SET name = coalesce($2, name), description = coalesce($3, description), sync_groups = coalesce($4, sync_groups) WHERE id = $1 RETURNING ${COLS}`,
          [t.id, b.name ?? null, b.description ?? null, b.syncGroups ?? null],
        );
      } catch (err) {
        throw nameTaken(err);
      }
      if (!rows[0]) throw notFound('team');
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'team.changed', id: t.id, name: rows[0].name, fields: Object.keys(b), organizationId: t.organization_id } });
      return details(rows[0]);
    });

    app.delete<{ Params: { id: string } }>('/teams/:id', async (req, reply) => {
      const p = principalOf(req);
      const t = await manageable(p, req.params.id, 'delete');
      const members = await db.query<{ person_id: string }>('SELECT person_id FROM team_members WHERE team_id = $1', [t.id]);
      await db.query('DELETE FROM teams WHERE id = $1', [t.id]);
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'team.deleted', id: t.id, name: t.name, organizationId: t.organization_id } });
      await endSessionsWithoutAccess(members.map((m) => m.person_id), p.login);
      return reply.status(204).send();
    });

    // ---- members ----
    async function memberTarget(p: Principal, t: TeamRow, personId: string) {
      if (!isUuid(personId)) throw notFound('person');
      const [m] = await db.query<{ id: string; login: string; role: Role; organization_id: string | null }>('SELECT id, login, role, organization_id FROM people WHERE id = $1', [personId]);
      if (!m || !canSeePerson(p, { id: m.id, role: m.role, organizationId: m.organization_id })) throw notFound('person');
      return m;
    }

    app.put<{ Params: { id: string; personId: string } }>('/teams/:id/members/:personId', async (req) => {
      const p = principalOf(req);
      const t = await manageable(p, req.params.id, 'add members');
      const m = await memberTarget(p, t, req.params.personId);
      if (!canBeMember({ role: m.role, organizationId: m.organization_id }, t.organization_id)) {
        throw new FieldValidationError({ personId: `only people of the team's organization can be members (${m.login} is not)` });
      }
      // An admin's addition is manual: a later sign-in's sync keeps it.
      await db.query("INSERT INTO team_members (team_id, person_id, source) VALUES ($1,$2,'manual') ON CONFLICT (team_id, person_id) DO UPDATE SET source = 'manual'", [t.id, m.id]);
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'team.member_added', id: t.id, team: t.name, person: m.login, organizationId: t.organization_id } });
      return { teamId: t.id, personId: m.id, login: m.login, source: 'manual' };
    });

    app.delete<{ Params: { id: string; personId: string } }>('/teams/:id/members/:personId', async (req, reply) => {
      const p = principalOf(req);
      const t = await manageable(p, req.params.id, 'remove members');
      const m = await memberTarget(p, t, req.params.personId);
      const rows = await db.query('DELETE FROM team_members WHERE team_id = $1 AND person_id = $2 RETURNING person_id', [t.id, m.id]);
      if (!rows.length) throw notFound('member');
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'team.member_removed', id: t.id, team: t.name, person: m.login, organizationId: t.organization_id } });
      await endSessionsWithoutAccess([m.id], p.login);
      return reply.status(204).send();
    });

    // ---- grants by label selector ----
    app.post<{ Params: { id: string } }>('/teams/:id/grants', async (req, reply) => {
      const p = principalOf(req);
      const t = await manageable(p, req.params.id, 'grant access');
      const b = parseBody(grantBody, req.body);
      const id = randomUUID();
      try {
        await db.query('INSERT INTO team_grants (id, team_id, selector) VALUES ($1,$2,$3)', [id, t.id, JSON.stringify(b.selector)]);
      } catch (err) {
        if (isUniqueViolation(err)) throw conflict('the team already has a grant with this selector');
        throw err;
      }
      const text = formatLabels(b.selector);
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'team.grant_added', id: t.id, team: t.name, selector: text, organizationId: t.organization_id } });
      return reply.status(201).send({ id, teamId: t.id, selector: b.selector, text });
    });

    app.delete<{ Params: { id: string; grantId: string } }>('/teams/:id/grants/:grantId', async (req, reply) => {
      const p = principalOf(req);
      const t = await manageable(p, req.params.id, 'remove grants');
      if (!isUuid(req.params.grantId)) throw notFound('grant');
      const rows = await db.query<{ selector: unknown }>('DELETE FROM team_grants WHERE id = $1 AND team_id = $2 RETURNING selector', [req.params.grantId, t.id]);
      if (!rows[0]) throw notFound('grant');
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'team.grant_removed', id: t.id, team: t.name, selector: formatLabels(labelsOf(rows[0].selector)), organizationId: t.organization_id } });
      const members = await db.query<{ person_id: string }>('SELECT person_id FROM team_members WHERE team_id = $1', [t.id]);
      await endSessionsWithoutAccess(members.map((m) => m.person_id), p.login);
      return reply.status(204).send();
    });
  };
}
