import { describe, expect, it } from 'vitest';
import {
  canAssignRole, canConnect, canEditComputer, canManagePerson, canReadAudit, canSeeComputer, canSeeOrganization, canSeePerson,
  canSeeRecording, canSeeSession, canTerminateSession, canTestStores, canUseInventory, readScope,
} from './access-policy.js';
import type { Principal, Role } from './auth/principal.js';

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const who = (role: Role, org: string | null, id = `${role}-${org ?? 'global'}`): Principal => ({
  personId: id, login: id, displayName: id, role, organizationId: org, authSessionId: 's',
});
const ga = who('global_admin', null);
const gaA = who('global_admin', A, 'ga-home-a');
const adminA = who('org_admin', A);
const techA = who('technician', A);
const audA = who('auditor', A);
const audGlobal = who('auditor', null);
const techB = who('technician', B);

describe('access policy', () => {
  it('read scope: global admins and global auditors see all, others their organization', () => {
    expect(readScope(ga)).toEqual({ kind: 'all' });
    expect(readScope(gaA)).toEqual({ kind: 'all' });
    expect(readScope(audGlobal)).toEqual({ kind: 'all' });
    expect(readScope(adminA)).toEqual({ kind: 'org', organizationId: A });
    expect(readScope(who('technician', null))).toEqual({ kind: 'none' });
    expect(canSeeOrganization(adminA, A)).toBe(true);
    expect(canSeeOrganization(adminA, B)).toBe(false);
    expect(canSeeOrganization(audGlobal, B)).toBe(true);
  });

  it('people: org admins manage their own organization, never global admins; nobody assigns above their own role', () => {
    const person = (role: Role, org: string | null) => ({ id: `${role}${org}`, role, organizationId: org });
    expect(canManagePerson(adminA, person('technician', A))).toBe(true);
    expect(canManagePerson(adminA, person('org_admin', A))).toBe(true);
    expect(canManagePerson(adminA, person('technician', B))).toBe(false);
    expect(canManagePerson(adminA, person('global_admin', A))).toBe(false);
    expect(canManagePerson(techA, person('technician', A))).toBe(false);
    expect(canManagePerson(audA, person('technician', A))).toBe(false);
    expect(canManagePerson(ga, person('global_admin', null))).toBe(true);

    expect(canAssignRole(adminA, 'org_admin', A)).toBe(true);
    expect(canAssignRole(adminA, 'auditor', A)).toBe(true);
    expect(canAssignRole(adminA, 'global_admin', A)).toBe(false);
    expect(canAssignRole(adminA, 'technician', B)).toBe(false);
    expect(canAssignRole(adminA, 'auditor', null)).toBe(false);
    expect(canAssignRole(techA, 'technician', A)).toBe(false);
    expect(canAssignRole(audA, 'auditor', A)).toBe(false);
    expect(canAssignRole(ga, 'global_admin', null)).toBe(true);

    expect(canSeePerson(adminA, person('global_admin', A))).toBe(false);
    expect(canSeePerson(audA, person('technician', A))).toBe(true);
    expect(canSeePerson(techA, person('technician', A))).toBe(false);
    expect(canSeePerson(techA, { id: techA.personId, role: 'technician', organizationId: A })).toBe(true);
    expect(canSeePerson(audGlobal, person('technician', B))).toBe(true);
  });

  it('computers: restricted ones need a grant for technicians; auditors never connect; cross-organization never', () => {
    const open = { organizationId: A, restricted: false };
    const restricted = { organizationId: A, restricted: true };
    const table: [Principal, typeof open, boolean, { see: boolean; connect: boolean; edit: boolean }][] = [
      [ga, restricted, false, { see: true, connect: true, edit: true }],
      [adminA, restricted, false, { see: true, connect: true, edit: true }],
      [techA, open, false, { see: true, connect: true, edit: false }],
      [techA, restricted, false, { see: false, connect: false, edit: false }],
      [techA, restricted, true, { see: true, connect: true, edit: false }],
      [audA, restricted, false, { see: true, connect: false, edit: false }],
      [audGlobal, open, false, { see: true, connect: false, edit: false }],
      [techB, open, true, { see: false, connect: false, edit: false }],
      [who('org_admin', B), open, false, { see: false, connect: false, edit: false }],
    ];
    for (const [p, c, granted, want] of table) {
      expect({ who: p.personId, see: canSeeComputer(p, c, granted), connect: canConnect(p, c, granted), edit: canEditComputer(p, c) }).toEqual({ who: p.personId, ...want });
    }
  });

  it('sessions and recordings: owners, admins and auditors of the organization; terminate never by auditors', () => {
    const s = { personId: techA.personId, organizationId: A };
    const other = { personId: 'someone', organizationId: A };
    const orphan = { personId: null, organizationId: null };
    expect(canSeeSession(techA, s)).toBe(true);
    expect(canSeeSession(techA, other)).toBe(false);
    expect(canSeeRecording(techA, other)).toBe(false);
    expect(canSeeRecording(audA, other)).toBe(true);
    expect(canSeeRecording(techB, s)).toBe(false);
    expect(canSeeRecording(who('auditor', B), s)).toBe(false);
    expect(canSeeRecording(audA, orphan)).toBe(false);
    expect(canSeeRecording(audGlobal, orphan)).toBe(true);
    expect(canTerminateSession(techA, s)).toBe(true);
    expect(canTerminateSession(techA, other)).toBe(false);
    expect(canTerminateSession(audA, other)).toBe(false);
    expect(canTerminateSession(audGlobal, other)).toBe(false);
    expect(canTerminateSession(adminA, other)).toBe(true);
    expect(canTerminateSession(who('org_admin', B), other)).toBe(false);
  });

  it('audit, stores, inventory', () => {
    expect([ga, adminA, audA, audGlobal, techA].map(canReadAudit)).toEqual([true, true, true, true, false]);
    expect(canReadAudit(who('org_admin', null))).toBe(false);
    expect([ga, adminA].map(canTestStores)).toEqual([true, false]);
    expect([ga, adminA, audGlobal].map(canUseInventory)).toEqual([true, false, false]);
  });
});
