/**
 * The gateway's connection to a target computer ("upstream"), logged in with
 * the session's injected JIT credentials. Shared by the browser terminal
 * (terminal.route.ts) and the native SSH front door.
 *
 * - Password authentication, then keyboard-interactive answering every prompt
 *   with the same password (PAM-only sshd configurations offer nothing else).
 *   No agent, no keys: the injected password is the only credential.
 * - The host key is checked *before* authentication: when the computer's
 *   policy pins a `SHA256:` fingerprint (as printed by `ssh-keygen -l`), any
 *   other key aborts the handshake. Without a pin the key is accepted and its
 *   fingerprint returned, so the caller can record it (trust on first use,
 *   audited by the caller).
 * - Nagle is off: interactive keystrokes are tiny packets.
 */
import { timingSafeEqual } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { Client } from 'ssh2';
import type { Logger } from '../../core/logging.js';
import { JitgateError } from '../../core/errors.js';
import type { Secret } from '../../core/secret.js';
import { sshFingerprintSha256 } from '../../provisioner/stores/ssh-connection.js';
import { SshGatewayErrors } from './errors.js';

export interface UpstreamOptions {
  host: string;
  port: number;
  username: string;
  password: Secret;
  /** Pinned fingerprint `SHA256:<base64>`; null/undefined: accept and report the key (TOFU). */
  hostKeySha256?: string | null;
  /** Handshake + authentication deadline; default 20 s. */
  readyTimeoutMs?: number;
  log: Logger;
}

export interface Upstream {
  client: Client;
  /** Fingerprint of the key the computer presented. */
  hostKeySha256: string;
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
  const target = `${opts.host}:${opts.port}`;
  const log = opts.log.child({ component: 'ssh-upstream', target });
  let pinned: string | null = null;
  if (opts.hostKeySha256) {
    try {
      pinned = normalisePin(opts.hostKeySha256);
    } catch {
      return Promise.reject(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_MISMATCH, { host: target, expected: '(malformed pin)', seen: '(not checked)' }));
    }
  }
  return new Promise<Upstream>((resolve, reject) => {
    const client = new Client();
    let seen: string | null = null;
    let mismatch = false;
    let settled = false;
    const sock = netConnect({ host: opts.host, port: opts.port });
    sock.setNoDelay(true);

    const fail = (err: JitgateError): void => {
      if (settled) return;
      settled = true;
      client.removeAllListeners('ready');
      client.destroy();
      sock.destroy();
      reject(err);
    };

    client.once('ready', () => {
      if (settled) return;
      settled = true;
      // Errors after the handshake are the caller's to handle; keep one listener so none is unhandled.
      client.on('error', (err: Error & { level?: string }) => log.debug({ level: err.level, msg: err.message }, 'upstream error'));
      resolve({ client, hostKeySha256: seen ?? '' });
    });
    client.on('error', (err: Error & { level?: string; code?: string }) => {
      if (settled) return;
      if (mismatch) {
        fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_MISMATCH, { host: target, expected: pinned, seen }, { cause: err }));
      } else if (err.level === 'client-authentication') {
        fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_AUTH_FAILED, { host: target, account: opts.username }, { cause: err }));
      } else if (err.level === 'client-timeout') {
        fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE, { host: target, reason: 'no answer in time' }, { cause: err }));
      } else {
        fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE, { host: target, reason: err.code ?? `ssh ${err.level ?? 'protocol'} error` }, { cause: err }));
      }
    });
    client.on('close', () => {
      if (!settled) {
        fail(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE, { host: target, reason: mismatch ? 'host key mismatch' : 'connection closed during handshake' }));
      }
    });

    const password = opts.password;
    try {
      client.connect({
        sock,
        username: opts.username,
        readyTimeout: opts.readyTimeoutMs ?? 20_000,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 4,
        // Explicit order: password, then keyboard-interactive answered with the password. Nothing else.
        authHandler: [
          { type: 'password', username: opts.username, password: password.reveal() },
          {
            type: 'keyboard-interactive',
            username: opts.username,
            prompt: (_name: string, _instr: string, _lang: string, prompts: unknown[], finish: (answers: string[]) => void) => {
              finish(prompts.map(() => password.reveal()));
            },
          },
        ] as never,
        hostVerifier: (key: Buffer): boolean => {
          seen = sshFingerprintSha256(key);
          if (pinned && !sameFingerprint(seen, pinned)) {
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
}
