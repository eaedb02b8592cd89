import type { Queryable } from '../../core/db/database.js';
import type { Role } from '../auth/principal.js';
import { grantedByTeams, planTeamSync, type HeldMembership, type Labels, type TeamGrantRef, type TeamSyncPlan } from './team-policy.js';

/**
 * The database side of team grants and team sync: load what the pure rules
 * in team-policy.ts need, apply what they decide.
 */

const obj = (v: unknown): Labels => (typeof v === 'string' ? (JSON.parse(v) as Labels) : ((v ?? {}) as Labels));

/** The team grants of every team `personId` is in, with each team's organization. */
export async function teamGrantsOf(db: Queryable, personId: string): Promise<TeamGrantRef[]> {
  const rows = await db.query<{ organization_id: string; selector: unknown }>(
    'SELECT t.organization_id, g.selector FROM team_members m JOIN teams t ON t.id = m.team_id JOIN team_grants g ON g.team_id = t.id WHERE m.person_id = $1',
    [personId],
  );
  return rows.map((r) => ({ teamOrganizationId: String(r.organization_id), selector: obj(r.selector) }));
}

/**
 * Whether `personId` holds a grant on `computerId`: a person × computer
 * grant, or a grant of one of their teams whose selector the computer's
 * labels match (decided by grantedByTeams, organizations compared again).
 */
export async function personHasGrant(db: Queryable, computerId: string, personId: string): Promise<boolean> {
  if ((await db.query('SELECT 1 FROM grants WHERE computer_id = $1 AND person_id = $2', [computerId, personId])).length > 0) return true;
  const [c] = await db.query<{ organization_id: string; labels: unknown }>('SELECT organization_id, labels FROM computers WHERE id = $1', [computerId]);
  const [p] = await db.query<{ role: Role; organization_id: string | null }>('SELECT role, organization_id FROM people WHERE id = $1', [personId]);
  if (!c || !p) return false;
  return grantedByTeams({ role: p.role, organizationId: p.organization_id }, await teamGrantsOf(db, personId), { organizationId: c.organization_id, labels: obj(c.labels) });
}

/**
 * For listing many computers: every grant `person` holds (person × computer
 * and team × label), read once, as a check per computer.
 */
export async function grantsOf(db: Queryable, person: { personId: string; role: Role; organizationId: string | null }): Promise<(c: { id: string; organizationId: string; labels?: Labels | undefined }) => boolean> {
  const direct = new Set((await db.query<{ computer_id: string }>('SELECT computer_id FROM grants WHERE person_id = $1', [person.personId])).map((g) => String(g.computer_id)));
  const teams = await teamGrantsOf(db, person.personId);
  return (c) => direct.has(c.id) || grantedByTeams(person, teams, { organizationId: c.organizationId, labels: c.labels ?? {} });
}

/** Labels as stored (jsonb, or text on drivers that return it so). */
export const labelsOf = obj;

/**
 * Set the person's synced team memberships from the groups the provider
 * or directory gave at this sign-in (planTeamSync decides). Run inside the
 * sign-in's transaction, after role and organization were updated.
 */
export async function syncTeams(
  tx: Queryable,
  person: { id: string; role: Role; organizationId: string | null },
  groups: readonly string[],
): Promise<TeamSyncPlan & { joined: string[]; left: string[] }> {
  const teams = person.organizationId
    ? await tx.query<{ id: string; name: string; organization_id: string; sync_groups: string[] }>(
        "SELECT id, name, organization_id, sync_groups FROM teams WHERE organization_id = $1 AND sync_groups <> '{}'",
        [person.organizationId],
      )
    : [];
  const held = await tx.query<{ team_id: string; name: string; organization_id: string; source: HeldMembership['source'] }>(
    'SELECT m.team_id, t.name, t.organization_id, m.source FROM team_members m JOIN teams t ON t.id = m.team_id WHERE m.person_id = $1',
    [person.id],
  );
  const plan = planTeamSync(
    person,
    groups,
    teams.map((t) => ({ id: t.id, organizationId: t.organization_id, syncGroups: t.sync_groups })),
    held.map((h) => ({ teamId: h.team_id, teamOrganizationId: h.organization_id, source: h.source })),
  );
  for (const id of plan.remove) await tx.query('DELETE FROM team_members WHERE team_id = $1 AND person_id = $2', [id, person.id]);
  for (const id of plan.add) await tx.query("INSERT INTO team_members (team_id, person_id, source) VALUES ($1, $2, 'sync') ON CONFLICT DO NOTHING", [id, person.id]);
  const name = new Map([...teams.map((t) => [t.id, t.name] as const), ...held.map((h) => [h.team_id, h.name] as const)]);
  return { ...plan, joined: plan.add.map((id) => name.get(id) ?? id), left: plan.remove.map((id) => name.get(id) ?? id) };
}
