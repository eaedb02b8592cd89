/**
 * Read the SSH host key a computer presents, without authenticating: the
 * first half of pinning (gateway/api/host-keys.ts, `jitgate computers
 * pin-host-key`). The admin compares the fingerprint with what the host's
 * console shows (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then
 * confirms; confirming scans again and pins only what the host presents then.
 *
 * The scan negotiates with the same (ssh2 default) algorithm preferences as
 * the gateway's own connection (upstream.ts), so the key it reports is the
 * key every session will be shown. The handshake is cut at the host-key
 * check (RFC 4253 §8: the server proves the key in the key exchange), before
 * any user authentication: no name and no credential is ever sent.
 */
import { connect as netConnect } from 'node:net';
import { Client } from 'ssh2';
import { JitgateError } from '../../core/errors.js';
import { sshFingerprintSha256 } from '../../provisioner/stores/ssh-connection.js';
import { SshGatewayErrors } from './errors.js';

export interface ScannedHostKey {
  /** Key type named in the blob (RFC 4253 §6.6), e.g. `ssh-ed25519`. */
  algorithm: string;
  /** OpenSSH fingerprint `SHA256:<base64 without padding>`. */
  sha256: string;
}

export interface HostKeyScanTarget {
  host: string;
  port: number;
  /** Default 10 s. */
  timeoutMs?: number;
}

function blobKeyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const n = blob.readUInt32BE(0);
  return n > 0 && n < 64 && blob.length >= 4 + n ? blob.subarray(4, 4 + n).toString('latin1') : 'unknown';
}

export function scanHostKey(t: HostKeyScanTarget): Promise<ScannedHostKey> {
  const target = `${t.host}:${t.port}`;
  return new Promise((resolve, reject) => {
    const client = new Client();
    let seen: ScannedHostKey | null = null;
    let settled = false;
    const done = (err: JitgateError | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.destroy();
      sock.destroy();
      if (seen) resolve(seen);
      else reject(err ?? new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE, { host: target, reason: 'no host key offered' }));
    };
    const sock = netConnect({ host: t.host, port: t.port });
    const timer = setTimeout(() => done(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE, { host: target, reason: 'no answer in time' })), t.timeoutMs ?? 10_000);
    // Refusing the key ends the handshake with an error: that is the expected end of a scan.
    client.on('error', (err: Error & { code?: string; level?: string }) =>
      done(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE, { host: target, reason: err.code ?? `ssh ${err.level ?? 'protocol'} error` }, { cause: err })),
    );
    client.on('close', () => done(null));
    // Never reached (the key is always refused); were it reached, nothing was authenticated: end it.
    client.on('ready', () => done(null));
    try {
      client.connect({
        sock,
        username: 'jitgate-host-key-scan',
        readyTimeout: 0,
        // No authentication method at all, should the handshake ever get that far.
        authHandler: ((_l: unknown, _p: unknown, next: (a: false) => void) => next(false)) as never,
        hostVerifier: (key: Buffer): boolean => {
          seen = { algorithm: blobKeyType(key), sha256: sshFingerprintSha256(key) };
          setImmediate(() => done(null));
          return false;
        },
      });
    } catch (err) {
      done(new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE, { host: target, reason: 'cannot start ssh handshake' }, { cause: err }));
    }
  });
}
