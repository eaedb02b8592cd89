/**
 * One persistent SSH connection to a Linux target, as jitgate's provisioning
 * identity (public-key auth), used to run short administrative commands.
 *
 * - The host key is pinned: the server's key must hash (SHA-256, the OpenSSH
 *   `SHA256:` fingerprint) to the configured value, checked before any
 *   authentication is attempted. There is no trust-on-first-use.
 * - Connected lazily, shared by concurrent callers, re-established on the next
 *   command after a drop. A command whose channel could not be opened was never
 *   started and is retried once on a fresh connection; a command that started is
 *   never repeated here.
 * - Commands are complete shell strings built by the caller from constant
 *   templates and quoted, validated values; secrets travel only on stdin.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { Client, type ClientChannel } from 'ssh2';
import type { Logger } from 'pino';
import { CoreErrors, JitgateError, isJitgateError } from '../../core/errors.js';
import { StoreErrors } from '../errors.js';

export interface SshConnectionOptions {
  readonly host: string;
  readonly port?: number;
  readonly username: string;
  /** OpenSSH/PEM private key of the provisioning identity (secret). */
  readonly privateKey: string | Buffer;
  readonly passphrase?: string;
  /** Pinned host key fingerprint, `SHA256:<base64 without padding>` as printed by `ssh-keygen -l`. */
  readonly hostKeySha256: string;
  readonly logger: Logger;
  /** Handshake timeout and per-command timeout; default 15 s. */
  readonly timeoutMs?: number;
  /** Concurrent channels; OpenSSH's default MaxSessions is 10. Default 8. */
  readonly maxChannels?: number;
}

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  /** Exit status; null when the command died from a signal. */
  readonly code: number | null;
  readonly signal: string | null;
}

export interface ExecOptions {
  /** Written to the command's stdin, then stdin is closed (secrets go here, never into the command). */
  readonly stdin?: string;
  readonly timeoutMs?: number;
}

const FINGERPRINT = /^SHA256:([A-Za-z0-9+/]{43})=?$/;
/** Output beyond this is dropped; our commands print a few lines. */
const MAX_OUTPUT = 4 * 1024 * 1024;

