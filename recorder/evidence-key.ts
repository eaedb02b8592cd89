import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { JitgateError } from '../core/errors.js';
import { loadKeyFile } from '../core/key-file.js';
import type { Secret } from '../core/secret.js';
import { RecorderErrors } from './errors.js';

/** Where the generated evidence key lives when `recordings.evidenceKey` is not configured. */
export function evidenceKeyPath(dataDir: string): string {
  return join(dataDir, 'evidence-signing.key');
}

// RFC 8410: an Ed25519 private key is a 32-byte seed; these DER prefixes wrap
// the seed as PKCS#8 and the raw public key as SubjectPublicKeyInfo.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** `SHA256:<base64, unpadded>` of the raw 32-byte public key (the form OpenSSH prints for host keys). */
export function evidenceFingerprint(rawPublicKey: Buffer): string {
  return `SHA256:${createHash('sha256').update(rawPublicKey).digest('base64').replace(/=+$/, '')}`;
}

export function publicKeyFromRaw(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new JitgateError(RecorderErrors.JIT_ERR_EVIDENCE_BUNDLE, { reason: 'the public key is not 32 bytes' });
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** Ed25519 over `message` with the raw public key: false for any bad key or signature, never throws. */
export function ed25519Valid(rawPublicKey: Buffer, message: Buffer, signature: Buffer): boolean {
  try {
    return verify(null, message, publicKeyFromRaw(rawPublicKey), signature);
  } catch {
    return false;
  }
}

/**
 * The installation's evidence signer: an Ed25519 key whose public half goes
 * into every bundle and whose fingerprint the installation publishes
 * (`jitgate evidence key`, GET /api/v1/evidence/key), so anyone can check a
 * bundle without the database or the installation's HMAC keys
 * (docs/evidence.md "Trust").
 */
export class EvidenceSigner {
  readonly #key: KeyObject;
  readonly publicKey: Buffer;
  readonly fingerprint: string;

  constructor(seed: Buffer) {
    if (seed.length !== 32) throw new JitgateError(RecorderErrors.JIT_ERR_EVIDENCE_KEY, { reason: 'the seed must be 32 bytes' });
    this.#key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    this.publicKey = createPublicKey(this.#key).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length);
    this.fingerprint = evidenceFingerprint(this.publicKey);
  }

  sign(message: Buffer): Buffer {
    return sign(null, message, this.#key);
  }
}

/**
 * `recordings.evidenceKey` (base64 of a 32-byte seed) when configured, else
 * `<dataDir>/evidence-signing.key`, created once (base64 text, mode 0600) as
 * the manifest and audit keys are. Every gateway of an installation must use
 * the same key, or bundles carry different fingerprints.
 */
export function loadEvidenceSigner(opts: { configured?: Secret | undefined; dataDir: string }): EvidenceSigner {
  return new EvidenceSigner(
    loadKeyFile({
      configured: opts.configured, configName: 'recordings.evidenceKey', path: evidenceKeyPath(opts.dataDir),
      unusable: (reason) => new JitgateError(RecorderErrors.JIT_ERR_EVIDENCE_KEY, { reason }),
    }),
  );
}
