import { join } from 'node:path';
import { loadKeyFile } from '../core/key-file.js';
import type { Secret } from '../core/secret.js';
import { RecorderErrors } from './errors.js';
import { JitgateError } from '../core/errors.js';

/** Where the generated manifest key lives when `recordings.signingKey` is not configured. */
export function signingKeyPath(dataDir: string): string {
  return join(dataDir, 'recording-signing.key');
}

/**
 * The HMAC key of the recording manifest: `recordings.signingKey` (base64 of
 * 32 bytes) when configured, else `<dataDir>/recording-signing.key`, created
 * on first use with a random key (base64 text, mode 0600, like secret.key).
 * Every gateway sharing a database must use the same key.
 */
export function loadSigningKey(opts: { configured?: Secret | undefined; dataDir: string }): Buffer {
  return loadKeyFile({
    configured: opts.configured, configName: 'recordings.signingKey', path: signingKeyPath(opts.dataDir),
    unusable: (reason) => new JitgateError(RecorderErrors.JIT_ERR_RECORDING_SIGNING_KEY, { reason }),
  });
}
