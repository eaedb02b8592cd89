import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CoreErrors, JitgateError } from './errors.js';
import type { Secret } from './secret.js';

/** Where the generated audit key lives when `audit.signingKey` is not configured. */
export function auditKeyPath(dataDir: string): string {
  return join(dataDir, 'audit.key');
}

/** Where checkpoints go when `audit.checkpointFile` is not configured. */
export function auditCheckpointPath(dataDir: string): string {
  return join(dataDir, 'audit-checkpoints.jsonl');
}

function decode(text: string, source: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== 32) throw new JitgateError(CoreErrors.JIT_ERR_AUDIT_SIGNING_KEY, { reason: `${source} must be base64 of 32 bytes` });
  return key;
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
  if (opts.configured) return decode(opts.configured.reveal(), 'audit.signingKey');
  const path = auditKeyPath(opts.dataDir);
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    // Written aside, then linked into place: link(2) fails if the name exists,
    // so a process starting at the same moment never reads a half-written key.
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
    writeFileSync(tmp, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    try {
      linkSync(tmp, path);
    } catch (err) {
      // another process created it first: use theirs
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      rmSync(tmp, { force: true });
    }
  }
  chmodSync(path, 0o600);
  const raw = readFileSync(path);
  // a raw 32-byte key file is accepted too
  return raw.length === 32 ? raw : decode(raw.toString('utf8'), path);
}
