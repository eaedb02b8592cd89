/**
 * An LDAP-aware TLS proxy for fault tests: it terminates LDAPS on loopback
 * with its own certificate (signed by a throw-away test CA), re-encrypts to
 * the real directory (verifying the directory's CA), and reads the client's
 * LDAPMessage framing just enough to see each request's protocolOp. When
 * armed, it holds the first matching request — never forwards it — and
 * resolves a promise, so a test can SIGKILL the client process at exactly
 * that step (e.g. after the account was added, before the group modify).
 *
 * Framing (RFC 4511 §4.1.1, BER per X.690 §8.1): every LDAPMessage is a
 * SEQUENCE (0x30) with a definite length (short form < 0x80, or long form
 * 0x8N + N length octets); inside: messageID INTEGER, then protocolOp whose
 * tag is [APPLICATION n] — constructed (0x60|n) for Add/Modify/Search…,
 * primitive (0x40|n) for DelRequest, whose content is the DN itself.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';

/** RFC 4511 protocolOp application tag numbers of the requests tests care about. */
export const LDAP_OP = {
  bind: 0,
  unbind: 2,
  search: 3,
  modify: 6,
  add: 8,
  del: 10,
  extended: 23,
} as const;
export type LdapOpName = keyof typeof LDAP_OP;

const OP_NAMES = new Map<number, string>(Object.entries(LDAP_OP).map(([k, v]) => [v, k]));

export interface LdapRequestInfo {
  /** Application tag number of the protocolOp (see `LDAP_OP`). */
  readonly op: number;
  readonly opName: string;
  readonly messageId: number;
  /** The entry DN for add/modify/del (the request's first field), else ''. */
  readonly dn: string;
}

export interface TestTlsIdentity {
  /** PEM of the CA clients must trust. */
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
}

/**
 * A throw-away EC P-256 CA and a server certificate for `127.0.0.1`
 * (SAN IP and `localhost`), made with the openssl CLI.
 */
