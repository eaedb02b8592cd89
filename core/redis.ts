import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { CoreErrors, JitgateError } from './errors.js';
import type { Logger } from './logging.js';

/** How BullMQ and the rest of jitgate reach Redis: a URL or a unix socket path. */
export type RedisTarget = { url: string } | { path: string };

export function redisOptions(target: RedisTarget, extra: RedisOptions = {}): RedisOptions {
  if ('path' in target) return { path: target.path, ...extra };
  const u = new URL(target.url);
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : 6379,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    ...extra,
  };
}

export function describeTarget(target: RedisTarget): string {
  if ('path' in target) return `unix:${target.path}`;
  const u = new URL(target.url);
  return `${u.protocol}//${u.hostname}:${u.port || 6379}`;
}

/** Connect, PING, disconnect; a clear error saying where and why. */
export async function pingRedis(target: RedisTarget, timeoutMs = 3000): Promise<void> {
  const r = new Redis(redisOptions(target, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false }));
  let first: NodeJS.ErrnoException | undefined;
  r.on('error', (e: NodeJS.ErrnoException) => (first ??= e));
  try {
    await r.connect();
    await r.ping();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? first?.code;
    throw new JitgateError(
      CoreErrors.JIT_ERR_REDIS_UNREACHABLE,
      { reason: `${describeTarget(target)}: ${code ?? (err as Error).message}` },
      { cause: err },
    );
  } finally {
    r.disconnect();
  }
}

export class RedisMissingError extends Error {
  constructor(binary: string) {
    super(
      `redis-server not found (tried "${binary}"). Install it with "sudo apt-get install -y redis-server", ` +
        'or set redis.url (JITGATE_REDIS__URL) to an existing Redis.',
    );
    this.name = 'RedisMissingError';
  }
}

/**
 * A private redis-server for one jitgate process: unix socket in the data
 * directory (no TCP port), AOF on. It runs under a small `sh` guardian that
 * reads our stdin pipe: when this process dies, even by SIGKILL, the pipe
 * closes and the guardian stops Redis, so no child outlives us.
 */
export class EmbeddedRedis {
  #child: ChildProcess | undefined;
  readonly socketPath: string;
  readonly #dir: string;

  constructor(
    dataDir: string,
    private readonly binary: string,
    private readonly log: Logger,
  ) {
    this.#dir = join(dataDir, 'redis');
    this.socketPath = join(this.#dir, 'redis.sock');
  }

  static available(binary: string): boolean {
    const r = spawnSync(binary, ['--version'], { stdio: 'ignore' });
    return r.error === undefined && r.status === 0;
  }

  async start(timeoutMs = 10_000): Promise<RedisTarget> {
    if (!EmbeddedRedis.available(this.binary)) throw new RedisMissingError(this.binary);
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    rmSync(this.socketPath, { force: true });
    const args = [
      '--port', '0',
      '--unixsocket', this.socketPath,
      '--unixsocketperm', '700',
      '--dir', this.#dir,
      '--appendonly', 'yes',
      '--save', '',
      '--daemonize', 'no',
      '--loglevel', 'warning',
      '--maxmemory-policy', 'noeviction',
    ];
    // "$@" keeps arguments unsplit; the guardian waits on stdin.
    // (sh gives background jobs /dev/null as stdin, hence the copy on fd 3.)
    const guardian = 'set -u; exec 3<&0; "$0" "$@" & r=$!; trap \'kill -TERM $r 2>/dev/null; wait $r; exit 0\' TERM INT HUP; (cat <&3 >/dev/null; kill -TERM $r 2>/dev/null) & wait $r';
    const child = spawn('sh', ['-c', guardian, this.binary, ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
    this.#child = child;
    // Ending stdin is how the guardian is told to stop; if it already went, EPIPE is expected.
    child.stdin?.on('error', () => undefined);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-4000);
    });
    child.on('exit', (code, signal) => {
      if (this.#child === child) this.log.warn({ code, signal }, 'embedded redis exited');
    });
    const target = { path: this.socketPath };
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`embedded redis-server exited (${child.exitCode}): ${stderr.trim()}`);
      try {
        await pingRedis(target, 500);
        break;
      } catch {
        if (Date.now() > deadline) {
          await this.stop();
          throw new Error(`embedded redis-server did not answer within ${timeoutMs} ms: ${stderr.trim()}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    this.log.info({ socket: this.socketPath }, 'embedded redis started');
    return target;
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    // Closing the guardian's stdin stops Redis; SIGTERM makes it immediate.
    child.stdin?.end();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
