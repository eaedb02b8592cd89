import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEventInput } from '../core/audit.js';
import type { Computer } from '../core/domain.js';
import { Secret } from '../core/secret.js';
import type { Credentials } from '../provisioner/jit-account.service.js';
import { openGuacBrowser as openBrowser, until, type GuacBrowser } from './harness/guac-browser.js';
import { FixedBroker, GUACD_1_5_RDP_ARGS, GUACD_RDP_ARGS, SlotRecorder, startGuacdPeer, startRdpTestApp, type GuacdPeer, type PeerConnection } from './harness/guacd-peer.js';

/**
 * The per-computer RDP controls (issue 13, "Controls admins expect") at the
 * parameter and stream level, against the Guacamole test peer: what guacd
 * receives for each policy, and what the relay lets through when guacd
 * would not enforce a parameter itself (the peer enforces nothing).
 */


const CREDS: Credentials = { username: 'alice_k3x9q2', password: new Secret('Pw-1'), domain: 'CORP' };
const Q = { computer: 'win01', accountType: 'domain', width: '1280', height: '720', dpi: '96', csrf: 'good' };
const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

function computer(policy: Record<string, unknown>): Computer {
  return {
    id: 'c1', organizationId: 'o1', name: 'win01', address: '10.9.8.7', protocols: ['rdp'], sshPort: 22, rdpPort: 3389,
    domainStore: 'ad', localStore: null, jit: {}, policy, restricted: false,
  };
}



const isReady = (b: GuacBrowser): boolean => b.instructions.some((i) => i[0] === 'jitgate' && i[1] === 'ready');
/** A marker both sides can wait for: everything sent before it has been relayed (the relay keeps order). */
async function browserFlush(b: GuacBrowser, conn: PeerConnection, n: string): Promise<void> {
  b.send('key', n, '1');
  await until(() => conn.received.some((i) => i[0] === 'key' && i[1] === n), `key ${n} at the peer`);
}
async function guacdFlush(b: GuacBrowser, conn: PeerConnection, n: string): Promise<void> {
  conn.send('x-mark', n);
  await until(() => b.instructions.some((i) => i[0] === 'x-mark' && i[1] === n), `mark ${n} in the browser`);
}

