import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

async function startServe(dataDir: string) {
  const child = spawnCli(['serve', '--port', '0'], { JITGATE_DATA_DIR: dataDir, JITGATE_LOG__LEVEL: 'warn' });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  await waitFor(() => /listening on (http:\/\/\S+)/.test(out) || child.exitCode !== null, 90_000, `serve to listen (${err})`);
  const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
  if (!url) throw new Error(`serve did not start: ${err}`);
  return { child, url, exited, stderr: () => err };
}

describe.skipIf(!redis.ok)('jitgate serve with embedded defaults', () => {
  it('answers /readyz with PGlite and a private Redis, and SIGTERM leaves no child behind', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-serve-'));
    const s = await startServe(dataDir);
    const ready = await fetch(`${s.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: [{ name: 'database', ok: true }, { name: 'redis', ok: true }] });
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toContain('jitgate_http_requests_total');
    const openapi = (await (await fetch(`${s.url}/api/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(openapi.openapi).toMatch(/^3\./);
    expect(Object.keys(openapi.paths)).toContain('/readyz');
    expect(processesMentioning(dataDir).length).toBeGreaterThan(0);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    await waitFor(() => processesMentioning(dataDir).length === 0, 10_000, 'children to exit');
  });

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
});
