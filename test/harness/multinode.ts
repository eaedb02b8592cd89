/**
 * Drives scripts/multinode.sh for fault tests: Debian's PostgreSQL, Redis
 * (AOF on), two `--role gateway` and two `--role worker` processes and
 * HAProxy in front of the gateways, every one a separate OS process that a
 * test can SIGKILL, stop or start again by name.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPgBin } from './postgres.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/multinode.sh', import.meta.url));

export type ProcessName = 'postgres' | 'redis' | 'haproxy' | 'gw1' | 'gw2' | 'w1' | 'w2';

/** `<state-dir>/env.json` as `scripts/multinode.sh up` writes it. */
export interface MultinodeEnv {
  stateDir: string;
  /** HAProxy's HTTP front end, `http://127.0.0.1:<port>`. */
  httpUrl: string;
  /** HAProxy's SSH front end (TCP). */
  sshPort: number;
  gateways: Record<'gw1' | 'gw2', { http: number; ssh: number }>;
  databaseUrl: string;
  redisUrl: string;
  secretKeyFile: string;
  auditKeyFile: string;
  sshHostKeyFile: string;
}

export interface Multinode extends MultinodeEnv {
  /** base64 of the installation's secrets key (TOTP seeds are encrypted with it). */
  readonly secretKey: string;
  start(name: ProcessName): Promise<void>;
  /** SIGTERM (PostgreSQL: fast shutdown) and wait. */
  stop(name: ProcessName): Promise<void>;
  /** SIGKILL (PostgreSQL: immediate shutdown) and wait. */
  kill(name: ProcessName): Promise<void>;
  /** SIGKILL Redis, delete its data, start an empty one on the same port. */
  wipeRedis(): Promise<void>;
  pid(name: ProcessName): number | null;
  /** What the process wrote so far (pino JSON lines). */
  log(name: Exclude<ProcessName, 'postgres'>): string;
  down(): Promise<void>;
}

export function multinodeAvailable(): { ok: boolean; reason?: string } {
  if (!findPgBin()) return { ok: false, reason: 'PostgreSQL server binaries not found (scripts/deps/core.txt: postgresql)' };
  for (const [cmd, dep] of [['haproxy', 'proxy.txt'], ['redis-server', 'core.txt'], ['ssh-keygen', 'ssh.txt']] as const) {
    if (spawnSync(cmd, cmd === 'ssh-keygen' ? ['-?'] : ['-v'], { stdio: 'ignore' }).error) return { ok: false, reason: `${cmd} not installed (scripts/deps/${dep})` };
  }
  return { ok: true };
}

function script(args: string[], env: Record<string, string> = {}, timeoutMs = 300_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

async function portsFree(ports: number[]): Promise<boolean> {
  for (const p of ports) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.createServer();
      s.once('error', () => r(false));
      s.listen(p, '127.0.0.1', () => s.close(() => r(true)));
    });
    if (!ok) return false;
  }
  return true;
}

/** A base port whose block (base … base+21) is free on loopback. */
async function freeBase(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20_000 + 100 * Math.floor(Math.random() * 300);
    if (await portsFree([0, 1, 2, 10, 11, 20, 21].map((o) => base + o))) return base;
  }
  throw new Error('no free block of loopback ports');
}

export interface MultinodeOptions {
  /** The jitgate.yaml every process reads (account stores, …). */
  configPath: string;
  orphanCheckSeconds?: number;
  reconcileSeconds?: number;
  leaseGraceSeconds?: number;
}

/** `scripts/multinode.sh up` from source (tsx), on a free block of ports. Call `down()` in `afterAll`. */
export async function startMultinode(o: MultinodeOptions): Promise<Multinode> {
  const stateDir = mkdtempSync(join(tmpdir(), 'jgt-multinode-'));
  const env = {
    MULTINODE_CONFIG: o.configPath,
    MULTINODE_BASE_PORT: String(await freeBase()),
    MULTINODE_FROM_SOURCE: '1',
    MULTINODE_ORPHAN_CHECK_SECONDS: String(o.orphanCheckSeconds ?? 2),
    MULTINODE_RECONCILE_SECONDS: String(o.reconcileSeconds ?? 600),
    MULTINODE_LEASE_GRACE_SECONDS: String(o.leaseGraceSeconds ?? 5),
  };
  const up = await script(['up', stateDir], env, 400_000);
  if (up.code !== 0) {
    await script(['down', stateDir]).catch(() => undefined);
    throw new Error(`scripts/multinode.sh up failed (exit ${String(up.code)}):\n${up.out.slice(-4000)}`);
  }
  const e = JSON.parse(readFileSync(join(stateDir, 'env.json'), 'utf8')) as MultinodeEnv;
  const run = async (args: string[]) => {
    const r = await script(args);
    if (r.code !== 0) throw new Error(`scripts/multinode.sh ${args.join(' ')} failed:\n${r.out.slice(-4000)}`);
  };
  let downed: Promise<void> | null = null;
  return {
    ...e,
    secretKey: readFileSync(e.secretKeyFile, 'utf8').trim(),
    start: (n) => run(['start', n, stateDir]),
    stop: (n) => run(['stop', n, stateDir]),
    kill: (n) => run(['kill', n, stateDir]),
    wipeRedis: () => run(['wipe-redis', stateDir]),
    pid(n) {
      try {
        return Number(readFileSync(join(stateDir, `${n}.pid`), 'utf8').trim()) || null;
      } catch {
        return null;
      }
    },
    log(n) {
      try {
        return readFileSync(join(stateDir, `${n}.log`), 'utf8');
      } catch {
        return '';
      }
    },
    down: () => (downed ??= run(['down', stateDir])),
  };
}
