/**
 * Run `jitgate serve` (role `all`: gateway, SSH front door and worker) as a
 * real OS process for fault tests: a temp YAML config (PostgreSQL URL, Redis
 * URL with a unique prefix, the SSH front door on an ephemeral loopback port,
 * one Linux account store on an sshd test host), the process itself, and an
 * ssh2 client that signs in through its front door (public key, then the
 * TOTP code at the keyboard-interactive prompt) and keeps a shell open.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, type ClientChannel } from 'ssh2';
import { stringify } from 'yaml';
import { fingerprintOf } from '../../gateway/auth/ssh-key.js';
import { spawnCli } from './cli.js';

export interface SshStoreSettings {
  name: string;
  host: string;
  port: number;
  username: string;
  /** Path of the store's OpenSSH private key (written to the config as `file:<path>`). */
  privateKeyPath: string;
  hostKeySha256: string;
  /** group name → Linux group */
  groups: Record<string, string>;
  /** Organizations (by name) whose computers may use the store. */
  organizations?: string[];
}

export interface GatewayConfigOptions {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  /** base64 of 32 bytes; the test encrypts TOTP seeds with it. */
  secretKey: string;
  store: SshStoreSettings;
  orphanCheckSeconds?: number;
  reconcileIntervalSeconds?: number;
  leaseGraceSeconds?: number;
  /** Share another config's data directory (front door host key, audit and recording keys); default its own. */
  dataDir?: string;
}

export interface GatewayConfig {
  readonly path: string;
  readonly dir: string;
  readonly dataDir: string;
  remove(): void;
}

/** Write a `serve` configuration: HTTP and front door on port 0 (the process prints the ports it got). */
export function writeGatewayConfig(o: GatewayConfigOptions): GatewayConfig {
  const dir = mkdtempSync(join(tmpdir(), 'jgt-gateway-'));
  const dataDir = o.dataDir ?? join(dir, 'data');
  const cfg = {
    dataDir,
    role: 'all',
    server: { host: '127.0.0.1', port: 0 },
    log: { level: 'info' },
    database: { url: o.databaseUrl, poolSize: 4 },
    redis: { url: o.redisUrl, prefix: o.redisPrefix },
    secrets: { key: o.secretKey },
    jit: {
      leaseGraceSeconds: o.leaseGraceSeconds ?? 0,
      reconcileIntervalSeconds: o.reconcileIntervalSeconds ?? 300,
      ...(o.orphanCheckSeconds ? { orphanCheckSeconds: o.orphanCheckSeconds } : {}),
    },
    sshFrontDoor: { enabled: true, host: '127.0.0.1', port: 0 },
    accountStores: [
      {
        name: o.store.name, type: 'ssh', host: o.store.host, port: o.store.port, username: o.store.username,
        privateKey: `file:${o.store.privateKeyPath}`, hostKeySha256: o.store.hostKeySha256, groups: o.store.groups,
        ...(o.store.organizations ? { organizations: o.store.organizations } : {}),
      },
    ],
  };
  const path = join(dir, 'jitgate.yaml');
  writeFileSync(path, stringify(cfg), { mode: 0o600 });
  return { path, dir, dataDir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly sshPort: number;
  /** The front door's host key fingerprint as the process printed it. */
  readonly sshHostKeySha256: string;
  readonly exited: Promise<ExitInfo>;
  /** stdout + stderr so far (pino JSON lines and the terminal lines). */
  output(): string;
  alive(): boolean;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<ExitInfo>;
  /** SIGTERM (graceful) and wait; SIGKILL after `ms`. */
  stop(ms?: number): Promise<ExitInfo>;
}

const READY = /ssh front door on port (\d+) \(host key (SHA256:[A-Za-z0-9+/]+=?)\)/;

/** Start `jitgate serve --config <path>` and wait until its HTTP server and SSH front door listen. */
export async function startGatewayProcess(configPath: string, env: Record<string, string> = {}, timeoutMs = 120_000): Promise<GatewayProcess> {
  const child = spawnCli(['serve', '--config', configPath], env);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<ExitInfo>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const deadline = Date.now() + timeoutMs;
  let m: RegExpExecArray | null;
  while (!(m = READY.exec(out))) {
    if (!alive()) throw new Error(`jitgate serve exited before it was ready:\n${out.slice(-4000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`jitgate serve not ready after ${timeoutMs} ms:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
  if (!url) throw new Error(`no listening line:\n${out.slice(-4000)}`);
  return {
    child, pid: child.pid!, url, sshPort: Number(m[1]), sshHostKeySha256: m[2]!, exited,
    output: () => out,
    alive,
    async kill() {
      if (alive()) child.kill('SIGKILL');
      return exited;
    },
    async stop(ms = 30_000) {
      if (!alive()) return exited;
      child.kill('SIGTERM');
      const t = setTimeout(() => alive() && child.kill('SIGKILL'), ms);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

export interface FrontDoorShell {
  readonly client: Client;
  readonly shell: ClientChannel;
  /** Everything the shell printed so far (progress lines, prompt, echo, output). */
  output(): string;
  /** Type a line into the shell. */
  type(line: string): void;
  /** Wait for `re` in the shell's output (from `from` on); the match. */
  waitFor(re: RegExp, ms: number, from?: number): Promise<RegExpExecArray>;
  /** Resolves when the connection is gone (closed by either side or reset). */
  readonly closed: Promise<void>;
  end(): void;
}

/**
 * Sign in through the front door as `user` (`login+computer`) with an ssh2
 * client that pins the front door's host key, and open a shell with a pty
 * (a person at a terminal). `code` answers the verification-code prompt.
 */
export function openFrontDoorShell(o: { port: number; hostKeySha256: string; user: string; privateKey: Buffer; code: string }): Promise<FrontDoorShell> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    let buf = '';
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.once('error', (err) => {
      c.destroy();
      reject(err);
    });
    c.once('ready', () => {
      c.shell({ term: 'xterm', cols: 120, rows: 40 }, (err, shell) => {
        if (err) {
          c.end();
          return reject(err);
        }
        // After the kill the transport resets: that is expected, not a test failure.
        c.on('error', () => undefined);
        shell.on('data', (d: Buffer) => (buf += d.toString('utf8')));
        shell.stderr.on('data', (d: Buffer) => (buf += d.toString('utf8')));
        resolve({
          client: c, shell, closed,
          output: () => buf,
          type: (line) => void shell.write(`${line}\n`),
          async waitFor(re, ms, from = 0) {
            const end = Date.now() + ms;
            for (;;) {
              const m = re.exec(buf.slice(from));
              if (m) return m;
              if (Date.now() > end) throw new Error(`timed out waiting for ${String(re)} in the shell; it printed:\n${buf.slice(-2000)}`);
              await new Promise((r) => setTimeout(r, 50));
            }
          },
          end: () => c.end(),
        });
      });
    });
    c.connect({
      host: '127.0.0.1',
      port: o.port,
      username: o.user,
      readyTimeout: 60_000,
      // Pin the front door's key as `jitgate serve` printed it.
      hostVerifier: (key: Buffer) => fingerprintOf(key) === o.hostKeySha256,
      authHandler: [
        { type: 'publickey', username: o.user, key: o.privateKey },
        { type: 'keyboard-interactive', username: o.user, prompt: (_n: string, _i: string, _l: string, prompts: unknown[], finish: (a: string[]) => void) => finish(prompts.map(() => o.code)) },
      ] as never,
    });
  });
}
