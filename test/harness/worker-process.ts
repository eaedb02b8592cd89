/**
 * Run `jitgate serve --role worker` as a real OS process for fault tests:
 * a temp YAML config (PostgreSQL URL, Redis URL, unique prefix, one LDAP
 * account store), the process itself, and a loopback TCP bridge to the
 * shared test Redis (which listens on a unix socket only, while `redis.url`
 * takes a `redis://` URL).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runCli, spawnCli } from './cli.js';

export interface RedisBridge {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  close(): Promise<void>;
}

/** Forward loopback TCP connections to a unix-socket Redis, byte for byte. */
export async function startRedisTcpBridge(socketPath: string): Promise<RedisBridge> {
  const conns = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const up = net.connect(socketPath);
    conns.add(c).add(up);
    const end = () => {
      c.destroy();
      up.destroy();
      conns.delete(c);
      conns.delete(up);
    };
    for (const s of [c, up]) {
      s.on('error', end);
      s.on('close', end);
    }
    c.pipe(up).pipe(c);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      for (const s of conns) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface LdapStoreSettings {
  name: string;
  url: string;
  /** PEM the store must trust (written to a file next to the config). */
  caCert: string;
  bindDn: string;
  baseDn: string;
  accountsContainer: string;
  groups: Record<string, string>;
  upnSuffix?: string;
}

export interface WorkerConfigOptions {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  installationId: string;
  /** base64 of 32 bytes; every process of one installation shares it. */
  secretKey: string;
  /** base64 of 32 bytes: the audit chain's HMAC key, shared by every process (and the test's own AuditLog). */
  auditKey?: string;
  store: LdapStoreSettings;
  leaseGraceSeconds?: number;
  reconcileIntervalSeconds?: number;
  provisioningTimeoutSeconds?: number;
}

export interface WorkerConfig {
  readonly path: string;
  readonly dir: string;
  remove(): void;
}

/**
 * Write a worker configuration. The bind password is not written: the
 * config says `env:JGT_TEST_LDAP_PASSWORD`, pass it in the child's environment.
 */
export function writeWorkerConfig(o: WorkerConfigOptions): WorkerConfig {
  const dir = mkdtempSync(join(tmpdir(), 'jgt-worker-'));
  const caPath = join(dir, 'ldap-ca.pem');
  writeFileSync(caPath, o.store.caCert);
  const cfg = {
    dataDir: join(dir, 'data'),
    role: 'worker',
    log: { level: 'info' },
    database: { url: o.databaseUrl, poolSize: 4 },
    redis: { url: o.redisUrl, prefix: o.redisPrefix },
    secrets: { key: o.secretKey },
    ...(o.auditKey ? { audit: { signingKey: o.auditKey } } : {}),
    jit: { installationId: o.installationId, leaseGraceSeconds: o.leaseGraceSeconds ?? 0, reconcileIntervalSeconds: o.reconcileIntervalSeconds ?? 10,
      ...(o.provisioningTimeoutSeconds ? { provisioningTimeoutSeconds: o.provisioningTimeoutSeconds } : {}) },
    accountStores: [
      {
        name: o.store.name, type: 'ldap', url: o.store.url, caCert: `file:${caPath}`, bindDn: o.store.bindDn, bindPassword: 'env:JGT_TEST_LDAP_PASSWORD',
        baseDn: o.store.baseDn, accountsContainer: o.store.accountsContainer, groups: o.store.groups, ...(o.store.upnSuffix ? { upnSuffix: o.store.upnSuffix } : {}),
      },
    ],
  };
  const path = join(dir, 'jitgate.yaml');
  writeFileSync(path, stringify(cfg), { mode: 0o600 });
  return { path, dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** stdout + stderr so far (pino JSON lines). */
  output(): string;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (graceful) and wait, SIGKILL after `ms`. */
  stop(ms?: number): Promise<void>;
}

/** Start `jitgate serve --role worker` and wait for its "worker running" log line. */
export async function startWorkerProcess(configPath: string, env: Record<string, string>, timeoutMs = 90_000): Promise<WorkerProcess> {
  const child = spawnCli(['serve', '--role', 'worker', '--config', configPath], env);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const deadline = Date.now() + timeoutMs;
  while (!out.includes('"jitgate worker running"')) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`worker exited before it was ready:\n${out.slice(-4000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`worker not ready after ${timeoutMs} ms:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    pid: child.pid!,
    exited,
    output: () => out,
    async kill() {
      if (alive()) child.kill('SIGKILL');
      return exited;
    },
    async stop(ms = 15_000) {
      if (!alive()) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => alive() && child.kill('SIGKILL'), ms);
      await exited;
      clearTimeout(t);
    },
  };
}

/** `jitgate <args> --config <path>` once, e.g. `reconcile --json`. */
export function runJitgate(args: string[], configPath: string, env: Record<string, string>) {
  return runCli([...args, '--config', configPath], env);
}
