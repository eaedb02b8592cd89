/**
 * NTLMv2 with session security (MS-NLMP), enough for WinRM message
 * encryption: NEGOTIATE / CHALLENGE / AUTHENTICATE, MIC, key exchange,
 * and sign/seal with RC4 handles carried across messages.
 *
 * The acceptor half (`verifyAuthenticate`) exists for the WS-Man test
 * server; both halves share these primitives, and the client is checked
 * independently against MS-NLMP §4.2.4 vectors and python3-ntlm-auth.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { md4 } from './md4.js';
import { Rc4, rc4 } from './rc4.js';

/** NEGOTIATE flags (MS-NLMP §2.2.2.5). */
export const NtlmFlags = {
  UNICODE: 0x00000001,
  OEM: 0x00000002,
  REQUEST_TARGET: 0x00000004,
  SIGN: 0x00000010,
  SEAL: 0x00000020,
  NTLM: 0x00000200,
  ALWAYS_SIGN: 0x00008000,
  TARGET_TYPE_DOMAIN: 0x00010000,
  TARGET_TYPE_SERVER: 0x00020000,
  EXTENDED_SESSIONSECURITY: 0x00080000,
  TARGET_INFO: 0x00800000,
  VERSION: 0x02000000,
  F128: 0x20000000,
  KEY_EXCH: 0x40000000,
  F56: 0x80000000,
} as const;

/** AV_PAIR ids (MS-NLMP §2.2.2.1). */
export const AvId = {
  EOL: 0,
  NbComputerName: 1,
  NbDomainName: 2,
  DnsComputerName: 3,
  DnsDomainName: 4,
  DnsTreeName: 5,
  Flags: 6,
  Timestamp: 7,
  SingleHost: 8,
  TargetName: 9,
  ChannelBindings: 10,
} as const;

/** MsvAvFlags bit: the AUTHENTICATE message carries a MIC. */
const AV_FLAG_MIC = 0x00000002;

export const CLIENT_FLAGS =
  NtlmFlags.UNICODE |
  NtlmFlags.REQUEST_TARGET |
  NtlmFlags.SIGN |
  NtlmFlags.SEAL |
  NtlmFlags.NTLM |
  NtlmFlags.ALWAYS_SIGN |
  NtlmFlags.EXTENDED_SESSIONSECURITY |
  NtlmFlags.TARGET_INFO |
  NtlmFlags.VERSION |
  NtlmFlags.F128 |
  NtlmFlags.KEY_EXCH |
  NtlmFlags.F56;

const SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1');
/** Version structure: 10.0 build 20348, NTLMSSP_REVISION_W2K3 (15). */
const VERSION = Buffer.from([10, 0, 0x3c, 0x4f, 0, 0, 0, 15]);

export class NtlmError extends Error {
  /** 'auth': the credentials were refused; 'protocol': anything malformed or unexpected. */
  constructor(
    message: string,
    readonly kind: 'auth' | 'protocol' = 'protocol',
  ) {
    super(message);
    this.name = 'NtlmError';
  }
}

const utf16 = (s: string): Buffer => Buffer.from(s, 'utf16le');
const hmacMd5 = (key: Uint8Array, ...data: Uint8Array[]): Buffer => {
  const h = createHmac('md5', key);
  for (const d of data) h.update(d);
  return h.digest();
};
const md5 = (...data: Uint8Array[]): Buffer => {
  const h = createHash('md5');
  for (const d of data) h.update(d);
  return h.digest();
};

/** NTOWFv2 = HMAC_MD5(MD4(UTF16LE(password)), UTF16LE(UPPER(user) + domain)) (§3.3.2). */
export function ntowfv2(password: string, user: string, domain: string): Buffer {
  return hmacMd5(md4(utf16(password)), utf16(user.toUpperCase() + domain));
}

export interface AvPair {
  id: number;
  value: Buffer;
}

export function parseAvPairs(buf: Buffer): AvPair[] {
  const out: AvPair[] = [];
  let off = 0;
  while (off + 4 <= buf.length) {
    const id = buf.readUInt16LE(off);
    const len = buf.readUInt16LE(off + 2);
    if (id === AvId.EOL) break;
    if (off + 4 + len > buf.length) throw new NtlmError('truncated AV pair');
    out.push({ id, value: Buffer.from(buf.subarray(off + 4, off + 4 + len)) });
    off += 4 + len;
  }
  return out;
}

