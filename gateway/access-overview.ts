import { canConnect, type ComputerRef, type PersonRef } from './access-policy.js';

/**
 * Why a person may open sessions on a computer, for the per-person access
 * overview (GET /people/:id/access). Pure, over the same rules the session
 * openers enforce (gateway/access-policy.ts `canConnect`), so the overview
 * cannot promise what a connect would refuse, or hide what it would allow.
 *
 * - `global-admin`: every computer of every organization;
 * - `organization-admin`: every computer of their organization;
 * - `organization`: an unrestricted computer of the technician's organization;
 * - `grant`: a restricted computer shared with the technician by name;
 * - `team`: a restricted computer one of the technician's teams is granted
 *   by label (gateway/teams/team-policy.ts grantedByTeams decides `teamGranted`).
 */
export type AccessVia = 'global-admin' | 'organization-admin' | 'organization' | 'grant' | 'team';

export function accessVia(person: PersonRef, computer: ComputerRef, granted: boolean, teamGranted = false): AccessVia | null {
  const p = { personId: person.id, login: '', displayName: '', role: person.role, organizationId: person.organizationId, authSessionId: '' };
  if (!canConnect(p, computer, granted || teamGranted)) return null;
  if (person.role === 'global_admin') return 'global-admin';
  if (person.role === 'org_admin') return 'organization-admin';
  return !computer.restricted ? 'organization' : granted ? 'grant' : 'team';
}

/** The computers `person` reaches, each with why, in the order given. */
export function accessOverview<C extends ComputerRef & { id: string }>(
  person: PersonRef,
  computers: readonly C[],
  grantedIds: ReadonlySet<string>,
  teamGrantedIds: ReadonlySet<string> = new Set(),
): { computer: C; via: AccessVia }[] {
  const out: { computer: C; via: AccessVia }[] = [];
  for (const c of computers) {
    const via = accessVia(person, c, grantedIds.has(c.id), teamGrantedIds.has(c.id));
    if (via) out.push({ computer: c, via });
  }
  return out;
}
