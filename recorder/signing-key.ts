import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Secret } from '../core/secret.js';
import { RecorderErrors } from './errors.js';
import { JitgateError } from '../core/errors.js';

/** Where the generated manifest key lives when `recordings.signingKey` is not configured. */
export function signingKeyPath(dataDir: string): string {
  return join(dataDir, 'recording-signing.key');
}

function decode(text: string, source: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== 32) throw new JitgateError(RecorderErrors.JIT_ERR_RECORDING_SIGNING_KEY, { reason: `${source} must be base64 of 32 bytes` });
  return key;
}

/**
 * The HMAC key of the recording manifest: `recordings.signingKey` (base64 of
 * 32 bytes) when configured, else `<dataDir>/recording-signing.key`, created
 * on first use with a random key (base64 text, mode 0600, like secret.key).
 * Every gateway sharing a database must use the same key.
 */
export function loadSigningKey(opts: { configured?: Secret | undefined; dataDir: string }): Buffer {
  if (opts.configured) return decode(opts.configured.reveal(), 'recordings.signingKey');
  const path = signingKeyPath(opts.dataDir);
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    try {
      writeFileSync(path, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    } catch (err) {
      // another process created it first: use theirs
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  chmodSync(path, 0o600);
  const raw = readFileSync(path);
  // a raw 32-byte key file is accepted too
  return raw.length === 32 ? raw : decode(raw.toString('utf8'), path);
}