export function encodeAvPairs(pairs: readonly AvPair[]): Buffer {
  const parts: Buffer[] = [];
  for (const p of pairs) {
    const h = Buffer.alloc(4);
    h.writeUInt16LE(p.id, 0);
    h.writeUInt16LE(p.value.length, 2);
    parts.push(h, p.value);
  }
  parts.push(Buffer.alloc(4)); // MsvAvEOL
  return Buffer.concat(parts);
}

function field(buf: Buffer, at: number): Buffer {
  if (at + 8 > buf.length) throw new NtlmError('truncated NTLM message');
  const len = buf.readUInt16LE(at);
  const off = buf.readUInt32LE(at + 4);
  if (off + len > buf.length) throw new NtlmError('NTLM field outside the message');
  return Buffer.from(buf.subarray(off, off + len));
}

function checkHeader(buf: Buffer, type: number): void {
  if (buf.length < 12 || !buf.subarray(0, 8).equals(SIGNATURE) || buf.readUInt32LE(8) !== type) {
    throw new NtlmError(`not an NTLM type ${type} message`);
  }
}

/** Build a NEGOTIATE_MESSAGE (§2.2.1.1) with empty domain/workstation. */
export function buildNegotiate(flags: number = CLIENT_FLAGS): Buffer {
  const b = Buffer.alloc(40);
  SIGNATURE.copy(b, 0);
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(flags >>> 0, 12);
  b.writeUInt32LE(40, 20); // DomainNameFields offset (length 0)
  b.writeUInt32LE(40, 28); // WorkstationFields offset (length 0)
  VERSION.copy(b, 32);
  return b;
}

export interface ChallengeMessage {
  flags: number;
  serverChallenge: Buffer;
  targetName: string;
  targetInfo: Buffer;
  raw: Buffer;
}

export function parseChallenge(buf: Buffer): ChallengeMessage {
  checkHeader(buf, 2);
  if (buf.length < 48) throw new NtlmError('truncated CHALLENGE message');
  const flags = buf.readUInt32LE(20);
  return {
    flags,
    targetName: field(buf, 12).toString(flags & NtlmFlags.UNICODE ? 'utf16le' : 'latin1'),
    serverChallenge: Buffer.from(buf.subarray(24, 32)),
    targetInfo: flags & NtlmFlags.TARGET_INFO ? field(buf, 40) : Buffer.alloc(0),
    raw: buf,
  };
}

/** Build a CHALLENGE_MESSAGE (§2.2.1.2); used by the test server. */
export function buildChallenge(opts: {
  flags: number;
  serverChallenge: Buffer;
  targetName: string;
  targetInfo: Buffer;
}): Buffer {
  const name = utf16(opts.targetName);
  const head = Buffer.alloc(56);
  SIGNATURE.copy(head, 0);
  head.writeUInt32LE(2, 8);
  head.writeUInt16LE(name.length, 12);
  head.writeUInt16LE(name.length, 14);
  head.writeUInt32LE(56, 16);
  head.writeUInt32LE(opts.flags >>> 0, 20);
  opts.serverChallenge.copy(head, 24);
  head.writeUInt16LE(opts.targetInfo.length, 40);
  head.writeUInt16LE(opts.targetInfo.length, 42);
  head.writeUInt32LE(56 + name.length, 44);
  VERSION.copy(head, 48);
  return Buffer.concat([head, name, opts.targetInfo]);
}

export interface AuthenticateMessage {
  flags: number;
  lmResponse: Buffer;
  ntResponse: Buffer;
  domain: string;
  user: string;
  workstation: string;
  encryptedRandomSessionKey: Buffer;
  mic: Buffer;
  raw: Buffer;
}

export function parseAuthenticate(buf: Buffer): AuthenticateMessage {
  checkHeader(buf, 3);
  if (buf.length < 64) throw new NtlmError('truncated AUTHENTICATE message');
  const flags = buf.readUInt32LE(60);
  const enc = flags & NtlmFlags.UNICODE ? 'utf16le' : 'latin1';
  // The MIC sits at 72 when the Version field is present (payload starts at 88).
  const payloadStart = Math.min(
    ...[12, 20, 28, 36, 44, 52].map((at) => (buf.readUInt16LE(at) > 0 ? buf.readUInt32LE(at + 4) : buf.length)),
  );
  return {
    flags,
    lmResponse: field(buf, 12),
    ntResponse: field(buf, 20),
    domain: field(buf, 28).toString(enc),
    user: field(buf, 36).toString(enc),
    workstation: field(buf, 44).toString(enc),
    encryptedRandomSessionKey: field(buf, 52),
    mic: payloadStart >= 88 ? Buffer.from(buf.subarray(72, 88)) : Buffer.alloc(0),
    raw: buf,
  };
}

