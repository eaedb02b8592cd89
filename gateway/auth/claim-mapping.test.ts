import { describe, expect, it } from 'vitest';
import { groupsFromClaim, mapExternalIdentity, providerAssertedMfa, type MappingRules } from './claim-mapping.js';

const rules: MappingRules = {
  roles: [
    { group: 'jit-admins', role: 'org_admin' },
    { group: 'Technicians', role: 'technician' },
    { group: 'security', role: 'auditor' },
  ],
  organization: { claim: 'org', values: { 'c-42': 'acme' }, emailDomains: { 'globex.example': 'globex' } },
};

describe('mapExternalIdentity', () => {
  const cases: [string, Parameters<typeof mapExternalIdentity>[1], ReturnType<typeof mapExternalIdentity>][] = [
    ['first matching rule wins', { groups: ['technicians', 'jit-admins'], verifiedEmail: null, claims: { org: 'c-42' } }, { ok: true, role: 'org_admin', organizationName: 'acme' }],
    ['groups compare case-insensitively', { groups: ['TECHNICIANS'], verifiedEmail: null, claims: { org: 'c-42' } }, { ok: true, role: 'technician', organizationName: 'acme' }],
    ['no group maps: refused', { groups: ['staff'], verifiedEmail: null, claims: { org: 'c-42' } }, { ok: false, reason: 'no-role' }],
    ['no groups at all: refused', { groups: [], verifiedEmail: 'a@globex.example', claims: {} }, { ok: false, reason: 'no-role' }],
    ['claim value not in values: falls back to the e-mail domain', { groups: ['technicians'], verifiedEmail: 'bob@Globex.example', claims: { org: 'c-99' } }, { ok: true, role: 'technician', organizationName: 'globex' }],
    ['unverified e-mail gives no organization', { groups: ['technicians'], verifiedEmail: null, claims: {} }, { ok: false, reason: 'no-organization' }],
    ['auditor needs no organization', { groups: ['security'], verifiedEmail: null, claims: {} }, { ok: true, role: 'auditor', organizationName: null }],
  ];
  it.each(cases)('%s', (_name, who, expected) => {
    expect(mapExternalIdentity(rules, who)).toEqual(expected);
  });

  it('without a values table the claim value is the organization name; default applies last', () => {
    const r: MappingRules = { roles: rules.roles, organization: { claim: 'org', values: {}, emailDomains: {}, default: 'fallback' } };
    expect(mapExternalIdentity(r, { groups: ['technicians'], verifiedEmail: null, claims: { org: 'initech' } })).toEqual({ ok: true, role: 'technician', organizationName: 'initech' });
    expect(mapExternalIdentity(r, { groups: ['technicians'], verifiedEmail: null, claims: { org: 7 } })).toEqual({ ok: true, role: 'technician', organizationName: 'fallback' });
  });
});

describe('providerAssertedMfa', () => {
  it.each([
    [['pwd', 'mfa'], true],
    [['otp'], true],
    [['hwk'], true],
    [['pwd'], false],
    ['mfa', false],
    [undefined, false],
  ])('%j → %s', (amr, want) => expect(providerAssertedMfa(amr)).toBe(want));
});

describe('groupsFromClaim', () => {
  it('accepts a list or one string, ignores the rest', () => {
    expect(groupsFromClaim(['a', 1, 'b'])).toEqual(['a', 'b']);
    expect(groupsFromClaim('a')).toEqual(['a']);
    expect(groupsFromClaim({ a: 1 })).toEqual([]);
  });
});
