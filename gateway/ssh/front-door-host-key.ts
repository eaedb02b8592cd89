import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import ssh2, { type ParsedKey } from 'ssh2';
import { JitgateError } from '../../core/errors.js';
import { FrontDoorErrors } from './front-door-errors.js';

export interface FrontDoorHostKey {
  /** The private key as given to ssh2's `hostKeys` (secret: never logged). */
  readonly privateKey: Buffer;
  /** OpenSSH public key line (`ssh-ed25519 AAAA…`), for known_hosts. */
  readonly publicLine: string;
  /** `SHA256:…` fingerprint as printed by `ssh-keygen -l`. */
  readonly sha256: string;
}

// ssh2 is CommonJS: Node's ESM loader does not see `utils` as a named export.
const { utils } = ssh2;

/** File name of the generated key in the data directory (documented in config/schema.ts). */
export const GENERATED_HOST_KEY = 'ssh_host_ed25519_key';

function parse(pem: Buffer, file: string): ParsedKey {
  const k = utils.parseKey(pem);
  if (k instanceof Error) throw new JitgateError(FrontDoorErrors.JIT_ERR_FRONTDOOR_HOST_KEY, { file, reason: k.message });
  const key = Array.isArray(k) ? k[0] : k;
  if (!key?.isPrivateKey()) throw new JitgateError(FrontDoorErrors.JIT_ERR_FRONTDOOR_HOST_KEY, { file, reason: 'not a private key' });
  return key;
}

/**
 * ssh2's generator drops a leading zero byte of the public key about once in
 * 400 keys, and its own parser then refuses the key ("Malformed OpenSSH
 * public key"): generate until both halves parse.
 */
export function generateParsableEd25519(comment?: string): { private: string; public: string } {
  for (let i = 0; i < 20; i++) {
    const pair = utils.generateKeyPairSync('ed25519', comment === undefined ? undefined : { comment });
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error)) return pair;
  }
  throw new Error('could not generate a parsable ed25519 key');
}

/**
 * The front door's host key: `hostKeyFile` when configured, otherwise an
 * ed25519 key generated once into `<dataDir>/ssh_host_ed25519_key` (mode
 * 0600) so that clients' known_hosts entries stay valid across restarts.
 */
export function loadOrCreateHostKey(opts: { hostKeyFile?: string; dataDir: string }): FrontDoorHostKey {
  let file = opts.hostKeyFile;
  if (!file) {
    file = join(opts.dataDir, GENERATED_HOST_KEY);
    if (!existsSync(file)) {
      const pair = generateParsableEd25519();
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      // 'wx': never overwrite a key another process wrote meanwhile.
      try {
        writeFileSync(file, pair.private, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  }
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new JitgateError(FrontDoorErrors.JIT_ERR_FRONTDOOR_HOST_KEY, { file, reason: (err as NodeJS.ErrnoException).code ?? 'unreadable' });
  }
  const key = parse(pem, file);
  const blob = key.getPublicSSH();
  return {
    privateKey: pem,
    publicLine: `${key.type} ${blob.toString('base64')}`,
    sha256: `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`,
  };
}
