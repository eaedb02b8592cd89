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
 * - `grant`: a restricted computer shared with the technician by name.
 */
export type AccessVia = 'global-admin' | 'organization-admin' | 'organization' | 'grant';

export function accessVia(person: PersonRef, computer: ComputerRef, granted: boolean): AccessVia | null {
  const p = { personId: person.id, login: '', displayName: '', role: person.role, organizationId: person.organizationId, authSessionId: '' };
  if (!canConnect(p, computer, granted)) return null;
  if (person.role === 'global_admin') return 'global-admin';
  if (person.role === 'org_admin') return 'organization-admin';
  return computer.restricted ? 'grant' : 'organization';
}

/** The computers `person` reaches, each with why, in the order given. */
export function accessOverview<C extends ComputerRef & { id: string }>(
  person: PersonRef,
  computers: readonly C[],
  grantedIds: ReadonlySet<string>,
): { computer: C; via: AccessVia }[] {
  const out: { computer: C; via: AccessVia }[] = [];
  for (const c of computers) {
    const via = accessVia(person, c, grantedIds.has(c.id));
    if (via) out.push({ computer: c, via });
  }
  return out;
}
