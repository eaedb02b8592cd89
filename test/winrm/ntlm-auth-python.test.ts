/**
 * Cross-check of provisioner/winrm/ntlm.ts against Debian's python3-ntlm-auth
 * (the NTLM implementation pywinrm uses), byte for byte where the two must agree.
 */
import { describe, expect, it } from 'vitest';
import {
  AvId,
  CLIENT_FLAGS,
  NtlmClient,
  NtlmFlags,
  NtlmSession,
  buildChallenge,
  encodeAvPairs,
  fileTime,
  parseAuthenticate,
  verifyAuthenticate,
} from '../../provisioner/winrm/ntlm.js';
import { pythonUnavailable, runPythonJson } from './python-env.js';

const missing = pythonUnavailable(['ntlm_auth']);
if (missing) console.warn(`skipping python3-ntlm-auth cross-check: ${missing}`);

interface DriverOut {
  authenticate: string;
  wrapped: [string, string][];
  unwrapped: string[];
}

describe.skipIf(missing !== null)('NTLM vs python3-ntlm-auth', () => {
  for (const withCbt of [false, true]) {
    it(`AUTHENTICATE, MIC and sealing agree${withCbt ? ' with channel bindings' : ''}`, async () => {
      const clientChallenge = Buffer.from('0102030405060708', 'hex');
      const sessionKey = Buffer.from('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf', 'hex');
      const certHash = withCbt ? Buffer.alloc(32, 0x42) : undefined;
      const serverChallenge = Buffer.from('f0e1d2c3b4a59687', 'hex');
      const queue = [clientChallenge, sessionKey];
      const client = new NtlmClient({
        username: 'jitadmin',
        password: 'Pa55w.rd-Ü',
        domain: 'WINHOST',
        certHash,
        random: () => queue.shift() as Buffer,
      });
      const negotiate = client.negotiate();
      const challenge = buildChallenge({
        flags: CLIENT_FLAGS,
        serverChallenge,
        targetName: 'WINHOST',
        targetInfo: encodeAvPairs([
          { id: AvId.NbDomainName, value: Buffer.from('WINHOST', 'utf16le') },
          { id: AvId.NbComputerName, value: Buffer.from('WINHOST', 'utf16le') },
          { id: AvId.DnsComputerName, value: Buffer.from('winhost.example', 'utf16le') },
          { id: AvId.Timestamp, value: fileTime(new Date('2024-05-01T00:00:00Z')) },
        ]),
      });
      const ours = client.authenticate(challenge);

      const messages = ['<s:Envelope/>', 'x'.repeat(1000), ''].map((m) => Buffer.from(m));
      // Server-to-client messages sealed by our acceptor-side session.
      const server = new NtlmSession(sessionKey, CLIENT_FLAGS, false);
      const toUnwrap = ['response one', 'response two'].map((m) => {
        const w = server.seal(Buffer.from(m));
        return [w.sealed.toString('hex'), w.signature.toString('hex')];
      });

      const py = await runPythonJson<DriverOut>('ntlm-auth-driver.py', {
        user: 'jitadmin',
        password: 'Pa55w.rd-Ü',
        domain: 'WINHOST',
        negotiate: negotiate.toString('hex'),
        challenge: challenge.toString('hex'),
        client_challenge: clientChallenge.toString('hex'),
        session_key: sessionKey.toString('hex'),
        cert_hash: certHash?.toString('hex') ?? null,
        wrap: messages.map((m) => m.toString('hex')),
        unwrap: toUnwrap,
      });
      const theirs = Buffer.from(py.authenticate, 'hex');
      const a = parseAuthenticate(ours);
      const b = parseAuthenticate(theirs);
      expect(a.user).toBe(b.user);
      expect(a.domain).toBe(b.domain);
      // ntlm-auth rewrites REQUEST_TARGET/OEM bits; the session-security flags must agree.
      const mask = (f: number): number => (f & ~(NtlmFlags.REQUEST_TARGET | NtlmFlags.OEM)) >>> 0;
      expect(mask(a.flags)).toBe(mask(b.flags));
      expect(a.lmResponse.toString('hex')).toBe(b.lmResponse.toString('hex'));
      if (withCbt) {
        expect(a.encryptedRandomSessionKey.toString('hex')).toBe(b.encryptedRandomSessionKey.toString('hex'));
        // Same AV pairs (MsvAvFlags=2, MsvAvChannelBindings) → identical NTLMv2 response.
        expect(a.ntResponse.toString('hex')).toBe(b.ntResponse.toString('hex'));
      } else {
        // ntlm-auth omits MsvAvChannelBindings without a certificate; Windows clients send
        // 16 zero bytes, as we do. Everything before the AV pairs must still agree
        // (the session base key, and so the encrypted key, differ with the AV pairs).
        expect(a.ntResponse.subarray(16, 44).toString('hex')).toBe(b.ntResponse.subarray(16, 44).toString('hex'));
      }
      // Both messages' MICs verify with the same acceptor code.
      for (const msg of [ours, theirs]) {
        const acc = verifyAuthenticate({
          negotiate,
          challenge,
          authenticate: msg,
          serverChallenge,
          passwordFor: () => 'Pa55w.rd-Ü',
        });
        expect(acc.micPresent).toBe(true);
      }
      // Sealing: identical ciphertext and signatures, RC4 state carried across messages.
      const sealedByUs = messages.map((m) => client.session.seal(m));
      expect(sealedByUs.map((w) => [w.sealed.toString('hex'), w.signature.toString('hex')])).toEqual(py.wrapped);
      expect(py.unwrapped.map((h) => Buffer.from(h, 'hex').toString())).toEqual(['response one', 'response two']);
    });
  }
});
