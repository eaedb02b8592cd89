/**
 * The gateway's connection to a target computer ("upstream"), logged in with
 * the session's injected JIT credentials. Shared by the browser terminal
 * (terminal.route.ts) and the native SSH front door.
 *
 * - Password authentication, then keyboard-interactive answering every prompt
 *   with the same password (PAM-only sshd configurations offer nothing else).
 *   No agent, no keys: the injected password is the only credential.
 * - An elevated session (the person's own account; jitgate holds no password)
 *   logs in with `AskPerson` instead: the computer's keyboard-interactive
 *   prompts are relayed to the person as they are, or — when the computer
 *   offers only `password` — the person is asked for it. The answers go into
 *   the one authentication request and are not kept, logged or recorded.
 * - The host key is checked *before* authentication: the computer's policy
 *   pins a `SHA256:` fingerprint (as printed by `ssh-keygen -l`) and any other
 *   key aborts the handshake. Without a pin nothing is even connected
 *   (JIT_ERR_SSH_HOST_KEY_NOT_PINNED): there is no trust on first use, the
 *   JIT password goes only to a host whose key an admin confirmed.
 * - Nagle is off: interactive keystrokes are tiny packets.
 * - `preconnectUpstream` starts TCP, key exchange and the host-key check
 *   while the JIT account is still being provisioned, and authenticates once
 *   the credentials exist: the handshake costs nothing on the session start.
 */
import { timingSafeEqual } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { Client } from 'ssh2';
import type { Logger } from '../../core/logging.js';
import { JitgateError } from '../../core/errors.js';
import type { Secret } from '../../core/secret.js';
import { sshFingerprintSha256 } from '../../provisioner/stores/ssh-connection.js';
import { SshGatewayErrors } from './errors.js';

/** Where the gateway connects, before it knows which account to log in as. */
export interface UpstreamTarget {
  host: string;
  port: number;
  /** Pinned fingerprint `SHA256:<base64>` (host-key-pin.ts's `pinnedHostKey`); missing: refused, nothing connected. */
  hostKeySha256: string | null;
  /** The computer's name, for the error a missing pin gives; default host:port. */
  computer?: string;
  /** Handshake deadline, and again authentication deadline once credentials are given; default 20 s. */
  readyTimeoutMs?: number;
  log: Logger;
}

export interface UpstreamOptions extends UpstreamTarget {
  username: string;
  password: Secret | AskPerson;
}

/** A login prompt for the person (their own account on the computer). */
export interface LoginPrompt {
  account: string;
  /** The computer's instructions (keyboard-interactive), may be empty. */
  instructions: string;
  prompts: { prompt: string; echo: boolean }[];
  /** 1 on the first try; more after the computer refused an answer. */
  attempt: number;
}

/**
 * Asks the person and resolves with one answer per prompt; rejects when the
 * person is gone or gave up. The answers are secrets: used once, never kept.
 */
export type AskPerson = (q: LoginPrompt) => Promise<string[]>;

/** Tries the person gets before the login is refused (sshd's MaxAuthTries defaults to 6, counting `none`). */
const PERSON_TRIES = 3;

export interface Upstream {
  client: Client;
  /** Fingerprint of the key the computer presented. */
  hostKeySha256: string;
}

/**
 * A connection to the computer opened while its JIT account is still being
 * provisioned: TCP, key exchange and the host-key check run in parallel with
 * provisioning, and authentication waits for `login`. Nothing is sent that
 * names an account until then.
 */
export interface PendingUpstream {
  /**
   * Authenticate with the session's credentials. When the early connection
   * was lost meanwhile (the computer's LoginGraceTime, a network blip), a
   * fresh one is made; a host key mismatch is final.
   */
  login(username: string, password: Secret | AskPerson): Promise<Upstream>;
  /** Drop the early connection (provisioning failed, the person left). Idempotent. */
  abort(): void;
  /** Resolves once the handshake and host-key check are done and the connection waits for `login`; false when it failed first. */
  waiting(): Promise<boolean>;
}

const PIN = /^SHA256:([A-Za-z0-9+/]{43})=?$/;