/** FILETIME (100 ns since 1601-01-01) as 8 bytes LE. */
export function fileTime(date: Date = new Date()): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(date.getTime()) * 10000n + 116444736000000000n);
  return b;
}

/**
 * gss_channel_bindings_struct hash for TLS (MS-NLMP §3.1.5.1.2, RFC 5929
 * `tls-server-end-point`): MD5 over the struct with zero addresses and
 * application data `tls-server-end-point:` + certificate hash.
 */
export function channelBindingsHash(certHash: Buffer): Buffer {
  const app = Buffer.concat([Buffer.from('tls-server-end-point:', 'latin1'), certHash]);
  const head = Buffer.alloc(20); // initiator addrtype+len, acceptor addrtype+len, app len
  head.writeUInt32LE(app.length, 16);
  return md5(head, app);
}

export interface NtlmResponses {
  ntChallengeResponse: Buffer;
  lmChallengeResponse: Buffer;
  ntProofStr: Buffer;
  sessionBaseKey: Buffer;
}

/** NTLMv2 responses (§3.3.2). `targetInfo` is the AV pair block as sent, EOL included. */
export function computeNtlmV2(opts: {
  responseKey: Buffer;
  serverChallenge: Buffer;
  clientChallenge: Buffer;
  timestamp: Buffer;
  targetInfo: Buffer;
}): NtlmResponses {
  const temp = Buffer.concat([
    Buffer.from([1, 1, 0, 0, 0, 0, 0, 0]),
    opts.timestamp,
    opts.clientChallenge,
    Buffer.alloc(4),
    opts.targetInfo,
    Buffer.alloc(4),
  ]);
  const ntProofStr = hmacMd5(opts.responseKey, opts.serverChallenge, temp);
  const lmChallengeResponse = Buffer.concat([
    hmacMd5(opts.responseKey, opts.serverChallenge, opts.clientChallenge),
    opts.clientChallenge,
  ]);
  return {
    ntProofStr,
    ntChallengeResponse: Buffer.concat([ntProofStr, temp]),
    lmChallengeResponse,
    sessionBaseKey: hmacMd5(opts.responseKey, ntProofStr),
  };
}

const C2S_SIGN = 'session key to client-to-server signing key magic constant\0';
const S2C_SIGN = 'session key to server-to-client signing key magic constant\0';
const C2S_SEAL = 'session key to client-to-server sealing key magic constant\0';
const S2C_SEAL = 'session key to server-to-client sealing key magic constant\0';

export function signKey(exportedSessionKey: Buffer, clientToServer: boolean): Buffer {
  return md5(exportedSessionKey, Buffer.from(clientToServer ? C2S_SIGN : S2C_SIGN, 'latin1'));
}

/** SEALKEY (§3.4.5.3) with extended session security. */
export function sealKey(exportedSessionKey: Buffer, flags: number, clientToServer: boolean): Buffer {
  let key = exportedSessionKey;
  if (flags & NtlmFlags.F128) key = exportedSessionKey;
  else if (flags & NtlmFlags.F56) key = exportedSessionKey.subarray(0, 7);
  else key = exportedSessionKey.subarray(0, 5);
  return md5(key, Buffer.from(clientToServer ? C2S_SEAL : S2C_SEAL, 'latin1'));
}

/**
 * Session security after authentication (§3.4): one RC4 handle and one
 * sequence number per direction, kept for the life of the connection.
 */
export class NtlmSession {
  private readonly outSign: Buffer;
  private readonly inSign: Buffer;
  private readonly outSeal: Rc4;
  private readonly inSeal: Rc4;
  private outSeq = 0;
  private inSeq = 0;

  constructor(
    exportedSessionKey: Buffer,
    readonly flags: number,
    isClient: boolean,
  ) {
    if (!(flags & NtlmFlags.EXTENDED_SESSIONSECURITY)) {
      throw new NtlmError('extended session security was not negotiated');
    }
    this.outSign = signKey(exportedSessionKey, isClient);
    this.inSign = signKey(exportedSessionKey, !isClient);
    this.outSeal = new Rc4(sealKey(exportedSessionKey, flags, isClient));
    this.inSeal = new Rc4(sealKey(exportedSessionKey, flags, !isClient));
  }

