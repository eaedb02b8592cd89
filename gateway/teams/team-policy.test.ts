import { describe, expect, it } from 'vitest';
import { canConnect, canManageTeams, canSeeComputer, canSeeTeams } from '../access-policy.js';
import type { Principal, Role } from '../auth/principal.js';
import {
  canBeMember, formatLabels, grantedByTeams, labelsSchema, parseLabelText, planTeamSync, selectorMatches, selectorSchema,
  type HeldMembership, type SyncTeam, type TeamGrantRef,
} from './team-policy.js';

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const who = (role: Role, org: string | null, id = `${role}-${org ?? 'global'}`): Principal => ({
  personId: id, login: id, displayName: id, role, organizationId: org, authSessionId: 's',
});
const ga = who('global_admin', null);
const adminA = who('org_admin', A);
const adminB = who('org_admin', B);
const techA = who('technician', A);
const techB = who('technician', B);
const audA = who('auditor', A);
const audGlobal = who('auditor', null);

describe('labels and selectors', () => {
  it.each([
    [{ env: 'prod' }, { env: 'prod', os: 'windows' }, true],
    [{ env: 'prod', customer: 'acme' }, { env: 'prod', customer: 'acme', os: 'linux' }, true],
    [{ env: 'prod', customer: 'acme' }, { env: 'prod', customer: 'globex' }, false],
    [{ env: 'prod' }, { env: 'Prod' }, false], // values compare exactly
    [{ env: 'prod' }, {}, false],
    [{}, { env: 'prod' }, false], // an empty selector matches nothing
    [{ toString: 'x' }, {}, false], // no prototype keys
  ])('selector %j on labels %j → %s', (sel, labels, expected) => {
    expect(selectorMatches(sel, labels)).toBe(expected);
  });

  it('validates keys and values, at most 20, selectors not empty', () => {
    expect(labelsSchema.safeParse({ env: 'prod', 'site.region/a': 'eu-west_1', os: 'windows' }).success).toBe(true);
    expect(labelsSchema.safeParse({ Env: 'prod' }).success).toBe(false);
    expect(labelsSchema.safeParse({ env: 'pr od' }).success).toBe(false);
    expect(labelsSchema.safeParse({ env: '' }).success).toBe(false);
    expect(labelsSchema.safeParse({ ['k'.repeat(64)]: 'v' }).success).toBe(false);
    expect(labelsSchema.safeParse(Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, 'v']))).success).toBe(false);
    expect(labelsSchema.safeParse({}).success).toBe(true);
    expect(selectorSchema.safeParse({}).success).toBe(false);
  });

  it('reads and writes key=value text', () => {
    expect(parseLabelText('env=prod, customer=acme')).toEqual({ env: 'prod', customer: 'acme' });
    expect(parseLabelText('')).toEqual({});
    expect(parseLabelText('env')).toBeNull();
    expect(parseLabelText('=prod')).toBeNull();
    expect(parseLabelText('env=')).toBeNull();
    expect(formatLabels({ os: 'windows', env: 'prod' })).toBe('env=prod, os=windows');
  });
});

