import { describe, expect, it } from 'vitest';
import {
  AvId,
  NtlmClient,
  NtlmFlags,
  NtlmSession,
  buildChallenge,
  computeNtlmV2,
  encodeAvPairs,
  fileTime,
  ntowfv2,
  parseAuthenticate,
  parseAvPairs,
  sealKey,
  signKey,
  verifyAuthenticate,
} from './ntlm.js';
import { rc4 } from './rc4.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// MS-NLMP §4.2.1 common values and §4.2.4 NTLMv2 authentication.
const USER = 'User';
const DOMAIN = 'Domain';
const PASSWORD = 'Password';
const SERVER_CHALLENGE = hex('0123456789abcdef');
const CLIENT_CHALLENGE = hex('aaaaaaaaaaaaaaaa');
const RANDOM_SESSION_KEY = Buffer.alloc(16, 0x55);
const TIME = Buffer.alloc(8);
// §4.2.4: MsvAvNbDomainName "Domain", MsvAvNbComputerName "Server", MsvAvEOL.
const TARGET_INFO = hex(
  '02000c0044006f006d00610069006e00' + '01000c00530065007200760065007200' + '00000000',
);
const FLAGS_424 = 0xe28a8233;

describe('NTLMv2 against MS-NLMP §4.2.4', () => {
  const responseKey = ntowfv2(PASSWORD, USER, DOMAIN);
  const r = computeNtlmV2({
    responseKey,
    serverChallenge: SERVER_CHALLENGE,
    clientChallenge: CLIENT_CHALLENGE,
    timestamp: TIME,
    targetInfo: TARGET_INFO,
  });

  it('NTOWFv2 / ResponseKeyNT (§4.2.4.1.1)', () => {
    expect(responseKey.toString('hex')).toBe('0c868a403bfd7a93a3001ef22ef02e3f');
  });

  it('LMv2 response (§4.2.4.2.1)', () => {
    expect(r.lmChallengeResponse.toString('hex')).toBe('86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa');
  });

  it('NTProofStr and the full NTLMv2 response (§4.2.4.2.2)', () => {
    expect(r.ntProofStr.toString('hex')).toBe('68cd0ab851e51c96aabc927bebef6a1c');
    // The NtChallengeResponse as it appears in the §4.2.4.3 AUTHENTICATE_MESSAGE.
    expect(r.ntChallengeResponse.toString('hex')).toBe(
      '68cd0ab851e51c96aabc927bebef6a1c' +
        '0101000000000000' +
        '0000000000000000' +
        'aaaaaaaaaaaaaaaa' +
        '00000000' +
        TARGET_INFO.toString('hex') +
        '00000000',
    );
  });

  it('session base key and encrypted session key (§4.2.4.1.2, §4.2.4.2.3)', () => {
    expect(r.sessionBaseKey.toString('hex')).toBe('8de40ccadbc14a82f15cb0ad0de95ca3');
    expect(rc4(r.sessionBaseKey, RANDOM_SESSION_KEY).toString('hex')).toBe('c5dad2544fc9799094ce1ce90bc9d03e');
  });

  it('sign and seal keys (§4.2.4.4)', () => {
    expect(sealKey(RANDOM_SESSION_KEY, FLAGS_424, true).toString('hex')).toBe('59f600973cc4960a25480a7c196e4c58');
    expect(signKey(RANDOM_SESSION_KEY, true).toString('hex')).toBe('4788dc861b4782f35d43fd98fe1a2d39');
  });

  it('seals "Plaintext" with the published ciphertext and signature (§4.2.4.4)', () => {
    const s = new NtlmSession(RANDOM_SESSION_KEY, FLAGS_424, true);
    const { sealed, signature } = s.seal(Buffer.from('Plaintext', 'utf16le'));
    expect(sealed.toString('hex')).toBe('54e50165bf1936dc996020c1811b0f06fb5f');
    expect(signature.toString('hex')).toBe('010000007fb38ec5c55d497600000000');
  });

  it('the acceptor unseals the published message', () => {
    const server = new NtlmSession(RANDOM_SESSION_KEY, FLAGS_424, false);
    const plain = server.unseal(hex('54e50165bf1936dc996020c1811b0f06fb5f'), hex('010000007fb38ec5c55d497600000000'));
    expect(plain.toString('utf16le')).toBe('Plaintext');
  });
});

