import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { BerReader, BerWriter, Client } from 'ldapts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/logging.js';
import { LdapAccountStore, LINK_TTL_CONTROL, parseTtlMemberValue, ttlMemberValue } from '../provisioner/stores/ldap.store.js';
import { ldapMessageSize } from './harness/ldap-pause-proxy.js';
import { sambaAdAvailable, startSambaAd, type SambaAdHandle } from './harness/samba-ad.js';

/**
 * Issue 14: AD's Privileged Access Management (time-bound membership).
 *
 * 1. At the LDAP message level: what the store sends through ldapts, decoded
 *    from the bytes on the wire by a small LDAP peer on loopback (PAM is a
 *    Windows Server 2016 forest feature; no such directory runs here). The
 *    peer answers only what the store asks (RootDSE, the Partitions
 *    container, the account, the group) and records every request: the test
 *    decodes the modify (`member` value `<TTL=seconds,DN>`) and the search
 *    carrying the link-TTL control (OID 1.2.840.113556.1.4.2309, critical).
 * 2. Against the real Samba AD DC, which has no PAM feature: detection says
 *    no, and memberships are added without a TTL, as before (the fallback).
 */

const BASE = 'DC=pam,DC=test';
const CONFIG = `CN=Configuration,${BASE}`;
const PAM_FEATURE = `CN=Privileged Access Management Feature,CN=Optional Features,CN=Directory Service,CN=Windows NT,CN=Services,${CONFIG}`;
const GROUP = `CN=JIT Admins,OU=Groups,${BASE}`;
const ACCOUNT = `CN=alice_k3x9q2,OU=JIT,${BASE}`;

interface Decoded {
  op: number;
  messageId: number;
  raw: Buffer;
  base?: string;
  attributes?: string[];
  controls: { oid: string; critical: boolean }[];
  changes?: { operation: number; type: string; values: string[] }[];
  object?: string;
}

/** Decode one LDAPMessage request (RFC 4511 section 4) with ldapts' own BER reader. */
function decode(raw: Buffer): Decoded {
  const r = new BerReader(raw);
  // readSequence returns the tag; the contents' length is then r.length.
  const seq = (tag?: number): number => {
    r.readSequence(tag);
    return r.length;
  };
  /** Read a tag and length; the offset just past its contents. */
  const seqEnd = (tag?: number): number => {
    const len = seq(tag);
    return r.offset + len;
  };
  seq();
  const messageId = r.readInt()!;
  const op = r.peek()!;
  const out: Decoded = { op, messageId, raw, controls: [] };
  const opEnd = seqEnd(op);
  if (op === 0x63) {
    out.base = r.readString()!;
    r.readEnumeration(); // scope
    r.readEnumeration(); // derefAliases
    r.readInt(); // sizeLimit
    r.readInt(); // timeLimit
    r.readBoolean(); // typesOnly
    // filter: skip it whole (tag, length, contents)
    const filterLen = seq(r.peek()!);
    r.offset += filterLen;
    out.attributes = [];
    seq();
    while (r.offset < opEnd) out.attributes.push(r.readString()!);
  } else if (op === 0x66) {
    out.object = r.readString()!;
    out.changes = [];
    seq();
    while (r.offset < opEnd) {
      seq();
      const operation = r.readEnumeration()!;
      seq();
      const type = r.readString()!;
      const setEnd = seqEnd(0x31);
      const values: string[] = [];
      while (r.offset < setEnd) values.push(r.readString()!);
      out.changes.push({ operation, type, values });
    }
  }
  r.offset = opEnd;
  if (r.offset < raw.length && r.peek() === 0xa0) {
    const end = seqEnd(0xa0);
    while (r.offset < end) {
      const oneEnd = seqEnd();
      const oid = r.readString()!;
      const critical = r.offset < oneEnd && r.peek() === 0x01 ? r.readBoolean()! : false;
      r.offset = oneEnd;
      out.controls.push({ oid, critical });
    }
  }
  return out;
}

/** An LDAP answer: SEQUENCE { messageID, [APPLICATION op] ... }. */
function reply(messageId: number, op: number, body: (w: BerWriter) => void): Buffer {
  const w = new BerWriter();
  w.startSequence();
  w.writeInt(messageId);
  w.startSequence(op);
  body(w);
  w.endSequence();
  w.endSequence();
  return w.buffer;
}
const done = (messageId: number, op: number) => reply(messageId, op, (w) => {
  w.writeEnumeration(0);
  w.writeString('');
  w.writeString('');
});
const entry = (messageId: number, dn: string, attrs: Record<string, string[]>) => reply(messageId, 0x64, (w) => {
  w.writeString(dn);
  w.startSequence();
  for (const [type, values] of Object.entries(attrs)) {
    w.startSequence();
    w.writeString(type);
    w.startSequence(0x31);
    for (const v of values) w.writeString(v);
    w.endSequence();
    w.endSequence();
  }
  w.endSequence();
});

