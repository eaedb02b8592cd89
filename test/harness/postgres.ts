import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

/**
 * A throw-away PostgreSQL server for tests: initdb into a fresh directory,
 * listening only on a unix socket in that directory (no TCP). As root it
 * runs as the `postgres` system user (initdb refuses root).
 */
export interface PostgresHandle {
  url: string;
  socketDir: string;
  stop(): Promise<void>;
}

export function findPgBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'postgres'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(base, versions[0], 'bin') : undefined;
}

export function postgresAvailable(): { ok: boolean; reason?: string } {
  if (!findPgBin()) return { ok: false, reason: 'PostgreSQL server binaries not found in /usr/lib/postgresql (apt-get install postgresql)' };
  return { ok: true };
}

function uidOf(user: string): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', user]).toString().trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

export async function startPostgres(): Promise<PostgresHandle> {
  const bin = findPgBin();
  if (!bin) throw new Error(postgresAvailable().reason);
  const dir = mkdtempSync(join(tmpdir(), 'jgt-pg-'));
  const dataDir = join(dir, 'data');
  const isRoot = userInfo().uid === 0;
  const runAs = isRoot ? 'postgres' : undefined;
  const ids = runAs ? uidOf(runAs) : undefined;
  if (isRoot && !ids) throw new Error('running as root needs the postgres system user (apt-get install postgresql)');
  if (ids) chownSync(dir, ids.uid, ids.gid);
  const wrap = (cmd: string, args: string[]): [string, string[]] => (runAs ? ['runuser', ['-u', runAs, '--', cmd, ...args]] : [cmd, args]);
  const [c1, a1] = wrap(join(bin, 'initdb'), ['-D', dataDir, '-U', 'jitgate', '--auth=trust', '-E', 'UTF8', '--no-sync', '--locale=C']);
  execFileSync(c1, a1, { stdio: 'pipe' });
  writeFileSync(join(dataDir, 'postgresql.auto.conf'), "listen_addresses = ''\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n");
  if (ids) chownSync(join(dataDir, 'postgresql.auto.conf'), ids.uid, ids.gid);
  const port = 15432;
  const [c2, a2] = wrap(join(bin, 'postgres'), ['-D', dataDir, '-k', dir, '-p', String(port)]);
  const child: ChildProcess = spawn(c2, a2, { stdio: ['ignore', 'ignore', 'pipe'], detached: false });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const sock = join(dir, `.s.PGSQL.${port}`);
  const deadline = Date.now() + 30_000;
  while (!existsSync(sock)) {
    if (child.exitCode !== null) throw new Error(`postgres exited: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`postgres did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // The socket appears before recovery finishes; wait for accepting connections.
  const [c3, a3] = wrap(join(bin, 'pg_isready'), ['-h', dir, '-p', String(port), '-t', '20']);
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync(c3, a3, { stdio: 'ignore' });
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const url = `postgres://jitgate@/postgres?host=${encodeURIComponent(dir)}&port=${port}`;
  return {
    url,
    socketDir: dir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGINT'); // fast shutdown
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      child.stderr?.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A fresh database on the shared test server, for one test file. */
export async function createTestDatabase(adminUrl: string, name: string): Promise<string> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE "${name.replace(/[^a-z0-9_]/g, '')}"`);
  } finally {
    await c.end();
  }
  return adminUrl.replace('/postgres?', `/${name}?`);
}
