import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';

const { utils } = ssh2;
import { JitgateError } from '../../core/errors.js';
import { AuthErrors } from './errors.js';

export interface ParsedPublicKey {
  /** Key type, e.g. `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`. */
  algorithm: string;
  /** `<algorithm> <base64 blob>` (comment dropped). */
  publicKey: string;
  /** OpenSSH style: `SHA256:` + unpadded base64 of the SHA-256 of the key blob (ssh-keygen -l). */
  fingerprint: string;
  comment: string;
}

/** OpenSSH fingerprint of a public key blob (RFC 4253 section 6.6 encoding). */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

const bad = (reason: string) => new JitgateError(AuthErrors.JIT_ERR_AUTH_SSH_KEY_INVALID, { reason });

/**
 * Parse one OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
 * Rejects private keys (never parsed, so never echoed back), several keys,
 * and anything ssh2 cannot read. Error details never contain the input.
 */
export function parsePublicKeyLine(input: string): ParsedPublicKey {
  const line = input.trim();
  if (line.length === 0) throw bad('empty');
  if (line.length > 16_384) throw bad('too long');
  if (/PRIVATE KEY/.test(line)) throw bad('this is a private key: paste the .pub file');
  if (line.includes('\n')) throw bad('one key per line');
  // Options prefixes (authorized_keys `from="..."`) are not accepted here.
  if (!/^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/]+={0,3}( .*)?$/.test(line)) throw bad('expected "<type> <base64> [comment]"');
  const parsed = utils.parseKey(line);
  if (parsed instanceof Error) throw bad('unreadable key');
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || (Array.isArray(parsed) && parsed.length !== 1)) throw bad('expected exactly one key');
  if (key.isPrivateKey()) throw bad('this is a private key: paste the .pub file');
  const blob = key.getPublicSSH();
  // The type named on the line must be the type inside the blob.
  const declared = line.split(' ')[0]!;
  if (declared !== key.type) throw bad('key type does not match its data');
  return { algorithm: key.type, publicKey: `${key.type} ${blob.toString('base64')}`, fingerprint: fingerprintOf(blob), comment: key.comment };
}