/** The LDAP peer: answers the store's questions, records every request. */
class LoopbackDirectory {
  readonly requests: Decoded[] = [];
  pam = true;
  /** Behave like a directory that ignores the TTL form: store the plain DN. */
  dropTtl = false;
  /** What the group's member holds, as the link-TTL control returns it. */
  memberValue: string | null = null;
  server!: Server;
  readonly sockets = new Set<Socket>();

  async start(): Promise<string> {
    this.server = createServer((sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      let buf = Buffer.alloc(0);
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        for (let n = ldapMessageSize(buf); n !== null && buf.length >= n; n = buf.length ? ldapMessageSize(buf) : null) {
          const msg = buf.subarray(0, n);
          buf = buf.subarray(n);
          this.#answer(sock, decode(Buffer.from(msg)));
        }
      });
    });
    await new Promise<void>((res) => this.server.listen(0, '127.0.0.1', res));
    return `ldap://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  #answer(sock: Socket, m: Decoded): void {
    this.requests.push(m);
    if (m.op === 0x60) sock.write(done(m.messageId, 0x61));
    else if (m.op === 0x42) sock.end();
    else if (m.op === 0x66) {
      const add = m.changes?.find((c) => c.type === 'member' && c.operation === 0);
      if (add) this.memberValue = this.dropTtl ? (parseTtlMemberValue(add.values[0]!)?.dn ?? null) : (add.values[0] ?? null);
      sock.write(done(m.messageId, 0x67));
    } else if (m.op === 0x63) {
      const out: Buffer[] = [];
      if (m.base === '') out.push(entry(m.messageId, '', { configurationNamingContext: [CONFIG] }));
      else if (m.base === `CN=Partitions,${CONFIG}`) out.push(entry(m.messageId, m.base, this.pam ? { 'msDS-EnabledFeature': [PAM_FEATURE] } : {}));
      else if (m.base === BASE) {
        out.push(entry(m.messageId, ACCOUNT, { sAMAccountName: ['alice_k3x9q2'], description: ['jitgate:test:1'], userAccountControl: ['512'] }));
      } else if (m.base === GROUP) {
        // Like AD: the TTL form only when the control asks for it.
        const ttl = m.controls.some((c) => c.oid === LINK_TTL_CONTROL);
        const v = this.memberValue;
        const shown = v === null ? [] : [ttl ? v : (parseTtlMemberValue(v)?.dn ?? v)];
        out.push(entry(m.messageId, GROUP, shown.length ? { member: shown } : {}));
      }
      out.push(done(m.messageId, 0x65));
      sock.write(Buffer.concat(out));
    } else sock.write(done(m.messageId, 0x78));
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((res) => this.server.close(() => res()));
  }
}

describe('time-bound membership on the wire (ldapts → loopback LDAP peer)', () => {
  let dir: LoopbackDirectory;
  let url: string;
  const stores: LdapAccountStore[] = [];
  const store = () => {
    const s = new LdapAccountStore({
      url, allowInsecureTransport: true, caCert: '', bindDn: `CN=svc,${BASE}`, bindPassword: 'not-secret', baseDn: BASE,
      accountsContainer: `OU=JIT,${BASE}`, groups: { 'JIT Admins': GROUP }, logger: silentLogger(), timeoutMs: 10_000,
    });
    stores.push(s);
    return s;
  };
  beforeAll(async () => {
    dir = new LoopbackDirectory();
    url = await dir.start();
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    dir.requests.length = 0;
    dir.memberValue = null;
  });
  afterAll(async () => dir?.stop());

  it('the value helpers: <TTL=n,DN> and back; no zero or fractional TTL', () => {
    expect(ttlMemberValue(ACCOUNT, 3660)).toBe(`<TTL=3660,${ACCOUNT}>`);
    expect(parseTtlMemberValue(`<TTL=42,${ACCOUNT}>`)).toEqual({ seconds: 42, dn: ACCOUNT });
    expect(parseTtlMemberValue(ACCOUNT)).toBeNull();
    expect(() => ttlMemberValue(ACCOUNT, 0)).toThrow(/above 0/);
    expect(() => ttlMemberValue(ACCOUNT, 1.5)).toThrow(/whole number/);
  });

  it('PAM enabled: detected from msDS-EnabledFeature; the modify carries <TTL=lease+grace,DN>; the read-back carries the link-TTL control', async () => {
    dir.pam = true;
    const s = store();
    expect(await s.timeBoundMembership()).toBe(true);
    const until = new Date(Date.now() + 3_660_000);
    await s.addToGroup('alice_k3x9q2', 'JIT Admins', { until });
    const mods = dir.requests.filter((r) => r.op === 0x66);
    expect(mods).toHaveLength(1);
    expect(mods[0]!.object).toBe(GROUP);
    expect(mods[0]!.changes).toHaveLength(1);
    const change = mods[0]!.changes![0]!;
    expect([change.operation, change.type, change.values.length]).toEqual([0, 'member', 1]);
    const parsed = parseTtlMemberValue(change.values[0]!);
    expect(parsed?.dn).toBe(ACCOUNT);
    // Seconds from "now" at send time: within a few seconds of the hour and a minute asked for, never more.
    expect(parsed!.seconds).toBeLessThanOrEqual(3660);
    expect(parsed!.seconds).toBeGreaterThan(3600);
    // The literal bytes on the wire hold the TTL form (nothing re-encoded it on the way).
    expect(mods[0]!.raw.includes(Buffer.from(`<TTL=${parsed!.seconds},${ACCOUNT}>`))).toBe(true);
    const readBack = dir.requests.filter((r) => r.op === 0x63 && r.base === GROUP);
    expect(readBack).toHaveLength(1);
    expect(readBack[0]!.controls).toEqual([{ oid: LINK_TTL_CONTROL, critical: true }]);
    expect(readBack[0]!.attributes).toEqual(['member']);
    // The detection read the Partitions container of the configuration naming context.
    expect(dir.requests.some((r) => r.op === 0x63 && r.base === `CN=Partitions,${CONFIG}` && r.attributes?.includes('msDS-EnabledFeature'))).toBe(true);
  });

  it('PAM enabled but the membership comes back without a TTL: the add fails (it would outlive every jitgate process)', async () => {
    dir.pam = true;
    dir.dropTtl = true;
    try {
      const s = store();
      await expect(s.addToGroup('alice_k3x9q2', 'JIT Admins', { until: new Date(Date.now() + 600_000) })).rejects.toMatchObject({ code: 'JIT_ERR_STORE_FAILED' });
      // It did send the TTL form: the refusal is about what came back.
      expect(dir.requests.find((r) => r.op === 0x66)!.changes![0]!.values[0]).toMatch(/^<TTL=\d+,/);
    } finally {
      dir.dropTtl = false;
    }
  });

  it('PAM missing: a plain member value and no link-TTL read-back (the fallback)', async () => {
    dir.pam = false;
    const s = store();
    expect(await s.timeBoundMembership()).toBe(false);
    await s.addToGroup('alice_k3x9q2', 'JIT Admins', { until: new Date(Date.now() + 600_000) });
    const mod = dir.requests.find((r) => r.op === 0x66)!;
    expect(mod.changes![0]!.values).toEqual([ACCOUNT]);
    expect(dir.requests.filter((r) => r.controls.some((c) => c.oid === LINK_TTL_CONTROL))).toEqual([]);
  });

  it('no lease given (a caller without one): a plain value even where PAM is on', async () => {
    dir.pam = true;
    const s = store();
    await s.addToGroup('alice_k3x9q2', 'JIT Admins');
    expect(dir.requests.find((r) => r.op === 0x66)!.changes![0]!.values).toEqual([ACCOUNT]);
  });
});

const avail = sambaAdAvailable();
describe.skipIf(!avail.ok)(`time-bound membership fallback on the real Samba AD DC${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let ad: SambaAdHandle;
  let s: LdapAccountStore;
  const name = `pamfb_${randomBytes(3).toString('hex')}`;
  const asAdmin = async <T>(fn: (c: Client) => Promise<T>): Promise<T> => {
    const c = new Client({ url: ad.url, tlsOptions: { ca: [ad.caCert] } });
    try {
      await c.bind(ad.adminDn, ad.adminPassword);
      return await fn(c);
    } finally {
      await c.unbind().catch(() => undefined);
    }
  };
  beforeAll(async () => {
    ad = await startSambaAd();
    s = new LdapAccountStore({
      url: ad.url, caCert: ad.caCert, bindDn: ad.bindDn, bindPassword: ad.bindPassword, baseDn: ad.baseDn,
      accountsContainer: ad.jitOu, groups: ad.adminGroupDns, logger: silentLogger(),
    });
  }, 240_000);
  afterAll(async () => {
    await s?.delete(name).catch(() => undefined);
    await s?.close();
    await ad?.stop();
  });

  it('Samba has no PAM feature: detected as such; a membership with a lease is added plainly and stays until removed', async () => {
    expect(await s.timeBoundMembership()).toBe(false);
    await s.create({ name, password: `Pw-${randomBytes(12).toString('base64url')}!9a`, marker: 'jitgate:test:pam-fallback', expiresAt: new Date(Date.now() + 3_600_000) });
    await s.addToGroup(name, 'JIT Admins', { until: new Date(Date.now() + 2_000) });
    const members = await asAdmin(async (c) => {
      const { searchEntries } = await c.search(ad.adminGroupDns['JIT Admins']!, { scope: 'base', attributes: ['member'] });
      const m = searchEntries[0]?.member;
      return (Array.isArray(m) ? m : m ? [m] : []).map(String);
    });
    const mine = members.filter((dn) => dn.toLowerCase().startsWith(`cn=${name},`));
    expect(mine).toHaveLength(1);
    expect(mine[0]).not.toMatch(/^<TTL=/);
    expect((await s.get(name))?.groups).toEqual(['JIT Admins']);
    await s.removeFromGroup(name, 'JIT Admins');
    expect((await s.get(name))?.groups).toEqual([]);
  }, 120_000);
});
