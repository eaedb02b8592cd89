import { describe, expect, it } from 'vitest';
import { buildConfigSchema, type AccountStoreConfig } from '../config/schema.js';
import { checkComputerStores, checkStoreScope, storeScopeOf, type StoreScope } from './store-scope.js';
import { isDnWithin, parseDn } from './stores/ldap-escape.js';

const { accountStoreSchema } = buildConfigSchema({});
const ldapInput = (extra: Record<string, unknown> = {}) => ({
  name: 'acme-ad', type: 'ldap', url: 'ldaps://dc.acme.test', caCert: 'PEM', bindDn: 'CN=svc,DC=acme,DC=test', bindPassword: 'x',
  baseDn: 'DC=acme,DC=test', accountsContainer: 'OU=JIT,DC=acme,DC=test', groups: { 'JIT Admins': 'CN=JIT Admins,OU=Groups,DC=acme,DC=test' }, ...extra,
});
const ldap = (extra: Record<string, unknown> = {}): AccountStoreConfig => accountStoreSchema.parse(ldapInput(extra));

const acme: StoreScope = { name: 'acme-ad', organizations: ['acme'], groups: ['JIT Admins'], allowedContainers: ['OU=JIT,DC=acme,DC=test'] };
const use = { organizationName: 'acme', adminGroups: ['JIT Admins'], byGlobalAdmin: false };

describe('storeScopeOf', () => {
  it('reads owners, group names and allowed containers (default: the accounts container)', () => {
    expect(storeScopeOf(ldap({ organizations: ['acme', 'beta'] }))).toEqual({
      name: 'acme-ad', organizations: ['acme', 'beta'], groups: ['JIT Admins'], allowedContainers: ['OU=JIT,DC=acme,DC=test'],
    });
    expect(storeScopeOf(ldap({ allowedContainers: ['OU=Servers,DC=acme,DC=test'] })).allowedContainers).toEqual(['OU=Servers,DC=acme,DC=test']);
    expect(storeScopeOf(ldap()).organizations).toBeNull();
    const ssh = accountStoreSchema.parse({ name: 'l', type: 'ssh', host: 'h', privateKey: 'k', hostKeySha256: `SHA256:${'a'.repeat(43)}`, groups: { sudo: 'sudo' }, organizations: ['acme'] });
    expect(storeScopeOf(ssh)).toEqual({ name: 'l', organizations: ['acme'], groups: ['sudo'], allowedContainers: null });
  });

  it('the schema refuses an empty or repeated owner list and allowedContainers outside LDAP stores', () => {
    expect(accountStoreSchema.safeParse(ldapInput({ organizations: ['a'] })).success).toBe(true);
    expect(accountStoreSchema.safeParse(ldapInput({ organizations: [] })).success).toBe(false);
    expect(accountStoreSchema.safeParse(ldapInput({ organizations: ['a', 'a'] })).success).toBe(false);
    const sshInput = { name: 'l', type: 'ssh', host: 'h', privateKey: 'k', hostKeySha256: `SHA256:${'a'.repeat(43)}` };
    expect(accountStoreSchema.safeParse(sshInput).success).toBe(true);
    expect(accountStoreSchema.safeParse({ ...sshInput, allowedContainers: ['OU=x,DC=y'] }).success).toBe(false);
  });
});

describe('checkStoreScope', () => {
  it('an owning organization may use its store, its groups and containers inside the allowed ones', () => {
    expect(checkStoreScope(acme, use)).toBeNull();
    expect(checkStoreScope(acme, { ...use, container: 'OU=JIT,DC=acme,DC=test' })).toBeNull();
    expect(checkStoreScope(acme, { ...use, container: 'ou=Team A, ou=jit ,dc=ACME,dc=test' })).toBeNull();
    expect(checkStoreScope({ ...acme, organizations: ['beta', 'acme'] }, use)).toBeNull();
  });

  it("another organization's store is refused, for global admins too", () => {
    for (const byGlobalAdmin of [false, true]) {
      expect(checkStoreScope(acme, { ...use, organizationName: 'beta', byGlobalAdmin })?.code).toBe('JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG');
    }
    // Names match exactly: no prefix or case games.
    expect(checkStoreScope(acme, { ...use, organizationName: 'ACME' })?.code).toBe('JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG');
    expect(checkStoreScope(acme, { ...use, organizationName: 'acme2' })?.code).toBe('JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG');
  });

  it('a store without owners is for global admins only', () => {
    const unowned = { ...acme, organizations: null };
    expect(checkStoreScope(unowned, use)?.code).toBe('JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG');
    expect(checkStoreScope(unowned, { ...use, byGlobalAdmin: true })).toBeNull();
  });

  it('every admin group must be configured on the store, for everyone', () => {
    for (const byGlobalAdmin of [false, true]) {
      const e = checkStoreScope(acme, { ...use, byGlobalAdmin, adminGroups: ['JIT Admins', 'Domain Admins'] });
      expect(e?.code).toBe('JIT_ERR_STORE_GROUP_UNKNOWN');
      expect(e?.details).toMatchObject({ group: 'Domain Admins', store: 'acme-ad' });
    }
    expect(checkStoreScope(acme, { ...use, adminGroups: ['constructor'] })?.code).toBe('JIT_ERR_STORE_GROUP_UNKNOWN');
    expect(checkStoreScope(acme, { ...use, adminGroups: ['jit admins'] })?.code).toBe('JIT_ERR_STORE_GROUP_UNKNOWN');
  });

  it('the container must equal or lie inside an allowed one, compared RDN by RDN', () => {
    const refused = (container: string) => checkStoreScope(acme, { ...use, container })?.code === 'JIT_ERR_STORE_CONTAINER_NOT_ALLOWED';
    expect(refused('OU=Admins,DC=beta,DC=test')).toBe(true);
    expect(refused('DC=acme,DC=test')).toBe(true); // the parent, not inside
    expect(refused('OU=x,OU=JIT,DC=evilacme,DC=test')).toBe(true);
    expect(refused('OU=x,OU=NOTJIT,DC=acme,DC=test')).toBe(true);
    expect(refused('OU=x\\,OU=JIT\\,DC=acme\\,DC=test,DC=evil')).toBe(true); // escaped commas are one value
    expect(refused('OU=x,OU=JIT,DC=acme,DC=test,DC=evil')).toBe(true);
    expect(refused('OU=JIT,DC=acme,DC=test\\')).toBe(true); // malformed
    expect(refused('OU=x,OU=JIT,DC=acme,DC=test')).toBe(false);
    // SSH/WinRM stores have no containers: nothing to check.
    expect(checkStoreScope({ ...acme, allowedContainers: null }, { ...use, container: 'OU=anything' })).toBeNull();
  });
});

