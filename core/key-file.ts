import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { JitgateError } from './errors.js';
import type { Secret } from './secret.js';

export interface KeyFileOptions {
  /** The key from the configuration (base64 of 32 bytes), when set. */
  configured?: Secret | undefined;
  /** Its configuration path, named in errors (`audit.signingKey`). */
  configName: string;
  /** Where the generated key lives when none is configured. */
  path: string;
  /** The area's typed error for an unusable key. */
  unusable: (reason: string) => JitgateError;
}

/**
 * A 32-byte HMAC key: the configured one, else a key file created once with a
 * random key (base64 text, mode 0600). The file is written aside and linked
 * into place (link(2) fails if the name exists), so a process starting at the
 * same moment never reads a half-written key; whoever links first wins. Used
 * for the audit chain (core/audit-key.ts) and the recording manifest
 * (recorder/signing-key.ts).
 */
export function loadKeyFile(o: KeyFileOptions): Buffer {
  const decode = (text: string, source: string): Buffer => {
    const key = Buffer.from(text.trim(), 'base64');
    if (key.length !== 32) throw o.unusable(`${source} must be base64 of 32 bytes`);
    return key;
  };
  if (o.configured) return decode(o.configured.reveal(), o.configName);
  if (!existsSync(o.path)) {
    mkdirSync(dirname(o.path), { recursive: true });
    const tmp = `${o.path}.${process.pid}.${randomBytes(4).toString('hex')}`;
    writeFileSync(tmp, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    try {
      linkSync(tmp, o.path);
    } catch (err) {
      // another process created it first: use theirs
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      rmSync(tmp, { force: true });
    }
  }
  chmodSync(o.path, 0o600);
  const raw = readFileSync(o.path);
  // a raw 32-byte key file is accepted too
  return raw.length === 32 ? raw : decode(raw.toString('utf8'), o.path);
}