describe('RDP policy controls, enforced by the gateway', () => {
  let recDir: string;
  let peer: GuacdPeer;
  const cleanups: (() => Promise<unknown> | void)[] = [];
  beforeAll(() => {
    recDir = mkdtempSync(join(tmpdir(), 'jitgate-rdp-policy-'));
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(() => rmSync(recDir, { recursive: true, force: true }));

  async function setup(policy: Record<string, unknown>, peerOpts: Parameters<typeof startGuacdPeer>[0] = {}) {
    peer = await startGuacdPeer(peerOpts);
    cleanups.push(() => peer.close());
    const broker = new FixedBroker(computer(policy), CREDS);
    const audits: AuditEventInput[] = [];
    const recorder = new SlotRecorder(recDir);
    const t = await startRdpTestApp({
      broker, recorder, guacd: { host: peer.host, port: peer.port }, guacdTimeoutMs: 10_000,
      audit: { record: async (e) => void audits.push(e) },
    });
    cleanups.push(() => t.app.close());
    return { broker, audits, ...t };
  }

  async function connected(wsUrl: string, query: Record<string, string> = Q): Promise<{ b: GuacBrowser; conn: PeerConnection }> {
    const b = await openBrowser(wsUrl, query);
    cleanups.push(() => b.ws.close());
    await until(() => isReady(b), 'ready');
    const conn = await peer.waitFor(() => peer.connections[0], 5000, 'connection');
    expect(conn.problems).toEqual([]);
    return { b, conn };
  }

  it('hands guacd the parameters of each policy: one-way clipboard and drive, its limit, keys recorded, display and security', async () => {
    const { wsUrl } = await setup({
      clipboard: 'remote-to-local', clipboardMaxBytes: 4096, drive: 'upload', fileMaxBytes: 1000, recordInput: true,
      rdpSecurity: 'rdp', rdpIgnoreCert: true, rdpResizeMethod: 'reconnect', rdpColorDepth: 16, rdpTimezone: 'Europe/Berlin',
    });
    const { b, conn } = await connected(wsUrl);
    expect(conn.args).toMatchObject({
      'disable-copy': 'false', 'disable-paste': 'true', 'clipboard-buffer-size': '4096',
      'enable-drive': 'true', 'disable-upload': 'false', 'disable-download': 'true', 'create-drive-path': 'true',
      'recording-include-keys': 'true', security: 'rdp', 'ignore-cert': 'true',
      'resize-method': 'reconnect', 'color-depth': '16', timezone: 'Europe/Berlin',
    });
    // The browser learns the direction and the effective policy (for its side menu only; the relay enforces it).
    const ready = b.instructions.find((i) => i[0] === 'jitgate' && i[1] === 'ready');
    expect(ready?.slice(4, 7)).toEqual(['1', expect.any(String), 'remote-to-local']);
    expect(JSON.parse(ready?.[7] ?? '')).toEqual({
      clipboard: 'remote-to-local', clipboardMaxBytes: 4096, upload: true, download: false, fileMaxBytes: expect.any(Number), printing: expect.any(Boolean), recordKeys: true,
    });
  });

  it('the defaults: clipboard and drive off both ways, keys not recorded, display-update; "none" sends no resize method', async () => {
    const { wsUrl } = await setup({ rdpResizeMethod: 'none', clipboard: 'local-to-remote' });
    const { conn } = await connected(wsUrl);
    expect(conn.args).toMatchObject({
      'disable-copy': 'true', 'disable-paste': 'false', 'clipboard-buffer-size': '262144', 'enable-drive': 'false', 'disable-upload': 'true', 'disable-download': 'true',
      'recording-include-keys': 'false', 'resize-method': '', 'color-depth': '', timezone: '', security: 'nla',
    });
  });

  it('a guacd without clipboard-buffer-size (1.5) still runs the session: the relay enforces the limit', async () => {
    const { wsUrl } = await setup({ clipboard: 'both', clipboardMaxBytes: 1000 }, { rdpArgs: GUACD_1_5_RDP_ARGS });
    const { conn } = await connected(wsUrl);
    expect(conn.args['clipboard-buffer-size']).toBeUndefined();
    expect(conn.args['disable-copy']).toBe('false');
  });

  it('refuses before provisioning when guacd lacks a parameter the policy needs (one-way drive without disable-download)', async () => {
    const { broker, wsUrl } = await setup({ drive: 'upload' }, { rdpArgs: GUACD_RDP_ARGS.filter((a) => a !== 'disable-download') });
    const b = await openBrowser(wsUrl, Q);
    cleanups.push(() => b.ws.close());
    const err = await until(() => b.instructions.find((i) => i[0] === 'jitgate' && i[1] === 'error'), 'error');
    expect(err.slice(2)).toEqual(['JIT_ERR_RDP_GUACD_UNSUPPORTED', 'guacd does not support the parameter disable-download that the policy of win01 needs; refusing to connect']);
    expect(broker.provisioned).toBe(0);
    expect(peer.connections).toEqual([]);
  });

  it('drops a clipboard stream in the forbidden direction, either way, even when guacd would pass it', async () => {
    const { wsUrl } = await setup({ clipboard: 'remote-to-local' });
    const { b, conn } = await connected(wsUrl);
    // local → remote (paste) is forbidden: nothing of the stream reaches guacd, the browser is told.
    b.send('clipboard', '3', 'text/plain');
    b.send('blob', '3', b64('secret paste'));
    b.send('end', '3');
    await browserFlush(b, conn, '1');
    expect(conn.received.filter((i) => ['clipboard', 'blob', 'end'].includes(i[0] as string))).toEqual([]);
    await until(() => b.instructions.find((i) => i[0] === 'ack' && i[1] === '3'), 'ack');
    expect(b.instructions.find((i) => i[0] === 'ack' && i[1] === '3')?.[3]).toBe(String(0x0303));
    // remote → local (copy) is allowed: relayed whole.
    conn.send('clipboard', '5', 'text/plain');
    conn.send('blob', '5', b64('copied'));
    conn.send('end', '5');
    await guacdFlush(b, conn, '1');
    expect(b.instructions.filter((i) => ['clipboard', 'blob', 'end'].includes(i[0] as string) && i[1] === '5').map((i) => i[0])).toEqual(['clipboard', 'blob', 'end']);

    const other = await setup({ clipboard: 'local-to-remote' });
    const two = await connected(other.wsUrl);
    two.conn.send('clipboard', '5', 'text/plain');
    two.conn.send('blob', '5', b64('remote secret'));
    two.conn.send('end', '5');
    await guacdFlush(two.b, two.conn, '2');
    expect(two.b.instructions.filter((i) => ['clipboard', 'blob', 'end'].includes(i[0] as string) && i[1] === '5')).toEqual([]);
  });

  it('cuts a clipboard over the size limit at the limit, on a character boundary', async () => {
    const { wsUrl } = await setup({ clipboard: 'both', clipboardMaxBytes: 6 });
    const { b, conn } = await connected(wsUrl);
    // "abcdé" is 6 bytes… "abcdeé" is 7: é (2 bytes) would be split at 6, so the cut is at 5.
    b.send('clipboard', '2', 'text/plain;charset=utf-8');
    b.send('blob', '2', b64('abc'));
    b.send('blob', '2', b64('deé and much more'));
    b.send('blob', '2', b64('even more'));
    b.send('end', '2');
    await browserFlush(b, conn, '2');
    const at = conn.received.filter((i) => i[1] === '2' && ['clipboard', 'blob', 'end'].includes(i[0] as string));
    expect(at.map((i) => i[0])).toEqual(['clipboard', 'blob', 'blob', 'end']);
    expect(at.filter((i) => i[0] === 'blob').map((i) => unb64(i[2])).join('')).toBe('abcde');
    expect(b.instructions.find((i) => i[0] === 'ack' && i[1] === '2')?.[3]).toBe(String(0x030d));
    // Same from guacd: the browser gets at most the limit.
    conn.send('clipboard', '9', 'text/plain');
    conn.send('blob', '9', b64('0123456789'));
    conn.send('end', '9');
    await guacdFlush(b, conn, '3');
    const got = b.instructions.filter((i) => i[1] === '9');
    expect(got.map((i) => i[0])).toEqual(['clipboard', 'blob', 'end']);
    expect(unb64(got[1]?.[2])).toBe('012345');
  });

  it('stops an upload over the size limit with an ack error and audits every transfer with its name and size', async () => {
    const { wsUrl, audits, broker } = await setup({ drive: 'upload', fileMaxBytes: 10 });
    const { b, conn } = await connected(wsUrl);
    b.send('file', '7', 'application/octet-stream', 'big.bin');
    b.send('blob', '7', b64(Buffer.alloc(8, 1)));
    b.send('blob', '7', b64(Buffer.alloc(8, 2)));
    b.send('blob', '7', b64(Buffer.alloc(8, 3)));
    b.send('end', '7');
    await browserFlush(b, conn, '3');
    // guacd got the file's start and an end; never more than the limit.
    const at7 = conn.received.filter((i) => i[1] === '7');
    expect(at7.map((i) => i[0])).toEqual(['file', 'blob', 'end']);
    expect(Buffer.from(at7[1]?.[2] ?? '', 'base64')).toEqual(Buffer.alloc(8, 1));
    const ack = await until(() => b.instructions.find((i) => i[0] === 'ack' && i[1] === '7'), 'ack');
    expect(ack[3]).toBe(String(0x030d));
    // A guacd ack for the stopped stream does not reach the browser (it has its answer).
    conn.send('ack', '7', 'OK', '0');
    await guacdFlush(b, conn, '4');
    expect(b.instructions.filter((i) => i[0] === 'ack' && i[1] === '7')).toHaveLength(1);

    // A small one goes through and is audited as a success.
    b.send('file', '8', 'text/plain', 'notes.txt');
    b.send('blob', '8', b64('hello'));
    b.send('end', '8');
    await browserFlush(b, conn, '4');
    expect(conn.received.filter((i) => i[1] === '8').map((i) => i[0])).toEqual(['file', 'blob', 'end']);

    // Downloads are not allowed by this policy: guacd's stream is dropped and refused.
    conn.send('file', '4', 'text/plain', 'secrets.txt');
    conn.send('blob', '4', b64('top secret'));
    conn.send('end', '4');
    await guacdFlush(b, conn, '5');
    expect(b.instructions.filter((i) => i[1] === '4' && ['file', 'blob', 'end'].includes(i[0] as string))).toEqual([]);
    await until(() => conn.received.find((i) => i[0] === 'ack' && i[1] === '4'), 'ack at guacd');
    expect(conn.received.find((i) => i[0] === 'ack' && i[1] === '4')?.[3]).toBe(String(0x0303));

    await until(() => audits.length >= 3, 'audits');
    const sessionId = broker.opened[0]!.session.id;
    expect(audits).toEqual([
      expect.objectContaining({
        type: 'rdp.file.upload', actor: 'alice', outcome: 'denied', sessionId, computer: 'win01', account: 'alice_k3x9q2',
        data: expect.objectContaining({ name: 'big.bin', bytes: 8, limit: 10, reason: 'larger than the limit of 10 bytes' }),
      }),
      expect.objectContaining({ type: 'rdp.file.upload', outcome: 'success', data: expect.objectContaining({ name: 'notes.txt', bytes: 5 }) }),
      expect.objectContaining({ type: 'rdp.file.download', outcome: 'denied', data: expect.objectContaining({ name: 'secrets.txt', bytes: 0 }) }),
    ]);
  });

  it('ignores parameters the browser supplies: query string and handshake instructions never reach guacd', async () => {
    const { wsUrl } = await setup({});
    const { b, conn } = await connected(wsUrl, {
      ...Q, security: 'rdp', 'ignore-cert': 'true', 'disable-copy': 'false', 'disable-paste': 'false', clipboard: 'both', drive: 'both',
      'enable-drive': 'true', 'recording-include-keys': 'false', hostname: 'evil.example', 'color-depth': '8', timezone: 'UTC',
    });
    b.send('connect', 'VERSION_1_5_0', 'evil.example');
    b.send('argv', '1', 'text/plain', 'disable-copy');
    b.send('select', 'ssh');
    await browserFlush(b, conn, '5');
    expect(conn.args).toMatchObject({
      hostname: '10.9.8.7', security: 'nla', 'ignore-cert': 'false', 'disable-copy': 'true', 'disable-paste': 'true', 'enable-drive': 'false',
      'color-depth': '', timezone: '',
    });
    expect(conn.received.map((i) => i[0])).not.toContain('connect');
    expect(conn.received.map((i) => i[0])).not.toContain('argv');
    expect(conn.received.map((i) => i[0])).not.toContain('select');
  });
});
