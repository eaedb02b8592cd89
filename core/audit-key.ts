import { join } from 'node:path';
import { CoreErrors, JitgateError } from './errors.js';
import { loadKeyFile } from './key-file.js';
import type { Secret } from './secret.js';

/** Where the generated audit key lives when `audit.signingKey` is not configured. */
export function auditKeyPath(dataDir: string): string {
  return join(dataDir, 'audit.key');
}

/** Where checkpoints go when `audit.checkpointFile` is not configured. */
export function auditCheckpointPath(dataDir: string): string {
  return join(dataDir, 'audit-checkpoints.jsonl');
}

/**
 * The HMAC key of the audit chain and its checkpoints: `audit.signingKey`
 * (base64 of 32 bytes) when configured, else `<dataDir>/audit.key`, created
 * once with a random key (base64 text, mode 0600), as the recordings key
 * is (recorder/signing-key.ts). It must live where whoever can write the
 * database cannot read it; every gateway and worker sharing a database
 * uses the same key.
 */
export function loadAuditKey(opts: { configured?: Secret | undefined; dataDir: string }): Buffer {
  return loadKeyFile({
    configured: opts.configured, configName: 'audit.signingKey', path: auditKeyPath(opts.dataDir),
    unusable: (reason) => new JitgateError(CoreErrors.JIT_ERR_AUDIT_SIGNING_KEY, { reason }),
  });
}