  private signature(key: Buffer, handle: Rc4, seq: number, msg: Buffer): Buffer {
    const seqBuf = Buffer.alloc(4);
    seqBuf.writeUInt32LE(seq >>> 0);
    let checksum = hmacMd5(key, seqBuf, msg).subarray(0, 8);
    if (this.flags & NtlmFlags.KEY_EXCH) checksum = handle.update(checksum);
    const version = Buffer.from([1, 0, 0, 0]);
    return Buffer.concat([version, checksum, seqBuf]);
  }

  /** Encrypt and sign (GSS_WrapEx): returns the sealed bytes and the 16-byte signature. */
  seal(msg: Buffer): { sealed: Buffer; signature: Buffer } {
    const sealed = this.outSeal.update(msg);
    const signature = this.signature(this.outSign, this.outSeal, this.outSeq, msg);
    this.outSeq++;
    return { sealed, signature };
  }

  /** Decrypt and verify (GSS_UnwrapEx); throws NtlmError when the signature does not match. */
  unseal(sealed: Buffer, signature: Buffer): Buffer {
    const msg = this.inSeal.update(sealed);
    const expected = this.signature(this.inSign, this.inSeal, this.inSeq, msg);
    this.inSeq++;
    if (signature.length !== 16 || !timingSafeEqual(signature, expected)) {
      throw new NtlmError('NTLM message signature mismatch');
    }
    return msg;
  }
}

export interface NtlmClientOptions {
  username: string;
  password: string;
  domain?: string;
  workstation?: string;
  /** Hash of the server certificate per RFC 5929 (HTTPS only). */
  certHash?: Buffer;
  /** Deterministic inputs for tests. */
  random?: (n: number) => Buffer;
  now?: () => Date;
}

/** Client side of one NTLM exchange. */
export class NtlmClient {
  private negotiateMsg: Buffer | null = null;
  private sessionValue: NtlmSession | null = null;

  constructor(private readonly opts: NtlmClientOptions) {}

  /** Channel binding learnt after the TLS handshake (before `authenticate`). */
  setCertHash(certHash: Buffer | undefined): void {
    this.opts.certHash = certHash;
  }

  negotiate(): Buffer {
    this.negotiateMsg = buildNegotiate(CLIENT_FLAGS);
    return this.negotiateMsg;
  }

  /** Answer the CHALLENGE; afterwards `session` is ready. */
  authenticate(challengeBuf: Buffer): Buffer {
    if (!this.negotiateMsg) throw new NtlmError('negotiate() must come first');
    const ch = parseChallenge(challengeBuf);
    const flags = (ch.flags & CLIENT_FLAGS) >>> 0;
    for (const [name, bit] of [
      ['SEAL', NtlmFlags.SEAL],
      ['SIGN', NtlmFlags.SIGN],
      ['EXTENDED_SESSIONSECURITY', NtlmFlags.EXTENDED_SESSIONSECURITY],
      ['KEY_EXCH', NtlmFlags.KEY_EXCH],
      ['128', NtlmFlags.F128],
    ] as const) {
      if (!(flags & bit)) throw new NtlmError(`server did not negotiate NTLMSSP_NEGOTIATE_${name}`);
    }
    const random = this.opts.random ?? randomBytes;
    const domain = this.opts.domain ?? '';
    const workstation = this.opts.workstation ?? '';
    const pairs = parseAvPairs(ch.targetInfo);
    const ts = pairs.find((p) => p.id === AvId.Timestamp);
    // §3.1.5.1.2: with a server timestamp, use it, send a MIC, and send Z(24) as the LM response.
    const timestamp = ts ? ts.value : fileTime(this.opts.now?.() ?? new Date());
    const out: AvPair[] = pairs.filter((p) => p.id !== AvId.Flags && p.id !== AvId.ChannelBindings);
    const avFlags = pairs.find((p) => p.id === AvId.Flags)?.value.readUInt32LE(0) ?? 0;
    if (ts) {
      const f = Buffer.alloc(4);
      f.writeUInt32LE((avFlags | AV_FLAG_MIC) >>> 0);
      out.push({ id: AvId.Flags, value: f });
    }
    out.push({
      id: AvId.ChannelBindings,
      value: this.opts.certHash ? channelBindingsHash(this.opts.certHash) : Buffer.alloc(16),
    });
    const targetInfo = encodeAvPairs(out);
    const clientChallenge = random(8);
    const responseKey = ntowfv2(this.opts.password, this.opts.username, domain);
    const r = computeNtlmV2({
      responseKey,
      serverChallenge: ch.serverChallenge,
      clientChallenge,
      timestamp,
      targetInfo,
    });
    const exportedSessionKey = random(16);
    const encryptedKey = rc4(r.sessionBaseKey, exportedSessionKey);
    const lm = ts ? Buffer.alloc(24) : r.lmChallengeResponse;

    const head = Buffer.alloc(88);
    SIGNATURE.copy(head, 0);
    head.writeUInt32LE(3, 8);
    // Payload order as Windows sends it: Domain, User, Workstation, LM, NT, session key;
    // each header slot (at offset `at`) points into it.
    const order: [number, Buffer][] = [
      [28, utf16(domain)],
      [36, utf16(this.opts.username)],
      [44, utf16(workstation)],
      [12, lm],
      [20, r.ntChallengeResponse],
      [52, encryptedKey],
    ];
    let off = 88;
    for (const [at, data] of order) {
      head.writeUInt16LE(data.length, at);
      head.writeUInt16LE(data.length, at + 2);
      head.writeUInt32LE(off, at + 4);
      off += data.length;
    }
    head.writeUInt32LE(flags, 60);
    VERSION.copy(head, 64);
    const msg = Buffer.concat([head, ...order.map(([, d]) => d)]);
    if (ts) {
      hmacMd5(exportedSessionKey, this.negotiateMsg, challengeBuf, msg).copy(msg, 72);
    }
    this.sessionValue = new NtlmSession(exportedSessionKey, flags, true);
    return msg;
  }