describe('grants by team × label selector, across organizations and roles', () => {
  const prodA: TeamGrantRef = { teamOrganizationId: A, selector: { env: 'prod' } };
  const prodB: TeamGrantRef = { teamOrganizationId: B, selector: { env: 'prod' } };
  const webA = { organizationId: A, labels: { env: 'prod', role: 'web' }, restricted: true };
  const webB = { organizationId: B, labels: { env: 'prod', role: 'web' }, restricted: true };
  const devA = { organizationId: A, labels: { env: 'dev' }, restricted: true };

  it.each([
    // person, team grants they hold, computer, granted
    ['technician of A, A team grant, matching A computer', techA, [prodA], webA, true],
    ['technician of A, A team grant, labels do not match', techA, [prodA], devA, false],
    ['technician of A, no team grant', techA, [], webA, false],
    ['technician of A, B team grant (stale row), A computer', techA, [prodB], webA, false],
    ['technician of A, A team grant, same labels in B', techA, [prodA], webB, false],
    ['technician of A, B team grant, B computer (person of A)', techA, [prodB], webB, false],
    ['technician of B, B team grant, B computer', techB, [prodB], webB, true],
    ['technician of B, A team grant, A computer', techB, [prodA], webA, false],
    ['org admin of A (no grant needed, none given)', adminA, [prodA], webA, false],
    ['auditor of A never holds a grant', audA, [prodA], webA, false],
    ['global admin holds no grant', ga, [prodA], webA, false],
    ['technician without organization', who('technician', null), [prodA], webA, false],
  ] as const)('%s', (_name, p, grants, c, expected) => {
    expect(grantedByTeams(p, grants, c)).toBe(expected);
  });

  it.each([
    // what the grant means to the access rules: see and connect to a restricted computer
    [techA, [prodA], webA, true, true],
    [techA, [prodA], devA, false, false],
    [techA, [prodA], webB, false, false],
    [techB, [prodA], webA, false, false],
    [audA, [prodA], webA, true, false], // auditors read, never connect
    [adminA, [], webA, true, true],
    [adminB, [prodA], webA, false, false],
    [audGlobal, [], webB, true, false],
    [ga, [], webB, true, true],
  ] as const)('%o with %o on %o: sees %s, connects %s', (p, grants, c, sees, connects) => {
    const g = grantedByTeams(p, grants, c);
    expect(canSeeComputer(p, c, g)).toBe(sees);
    expect(canConnect(p, c, g)).toBe(connects);
  });
});

describe('team administration', () => {
  it.each([
    [ga, A, true, true],
    [ga, B, true, true],
    [adminA, A, true, true],
    [adminA, B, false, false],
    [adminB, A, false, false],
    [audA, A, false, true],
    [audA, B, false, false],
    [audGlobal, B, false, true],
    [techA, A, false, false],
  ] as const)('%o on teams of %s: manages %s, reads %s', (p, org, manages, reads) => {
    expect(canManageTeams(p, org)).toBe(manages);
    expect(canSeeTeams(p, org)).toBe(reads);
  });

  it('members are people of the team organization only', () => {
    expect(canBeMember(techA, A)).toBe(true);
    expect(canBeMember(audA, A)).toBe(true);
    expect(canBeMember(techB, A)).toBe(false);
    expect(canBeMember(ga, A)).toBe(false);
  });
});

describe('team sync from provider groups', () => {
  const opsA: SyncTeam = { id: 't-ops-a', organizationId: A, syncGroups: ['CN=Ops,OU=Groups,DC=example,DC=test', 'ops'] };
  const dbaA: SyncTeam = { id: 't-dba-a', organizationId: A, syncGroups: ['dba'] };
  const manualA: SyncTeam = { id: 't-manual-a', organizationId: A, syncGroups: [] };
  const opsB: SyncTeam = { id: 't-ops-b', organizationId: B, syncGroups: ['ops'] };
  const teams = [opsA, dbaA, manualA, opsB];
  const held = (teamId: string, org: string, source: 'manual' | 'sync'): HeldMembership => ({ teamId, teamOrganizationId: org, source });

  it.each([
    ['joins the teams of their organization whose groups they are in, never another organization\'s', techA, ['OPS'], [], { add: ['t-ops-a'], remove: [] }],
    ['matches directory DNs without case', techA, ['cn=ops,ou=groups,dc=example,dc=test'], [], { add: ['t-ops-a'], remove: [] }],
    ['leaves a synced team whose group they left', techA, ['dba'], [held('t-ops-a', A, 'sync')], { add: ['t-dba-a'], remove: ['t-ops-a'] }],
    ['keeps manual memberships of their organization', techA, [], [held('t-manual-a', A, 'manual'), held('t-ops-a', A, 'manual')], { add: [], remove: [] }],
    ['an already held team is not added again', techA, ['ops'], [held('t-ops-a', A, 'manual')], { add: [], remove: [] }],
    ['leaves every team of another organization (moved), manual ones too', techB, ['ops'], [held('t-ops-a', A, 'manual'), held('t-dba-a', A, 'sync')], { add: ['t-ops-b'], remove: ['t-dba-a', 't-ops-a'] }],
    ['a global person joins nothing', who('auditor', null), ['ops'], [], { add: [], remove: [] }],
  ] as const)('%s', (_name, p, groups, h, expected) => {
    expect(planTeamSync(p, groups, teams, h)).toEqual(expected);
  });
});
