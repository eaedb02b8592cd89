import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './harness/cli.js';
import { createTestDatabase } from './harness/postgres.js';
import { PgDatabase } from '../core/db/pg.database.js';
import { MIGRATIONS, migrate } from '../core/db/migrations.js';

/**
 * Issue 12: an operator command spent ~95% of its time loading what it never used (the HTTP
 * server, the SSH gateway, BullMQ, PGlite's WASM with a PostgreSQL database). Timing would make a
 * flaky test on two loaded cores, so this checks the cause instead: which packages and modules a
 * command loads, recorded by a test-only loader hook (test/fixtures/record-modules.mjs).
 */

const pgUrl = inject('pgUrl');

/** What only `serve` needs, or what the chosen configuration does not use. */
const GATEWAY = ['fastify', '@fastify/websocket', 'bullmq', 'ioredis', 'ssh2', 'pino-pretty', 'prom-client', 'ws'];

/**
 * What a command that only reads never needs: the logger (it logs nothing; core/logging.ts
 * requires pino on the first logger made), the engine and its stores (app/read-only.ts), and
 * Node's bundled undici, which pg's Cloudflare probe used to load on Node 20 (core/db/pg.database.ts).
 */
const NOT_FOR_READING = { packages: ['pino', 'ldapts'], own: ['app/core.ts', 'provisioner/jit-account.service.ts', 'app/stores.ts', 'core/secret-box.ts'], builtins: ['internal/deps/undici/undici'] };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** npm packages loaded (top-level name, with scope). */
  packages: Set<string>;
  /** the project's own modules loaded, as paths relative to the repository. */
  own: Set<string>;
  /** how many module files the process loaded (ESM and CommonJS, node: built-ins imported by URL included). */
  files: number;
  /** every built-in module Node loaded, internal ones too (`internal/deps/undici/undici`), from process.moduleLoadList. */
  builtins: Set<string>;
}

