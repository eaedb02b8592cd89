import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Queryable } from '../../core/db/database.js';
import { CoreErrors, JitgateError } from '../../core/errors.js';
import { labelsOf } from './team-grants.js';
import { canBeMember, selectorSchema } from './team-policy.js';
import type { Role } from '../auth/principal.js';

/**
 * Teams in the inventory document (`jitgate apply -f`, /inventory/import
 * and /inventory/export): each team by organization and name, with the
 * members an admin added (logins) and its grants by label selector. Synced
 * memberships belong to the sign-in and are neither exported nor touched.
 */
export const inventoryTeamSchema = z.strictObject({
  organization: z.string().min(1),
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$/, 'letters, digits, space, dot, dash, underscore'),
  description: z.string().max(500).default(''),
  syncGroups: z.array(z.string().min(1).max(512)).max(50).default([]),
  /** Logins; when present, the team's manual members become exactly these. */
  members: z.array(z.string().min(1).max(64)).optional(),
  /** Selectors (`{env: prod}`); when present, the team's grants become exactly these. */
  grants: z.array(selectorSchema).optional(),
});
export type InventoryTeam = z.output<typeof inventoryTeamSchema>;

/** Create or update the teams (inside the import's transaction, after organizations). */
export async function applyInventoryTeams(tx: Queryable, teams: readonly InventoryTeam[]): Promise<number> {
  for (const [i, t] of teams.entries()) {
    const [org] = await tx.query<{ id: string }>('SELECT id FROM organizations WHERE name = $1', [t.organization]);
    if (!org) throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `teams.${i}.organization: no organization named ${t.organization}` });
    const [row] = await tx.query<{ id: string }>(
      `INSERT INTO teams (id, organization_id, name, description, sync_groups) VALUES ($1,$2,$3,$4,$5)
       ON CONFLICT (organization_id, lower(name)) DO UPDATE SET description = EXCLUDED.description, sync_groups = EXCLUDED.sync_groups RETURNING id`,
      [randomUUID(), org.id, t.name, t.description, t.syncGroups],
    );
    const teamId = row!.id;
    if (t.members) {
      const ids: string[] = [];
      for (const login of t.members) {
        const [p] = await tx.query<{ id: string; role: Role; organization_id: string | null }>('SELECT id, role, organization_id FROM people WHERE lower(login) = lower($1)', [login]);
        if (!p) throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `teams.${i}.members: no person with login ${login}` });
        if (!canBeMember({ role: p.role, organizationId: p.organization_id }, org.id)) {
          throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `teams.${i}.members: ${login} is not a person of ${t.organization}` });
        }
        ids.push(p.id);
      }
      await tx.query("DELETE FROM team_members WHERE team_id = $1 AND source = 'manual' AND NOT (person_id = ANY($2::uuid[]))", [teamId, ids]);
      for (const id of ids) {
        await tx.query("INSERT INTO team_members (team_id, person_id, source) VALUES ($1,$2,'manual') ON CONFLICT (team_id, person_id) DO UPDATE SET source = 'manual'", [teamId, id]);
      }
    }
    if (t.grants) {
      await tx.query('DELETE FROM team_grants WHERE team_id = $1', [teamId]);
      for (const selector of t.grants) {
        await tx.query('INSERT INTO team_grants (id, team_id, selector) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING', [randomUUID(), teamId, JSON.stringify(selector)]);
      }
    }
  }
  return teams.length;
}

/** The teams as the inventory document lists them. */
export async function exportInventoryTeams(db: Queryable): Promise<InventoryTeam[]> {
  const teams = await db.query<{ id: string; organization: string; name: string; description: string; sync_groups: string[] }>(
    'SELECT t.id, o.name AS organization, t.name, t.description, t.sync_groups FROM teams t JOIN organizations o ON o.id = t.organization_id ORDER BY o.name, lower(t.name)',
  );
  const out: InventoryTeam[] = [];
  for (const t of teams) {
    const members = await db.query<{ login: string }>("SELECT p.login FROM team_members m JOIN people p ON p.id = m.person_id WHERE m.team_id = $1 AND m.source = 'manual' ORDER BY p.login", [t.id]);
    const grants = await db.query<{ selector: unknown }>('SELECT selector FROM team_grants WHERE team_id = $1 ORDER BY created_at, id', [t.id]);
    out.push({
      organization: t.organization, name: t.name, description: t.description, syncGroups: t.sync_groups,
      members: members.map((m) => m.login), grants: grants.map((g) => labelsOf(g.selector)),
    });
  }
  return out;
}
