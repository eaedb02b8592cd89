import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, envOverrides, loadConfig } from './load.js';
import { insecureTransportWarnings } from './schema.js';

function file(text: string): string {
  const p = join(mkdtempSync(join(tmpdir(), 'jg-cfg-')), 'jitgate.yaml');
  writeFileSync(p, text);
  return p;
}

function problems(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('gives embedded defaults with no file and no environment', () => {
    const cfg = loadConfig({ env: {}, file: file('') });
    expect(cfg.role).toBe('all');
    expect(cfg.database.url).toBeUndefined();
    expect(cfg.redis.url).toBeUndefined();
    expect(cfg.server).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(cfg.dataDir.startsWith('/')).toBe(true);
    expect(Object.isFrozen(cfg) && Object.isFrozen(cfg.server)).toBe(true);
  });

  it('reports every problem at once, each with its full path, and rejects unknown keys', () => {
    const p = problems(() =>
      loadConfig({
        env: {},
        file: file(`
server: { port: 99999, colour: blue }
log: { level: loud }
accountStores:
  - name: corp
    type: ldap
    url: http://dc
    bindDn: cn=svc
    bindPassword: env:NOPE_NOT_SET
    baseDn: dc=x
    accountsContainer: ou=jit,dc=x
  - name: Bad Name
    type: ssh
    host: h
    privateKey: k
    hostKeySha256: md5:abc
bogus: 1
`),
      }),
    );
    const paths = p.map((x) => x.path).sort();
    expect(paths).toEqual(
      [
        'accountStores[0].bindPassword',
        'accountStores[0].caCert',
        'accountStores[0].url',
        'accountStores[1].hostKeySha256',
        'accountStores[1].name',
        'bogus',
        'log.level',
        'server.colour',
        'server.port',
      ].sort(),
    );
    expect(p.find((x) => x.path === 'accountStores[0].bindPassword')!.message).toContain('NOPE_NOT_SET');
    expect(p.find((x) => x.path === 'bogus')!.message).toBe('unknown key');
  });

  it('resolves env: and file: secrets into values that never print', () => {
    const keyFile = file('s3cr3t-from-file\n');
    const cfg = loadConfig({
      env: { DBURL: 'postgres://u:pw@db/x' },
      file: file(`database: { url: env:DBURL }\nsecrets: { key: "file:${keyFile}" }\n`),
    });
    expect(cfg.database.url!.reveal()).toBe('postgres://u:pw@db/x');
    expect(cfg.secrets.key!.reveal()).toBe('s3cr3t-from-file');
    expect(JSON.stringify(cfg)).not.toContain('pw@db');
    expect(JSON.stringify(cfg)).not.toContain('s3cr3t');
  });

  it('lets the environment override the file, with types kept', () => {
    const cfg = loadConfig({ env: { JITGATE_SERVER__PORT: '9090', JITGATE_LOG__PRETTY: 'true', JITGATE_DATA_DIR: '/tmp/jg', JITGATE_TEST_CACHE: '/x' }, file: file('server: { port: 1 }\n') });
    expect(cfg.server.port).toBe(9090);
    expect(cfg.log.pretty).toBe(true);
    expect(cfg.dataDir).toBe('/tmp/jg');
    expect(envOverrides({ JITGATE_JIT__DEFAULT_SESSION_MINUTES: '30' })).toEqual({ jit: { defaultSessionMinutes: 30 } });
  });

  it('refuses split roles on the single-process embedded database and Redis', () => {
    const p = problems(() => loadConfig({ env: {}, file: file('role: worker\n') }));
    expect(p.map((x) => x.path).sort()).toEqual(['database.url', 'redis.url']);
  });

  it('refuses service credentials over weak transport unless allowInsecureTransport, and warns when it is set', () => {
    const ldap = (extra: string) =>
      `  - { name: ad, type: ldap, url: "ldap://dc1:389", caCert: x, bindDn: a, bindPassword: b, baseDn: "DC=x", accountsContainer: "OU=J,DC=x"${extra} }\n`;
    const winrm = (endpoint: string, extra: string) => `  - { name: win, type: winrm, endpoint: "${endpoint}", username: u, password: p${extra} }\n`;
    const p = problems(() => loadConfig({ env: {}, file: file(`accountStores:\n${ldap('')}${winrm('http://pc1:5985/wsman', '')}`) }));
    expect(p.map((x) => x.path)).toEqual(['accountStores[0].url', 'accountStores[1].endpoint']);
    expect(p[0]!.message).toMatch(/ldap:\/\/ without startTls would send the bind password in clear.*allowInsecureTransport/);
    expect(p[1]!.message).toMatch(/http:\/\/ .*allowInsecureTransport/);

    // StartTLS, ldaps:// and https:// need nothing; none of them warns.
    const secure = loadConfig({ env: {}, file: file(`accountStores:\n${ldap(', startTls: true')}${winrm('https://pc1:5986/wsman', '')}`) });
    expect(secure.accountStores.map((s) => (s.type === 'ssh' ? null : s.allowInsecureTransport))).toEqual([false, false]);
    expect(insecureTransportWarnings(secure.accountStores)).toEqual([]);

    const opted = loadConfig({
      env: {},
      file: file(`accountStores:\n${ldap(', allowInsecureTransport: true')}${winrm('http://pc1:5985/wsman', ', allowInsecureTransport: true')}`),
    });
    const warnings = insecureTransportWarnings(opted.accountStores);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/^account store ad: allowInsecureTransport is true and ldap:\/\/dc1:389 is not encrypted/);
    expect(warnings[1]).toMatch(/^account store win: allowInsecureTransport is true and http:\/\/pc1:5985\/wsman is not encrypted/);
  });

  it('says when an explicit file is missing and when YAML is broken', () => {
    expect(() => loadConfig({ env: {}, file: '/nonexistent/jitgate.yaml' })).toThrow(/cannot read configuration file.*ENOENT/);
    expect(problems(() => loadConfig({ env: {}, file: file('server: [\n') }))[0]!.message).toMatch(/YAML syntax error/);
  });
});