/** Normalise a pinned fingerprint (drop base64 padding); throws on a malformed pin. */
export function normalisePin(pin: string): string {
  const m = PIN.exec(pin.trim());
  if (!m?.[1]) throw new Error('pinned host key must look like SHA256:<43 base64 characters>');
  return `SHA256:${m[1]}`;
}

function sameFingerprint(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function connectUpstream(opts: UpstreamOptions): Promise<Upstream> {
  return preconnectUpstream(opts).login(opts.username, opts.password);
}

interface Credentials {
  username: string;
  password: Secret | AskPerson;
}

/** Start the handshake now; authenticate when `login` is called (see PendingUpstream). */
export function preconnectUpstream(t: UpstreamTarget): PendingUpstream {
  let give!: (c: Credentials) => void;
  const credentials = new Promise<Credentials>((resolve) => (give = resolve));
  const attempt = handshake(t, credentials);
  let given = false;
  // A failure before `login` is kept for it (and must not go unhandled meanwhile).
  attempt.promise.catch(() => undefined);
  return {
    login(username, password) {
      if (given) return Promise.reject(new Error('login called twice'));
      given = true;
      give({ username, password });
      return attempt.promise.catch((err: unknown) => {
        // The connection was lost (not refused) after the handshake, e.g. while waiting for the account: start over once.
        if (!attempt.lostWhileWaiting()) throw err;
        t.log.debug({ host: t.host }, 'early upstream connection lost before login; reconnecting');
        return handshake(t, Promise.resolve({ username, password })).promise;
      });
    },
    abort() {
      attempt.abort();
    },
    waiting() {
      return attempt.waiting;
    },
  };
}

/** One connection attempt: handshake and host-key check now, authentication once `credentials` resolves. */
function handshake(
  opts: UpstreamTarget,
  credentials: Promise<Credentials>,
): { promise: Promise<Upstream>; waiting: Promise<boolean>; lostWhileWaiting(): boolean; abort(): void } {
  const target = `${opts.host}:${opts.port}`;
  const log = opts.log.child({ component: 'ssh-upstream', target });
  const timeoutMs = opts.readyTimeoutMs ?? 20_000;
  let failed = false;
  let aborted = false;
  let handshakeDone = false;
  // Set when the failure is an answer (wrong password, timeout), not a lost connection.
  let final = false;
  let abort = (): void => undefined;
  let markWaiting!: (ok: boolean) => void;
  const waiting = new Promise<boolean>((resolve) => (markWaiting = resolve));
  let pinned: string;
  const refused = (err: JitgateError) => ({ promise: Promise.reject(err), waiting: Promise.resolve(false), lostWhileWaiting: () => false, abort });
  if (!opts.hostKeySha256) return refused(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_NOT_PINNED, { computer: opts.computer ?? target }));
  try {
    pinned = normalisePin(opts.hostKeySha256);
  } catch {
    return refused(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_MISMATCH, { host: target, expected: '(malformed pin)', seen: '(not checked)' }));
  }
  const promise = new Promise<Upstream>((resolve, reject) => {
    const client = new Client();
    let seen: string | null = null;
    let mismatch = false;
    let settled = false;
    let username = '(not yet known)';
    const sock = netConnect({ host: opts.host, port: opts.port });
    sock.setNoDelay(true);
    // Handshake deadline now; the authentication deadline starts when the credentials arrive.
    let timer = setTimeout(() => onTimeout(), timeoutMs);

    const fail = (err: JitgateError): void => {
      if (settled) return;
      settled = true;
      failed = true;
      markWaiting(false);
      clearTimeout(timer);
      client.removeAllListeners('ready');
      client.destroy();
      sock.destroy();
      reject(err);
    };
    const onTimeout = (): void => {
      final = true;
      fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE, { host: target, reason: 'no answer in time' }));
    };
    abort = () => {
      aborted = true;
      fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE, { host: target, reason: 'connection abandoned' }));
    };

    client.once('ready', () => {
      if (settled) return;
      settled = true;
      markWaiting(true);
      clearTimeout(timer);
      // Errors after the handshake are the caller's to handle; keep one listener so none is unhandled.
      client.on('error', (err: Error & { level?: string }) => log.debug({ level: err.level, msg: err.message }, 'upstream error'));
      resolve({ client, hostKeySha256: seen ?? '' });
    });
    client.on('error', (err: Error & { level?: string; code?: string }) => {
      if (settled) return;
      if (mismatch) {
        fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_MISMATCH, { host: target, expected: pinned, seen }, { cause: err }));
      } else if (err.level === 'client-authentication') {
        final = true;
        fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_AUTH_FAILED, { host: target, account: username }, { cause: err }));
      } else {
        fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE, { host: target, reason: err.code ?? `ssh ${err.level ?? 'protocol'} error` }, { cause: err }));
      }
    });
    client.on('close', () => {
      if (!settled) {
        fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE, { host: target, reason: mismatch ? 'host key mismatch' : 'connection closed during handshake' }));
      }
    });

    // The person answers (AskPerson): no authentication deadline while they type (sshd's LoginGraceTime still applies).
    const askPerson = (ask: AskPerson, q: Omit<LoginPrompt, 'account'>, use: (answers: string[]) => void): void => {
      clearTimeout(timer);
      ask({ account: username, ...q }).then(
        (answers) => {
          if (settled) return;
          timer = setTimeout(() => onTimeout(), timeoutMs);
          use(answers);
        },
        () => {
          final = true;
          fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_AUTH_FAILED, { host: target, account: username }));
        },
      );
    };
    // The person's own account: ask `none` first to learn what the computer offers, then relay its prompts.
    let tries = 0;
    const personAuth = (ask: AskPerson, left: unknown, next: (auth: unknown) => void): void => {
      const offered = Array.isArray(left) ? (left as string[]) : [];
      if (step++ === 0) return next({ type: 'none', username });
      if (tries >= PERSON_TRIES) return next(false);
      const attempt = ++tries;
      if (offered.includes('keyboard-interactive')) {
        next({
          type: 'keyboard-interactive',
          username,
          prompt: (_name: string, instructions: string, _lang: string, prompts: { prompt: string; echo?: boolean }[], finish: (answers: string[]) => void) => {
            askPerson(ask, { instructions, prompts: prompts.map((p) => ({ prompt: p.prompt, echo: p.echo === true })), attempt }, finish);
          },
        });
      } else if (offered.includes('password')) {
        askPerson(ask, { instructions: '', prompts: [{ prompt: `Password for ${username}: `, echo: false }], attempt }, ([pw]) => next({ type: 'password', username, password: pw ?? '' }));
      } else next(false);
    };

    // Explicit order: password, then keyboard-interactive answered with the password. Nothing else.
    let step = 0;
    const authHandler = (_left: unknown, _partial: unknown, next: (auth: unknown) => void): void => {
      if (!handshakeDone) {
        // The handshake is done: wait (no deadline) for the account to exist.
        handshakeDone = true;
        clearTimeout(timer);
        markWaiting(true);
      }
      void credentials.then((c) => {
        if (settled) return;
        if (step === 0) {
          username = c.username;
          timer = setTimeout(() => onTimeout(), timeoutMs);
        }
        const password = c.password;
        if (typeof password === 'function') return personAuth(password, _left, next);
        const s = step++;
        if (s === 0) next({ type: 'password', username: c.username, password: password.reveal() });
        else if (s === 1) {
          next({
            type: 'keyboard-interactive',
            username: c.username,
            prompt: (_name: string, _instr: string, _lang: string, prompts: unknown[], finish: (answers: string[]) => void) => {
              finish(prompts.map(() => password.reveal()));
            },
          });
        } else next(false);
      });
    };

    try {
      client.connect({
        sock,
        // Replaced by the credentials' account in every authentication request (authHandler).
        username: 'jitgate',
        readyTimeout: 0,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 4,
        authHandler: authHandler as never,
        hostVerifier: (key: Buffer): boolean => {
          seen = sshFingerprintSha256(key);
          if (!sameFingerprint(seen, pinned)) {
            mismatch = true;
            log.error({ expected: pinned, seen }, 'upstream host key mismatch; refusing to authenticate');
            return false;
          }
          return true;
        },
      });
    } catch (err) {
      fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE, { host: target, reason: 'cannot start ssh handshake' }, { cause: err }));
    }
  });
  return { promise, waiting, lostWhileWaiting: () => failed && handshakeDone && !final && !aborted, abort: () => abort() };
}