describe('NTLM client and acceptor', () => {
  const negotiateAndAuth = (certHash?: Buffer) => {
    const client = new NtlmClient({ username: 'svc_jit', password: 'S3cret!x', domain: 'WIN01', certHash });
    const negotiate = client.negotiate();
    const targetInfo = encodeAvPairs([
      { id: AvId.NbDomainName, value: Buffer.from('WIN01', 'utf16le') },
      { id: AvId.NbComputerName, value: Buffer.from('WIN01', 'utf16le') },
      { id: AvId.Timestamp, value: fileTime() },
    ]);
    const serverChallenge = hex('1122334455667788');
    const challenge = buildChallenge({
      flags: negotiate.readUInt32LE(12) | NtlmFlags.TARGET_TYPE_SERVER,
      serverChallenge,
      targetName: 'WIN01',
      targetInfo,
    });
    const authenticate = client.authenticate(challenge);
    return { client, negotiate, challenge, authenticate, serverChallenge };
  };

  it('negotiates the flags WinRM message encryption needs', () => {
    const n = new NtlmClient({ username: 'u', password: 'p' }).negotiate();
    const flags = n.readUInt32LE(12);
    for (const f of [
      NtlmFlags.SEAL,
      NtlmFlags.SIGN,
      NtlmFlags.KEY_EXCH,
      NtlmFlags.F128,
      NtlmFlags.F56,
      NtlmFlags.EXTENDED_SESSIONSECURITY,
      NtlmFlags.UNICODE,
      NtlmFlags.ALWAYS_SIGN,
      NtlmFlags.TARGET_INFO,
      NtlmFlags.VERSION,
    ]) {
      expect((flags & f) >>> 0).toBe(f);
    }
  });

  it('round trip: MIC verified, LM response zeroed, sealed messages in both directions', () => {
    const x = negotiateAndAuth();
    const parsed = parseAuthenticate(x.authenticate);
    expect(parsed.lmResponse.equals(Buffer.alloc(24))).toBe(true);
    const avs = parseAvPairs(parsed.ntResponse.subarray(16 + 28));
    expect(avs.find((p) => p.id === AvId.Flags)?.value.readUInt32LE(0)).toBe(2);
    const acc = verifyAuthenticate({
      negotiate: x.negotiate,
      challenge: x.challenge,
      authenticate: x.authenticate,
      serverChallenge: x.serverChallenge,
      passwordFor: (u) => (u === 'svc_jit' ? 'S3cret!x' : undefined),
    });
    expect(acc.micPresent).toBe(true);
    for (let i = 0; i < 3; i++) {
      const m = Buffer.from(`request ${i}`);
      const w = x.client.session.seal(m);
      expect(acc.session.unseal(w.sealed, w.signature).equals(m)).toBe(true);
      const back = acc.session.seal(Buffer.from(`response ${i}`));
      expect(x.client.session.unseal(back.sealed, back.signature).toString()).toBe(`response ${i}`);
    }
  });

  it('rejects a wrong password, a tampered MIC and a tampered signature', () => {
    const x = negotiateAndAuth();
    const base = { negotiate: x.negotiate, challenge: x.challenge, serverChallenge: x.serverChallenge };
    expect(() => verifyAuthenticate({ ...base, authenticate: x.authenticate, passwordFor: () => 'wrong' })).toThrow(/NTProofStr/);
    const bad = Buffer.from(x.authenticate);
    bad[75] = (bad[75] as number) ^ 1;
    expect(() => verifyAuthenticate({ ...base, authenticate: bad, passwordFor: () => 'S3cret!x' })).toThrow(/MIC/);
    const acc = verifyAuthenticate({ ...base, authenticate: x.authenticate, passwordFor: () => 'S3cret!x' });
    const w = x.client.session.seal(Buffer.from('hello'));
    w.signature[5] = (w.signature[5] as number) ^ 1;
    expect(() => acc.session.unseal(w.sealed, w.signature)).toThrow(/signature/);
  });

  it('carries the channel binding hash', () => {
    const x = negotiateAndAuth(Buffer.alloc(32, 7));
    const acc = verifyAuthenticate({
      negotiate: x.negotiate,
      challenge: x.challenge,
      authenticate: x.authenticate,
      serverChallenge: x.serverChallenge,
      passwordFor: () => 'S3cret!x',
    });
    expect(acc.channelBindings?.equals(Buffer.alloc(16))).toBe(false);
  });
});
