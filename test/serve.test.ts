import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { migrate } from '../core/db/migrations.js';
import { PgDatabase } from '../core/db/pg.database.js';
import { GUACD_1_5_RDP_ARGS, startGuacdPeer } from './harness/guacd-peer.js';
import { createTestDatabase } from './harness/postgres.js';
import { redisAvailable } from './harness/redis.js';
import { processesMentioning, runCli, spawnCli } from './harness/cli.js';

const redis = redisAvailable();

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startServe(dataDir: string, env: Record<string, string> = {}) {
  const child = spawnCli(['serve', '--port', '0'], { JITGATE_DATA_DIR: dataDir, JITGATE_LOG__LEVEL: 'warn', ...env });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  await waitFor(() => /listening on (http:\/\/\S+)/.test(out) || child.exitCode !== null, 150_000, `serve to listen (${err})`);
  const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
  if (!url) throw new Error(`serve did not start: ${err}`);
  return { child, url, exited, stderr: () => err, stdout: () => out };
}

describe.skipIf(!redis.ok)('jitgate serve with embedded defaults', () => {
  it('answers /readyz with PGlite and a private Redis, and SIGTERM leaves no child behind', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-serve-'));
    const s = await startServe(dataDir);
    const ready = await fetch(`${s.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: [{ name: 'database', ok: true }, { name: 'redis', ok: true }] });
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    // Closed by default: no metrics without server.metricsToken, no API description without a sign-in.
    expect((await fetch(`${s.url}/metrics`)).status).toBe(404);
    expect((await fetch(`${s.url}/api/openapi.json`)).status).toBe(401);
    expect((await fetch(`${s.url}/api/docs`)).status).toBe(401);
    expect(processesMentioning(dataDir).length).toBeGreaterThan(0);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    await waitFor(() => processesMentioning(dataDir).length === 0, 10_000, 'children to exit');
  }, 180_000);

  it('prints the first-run setup link on the terminal only, never in a log line; metrics with server.metricsToken', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-serve-'));
    const token = 'metrics-secret-for-the-serve-test';
    const s = await startServe(dataDir, { JITGATE_LOG__LEVEL: 'trace', JITGATE_SERVER__METRICS_TOKEN: token });
    await waitFor(() => /first run: create the first administrator at \S+\/setup#(\S+) /.test(s.stdout()), 10_000, 'the setup link');
    const setupToken = /\/setup#(\S+) /.exec(s.stdout())![1]!;
    expect(setupToken.length).toBeGreaterThanOrEqual(24);
    expect((await fetch(`${s.url}/metrics`)).status).toBe(401);
    const m = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(m.status).toBe(200);
    expect(await m.text()).toContain('jitgate_http_requests_total');
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    const lines = `${s.stdout()}\n${s.stderr()}`.split('\n');
    const logLines = lines.filter((l) => l.startsWith('{'));
    // The log (JSON lines, what collectors ship) says there is a link, never the link.
    expect(logLines.length).toBeGreaterThan(5);
    expect(logLines.some((l) => l.includes('setup link is printed on the terminal'))).toBe(true);
    for (const l of logLines) {
      expect(l).not.toContain(setupToken);
      expect(l).not.toContain(token);
    }
    expect(lines.filter((l) => l.includes(setupToken))).toEqual([expect.stringMatching(/^first run: create the first administrator at /)]);
  }, 180_000);

  it('a SIGKILLed gateway still takes its embedded Redis down with it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-serve-'));
    const s = await startServe(dataDir);
    s.child.kill('SIGKILL');
    await s.exited;
    await waitFor(() => processesMentioning(dataDir).length === 0, 10_000, 'embedded redis to stop after SIGKILL');
  });

  it('refuses to start on a bad configuration, listing every problem', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jg-bad-'));
    const cfg = join(dir, 'jitgate.yaml');
    writeFileSync(cfg, 'server: { port: -1 }\nlog: { level: loud }\nnope: true\n');
    const r = await runCli(['serve', '--config', cfg], { JITGATE_DATA_DIR: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('server.port');
    expect(r.stderr).toContain('log.level');
    expect(r.stderr).toContain('nope: unknown key');
    expect(processesMentioning(dir)).toEqual([]);
  });
});

describe('jitgate check', () => {
  it('prints each configuration problem with its path and exits non-zero', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jg-check-'));
    const cfg = join(dir, 'jitgate.yaml');
    writeFileSync(cfg, 'accountStores:\n  - { name: ad, type: ldap, url: "ldap://x", bindDn: a, bindPassword: "env:MISSING_PW", baseDn: b }\n');
    const r = await runCli(['check', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('accountStores[0].bindPassword: environment variable MISSING_PW is not set');
    expect(r.stderr).toContain('accountStores[0].accountsContainer');
  });

  it('says "not migrated yet" on a fresh data directory, and how to migrate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jg-check-fresh-'));
    const r = await runCli(['check'], { JITGATE_DATA_DIR: dir, JITGATE_GUACD__PORT: '1' });
    expect(r.stdout).toMatch(/warn database: pglite reachable, not migrated yet \(this version needs schema \d+\): run `jitgate migrate`/);
    expect(r.stdout).not.toContain('schema_migrations');
    expect(r.stdout + r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(0);
  }, 180_000); // PGlite initialising a fresh data directory is the slow part on loaded CI cores

  it('says which dependency is unreachable and why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jg-check-'));
    const r = await runCli(['check'], {
      JITGATE_DATA_DIR: dir,
      JITGATE_DATABASE__URL: `postgres://nobody@/x?host=${dir}/nosocket&port=1`,
      JITGATE_REDIS__URL: 'redis://127.0.0.1:1',
      JITGATE_GUACD__PORT: '1',
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/warn guacd 127\.0\.0\.1:1: .*ECONNREFUSED.*\(needed for RDP sessions only\)/);
    expect(r.stdout).toMatch(/FAIL database: database unreachable: .*ENOENT/);
    expect(r.stdout).toMatch(/FAIL redis: redis unreachable: redis:\/\/127\.0\.0\.1:1: ECONNREFUSED/);
    expect(r.stdout).toMatch(/ok\s+configuration/);
  });

  const pgUrl = inject('pgUrl');
  it.skipIf(!pgUrl)('reports, per RDP computer, the guacd parameters its policy needs that the running guacd lacks', async () => {
    const url = await createTestDatabase(pgUrl, `t_${randomBytes(6).toString('hex')}`);
    const db = new PgDatabase({ url, poolSize: 2 });
    const guacd = await startGuacdPeer({ rdpArgs: GUACD_1_5_RDP_ARGS });
    try {
      await migrate(db);
      const org = randomUUID();
      await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [org, `org-${org.slice(0, 8)}`, '48151623']);
      const add = (name: string, protocols: string[], policy: object) =>
        db.query("INSERT INTO computers (id, organization_id, name, address, protocols, policy, jit) VALUES ($1, $2, $3, $4, $5, $6, '{}')", [randomUUID(), org, name, '10.0.0.1', protocols, JSON.stringify(policy)]);
      await add('win-pinned', ['rdp'], { rdpCertFingerprint: 'ab'.repeat(32) });
      await add('win-plain', ['rdp'], { rdpIgnoreCert: true });
      await add('ssh-pinned', ['ssh'], { rdpCertFingerprint: 'ab'.repeat(32) });
      const dir = mkdtempSync(join(tmpdir(), 'jg-check-guacd-'));
      const r = await runCli(['check'], {
        JITGATE_DATA_DIR: dir, JITGATE_DATABASE__URL: url, JITGATE_GUACD__HOST: guacd.host, JITGATE_GUACD__PORT: String(guacd.port),
      });
      const at = `${guacd.host}:${guacd.port}`;
      expect(r.stdout).toContain(`ok   guacd ${at}: VERSION_1_5_0`);
      expect(r.stdout).toContain(`warn guacd ${at} lacks cert-fingerprints, needed by the policy of win-pinned: its RDP sessions will be refused (cert-fingerprints needs guacd 1.6.0 or later)`);
      expect(r.stdout).not.toContain('policy of win-plain');
      expect(r.stdout).not.toContain('ssh-pinned');
    } finally {
      await guacd.close();
      await db.close();
    }
  }, 120_000);
});
