import { describe, expect, it } from 'vitest';
import { accessOverview, accessVia, type AccessVia } from './access-overview.js';
import type { Role } from './auth/principal.js';

const A = '00000000-0000-4000-8000-00000000000a';
const B = '00000000-0000-4000-8000-00000000000b';

describe('accessVia: why a person reaches a computer (table across organizations and roles)', () => {
  const cases: [Role, string | null, { org: string; restricted: boolean }, boolean, AccessVia | null][] = [
    ['global_admin', null, { org: A, restricted: true }, false, 'global-admin'],
    ['global_admin', B, { org: A, restricted: false }, false, 'global-admin'],
    ['org_admin', A, { org: A, restricted: true }, false, 'organization-admin'],
    ['org_admin', A, { org: B, restricted: false }, false, null],
    ['technician', A, { org: A, restricted: false }, false, 'organization'],
    ['technician', A, { org: A, restricted: true }, false, null],
    ['technician', A, { org: A, restricted: true }, true, 'grant'],
    // A grant never reaches across organizations (grants end when the person moves; this guards stale rows).
    ['technician', A, { org: B, restricted: true }, true, null],
    ['technician', A, { org: B, restricted: false }, false, null],
    ['auditor', A, { org: A, restricted: false }, false, null],
    ['auditor', null, { org: A, restricted: false }, true, null],
  ];
  // teamGranted: one of the person's teams holds a label grant matching the computer (decided by grantedByTeams, which already refuses other organizations).
  it.each([
    ['technician', A, { org: A, restricted: true }, false, true, 'team'],
    ['technician', A, { org: A, restricted: true }, true, true, 'grant'],
    ['technician', A, { org: A, restricted: false }, false, true, 'organization'],
    ['technician', A, { org: B, restricted: true }, false, true, null],
    ['auditor', A, { org: A, restricted: true }, false, true, null],
  ] as const)('%s of %s on %o (granted %s, by a team %s) → %s', (role, org, c, granted, team, want) => {
    expect(accessVia({ id: 'p', role, organizationId: org }, { organizationId: c.org, restricted: c.restricted }, granted, team)).toBe(want);
  });
  it.each(cases)('%s of %s on %o (granted %s) → %s', (role, org, c, granted, want) => {
    expect(accessVia({ id: 'p', role, organizationId: org }, { organizationId: c.org, restricted: c.restricted }, granted)).toBe(want);
  });

  it('lists only reachable computers, keeping the order and the computer given', () => {
    const cs = [
      { id: '1', organizationId: A, restricted: false, name: 'web' },
      { id: '2', organizationId: A, restricted: true, name: 'db' },
      { id: '3', organizationId: A, restricted: true, name: 'vault' },
      { id: '4', organizationId: B, restricted: false, name: 'other' },
    ];
    const got = accessOverview({ id: 'p', role: 'technician', organizationId: A }, cs, new Set(['2', '4']));
    expect(got.map((g) => [g.computer.name, g.via])).toEqual([['web', 'organization'], ['db', 'grant']]);
  });
});