export function createTestTlsIdentity(): TestTlsIdentity {
  const dir = mkdtempSync(join(tmpdir(), 'jgt-proxy-tls-'));
  const ossl = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  try {
    ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'),
      '-days', '2', '-subj', '/CN=jitgate test proxy CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'srv.key'), '-out', join(dir, 'srv.csr'), '-subj', '/CN=127.0.0.1']);
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
    ossl(['x509', '-req', '-in', join(dir, 'srv.csr'), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, 'srv.pem'),
      '-days', '2', '-extfile', join(dir, 'ext.cnf')]);
    return { caCert: readFileSync(join(dir, 'ca.pem'), 'utf8'), cert: readFileSync(join(dir, 'srv.pem'), 'utf8'), key: readFileSync(join(dir, 'srv.key'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** BER definite length at `off`: [length, octets used], or null when more bytes are needed. */
function berLength(buf: Buffer, off: number): [number, number] | null {
  if (off >= buf.length) return null;
  const first = buf[off]!;
  if (first < 0x80) return [first, 1];
  const n = first & 0x7f;
  // LDAP forbids the indefinite form (RFC 4511 §5.1); 4 octets is plenty.
  if (n === 0 || n > 4) throw new Error(`unsupported BER length form 0x${first.toString(16)}`);
  if (off + 1 + n > buf.length) return null;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + buf[off + 1 + i]!;
  return [len, 1 + n];
}

/** Size of the complete LDAPMessage at the start of `buf`, or null if incomplete. */
export function ldapMessageSize(buf: Buffer): number | null {
  if (buf.length < 2) return null;
  if (buf[0] !== 0x30) throw new Error(`not an LDAPMessage (tag 0x${buf[0]!.toString(16)})`);
  const l = berLength(buf, 1);
  if (!l) return null;
  const size = 1 + l[1] + l[0];
  return buf.length >= size ? size : null;
}

/** Decode messageID, protocolOp tag and (add/modify/del) the entry DN of one complete LDAPMessage. */
export function parseLdapRequest(msg: Buffer): LdapRequestInfo {
  const outer = berLength(msg, 1)!;
  let off = 1 + outer[1];
  if (msg[off] !== 0x02) throw new Error('LDAPMessage without messageID');
  const idLen = berLength(msg, off + 1)!;
  let messageId = 0;
  for (let i = 0; i < idLen[0]; i++) messageId = messageId * 256 + msg[off + 1 + idLen[1] + i]!;
  off += 1 + idLen[1] + idLen[0];
  const tag = msg[off]!;
  const op = tag & 0x1f;
  const opLen = berLength(msg, off + 1)!;
  const body = off + 1 + opLen[1];
  let dn = '';
  if (op === LDAP_OP.del && (tag & 0x20) === 0) {
    dn = msg.subarray(body, body + opLen[0]).toString('utf8');
  } else if ((op === LDAP_OP.add || op === LDAP_OP.modify) && msg[body] === 0x04) {
    const dnLen = berLength(msg, body + 1)!;
    dn = msg.subarray(body + 1 + dnLen[1], body + 1 + dnLen[1] + dnLen[0]).toString('utf8');
  }
  return { op, opName: OP_NAMES.get(op) ?? `op${op}`, messageId, dn };
}

export interface LdapPauseProxyOptions {
  /** The real directory (LDAPS). */
  upstreamHost: string;
  upstreamPort?: number;
  /** PEM of the CA that signed the directory's certificate. */
  upstreamCa: string;
}

export interface LdapPauseProxy {
  /** `ldaps://127.0.0.1:<port>` */
  readonly url: string;
  /** PEM of the proxy's own test CA: what the client must trust. */
  readonly caCert: string;
  /** Every request seen from any client, in order (held ones included). */
  readonly seen: readonly LdapRequestInfo[];
  /**
   * Arm: the next request whose op is in `ops` (and, if given, whose DN
   * satisfies `dn`) is held — not forwarded — and the promise resolves with
   * it. Nothing else on that connection is forwarded afterwards.
   */
  holdNext(ops: readonly number[], dn?: (dn: string) => boolean): Promise<LdapRequestInfo>;
  /** Number of currently open client connections. */
  connections(): number;
  close(): Promise<void>;
}

export async function startLdapPauseProxy(opts: LdapPauseProxyOptions): Promise<LdapPauseProxy> {
  const identity = createTestTlsIdentity();
  const seen: LdapRequestInfo[] = [];
  let armed: { ops: readonly number[]; dn?: (dn: string) => boolean; resolve: (r: LdapRequestInfo) => void } | null = null;
  const sockets = new Set<tls.TLSSocket>();
  const clients = new Set<tls.TLSSocket>();

  const server = tls.createServer({ key: identity.key, cert: identity.cert, minVersion: 'TLSv1.2' }, (client) => {
    sockets.add(client);
    clients.add(client);
    const upstream = tls.connect({ host: opts.upstreamHost, port: opts.upstreamPort ?? 636, ca: [opts.upstreamCa], minVersion: 'TLSv1.2' });
    sockets.add(upstream);
    let pending = Buffer.alloc(0);
    let holding = false;
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
      clients.delete(client);
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    upstream.on('data', (d: Buffer) => client.write(d));
    client.on('data', (d: Buffer) => {
      if (holding) return; // the held connection forwards nothing more
      pending = Buffer.concat([pending, d]);
      for (;;) {
        let size: number | null;
        try {
          size = ldapMessageSize(pending);
        } catch {
          end();
          return;
        }
        if (size === null) return;
        const msg = pending.subarray(0, size);
        pending = pending.subarray(size);
        const info = parseLdapRequest(msg);
        seen.push(info);
        const a = armed;
        if (a && a.ops.includes(info.op) && (!a.dn || a.dn(info.dn))) {
          armed = null;
          holding = true;
          a.resolve(info);
          return;
        }
        upstream.write(msg);
      }
    });
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `ldaps://127.0.0.1:${port}`,
    caCert: identity.caCert,
    seen,
    holdNext(ops, dn) {
      if (armed) throw new Error('proxy already armed');
      return new Promise((resolve) => (armed = { ops, dn, resolve }));
    },
    connections: () => clients.size,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
