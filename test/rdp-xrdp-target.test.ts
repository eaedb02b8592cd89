import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startXrdpHost, xrdpHostAvailable, type XrdpHostHandle } from './harness/xrdp-host.js';

/**
 * The namespace RDP target (scripts/xrdp-host.sh) really is an RDP server,
 * checked without guacd: the X.224 negotiation of MS-RDPBCGR 2.2.1.1/2.2.1.2
 * and the TLS handshake that follows it, whose certificate must be the one
 * the harness reports (what a pinned rdpCertFingerprint is compared with).
 */

const PROTOCOL_RDP = 0;
const PROTOCOL_SSL = 0x1;
const PROTOCOL_HYBRID = 0x2;
const TYPE_RDP_NEG_RSP = 0x02;
const TYPE_RDP_NEG_FAILURE = 0x03;
const SSL_REQUIRED_BY_SERVER = 0x1;

/** TPKT (RFC 1006) + X.224 Connection Request (ISO 8073 CR TPDU) + cookie + RDP_NEG_REQ (MS-RDPBCGR 2.2.1.1.1). */
function connectionRequest(requestedProtocols: number): Buffer {
  const cookie = Buffer.from('Cookie: mstshash=jitgate\r\n', 'latin1');
  const neg = Buffer.alloc(8);
  neg.writeUInt8(0x01, 0); // TYPE_RDP_NEG_REQ
  neg.writeUInt8(0, 1); // flags
  neg.writeUInt16LE(8, 2);
  neg.writeUInt32LE(requestedProtocols, 4);
  // LI counts the X.224 header after itself: code, dst-ref(2), src-ref(2), class = 6, plus the variable part.
  const x224 = Buffer.from([6 + cookie.length + neg.length, 0xe0, 0, 0, 0, 0, 0]);
  const body = Buffer.concat([x224, cookie, neg]);
  const tpkt = Buffer.from([3, 0, 0, 0]);
  tpkt.writeUInt16BE(4 + body.length, 2);
  return Buffer.concat([tpkt, body]);
}

interface Confirm {
  readonly tpduCode: number;
  readonly type: number;
  /** selectedProtocol (RDP_NEG_RSP) or failureCode (RDP_NEG_FAILURE). */
  readonly value: number;
}

/** Read one TPKT and parse the X.224 Connection Confirm and its RDP_NEG_RSP / RDP_NEG_FAILURE (MS-RDPBCGR 2.2.1.2). */
function readConfirm(sock: Socket): Promise<Confirm> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 4) return;
      const len = buf.readUInt16BE(2);
      if (buf.length < len) return;
      sock.off('data', onData);
      sock.off('error', reject);
      const pdu = buf.subarray(0, len);
      if (pdu[0] !== 3) return reject(new Error(`not a TPKT: version ${String(pdu[0])}`));
      // X.224 fixed part after the TPKT: LI(1) code(1) dst-ref(2) src-ref(2) class(1); RDP_NEG_* follows.
      const at = 4 + 7;
      if (pdu.length < at + 8) return reject(new Error(`connection confirm without RDP_NEG data (${String(pdu.length)} bytes)`));
      resolve({ tpduCode: pdu[5] ?? 0, type: pdu[at] ?? 0, value: pdu.readUInt32LE(at + 4) });
    };
    sock.on('data', onData);
    sock.once('error', reject);
  });
}

function open(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => resolve(s));
    s.once('error', reject);
  });
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => {
    try {
      accessSync(`${d}/${cmd}`, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const avail = xrdpHostAvailable();
if (!avail.ok) console.info(`rdp-xrdp-target: skipped: ${avail.reason ?? ''}`);

describe.skipIf(!avail.ok)(`the namespace xrdp target${avail.ok ? '' : ` (skipped: ${avail.reason ?? ''})`}`, () => {
  let host: XrdpHostHandle;
  beforeAll(async () => {
    host = await startXrdpHost();
  }, 90_000);
  afterAll(async () => {
    await host?.stop();
  });

  it('answers an X.224 Connection Request for SSL|HYBRID with RDP_NEG_RSP selecting TLS, then a TLS handshake presents the reported certificate', async () => {
    const sock = await open(host.address, host.rdpPort);
    try {
      sock.write(connectionRequest(PROTOCOL_SSL | PROTOCOL_HYBRID));
      const cc = await readConfirm(sock);
      expect(cc.tpduCode).toBe(0xd0); // X.224 CC TPDU
      expect(cc).toMatchObject({ type: TYPE_RDP_NEG_RSP, value: PROTOCOL_SSL }); // xrdp 0.9 has no CredSSP: TLS, not NLA
      const tls = tlsConnect({ socket: sock, rejectUnauthorized: false });
      await new Promise<void>((resolve, reject) => {
        tls.once('secureConnect', resolve);
        tls.once('error', reject);
      });
      const cert = tls.getPeerCertificate();
      expect(cert.fingerprint256).toBe(host.rdpCertSha256);
      expect(cert.subject.CN).toBe(host.netns);
      tls.destroy();
    } finally {
      sock.destroy();
    }
  });

  it('refuses plain RDP security (TLS only): RDP_NEG_FAILURE SSL_REQUIRED_BY_SERVER', async () => {
    const sock = await open(host.address, host.rdpPort);
    try {
      sock.write(connectionRequest(PROTOCOL_RDP));
      expect(await readConfirm(sock)).toMatchObject({ type: TYPE_RDP_NEG_FAILURE, value: SSL_REQUIRED_BY_SERVER });
    } finally {
      sock.destroy();
    }
  });

  it('listens on the namespace address only, not on its loopback', async () => {
    const r = await host.exec(`bash -c 'exec 3<>/dev/tcp/127.0.0.1/${String(host.rdpPort)}' 2>/dev/null && echo open || echo closed`);
    expect(r.stdout.trim()).toBe('closed');
  });

  const haveFreerdp = onPath('xfreerdp') && onPath('xvfb-run');
  it.skipIf(!haveFreerdp)(
    `third-party check: xfreerdp logs an account created over sshd into a desktop session${haveFreerdp ? '' : ' (skipped: needs freerdp2-x11 and xvfb: xfreerdp opens an X display even with /auth-only)'}`,
    async () => {
      const user = `jgtrdp${String(process.pid % 10000)}`;
      const password = `Rdp-${String(Date.now())}-x`;
      const made = await host.exec(`useradd -m -s /bin/bash ${user} && chpasswd`, { stdin: `${user}:${password}\n` });
      expect(made.code).toBe(0);
      const client = spawn('xvfb-run', ['-a', 'xfreerdp', `/v:${host.address}:${String(host.rdpPort)}`, `/u:${user}`, `/p:${password}`, '/sec:tls', `/cert:ignore`, '/log-level:ERROR'], { stdio: 'ignore' });
      try {
        // The session exists once sesman has run Xorg and the session script as the account.
        const deadline = Date.now() + 40_000;
        let ps = '';
        while (Date.now() < deadline) {
          ps = (await host.exec(`pgrep -u ${user} -a . || true`)).stdout;
          if (/Xorg :\d+/.test(ps) && ps.includes('sleep infinity')) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        expect(ps).toMatch(/Xorg :\d+/);
        expect(ps).toContain('sleep infinity');
      } finally {
        client.kill('SIGTERM');
      }
    },
    60_000,
  );
});