/** `entry`: the sources through tsx (default), or a built cli.js as `bin/jitgate.js` runs it. */
async function runRecorded(args: string[], env: Record<string, string>, entry: string[] = ['--import', 'tsx', '--import', './test/fixtures/record-modules.mjs', 'app/cli.ts']): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'jg-startup-'));
  const list = join(dir, 'modules.txt');
  writeFileSync(list, '');
  try {
    const child = spawn(process.execPath, [...entry, ...args], {
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
    const files = new Set<string>();
    const builtins = new Set<string>();
    for (const line of readFileSync(list, 'utf8').split('\n')) {
      if (line.startsWith('builtin:')) {
        builtins.add(line.slice('builtin:'.length));
        continue;
      }
      if (line) files.add(line);
      const path = line.startsWith('file://') ? decodeURIComponent(new URL(line).pathname) : line;
      // the innermost node_modules: a dependency's own dependency counts as that package
      const m = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
      if (m) packages.add(m[1]!);
      else if (path.startsWith(ROOT)) own.add(path.slice(ROOT.length).replace(/^\//, ''));
    }
    return { code, stdout, stderr, packages, own, files: files.size, builtins };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function expectNone(loaded: Set<string>, names: string[]): void {
  expect(names.filter((n) => loaded.has(n))).toEqual([]);
}

function expectNothingBeyondReading(r: Run): void {
  expectNone(r.packages, NOT_FOR_READING.packages);
  expectNone(r.own, NOT_FOR_READING.own);
  expectNone(r.builtins, NOT_FOR_READING.builtins);
}

/** A fresh PostgreSQL database, migrated (read-only commands no longer migrate) unless told otherwise. */
async function pgDatabase(migrations: readonly (typeof MIGRATIONS)[number][] | null = MIGRATIONS): Promise<string> {
  const url = await createTestDatabase(pgUrl, `startup_${randomBytes(5).toString('hex')}`);
  if (migrations) {
    const db = new PgDatabase({ url, poolSize: 1 });
    try {
      await migrate(db, migrations);
    } finally {
      await db.close();
    }
  }
  return url;
}

/** The embedded database in `<dataDir>/pglite`, migrated as an operator would (`jitgate migrate`). */
async function migrateEmbedded(env: Record<string, string>, entry?: string[]): Promise<void> {
  const m = await runRecorded(['migrate'], env, entry);
  expect(m.stderr).toBe('');
  expect(m.code).toBe(0);
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
    const url = await pgDatabase();
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-startup-data-'));
    try {
      const r = await runRecorded(['accounts', 'list', '--json'], { JITGATE_DATA_DIR: dataDir, JITGATE_DATABASE__URL: url, JITGATE_LOG__LEVEL: 'warn' });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual([]);
      expect(r.packages.has('pg')).toBe(true);
      expectNone(r.packages, [...GATEWAY, 'ldapts', '@electric-sql/pglite']);
      expectNone(r.own, ['app/main.ts', 'gateway/server.ts', 'provisioner/jobs.ts', 'recorder/wiring.ts', 'core/db/pglite.database.ts']);
      expectNothingBeyondReading(r);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('accounts list on embedded PGlite with an LDAP store loads no store adapter (it reads the database only), and no pg, SSH, queue or HTTP code', async () => {
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
      const m = await runRecorded(['migrate', '--config', cfg], {});
      expect(m.code).toBe(0);
      const r = await runRecorded(['accounts', 'list', '--config', cfg], {});
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^NAME +STORE +MODE +STATE/);
      expect(r.packages.has('@electric-sql/pglite')).toBe(true);
      expectNone(r.packages, [...GATEWAY, 'pg']);
      expectNone(r.own, ['app/main.ts', 'gateway/server.ts', 'provisioner/stores/ldap.store.ts', 'provisioner/stores/ssh.store.ts', 'provisioner/stores/winrm.store.ts', 'core/db/pg.database.ts']);
      expectNothingBeyondReading(r);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});

/**
 * A command that only reads (accounts list, audit list, audit verify) checks the schema with one
 * query and refuses a database behind this build (app/read-only.ts, core/db/schema-check.ts):
 * `migrate`'s transaction, lock and five round trips were a third of `accounts list` on
 * PostgreSQL, and reading is no reason to change a schema. These fail if it migrates again.
 */
describe('read-only commands check the schema, never migrate it', () => {
  const READ_ONLY = [['accounts', 'list'], ['audit', 'list'], ['audit', 'verify']];

  async function tables(url: string): Promise<{ migrations: number[] | null; count: number }> {
    const db = new PgDatabase({ url, poolSize: 1 });
    try {
      const [reg] = await db.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
      const migrations = reg?.t ? (await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')).map((r) => Number(r.version)) : null;
      const [n] = await db.query<{ n: string }>("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'");
      return { migrations, count: Number(n!.n) };
    } finally {
      await db.close();
    }
  }

  it.skipIf(!pgUrl)('on a PostgreSQL database never migrated, each says "not migrated yet" with what to run, and creates nothing', async () => {
    const url = await pgDatabase(null);
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-startup-data-'));
    try {
      for (const cmd of READ_ONLY) {
        const r = await runRecorded(cmd, { JITGATE_DATA_DIR: dataDir, JITGATE_DATABASE__URL: url, JITGATE_LOG__LEVEL: 'warn' });
        expect(r.code, cmd.join(' ')).toBe(1);
        expect(r.stderr).toMatch(/JIT_ERR_DB_NOT_MIGRATED: the PostgreSQL database is not migrated yet \(this version needs schema \d+\): run `jitgate migrate`/);
        expectNothingBeyondReading(r);
      }
      expect(await tables(url)).toEqual({ migrations: null, count: 0 });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);

  it.skipIf(!pgUrl)('on a database that lacks this build\'s newest migration, it names the migration and applies nothing; after `jitgate migrate` it lists', async () => {
    const newest = MIGRATIONS.at(-1)!;
    const url = await pgDatabase(MIGRATIONS.slice(0, -1));
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-startup-data-'));
    const env = { JITGATE_DATA_DIR: dataDir, JITGATE_DATABASE__URL: url, JITGATE_LOG__LEVEL: 'warn' };
    try {
      const before = await tables(url);
      const r = await runRecorded(['accounts', 'list', '--json'], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`JIT_ERR_DB_NOT_MIGRATED: the PostgreSQL database lacks migration(s) ${newest.version} that this version needs: run \`jitgate migrate\``);
      expect(await tables(url)).toEqual(before);
      expect(before.migrations).not.toContain(newest.version);

      const m = await runRecorded(['migrate'], env);
      expect(m.code).toBe(0);
      const after = await runRecorded(['accounts', 'list', '--json'], env);
      expect(after.stderr).toBe('');
      expect(JSON.parse(after.stdout)).toEqual([]);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);

  it('on a fresh embedded data directory, accounts list says "not migrated yet"', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-startup-data-'));
    try {
      const r = await runRecorded(['accounts', 'list'], { JITGATE_DATA_DIR: dataDir, JITGATE_LOG__LEVEL: 'warn' });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/JIT_ERR_DB_NOT_MIGRATED: the embedded database is not migrated yet/);
      expectNothingBeyondReading(r);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);

  it('the recorder sees Node\'s undici when something touches Response (the control for the undici assertions)', async () => {
    const r = await runRecorded([], {}, ['--import', './test/fixtures/record-modules.mjs', '-e', 'void Response']);
    expect(r.code).toBe(0);
    expect(r.builtins.has('internal/deps/undici/undici')).toBe(true);
  }, 60_000);
});

/**
 * The start-up figure itself (issue 12: `accounts list` on PostgreSQL ≤ 0.3 s, bench/cli-startup.bench.ts
 * measures it). Node 20's ESM loader costs ~0.5 ms of CPU per module file, and zod (95 files: its
 * barrel loads every locale), yaml (73) and commander (9) were 60% of the 293 files the command
 * loaded; scripts/build-cli.ts bundles them into dist/app/cli.js. A wall-clock limit tight enough to
 * guard 0.3 s would be flaky on two loaded cores, so this counts what the built CLI loads (the cause)
 * and bounds the time only loosely (a hang, a pool left open, a synchronous wait).
 */
describe('the built CLI (scripts/build-cli.ts)', () => {
  // Inside the repository, so the packages left out of the bundle resolve from node_modules as in dist/.
  const out = join(ROOT, 'test-artifacts', `cli-bundle-${randomBytes(4).toString('hex')}`, 'app');
  beforeAll(async () => {
    const { buildCli } = await import('../scripts/build-cli.js');
    await buildCli(out);
  }, 240_000);
  afterAll(() => rmSync(join(out, '..'), { recursive: true, force: true }));

  it.skipIf(!pgUrl)('accounts list on PostgreSQL loads zod, yaml and commander from the bundle, under 60 module files, and exits promptly', async () => {
    const url = await pgDatabase();
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-startup-data-'));
    const env = { JITGATE_DATA_DIR: dataDir, JITGATE_DATABASE__URL: url, JITGATE_LOG__LEVEL: 'warn' };
    try {
      const entry = ['--import', './test/fixtures/record-modules.mjs', join(out, 'cli.js')];
      const started = performance.now();
      const r = await runRecorded(['accounts', 'list', '--json'], env, entry);
      const wallMs = performance.now() - started;
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual([]);
      expect(r.packages.has('pg')).toBe(true); // the recorder sees what stays in node_modules
      expectNone(r.packages, ['zod', 'yaml', 'commander', ...GATEWAY, 'ldapts', '@electric-sql/pglite']);
      expectNothingBeyondReading(r);
      // 46 today (pg and its dependencies are most of it); 86 with pino and the engine, 293 before the bundle.
      expect(r.files).toBeLessThan(60);
      // ~0.3 s on an idle machine; 10 s catches a process that waits for something, not a slow machine.
      expect(wallMs).toBeLessThan(10_000);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);

  it('accounts list on embedded PGlite runs from the bundle (its WASM stays in node_modules)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-startup-data-'));
    try {
      const env = { JITGATE_DATA_DIR: dataDir, JITGATE_LOG__LEVEL: 'warn' };
      const entry = ['--import', './test/fixtures/record-modules.mjs', join(out, 'cli.js')];
      await migrateEmbedded(env, entry);
      const r = await runRecorded(['accounts', 'list'], env, entry);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^NAME +STORE +MODE +STATE/);
      expect(r.packages.has('@electric-sql/pglite')).toBe(true);
      expectNone(r.packages, ['zod', 'yaml', 'commander', ...GATEWAY, 'pg']);
      expectNothingBeyondReading(r);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);

  it('a bad configuration is still refused with every bad key named (validation is bundled, not dropped)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'jg-startup-data-'));
    const cfg = join(dataDir, 'jitgate.yaml');
    writeFileSync(cfg, 'nope: 1\nlog: { level: loud }\n');
    try {
      const r = await runRecorded(['accounts', 'list', '--config', cfg], { JITGATE_DATA_DIR: dataDir }, [join(out, 'cli.js')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/nope: unknown key/);
      expect(r.stderr).toMatch(/log\.level/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
