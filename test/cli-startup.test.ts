import { describe, expect, inject, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './harness/cli.js';
import { createTestDatabase } from './harness/postgres.js';

/**
 * Issue 12: an operator command spent ~95% of its time loading what it never used (the HTTP
 * server, the SSH gateway, BullMQ, PGlite's WASM with a PostgreSQL database). Timing would make a
 * flaky test on two loaded cores, so this checks the cause instead: which packages and modules a
 * command loads, recorded by a test-only loader hook (test/fixtures/record-modules.mjs).
 */

const pgUrl = inject('pgUrl');

/** What only `serve` needs, or what the chosen configuration does not use. */
const GATEWAY = ['fastify', '@fastify/websocket', 'bullmq', 'ioredis', 'ssh2', 'pino-pretty', 'prom-client', 'ws'];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** npm packages loaded (top-level name, with scope). */
  packages: Set<string>;
  /** the project's own modules loaded, as paths relative to the repository. */
  own: Set<string>;
}

async function runRecorded(args: string[], env: Record<string, string>): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'jg-startup-'));
  const list = join(dir, 'modules.txt');
  writeFileSync(list, '');
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', '--import', './test/fixtures/record-modules.mjs', 'app/cli.ts', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', RECORD_MODULES_FILE: list, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    const packages = new Set<string>();
    const own = new Set<string>();
    for (const line of readFileSync(list, 'utf8').split('\n')) {
      const path = line.startsWith('file://') ? decodeURIComponent(new URL(line).pathname) : line;
      // the innermost node_modules: a dependency's own dependency counts as that package
      const m = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
      if (m) packages.add(m[1]!);
      else if (path.startsWith(ROOT)) own.add(path.slice(ROOT.length).replace(/^\//, ''));
    }
    return { code, stdout, stderr, packages, own };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function expectNone(loaded: Set<string>, names: string[]): void {
  expect(names.filter((n) => loaded.has(n))).toEqual([]);
}

describe('CLI start-up loads only what the command needs', () => {
  it('--help loads no database, directory, SSH, queue or HTTP code', async () => {
    const r = await runRecorded(['--help'], {});
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('accounts');
    expect(r.packages.has('commander')).toBe(true); // the recorder sees packages
    expectNone(r.packages, [...GATEWAY, 'ldapts', 'pg', '@electric-sql/pglite']);
    expectNone(r.own, ['app/main.ts', 'app/core.ts', 'gateway/server.ts']);
  }, 60_000);

  it.skipIf(!pgUrl)('accounts list on PostgreSQL loads pg, and neither PGlite nor the gateway, queue or store adapters', async () => {
    const url = await createTestDatabase(pgUrl, `startup_${randomBytes(5).toString('hex')}`);
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-startup-data-'));
    try {
      const r = await runRecorded(['accounts', 'list', '--json'], { JITGATE_DATA_DIR: dataDir, JITGATE_DATABASE__URL: url, JITGATE_LOG__LEVEL: 'warn' });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual([]);
      expect(r.packages.has('pg')).toBe(true);
      expectNone(r.packages, [...GATEWAY, 'ldapts', '@electric-sql/pglite']);
      expectNone(r.own, ['app/main.ts', 'gateway/server.ts', 'provisioner/jobs.ts', 'recorder/wiring.ts', 'core/db/pglite.database.ts']);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('accounts list on embedded PGlite with an LDAP store loads that adapter only, and no pg, SSH, queue or HTTP code', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-startup-data-'));
    const cfg = join(dataDir, 'jitgate.yaml');
    // Never contacted: listing accounts reads the database only.
    writeFileSync(cfg, [
      `dataDir: ${JSON.stringify(join(dataDir, 'data'))}`,
      'log: { level: warn }',
      'accountStores:',
      '  - { name: corp, type: ldap, url: "ldaps://127.0.0.1:1", caCert: "unused", bindDn: "CN=svc,DC=corp,DC=example", bindPassword: "unused",',
      '      baseDn: "DC=corp,DC=example", accountsContainer: "OU=JIT,DC=corp,DC=example" }',
      '',
    ].join('\n'));
    try {
      const r = await runRecorded(['accounts', 'list', '--config', cfg], {});
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^NAME +STORE +MODE +STATE/);
      expect(r.packages.has('@electric-sql/pglite')).toBe(true);
      expect(r.packages.has('ldapts')).toBe(true);
      expectNone(r.packages, [...GATEWAY, 'pg']);
      expectNone(r.own, ['app/main.ts', 'gateway/server.ts', 'provisioner/stores/ssh.store.ts', 'provisioner/stores/winrm.store.ts', 'core/db/pg.database.ts']);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
