import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CoreErrors, JitgateError } from './errors.js';

/** GCM tag length we write and the only one we accept on decrypt. */
const TAG_BYTES = 16;

/**
 * AES-256-GCM for secrets at rest (JIT account passwords while a session
 * needs them, TOTP seeds). Format: `v1.<iv b64>.<tag b64>.<ciphertext b64>`.
 * `aad` binds a ciphertext to its row (e.g. the account id) so a value
 * copied to another row does not decrypt.
 */
export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('secret key must be 32 bytes');
    this.#key = key;
  }

  static fromBase64(b64: string): SecretBox {
    return new SecretBox(Buffer.from(b64.trim(), 'base64'));
  }

  /** Read `<path>`, or create it with a fresh random key (mode 0600). */
  static fromKeyFile(path: string): SecretBox {
    if (!existsSync(path)) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    }
    chmodSync(path, 0o600);
    return SecretBox.fromBase64(readFileSync(path, 'utf8'));
  }

  encrypt(plain: string, aad = ''): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
    c.setAAD(Buffer.from(aad, 'utf8'));
    const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return ['v1', iv.toString('base64'), c.getAuthTag().toString('base64'), ct.toString('base64')].join('.');
  }

  decrypt(box: string, aad = ''): string {
    const [v, iv, tag, ct] = box.split('.');
    if (v !== 'v1' || !iv || !tag || ct === undefined) throw new JitgateError(CoreErrors.JIT_ERR_SECRET_DECRYPT);
    try {
      // Without authTagLength Node accepts any tag of 4..16 bytes (a 4-byte
      // prefix of the real tag verifies), which cuts forgery cost to 2^32.
      // We always write 16-byte tags, so demand exactly that (NIST SP 800-38D §5.2.1.2).
      const d = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64'), { authTagLength: TAG_BYTES });
      d.setAAD(Buffer.from(aad, 'utf8'));
      d.setAuthTag(Buffer.from(tag, 'base64'));
      return Buffer.concat([d.update(Buffer.from(ct, 'base64')), d.final()]).toString('utf8');
    } catch (err) {
      throw new JitgateError(CoreErrors.JIT_ERR_SECRET_DECRYPT, {}, { cause: err });
    }
  }
}
