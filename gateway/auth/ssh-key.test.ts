import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { utils } from 'ssh2';
import { generateParsableEd25519 } from '../ssh/front-door-host-key.js';
import { isJitgateError } from '../../core/errors.js';
import { AuthErrors } from './errors.js';
import { parsePublicKeyLine } from './ssh-key.js';

function rejects(input: string): string {
  try {
    parsePublicKeyLine(input);
  } catch (err) {
    expect(isJitgateError(err, AuthErrors.JIT_ERR_AUTH_SSH_KEY_INVALID)).toBe(true);
    return (err as Error).message;
  }
  throw new Error('accepted');
}

describe('SSH public key parser', () => {
  const ed = generateParsableEd25519('alice@laptop');
  const rsa = utils.generateKeyPairSync('rsa', { bits: 2048 });
  const ec = utils.generateKeyPairSync('ecdsa', { bits: 256 });

  it('parses OpenSSH public keys with the fingerprint ssh-keygen prints', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jitgate-key-'));
    try {
      for (const [kp, type] of [[ed, 'ssh-ed25519'], [rsa, 'ssh-rsa'], [ec, 'ecdsa-sha2-nistp256']] as const) {
        const k = parsePublicKeyLine(`  ${kp.public}\n`);
        expect(k.algorithm).toBe(type);
        writeFileSync(join(dir, 'k.pub'), kp.public);
        const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'k.pub')], { encoding: 'utf8' });
        expect(out.split(' ')[1]).toBe(k.fingerprint);
        expect(k.publicKey).toBe(kp.public.split(' ').slice(0, 2).join(' '));
      }
      expect(parsePublicKeyLine(ed.public).comment).toBe('alice@laptop');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects private keys without echoing them', () => {
    for (const priv of [ed.private, rsa.private, ec.private]) {
      const msg = rejects(priv);
      expect(msg).toMatch(/private key/);
      expect(msg).not.toContain(priv.split('\n')[1]!.slice(0, 20));
    }
  });

  it('rejects garbage, truncated and mislabeled keys, and several keys', () => {
    const [type, b64] = ed.public.split(' ') as [string, string];
    rejects('');
    rejects('hello world');
    rejects('ssh-ed25519');
    rejects(`ssh-ed25519 ${b64.slice(0, 30)}`);
    rejects(`ssh-rsa ${b64}`);
    rejects(`${type} ${b64}!!`);
    rejects(`${ed.public}\n${rsa.public}`);
    rejects(`from="10.0.0.1" ${ed.public}`);
    rejects('ssh-ed25519 ' + 'A'.repeat(20_000));
  });
});