/** OpenSSH `SHA256:` fingerprint of a raw SSH public key blob. */
export function sshFingerprintSha256(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** A pooled connection unused for longer than this is proven with a harmless command before it carries one. */
const IDLE_PROBE_MS = 1000;
const PROBE_TIMEOUT_MS = 5000;

/** A timer this late means the process did not run meanwhile (stopped, or its event loop blocked). */
const STALL_MS = 1000;
/** After such a stall, how long a command still gets before it times out. */
const STALL_GRACE_MS = 5000;

/** Channel-open failure (the command never ran): safe to retry on a new connection. */
class ChannelOpenError extends Error {}

/**
 * Whether ssh2's error to `Client.exec` says the channel never opened. ssh2 gives a
 * channel-open failure (CHANNEL_OPEN_FAILURE, or the connection closing before the
 * channel opened) a `reason` property; an error after the channel opened (the exec
 * request refused, or the connection lost once the request was sent, when the command
 * may already be running) has none, and is never retried.
 */
function channelNeverOpened(err: Error): boolean {
  return Object.hasOwn(err, 'reason');
}

export class SshConnection {
  readonly #opts: SshConnectionOptions;
  readonly #log: Logger;
  readonly #pinned: Buffer;
  readonly #timeoutMs: number;
  readonly #store: string;
  #client: Client | null = null;
  #connecting: Promise<Client> | null = null;
  #closed = false;
  #active = 0;
  /** When the pooled connection last answered (a command finished on it, or it was established). */
  #lastHeard = 0;
  readonly #waiting: (() => void)[] = [];
  /** Commands (probes included) under way on each connection. */
  readonly #inFlight = new WeakMap<Client, number>();
  /** Connections taken out of the pool that still carry commands: ended when the last one finishes. */
  readonly #retiring = new WeakSet<Client>();

  constructor(opts: SshConnectionOptions) {
    const m = FINGERPRINT.exec(opts.hostKeySha256);
    if (!m?.[1]) {
      throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'hostKeySha256 must look like SHA256:<43 base64 characters>' });
    }
    this.#opts = opts;
    this.#pinned = Buffer.from(`SHA256:${m[1]}`);
    this.#timeoutMs = opts.timeoutMs ?? 15_000;
    this.#store = `ssh://${opts.host}:${opts.port ?? 22}`;
    this.#log = opts.logger.child({ component: 'ssh-connection', store: this.#store });
  }

  get store(): string {
    return this.#store;
  }

  // --- connection -------------------------------------------------------------

  #connect(): Promise<Client> {
    return new Promise<Client>((resolve, reject) => {
      const client = new Client();
      let hostKeyMismatch = false;
      let settled = false;
      const sock = netConnect({ host: this.#opts.host, port: this.#opts.port ?? 22 });
      // Commands and their replies are small; do not let Nagle hold them back.
      sock.setNoDelay(true);

      const fail = (err: JitgateError): void => {
        if (settled) return;
        settled = true;
        client.removeAllListeners('ready');
        client.destroy();
        reject(err);
      };

      client.once('ready', () => {
        if (settled) return;
        settled = true;
        this.#log.debug('ssh connection established');
        resolve(client);
      });
      client.on('error', (err: Error & { level?: string; code?: string }) => {
        if (!settled) {
          fail(this.#mapConnectError(err, hostKeyMismatch));
          return;
        }
        this.#log.warn({ level: err.level, code: err.code }, 'ssh connection error');
        this.#drop(client);
      });
      // The server's end of the stream: no new command may go out on this connection.
      client.on('end', () => this.#drop(client));
      client.on('close', () => {
        if (!settled) {
          fail(new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.#store, reason: 'connection closed during handshake' }));
        }
        this.#drop(client);
      });

      try {
        client.connect({
          sock,
          username: this.#opts.username,
          privateKey: this.#opts.privateKey,
          ...(this.#opts.passphrase !== undefined ? { passphrase: this.#opts.passphrase } : {}),
          readyTimeout: this.#timeoutMs,
          keepaliveInterval: 10_000,
          keepaliveCountMax: 3,
          // Public key only: never fall back to keyboard-interactive or an agent.
          tryKeyboard: false,
          hostVerifier: (key: Buffer): boolean => {
            const seen = Buffer.from(sshFingerprintSha256(key));
            const ok = seen.length === this.#pinned.length && timingSafeEqual(seen, this.#pinned);
            if (!ok) {
              hostKeyMismatch = true;
              this.#log.error({ expected: this.#pinned.toString(), seen: seen.toString() }, 'ssh host key mismatch; refusing to authenticate');
            }
            return ok;
          },
        });
      } catch (err) {
        // ssh2 throws synchronously for an unparsable private key.
        sock.destroy();
        fail(new JitgateError(StoreErrors.JIT_ERR_STORE_AUTH, { store: this.#store, reason: 'private key cannot be parsed' }, { cause: err }));
      }
    });
  }

  #mapConnectError(err: Error & { level?: string; code?: string }, hostKeyMismatch: boolean): JitgateError {
    if (hostKeyMismatch) {
      return new JitgateError(StoreErrors.JIT_ERR_STORE_AUTH, { store: this.#store, reason: 'host key mismatch' }, { cause: err });
    }
    switch (err.level) {
      case 'client-authentication':
        return new JitgateError(StoreErrors.JIT_ERR_STORE_AUTH, { store: this.#store, reason: 'public key authentication failed' }, { cause: err });
      case 'client-timeout':
        return new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.#store, reason: 'handshake timed out' }, { cause: err });
      case 'client-socket':
        return new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.#store, reason: err.code ?? 'socket error' }, { cause: err });
      default:
        return new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.#store, reason: `ssh ${err.level ?? 'protocol'} error` }, { cause: err });
    }
  }

  #drop(client: Client): void {
    if (this.#client === client) {
      this.#client = null;
      this.#log.debug('ssh connection dropped');
    }
  }

  /**
   * Take `client` out of the pool and end it once no command runs on it. A failed probe or channel
   * open says the connection is unfit for new commands, not that the commands already running on it
   * are lost: ending it at once would cut them off (SIGHUP) with an outcome nobody can know.
   */
  #retire(client: Client): void {
    this.#drop(client);
    if ((this.#inFlight.get(client) ?? 0) === 0) client.end();
    else this.#retiring.add(client);
  }

  async #getClient(): Promise<Client> {
    if (this.#closed) {
      throw new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.#store, reason: 'store closed' });
    }
    const pooled = this.#client;
    if (pooled) {
      if (Date.now() - this.#lastHeard <= IDLE_PROBE_MS) return pooled;
      // Idle for a while (or this process did not run: stopped, event loop blocked): the peer may be gone
      // without us having noticed yet. A command sent on such a connection fails in a way that cannot tell
      // whether it ran, so first prove the connection with a command that may safely run twice.
      try {
        await this.#execOn(pooled, 'true', { timeoutMs: Math.min(this.#timeoutMs, PROBE_TIMEOUT_MS) });
        this.#lastHeard = Date.now();
        if (this.#client === pooled) return pooled;
      } catch {
        this.#log.info('pooled ssh connection did not answer; reconnecting');
        this.#retire(pooled);
      }
      if (this.#client) return this.#client;
    }
    this.#connecting ??= this.#connect()
      .then((c) => {
        if (this.#closed) {
          c.end();
          throw new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.#store, reason: 'store closed' });
        }
        this.#client = c;
        this.#lastHeard = Date.now();
        return c;
      })
      .finally(() => {
        this.#connecting = null;
      });
    return this.#connecting;
  }

  // --- commands ---------------------------------------------------------------

  async #acquire(): Promise<void> {
    const max = this.#opts.maxChannels ?? 8;
    if (this.#active < max) {
      this.#active++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#active--;
  }

  /** Run `command` (a complete shell command line); resolves with its output and exit status. */
  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    await this.#acquire();
    try {
      return await this.#exec(command, opts);
    } catch (err) {
      if (isJitgateError(err) && err.code === StoreErrors.JIT_ERR_STORE_UNREACHABLE.code) this.#log.warn({ reason: err.details.reason }, 'ssh command failed: store unreachable');
      throw err;
    } finally {
      this.#release();
    }
  }

  async #exec(command: string, opts: ExecOptions): Promise<ExecResult> {
    const client = await this.#getClient();
    try {
      const result = await this.#execOn(client, command, opts);
      this.#lastHeard = Date.now();
      return result;
    } catch (err) {
      if (!(err instanceof ChannelOpenError)) throw err;
      // The channel never opened, so the command never ran: one fresh connection, one retry.
      this.#log.warn('ssh channel open failed; reconnecting');
      this.#retire(client);
      const again = await this.#getClient();
      try {
        return await this.#execOn(again, command, opts);
      } catch (err2) {
        if (err2 instanceof ChannelOpenError) {
          throw new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.#store, reason: 'cannot open an ssh channel' }, { cause: err2 });
        }
        throw err2;
      }
    }
  }

  async #execOn(client: Client, command: string, opts: ExecOptions): Promise<ExecResult> {
    this.#inFlight.set(client, (this.#inFlight.get(client) ?? 0) + 1);
    try {
      return await this.#execOnce(client, command, opts);
    } finally {
      const left = (this.#inFlight.get(client) ?? 1) - 1;
      this.#inFlight.set(client, left);
      if (left === 0 && this.#retiring.delete(client)) client.end();
    }
  }

  #execOnce(client: Client, command: string, opts: ExecOptions): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    return new Promise<ExecResult>((resolve, reject) => {
      let channel: ClientChannel | null = null;
      let done = false;
      const expire = (): void => {
        if (done) return;
        done = true;
        // The command may still be running remotely; closing the channel sends SIGHUP to it.
        channel?.close();
        reject(new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.#store, reason: `command timed out after ${timeoutMs} ms` }));
      };
      const due = Date.now() + timeoutMs;
      let timer = setTimeout(function check() {
        const late = Date.now() - due;
        if (late > STALL_MS) {
          // This process was stopped or its event loop blocked (SIGSTOP, a long GC, a busy start): the reply
          // may be sitting unread in the socket. Timers run before I/O, so give the connection time to speak.
          timer = setTimeout(expire, STALL_GRACE_MS);
          return;
        }
        expire();
      }, timeoutMs);

      const onOpen = (err: Error | undefined, stream: ClientChannel): void => {
        if (done) {
          stream?.close();
          return;
        }
        if (err) {
          done = true;
          clearTimeout(timer);
          if (channelNeverOpened(err)) {
            reject(new ChannelOpenError('channel open failed', { cause: err }));
          } else {
            reject(new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.#store, reason: 'the ssh exec request failed after the channel opened' }, { cause: err }));
          }
          return;
        }
        channel = stream;
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let outLen = 0;
        let errLen = 0;
        let code: number | null = null;
        let signal: string | null = null;
        stream.on('data', (d: Buffer) => {
          if (outLen < MAX_OUTPUT) out.push(d);
          outLen += d.length;
        });
        stream.stderr.on('data', (d: Buffer) => {
          if (errLen < MAX_OUTPUT) errOut.push(d);
          errLen += d.length;
        });
        stream.on('exit', (c: number | null, sig?: string) => {
          code = typeof c === 'number' ? c : null;
          signal = sig ?? null;
        });
        stream.on('close', () => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          if (code === null && signal === null) {
            // sshd always reports exit-status or exit-signal (RFC 4254 section 6.10); without
            // either the connection went away mid-command, and its outcome is unknown.
            reject(new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.#store, reason: 'connection lost during a command' }));
            return;
          }
          resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8'), code, signal });
        });
        stream.on('error', (e: Error) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          reject(new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.#store, reason: 'ssh channel error' }, { cause: e }));
        });
        if (opts.stdin !== undefined) stream.end(opts.stdin);
        else stream.end();
      };

      try {
        client.exec(command, onOpen);
      } catch (err) {
        // ssh2 throws "Not connected" synchronously when the socket is gone.
        done = true;
        clearTimeout(timer);
        reject(new ChannelOpenError('not connected', { cause: err }));
      }
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const pending = this.#connecting;
    const client = this.#client ?? (pending ? await pending.catch(() => null) : null);
    this.#client = null;
    if (!client) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        client.destroy();
        resolve();
      }, 1000);
      client.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      client.end();
    });
  }
}
