import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, envOverrides, loadConfig } from './load.js';

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

  it('says when an explicit file is missing and when YAML is broken', () => {
    expect(() => loadConfig({ env: {}, file: '/nonexistent/jitgate.yaml' })).toThrow(/cannot read configuration file.*ENOENT/);
    expect(problems(() => loadConfig({ env: {}, file: file('server: [\n') }))[0]!.message).toMatch(/YAML syntax error/);
  });
});