  get session(): NtlmSession {
    if (!this.sessionValue) throw new NtlmError('NTLM authentication has not completed');
    return this.sessionValue;
  }
}

export interface AcceptResult {
  user: string;
  domain: string;
  session: NtlmSession;
  /** The MsvAvChannelBindings value the client sent (16 zero bytes or absent when none). */
  channelBindings: Buffer | null;
  micPresent: boolean;
}

/**
 * Acceptor side (§3.2.5.1.2): verify NTProofStr and MIC for a known
 * password, recover the exported session key. Throws NtlmError on failure.
 */
export function verifyAuthenticate(opts: {
  negotiate: Buffer;
  challenge: Buffer;
  authenticate: Buffer;
  serverChallenge: Buffer;
  passwordFor: (user: string, domain: string) => string | undefined;
}): AcceptResult {
  const a = parseAuthenticate(opts.authenticate);
  if (a.ntResponse.length <= 24) throw new NtlmError('NTLMv1 responses are refused');
  const password = opts.passwordFor(a.user, a.domain);
  if (password === undefined) throw new NtlmError('unknown user');
  const responseKey = ntowfv2(password, a.user, a.domain);
  const proof = a.ntResponse.subarray(0, 16);
  const temp = a.ntResponse.subarray(16);
  const expected = hmacMd5(responseKey, opts.serverChallenge, temp);
  if (!timingSafeEqual(proof, expected)) throw new NtlmError('bad NTProofStr');
  const sessionBaseKey = hmacMd5(responseKey, proof);
  const exportedSessionKey =
    a.flags & NtlmFlags.KEY_EXCH ? rc4(sessionBaseKey, a.encryptedRandomSessionKey) : sessionBaseKey;
  const pairs = parseAvPairs(temp.subarray(28));
  const avFlags = pairs.find((p) => p.id === AvId.Flags)?.value.readUInt32LE(0) ?? 0;
  const micPresent = (avFlags & AV_FLAG_MIC) !== 0;
  if (micPresent) {
    const zeroed = Buffer.from(opts.authenticate);
    zeroed.fill(0, 72, 88);
    const mic = hmacMd5(exportedSessionKey, opts.negotiate, opts.challenge, zeroed);
    if (!timingSafeEqual(mic, a.mic)) throw new NtlmError('bad MIC');
  }
  return {
    user: a.user,
    domain: a.domain,
    session: new NtlmSession(exportedSessionKey, a.flags, false),
    channelBindings: pairs.find((p) => p.id === AvId.ChannelBindings)?.value ?? null,
    micPresent,
  };
}