describe('checkComputerStores', () => {
  const linux: StoreScope = { name: 'acme-linux', organizations: ['acme'], groups: ['sudo'], allowedContainers: null };
  const beta: StoreScope = { name: 'beta-ad', organizations: ['beta'], groups: ['JIT Admins'], allowedContainers: ['OU=JIT,DC=beta,DC=test'] };
  const scopes = new Map([acme, linux, beta].map((s) => [s.name, s]));
  const jit = { enabled: true, accountType: 'domain' as const, adminGroups: ['JIT Admins'] };
  const check = (c: Partial<Parameters<typeof checkComputerStores>[1]>) =>
    checkComputerStores((n) => scopes.get(n), { domainStore: 'acme-ad', localStore: null, jit, ...c }, { organizationName: 'acme', byGlobalAdmin: false });

  it('names the field: store, groups or container', () => {
    expect(check({})).toBeNull();
    expect(check({ domainStore: 'beta-ad' })?.field).toBe('domainStore');
    expect(check({ localStore: 'beta-ad' })?.field).toBe('localStore');
    expect(check({ jit: { ...jit, adminGroups: ['sudo'] } })?.field).toBe('jit.adminGroups');
    expect(check({ jit: { ...jit, container: 'OU=JIT,DC=beta,DC=test' } })?.field).toBe('jit.container');
  });

  it('groups must exist on every store a session may provision in', () => {
    expect(check({ localStore: 'acme-linux', jit: { ...jit, accountType: 'choose' } })?.error.details).toMatchObject({ store: 'acme-linux', group: 'JIT Admins' });
    // A local store the account type never uses is checked for ownership only.
    expect(check({ localStore: 'acme-linux' })).toBeNull();
    expect(check({ domainStore: null, localStore: 'acme-linux', jit: { ...jit, accountType: 'local', adminGroups: ['sudo'], container: 'OU=ignored' } })).toBeNull();
  });
});

describe('parseDn / isDnWithin', () => {
  it('normalises case, spaces and escapes', () => {
    expect(parseDn('OU=a\\2cb , DC=X')).toEqual([[{ type: 'ou', value: 'a,b' }], [{ type: 'dc', value: 'x' }]]);
    expect(parseDn('CN=a+OU=b,DC=x')).toEqual(parseDn('OU=B+CN=A,DC=x'));
    expect(isDnWithin('CN=\\ lead,OU=JIT,DC=x', 'ou=jit,dc=x')).toBe(true);
  });

  it('refuses malformed DNs', () => {
    for (const bad of ['', ' ', 'OU', 'OU=', 'OU=a,,DC=x', '=a', 'OU=a\\', 'OU=a\\zq', 'O U=a', 'OU=a,']) expect(parseDn(bad), bad).toBeNull();
  });
});

describe('allowedContainers in the configuration', () => {
  it('refuses single-component entries (what an unquoted YAML flow list of a DN turns into)', () => {
    const r = accountStoreSchema.safeParse(ldapInput({ allowedContainers: ['OU=JIT', 'DC=acme', 'DC=test'] }));
    expect(r.success).toBe(false);
    expect(accountStoreSchema.safeParse(ldapInput({ allowedContainers: ['OU=JIT,DC=acme,DC=test', 'OU=a\\,b,DC=acme'] })).success).toBe(true);
    expect(accountStoreSchema.safeParse(ldapInput({ allowedContainers: ['OU=a\\,DC=acme'] })).success).toBe(false);
  });
});

describe('what an org admin learns from a refusal', () => {
  it('the same words for an unowned store and another customer\'s', () => {
    const msg = (organizations: string[] | null) => checkStoreScope({ ...acme, organizations }, { ...use, organizationName: 'gamma' })?.message;
    expect(msg(null)).toBe(msg(['acme']));
    expect(msg(['acme'])).not.toContain('acme,');
  });
});
