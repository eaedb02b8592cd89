import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretBox } from './secret-box.js';
import { isJitgateError } from './errors.js';

describe('SecretBox', () => {
  it('round-trips and binds to its associated data', () => {
    const box = new SecretBox(randomBytes(32));
    const c = box.encrypt('S3cret!pw', 'acct-1');
    expect(c).not.toContain('S3cret');
    expect(box.decrypt(c, 'acct-1')).toBe('S3cret!pw');
    let err: unknown;
    try {
      box.decrypt(c, 'acct-2');
    } catch (e) {
      err = e;
    }
    expect(isJitgateError(err) && err.code).toBe('JIT_ERR_SECRET_DECRYPT');
  });

  it('rejects a tampered ciphertext and a wrong key', () => {
    const box = new SecretBox(randomBytes(32));
    const c = box.encrypt('value');
    const parts = c.split('.');
    const ct = Buffer.from(parts[3]!, 'base64');
    ct[0] = ct[0]! ^ 1;
    parts[3] = ct.toString('base64');
    expect(() => box.decrypt(parts.join('.'))).toThrow(/cannot be decrypted/);
    expect(() => new SecretBox(randomBytes(32)).decrypt(c)).toThrow(/cannot be decrypted/);
  });

  it('rejects a tag truncated to 4, 8 or 12 bytes (a prefix of the real tag)', () => {
    const box = new SecretBox(randomBytes(32));
    const c = box.encrypt('value', 'acct-1');
    const parts = c.split('.');
    const tag = Buffer.from(parts[2]!, 'base64');
    expect(tag.length).toBe(16);
    for (const n of [4, 8, 12]) {
      parts[2] = tag.subarray(0, n).toString('base64');
      let err: unknown;
      try {
        box.decrypt(parts.join('.'), 'acct-1');
      } catch (e) {
        err = e;
      }
      expect(isJitgateError(err) && err.code, `tag of ${n} bytes`).toBe('JIT_ERR_SECRET_DECRYPT');
    }
  });

  it('creates a key file with mode 0600 and reads the same key back', () => {
    const p = join(mkdtempSync(join(tmpdir(), 'jg-key-')), 'sub', 'secret.key');
    const a = SecretBox.fromKeyFile(p);
    expect(statSync(p).mode & 0o777).toBe(0o600);
    const b = SecretBox.fromKeyFile(p);
    expect(b.decrypt(a.encrypt('x'))).toBe('x');
  });
});
