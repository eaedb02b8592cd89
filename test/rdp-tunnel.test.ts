import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Computer } from '../core/domain.js';
import { CoreErrors, JitgateError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { GuacdCapabilities } from '../gateway/rdp/guacd-capabilities.js';
import { checkGuacd, preconnectGuacd } from '../gateway/rdp/guacd-client.js';
import type { Credentials } from '../provisioner/jit-account.service.js';
import { pino } from 'pino';
import { generatePassword } from '../provisioner/account-names.js';
import { SshAccountStore } from '../provisioner/stores/ssh.store.js';
import { startXrdpHost, xrdpHostAvailable, type XrdpHostHandle } from './harness/xrdp-host.js';
import { openGuacBrowser as openBrowser, until, type GuacBrowser } from './harness/guac-browser.js';
import { FixedBroker, GUACD_1_5_RDP_ARGS, GUACD_RDP_ARGS, SlotRecorder, startGuacdPeer, startRdpTestApp, type GuacdPeer } from './harness/guacd-peer.js';

/**
 * The RDP websocket tunnel end to end against the Guacamole test peer: the
 * browser side is a real websocket client whose frames are parsed by
 * guacamole-common-js's own Guacamole.Parser (UTF-16 lengths, as in the
 * browser); the guacd side is the peer, which checks the handshake.
 */


const PASSWORD = 'Pw;1,x.😀-ü';
const CREDS: Credentials = { username: 'alice_k3x9q2', password: new Secret(PASSWORD), domain: 'CORP' };
const FP = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89';

function computer(policy: Record<string, unknown> = {}): Computer {
  return {
    id: 'c1', organizationId: 'o1', name: 'win01', address: '10.9.8.7', protocols: ['rdp'], sshPort: 22, rdpPort: 3390,
    domainStore: 'ad', localStore: null, jit: {}, policy, restricted: false,
  };
}



const jitgate = (b: GuacBrowser, kind: string): string[][] => b.instructions.filter((i) => i[0] === 'jitgate' && i[1] === kind);
const Q = { computer: 'win01', accountType: 'domain', width: '1280', height: '720', dpi: '120', csrf: 'good' };

describe('RDP tunnel against the Guacamole test peer', () => {
  let recDir: string;
  let peer: GuacdPeer;
  const cleanups: (() => Promise<unknown> | void)[] = [];

  beforeAll(async () => {
    recDir = mkdtempSync(join(tmpdir(), 'jitgate-rdp-'));
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(() => rmSync(recDir, { recursive: true, force: true }));

  async function setup(policy: Record<string, unknown> = {}, peerOpts: Parameters<typeof startGuacdPeer>[0] = {}) {
    peer = await startGuacdPeer(peerOpts);
    cleanups.push(() => peer.close());
    const broker = new FixedBroker(computer(policy), CREDS);
    const recorder = new SlotRecorder(recDir, () => peer.connections.every((c) => c.hungUp || c.closed));
    const t = await startRdpTestApp({ broker, recorder, guacd: { host: peer.host, port: peer.port }, guacdTimeoutMs: 10_000 });
    cleanups.push(() => t.app.close());
    return { broker, recorder, ...t };
  }

  it('provisions, hands guacd exactly the broker credentials and the policy, relays both ways, and never shows the password', async () => {
    const { broker, recorder, wsUrl } = await setup(
      { rdpSecurity: 'tls', rdpCertFingerprint: FP },
      { extra: [['x-test', 'héllo 😀 wörld 👨‍👩‍👧']] },
    );
    const b = await openBrowser(wsUrl, Q);
    expect(b.ws.protocol).toBe('guacamole');
    // Internal opcode "" with the tunnel UUID comes first (WebSocketTunnel sets its uuid from it).
    expect(b.instructions[0]?.[0]).toBe('');
    expect(b.instructions[0]?.[1]).toMatch(/^[0-9a-f-]{36}$/);

    await until(() => jitgate(b, 'ready').length > 0, 'ready');
    const conn = await peer.waitFor(() => peer.connections[0], 5000, 'connection');
    expect(conn.problems).toEqual([]);
    expect(conn.selected).toBe('rdp');
    expect(conn.version).toBe('VERSION_1_5_0');
    expect(conn.handshake.map((h) => h[0])).toEqual(['size', 'audio', 'video', 'image']);
    expect(conn.handshake[0]).toEqual(['size', '1280', '720', '120']);
    expect(Object.keys(conn.args)).toEqual([...GUACD_RDP_ARGS]);
    const slot = recorder.slots[0];
    expect(slot?.meta).toMatchObject({ personLogin: 'alice', computerName: 'win01', account: 'alice_k3x9q2', protocol: 'rdp' });
    expect(conn.args).toMatchObject({
      hostname: '10.9.8.7', port: '3390', username: 'alice_k3x9q2', password: PASSWORD, domain: 'CORP',
      security: 'tls', 'ignore-cert': 'false', 'cert-fingerprints': `sha256:${FP.toLowerCase()}`,
      'disable-copy': 'true', 'disable-paste': 'true', 'enable-drive': 'false', 'enable-printing': 'false', 'drive-path': '',
      'recording-path': slot?.guacdPath, 'recording-name': slot?.guacdName, 'create-recording-path': 'true', 'recording-include-keys': 'false',
      'resize-method': 'display-update',
    });
    expect(broker.requests[0]).toMatchObject({ computerRef: 'win01', protocol: 'rdp', accountType: 'domain', via: 'web' });

    // Progress before guacd, in order.
    expect(jitgate(b, 'progress').map((i) => i[2])).toEqual(['creating account…', 'adding to JIT Admins…', 'connecting to win01…']);
    expect(jitgate(b, 'ready')[0]?.slice(3, 5)).toEqual(['win01', '0']);
    // the lease end, for the browser's lease bar
    expect(jitgate(b, 'ready')[0]?.[5]).toBe(broker.opened[0]!.session.leaseExpiresAt.toISOString());

    // guacd → browser: the drawing and a non-ASCII instruction, re-encoded with UTF-16 lengths.
    await until(() => b.instructions.find((i) => i[0] === 'x-test'), 'x-test');
    expect(b.instructions.find((i) => i[0] === 'x-test')).toEqual(['x-test', 'héllo 😀 wörld 👨‍👩‍👧']);
    expect(b.instructions.filter((i) => ['size', 'img', 'blob', 'end', 'sync'].includes(i[0] as string)).map((i) => i[0])).toEqual(['size', 'img', 'blob', 'end', 'sync']);
    await until(() => broker.opened[0]?.loggedInCalls === 1, 'loggedIn after the first frame');

    // browser → guacd: keys, an astral string, pings echoed; clipboard and argv dropped (not allowed / never).
    b.send('', 'ping', '1700000000000');
    b.send('clipboard', '1', 'text/plain');
    b.send('argv', '2', 'text/plain', 'password');
    b.send('x-echo', 'ünï 😀 𝄞');
    b.send('key', '65307', '1');
    await until(() => conn.received.find((i) => i[0] === 'key'), 'key at the peer');
    expect(conn.received.find((i) => i[0] === 'x-echo')).toEqual(['x-echo', 'ünï 😀 𝄞']);
    expect(conn.received.find((i) => i[0] === 'key')).toEqual(['key', '65307', '1']);
    expect(conn.received.map((i) => i[0])).not.toContain('clipboard');
    expect(conn.received.map((i) => i[0])).not.toContain('argv');
    expect(conn.received.map((i) => i[0])).not.toContain('');
    await until(() => b.instructions.find((i) => i[0] === '' && i[1] === 'ping'), 'ping echo');
    expect(b.instructions.find((i) => i[0] === '' && i[1] === 'ping')).toEqual(['', 'ping', '1700000000000']);

    // Close from the browser: guacd disconnected, recording indexed after guacd is gone, teardown ran.
    b.send('disconnect');
    const closed = await b.closed;
    expect(closed.code).toBe(1000);
    await until(() => broker.opened[0]?.ended.length === 1, 'end()');
    expect(conn.received.at(-1)).toEqual(['disconnect']);
    expect(conn.closed).toBe(true);
    expect(slot?.closedAt).not.toBeNull();
    expect(slot?.peerClosedAtClose).toBe(true);
    expect(broker.opened[0]?.ended).toEqual(['closed by the person']);

    const all = b.frames.join('');
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain('Pw;1');
    expect(all).not.toContain(CREDS.username);
  });

  it('lets clipboard, drive and printing through only when the policy allows them', async () => {
    const { wsUrl } = await setup({ clipboard: true, drive: true, printing: true, rdpIgnoreCert: true, rdpSecurity: 'any' });
    const b = await openBrowser(wsUrl, { ...Q, accountType: 'local' });
    await until(() => jitgate(b, 'ready').length > 0, 'ready');
    const conn = peer.connections[0]!;
    expect(conn.args).toMatchObject({
      'disable-copy': 'false', 'disable-paste': 'false', 'enable-drive': 'true', 'enable-printing': 'true', 'create-drive-path': 'true',
      'ignore-cert': 'true', 'cert-fingerprints': '', security: 'any',
    });
    expect(conn.args['drive-path']).toMatch(/^\/var\/lib\/guacd\/drives\/[0-9a-f-]{36}$/);
    expect(jitgate(b, 'ready')[0]?.[4]).toBe('1');
    b.send('clipboard', '1', 'text/plain');
    b.send('key', '97', '1');
    await until(() => conn.received.find((i) => i[0] === 'key'), 'key');
    expect(conn.received.map((i) => i[0])).toContain('clipboard');
    b.ws.close();
  });

  it('refuses without a principal (4001), with a bad CSRF token (4003) or a bad request (4014), before provisioning', async () => {
    const { broker, wsUrl } = await setup();
    const anon = await openBrowser(wsUrl, Q, { 'x-test-anon': '1' });
    expect(await anon.closed).toEqual({ code: 4001, reason: String(0x0301) });
    expect(jitgate(anon, 'error')[0]?.[2]).toBe('JIT_ERR_AUTH_REQUIRED');
    const csrf = await openBrowser(wsUrl, { ...Q, csrf: 'bad' });
    expect((await csrf.closed).code).toBe(4003);
    const bad = await openBrowser(wsUrl, { ...Q, width: '99999' });
    expect((await bad.closed).code).toBe(4014);
    const noComputer = await openBrowser(wsUrl, { csrf: 'good' });
    expect((await noComputer.closed).code).toBe(4014);
    expect(broker.requests).toEqual([]);
    expect(peer.connections).toEqual([]);
  });

  it('reports an access denial from the broker (4003) and never contacts guacd', async () => {
    const { broker, wsUrl } = await setup();
    broker.steps = [];
    broker.denyWith = new JitgateError(CoreErrors.JIT_ERR_ACCESS_DENIED, { computer: 'win01' });
    const b = await openBrowser(wsUrl, Q);
    expect((await b.closed).code).toBe(4003);
    expect(jitgate(b, 'error')[0]?.slice(2)).toEqual(['JIT_ERR_ACCESS_DENIED', 'you do not have access to win01']);
    expect(peer.connections).toEqual([]);
  });

  it('an admin terminate and a lease expiry close both sides and run teardown', async () => {
    const { broker, recorder, wsUrl } = await setup();
    for (const [reason, code] of [['terminated', 4012], ['lease-expired', 4013]] as const) {
      const b = await openBrowser(wsUrl, Q);
      await until(() => jitgate(b, 'ready').length > 0, 'ready');
      const o = broker.opened.at(-1)!;
      const conn = peer.connections.at(-1)!;
      o.fireTerminate(reason, 'admin:bob');
      expect((await b.closed).code).toBe(code);
      await until(() => o.ended.length === 1, 'end()');
      expect(o.ended[0]).toBe(reason === 'terminated' ? 'terminated by admin:bob' : 'lease expired');
      await peer.waitFor(() => conn.closed, 5000, 'guacd connection closed');
      expect(conn.received.at(-1)).toEqual(['disconnect']);
      expect(recorder.slots.at(-1)?.closedAt).not.toBeNull();
      // guacd accepted this one: its file is expected, so the slot is closed normally.
      expect(recorder.slots.at(-1)?.neverStarted).toBeNull();
    }
  });

  it('ends the session when guacd goes away', async () => {
    const { broker, wsUrl } = await setup();
    const b = await openBrowser(wsUrl, Q);
    await until(() => jitgate(b, 'ready').length > 0, 'ready');
    await peer.close();
    expect((await b.closed).code).toBe(1000);
    await until(() => broker.opened[0]?.ended.length === 1, 'end()');
  });

  it('guacd unreachable (4011), guacd refusing the connection, guacd without a required parameter: teardown still runs', async () => {
    // Unreachable: a port nobody listens on.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const deadPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    // Unreachable already when asked for its capabilities: refused before anything is provisioned.
    const early = new FixedBroker(computer(), CREDS);
    const earlyRec = new SlotRecorder(recDir);
    const t0 = await startRdpTestApp({ broker: early, recorder: earlyRec, guacd: { host: '127.0.0.1', port: deadPort } });
    cleanups.push(() => t0.app.close());
    const b0 = await openBrowser(t0.wsUrl, Q);
    expect((await b0.closed).code).toBe(4011);
    expect(jitgate(b0, 'error')[0]?.[2]).toBe('JIT_ERR_RDP_GUACD_UNREACHABLE');
    expect(early.provisioned).toBe(0);
    expect(earlyRec.slots).toEqual([]);

    // Gone between the capability probe (a cached answer) and the handshake: provisioned, then torn down.
    const broker = new FixedBroker(computer(), CREDS);
    const recorder = new SlotRecorder(recDir);
    const capabilities = new GuacdCapabilities({ host: '127.0.0.1', port: deadPort }, { probe: async () => ({ version: 'VERSION_1_5_0', names: GUACD_RDP_ARGS }) });
    const t = await startRdpTestApp({ broker, recorder, guacd: { host: '127.0.0.1', port: deadPort }, capabilities });
    cleanups.push(() => t.app.close());
    const b = await openBrowser(t.wsUrl, Q);
    expect((await b.closed).code).toBe(4011);
    expect(jitgate(b, 'error')[0]?.[2]).toBe('JIT_ERR_RDP_GUACD_UNREACHABLE');
    await until(() => broker.opened[0]?.ended.length === 1, 'end()');
    expect(recorder.slots[0]?.closedAt).not.toBeNull();
    // guacd never accepted: the slot is closed as never started (not as a recording whose file went missing).
    expect(recorder.slots[0]?.neverStarted).toBe('connection failed');

    const refused = await setup({}, { failConnect: { message: 'Upstream not found', status: 0x0207 } });
    const b2 = await openBrowser(refused.wsUrl, Q);
    expect((await b2.closed).code).toBe(4011);
    // guacd's status in words with a hint (the computer's default security is NLA); details in their own describe block.
    expect(jitgate(b2, 'error')[0]?.slice(2)).toEqual([
      'JIT_ERR_RDP_REMOTE_FAILED',
      'the remote desktop of win01 did not open: the computer could not be reached or refused the security negotiation. This computer may not support NLA: ask an admin to set RDP security to TLS. (guacd: 0x0207 UPSTREAM_NOT_FOUND, "Upstream not found")',
    ]);
    await until(() => refused.broker.opened[0]?.ended.length === 1, 'end()');
    expect(refused.recorder.slots[0]?.neverStarted).toBe('connection failed (JIT_ERR_RDP_REMOTE_FAILED, guacd 0x0207 UPSTREAM_NOT_FOUND)');

    const old = await setup({}, { rdpArgs: GUACD_RDP_ARGS.filter((a) => a !== 'disable-copy' && a !== 'disable-paste') });
    const b3 = await openBrowser(old.wsUrl, Q);
    expect((await b3.closed).code).toBe(4011);
    expect(jitgate(b3, 'error')[0]?.[2]).toBe('JIT_ERR_RDP_GUACD_UNSUPPORTED');
    // The peer never got a connect (only the capability probe): nothing was sent with the clipboard silently on.
    await peer.waitFor(() => peer.probes.length === 1, 5000, 'probe ended');
    expect(peer.connections).toEqual([]);
    expect(old.broker.provisioned).toBe(0);
  });

  it('a pinned certificate on a guacd without cert-fingerprints (1.5.x) is refused before anything is provisioned', async () => {
    const { broker, recorder, wsUrl } = await setup({ rdpSecurity: 'tls', rdpCertFingerprint: FP }, { rdpArgs: GUACD_1_5_RDP_ARGS });
    const b = await openBrowser(wsUrl, Q);
    expect((await b.closed).code).toBe(4011);
    expect(jitgate(b, 'error')[0]?.slice(2)).toEqual([
      'JIT_ERR_RDP_GUACD_UNSUPPORTED', 'guacd does not support the parameter cert-fingerprints that the policy of win01 needs; refusing to connect',
    ]);
    // Access was checked (the request reached the broker), but no account, no session, no recording slot.
    expect(broker.requests).toHaveLength(1);
    expect(broker.provisioned).toBe(0);
    expect(broker.opened).toEqual([]);
    expect(recorder.slots).toEqual([]);
    expect(jitgate(b, 'progress')).toEqual([]);
    // guacd was only asked for its args (select rdp), never sent a connect.
    await peer.waitFor(() => peer.probes.length === 1, 5000, 'probe ended');
    expect(peer.probes.map((c) => [c.selected, c.args])).toEqual([['rdp', {}]]);
    expect(peer.connections).toEqual([]);
  });

  it('the same 1.5.x guacd serves a computer that pins nothing; the capability probe is cached', async () => {
    const { broker, wsUrl } = await setup({ rdpSecurity: 'tls', rdpIgnoreCert: true }, { rdpArgs: GUACD_1_5_RDP_ARGS });
    for (let i = 0; i < 2; i++) {
      const b = await openBrowser(wsUrl, Q);
      await until(() => jitgate(b, 'ready').length > 0, 'ready');
      b.ws.close();
      await until(() => broker.opened[i]?.ended.length === 1, 'end()');
    }
    expect(peer.connections.map((c) => Object.keys(c.args))).toEqual([[...GUACD_1_5_RDP_ARGS], [...GUACD_1_5_RDP_ARGS]]);
    expect(peer.connections[0]?.args['cert-fingerprints']).toBeUndefined();
    // One probe (select rdp, args, hang up) for both sessions.
    expect(peer.probes).toHaveLength(1);
  });

  it('domain accounts log in as domain=<NETBIOS> + the plain sAMAccountName, or as the UPN without a NetBIOS domain; local accounts carry no domain', async () => {
    const { broker, wsUrl } = await setup();
    broker.localCredentials = { username: 'jit_loc7', password: new Secret('Local;pw') };
    const d = await openBrowser(wsUrl, { ...Q, accountType: 'domain' });
    await until(() => jitgate(d, 'ready').length > 0, 'ready (domain)');
    expect(peer.connections.at(-1)?.args).toMatchObject({ domain: 'CORP', username: 'alice_k3x9q2' });
    d.ws.close();
    const l = await openBrowser(wsUrl, { ...Q, accountType: 'local' });
    await until(() => jitgate(l, 'ready').length > 0, 'ready (local)');
    expect(peer.connections.at(-1)?.args).toMatchObject({ domain: '', username: 'jit_loc7' });
    l.ws.close();

    // A directory store without a NetBIOS domain: the account's UPN, domain left empty.
    const upnBroker = new FixedBroker(computer(), { username: 'alice_k3x9q2', password: new Secret(PASSWORD), upn: 'alice_k3x9q2@corp.example' });
    const t = await startRdpTestApp({ broker: upnBroker, recorder: new SlotRecorder(recDir), guacd: { host: peer.host, port: peer.port } });
    cleanups.push(() => t.app.close());
    const u = await openBrowser(t.wsUrl, Q);
    await until(() => jitgate(u, 'ready').length > 0, 'ready (upn)');
    expect(peer.connections.at(-1)?.args).toMatchObject({ domain: '', username: 'alice_k3x9q2@corp.example' });
    u.ws.close();
  });

  it('ends the session when guacd asks for credentials (ours refused), without asking the person', async () => {
    const { broker, wsUrl } = await setup({}, { extra: [['required', 'username', 'password']] });
    const b = await openBrowser(wsUrl, Q);
    expect((await b.closed).code).toBe(4011);
    expect(jitgate(b, 'error')[0]?.slice(2)).toEqual(['JIT_ERR_RDP_GUACD_ERROR', 'guacd reported an error (required): the computer did not accept the session account']);
    expect(b.instructions.map((i) => i[0])).not.toContain('required');
    await until(() => broker.opened[0]?.ended.length === 1, 'end()');
    expect(broker.opened[0]?.ended).toEqual(['login refused']);
  });

  it('a browser leaving during provisioning ends the session and drops the early guacd connection (only select was sent)', async () => {
    const { broker, wsUrl } = await setup();
    let release!: () => void;
    broker.gate = new Promise<void>((r) => (release = r));
    const b = await openBrowser(wsUrl, Q);
    await until(() => jitgate(b, 'progress').length === 2, 'progress');
    b.ws.close();
    await b.closed;
    release();
    await until(() => broker.opened[0]?.ended.length === 1, 'end()');
    // The early connection (select → args) is hung up without a handshake instruction: the peer files it with the probes.
    await peer.waitFor(() => peer.connections.length === 0 && peer.probes.length === 2 && peer.probes.every((c) => c.closed), 5000, 'early connection dropped');
    expect(peer.probes.map((c) => [c.selected, c.handshake, c.args])).toEqual([['rdp', [], {}], ['rdp', [], {}]]);
  });

  it('works when guacd writes one byte at a time (UTF-8 and instructions split across TCP chunks)', async () => {
    const { wsUrl } = await setup({}, { chunkBytes: 1, extra: [['x-test', 'ä😀𝄞']] });
    const b = await openBrowser(wsUrl, Q);
    await until(() => b.instructions.find((i) => i[0] === 'x-test'), 'x-test', 40_000);
    expect(b.instructions.find((i) => i[0] === 'x-test')).toEqual(['x-test', 'ä😀𝄞']);
    expect(b.instructions.find((i) => i[0] === 'blob')?.[2]?.length).toBeGreaterThan(50);
    b.ws.close();
  });

  it('stops reading guacd while the browser does not read (bounded memory), then delivers everything in order', async () => {
    const { app, wsUrl } = await setup();
    const ws = new WebSocket(`${wsUrl}?${new URLSearchParams(Q).toString()}`, 'guacamole');
    let received = 0;
    let blobs = 0;
    let done = false;
    let ready = false;
    ws.on('message', (d: Buffer) => {
      const t = d.toString('utf8');
      received += t.length;
      if (t.includes('7.jitgate,5.ready')) ready = true;
      blobs += t.split('4.blob,1.1,60000.').length - 1;
      if (t.includes('6.x-done')) done = true;
    });
    await until(() => ready, 'ready');
    // The gateway's side of this websocket: what it holds for the browser.
    const serverSide = [...(app.websocketServer.clients as Set<WebSocket>)][0]!;
    const conn = peer.connections[0]!;
    ws.pause();
    const chunk = 'A'.repeat(60_000);
    const N = 700; // 42 MB
    for (let i = 0; i < N; i++) conn.send('blob', '1', chunk);
    conn.send('x-done', 'end');
    // For 3 s the gateway keeps at most ~1 MiB (high-water mark + one TCP read) waiting for the browser;
    // the rest stays queued at guacd's side. Without backpressure it would buffer all 42 MB itself.
    await until(() => serverSide.bufferedAmount > 0, 'gateway started sending');
    let maxBuffered = 0;
    for (const end = Date.now() + 3000; Date.now() < end; ) {
      maxBuffered = Math.max(maxBuffered, serverSide.bufferedAmount);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(maxBuffered).toBeLessThan(2 * 1024 * 1024);
    expect(conn.backlog()).toBeGreaterThan(20_000_000);
    const before = received;
    ws.resume();
    await until(() => done, 'all data', 60_000);
    expect(blobs).toBe(N);
    expect(received).toBeGreaterThan(before + 20_000_000);
    ws.close();
  }, 90_000);

  it('does not close an idle tunnel (guacamole-lite closes after 10 s of client silence)', async () => {
    const { broker, wsUrl } = await setup();
    const b = await openBrowser(wsUrl, Q);
    await until(() => jitgate(b, 'ready').length > 0, 'ready');
    await new Promise((r) => setTimeout(r, 12_000));
    expect(b.ws.readyState).toBe(WebSocket.OPEN);
    expect(peer.connections[0]?.closed).toBe(false);
    expect(broker.opened[0]?.ended).toEqual([]);
    b.ws.close();
  }, 40_000);
});

/**
 * Issue 13 item 2: guacd 1.5 answers `ready` before FreeRDP connects, so a
 * server without NLA (or refusing the account) shows up as an `error` after
 * `ready` and before the first `sync`, then a close. The person must read why
 * (guacd's status in words, a hint that depends on the computer's RDP
 * security), the end reason (audited with session.ended) carries the code,
 * and the JIT account is torn down.
 */
describe('RDP tunnel: the guacd handshake overlaps provisioning', () => {
  let recDir: string;
  const cleanups: (() => Promise<unknown> | void)[] = [];
  beforeAll(() => {
    recDir = mkdtempSync(join(tmpdir(), 'jitgate-rdp-early-'));
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(() => rmSync(recDir, { recursive: true, force: true }));

  /** Provisioning held until `release()`; capabilities known (no probe connection), so every peer connection is the tunnel's. */
  async function held() {
    const peer = await startGuacdPeer();
    cleanups.push(() => peer.close());
    const broker = new FixedBroker(computer(), CREDS);
    let release!: () => void;
    broker.gate = new Promise<void>((r) => (release = r));
    const recorder = new SlotRecorder(recDir);
    const capabilities = new GuacdCapabilities({ host: peer.host, port: peer.port }, { probe: async () => ({ version: 'VERSION_1_5_0', names: GUACD_RDP_ARGS }) });
    const t = await startRdpTestApp({ broker, recorder, guacd: { host: peer.host, port: peer.port }, capabilities });
    cleanups.push(() => t.app.close());
    const b = await openBrowser(t.wsUrl, Q);
    // While provisioning is held: guacd already got `select` (and answered `args`, which the peer does on `select`).
    const early = await peer.waitFor(() => peer.connections[0]?.selected === 'rdp' && peer.connections[0], 5000, 'select during provisioning');
    expect(broker.provisioned).toBe(1);
    expect(broker.opened).toEqual([]);
    expect(recorder.slots).toEqual([]);
    // Nothing that carries parameters yet: no size…connect, no credentials.
    expect(early.handshake).toEqual([]);
    expect(early.args).toEqual({});
    return { peer, broker, recorder, b, early, release };
  }

  it('guacd has select → args before provisioning is released, and connect (with the credentials) only after, on that same connection', async () => {
    const { peer, broker, b, early, release } = await held();
    release();
    await until(() => jitgate(b, 'ready').length > 0, 'ready');
    expect(peer.connections).toEqual([early]);
    expect(peer.probes).toEqual([]);
    expect(early.problems).toEqual([]);
    expect(early.handshake.map((h) => h[0])).toEqual(['size', 'audio', 'video', 'image']);
    expect(early.args).toMatchObject({ username: 'alice_k3x9q2', password: PASSWORD, domain: 'CORP' });
    await until(() => broker.opened[0]?.loggedInCalls === 1, 'first frame');
    b.ws.close();
    await until(() => broker.opened[0]?.ended.length === 1, 'end()');
  });

  it('a provisioning failure closes the early guacd connection, which never got more than select', async () => {
    const { peer, broker, b, early, release } = await held();
    broker.failWith = new Error('provisioning failed');
    release();
    expect((await b.closed).code).toBe(4010);
    await peer.waitFor(() => early.closed, 5000, 'early connection closed');
    expect(early.handshake).toEqual([]);
    expect(early.args).toEqual({});
    expect(peer.connections).toEqual([]);
    expect(peer.probes).toEqual([early]);
  });

  it('guacd dropping the waiting connection (its handshake timeout) costs one fresh connection, not the session', async () => {
    const { peer, broker, b, early, release } = await held();
    early.hangUp();
    await peer.waitFor(() => early.closed, 5000, 'early connection dropped by guacd');
    release();
    await until(() => jitgate(b, 'ready').length > 0 || jitgate(b, 'error').length > 0, 'ready or error');
    expect(jitgate(b, 'error')).toEqual([]);
    expect(peer.connections).toHaveLength(2);
    expect(early.args).toEqual({});
    expect(peer.connections[1]?.problems).toEqual([]);
    expect(peer.connections[1]?.args).toMatchObject({ username: 'alice_k3x9q2', password: PASSWORD });
    b.ws.close();
    await until(() => broker.opened[0]?.ended.length === 1, 'end()');
  });

  it('an early connection older than guacd\'s handshake timeout allows is replaced before connect, not used', async () => {
    const peer = await startGuacdPeer();
    cleanups.push(() => peer.close());
    // staleMs 0: every early connection counts as about to be dropped (the default is 10 s, under guacd's 15 s).
    const pending = preconnectGuacd({ host: peer.host, port: peer.port }, { protocol: 'rdp', staleMs: 0 });
    expect(await pending.waiting()).toBe(true);
    const conn = await pending.complete({ params: { username: 'u1' }, required: new Set(), computerName: 'win01', size: { width: 800, height: 600, dpi: 96 } });
    conn.close();
    expect(peer.connections.at(-1)?.args.username).toBe('u1');
    // The replaced one was hung up after select → args, never sent a handshake instruction: the peer files it with the probes.
    await peer.waitFor(() => peer.probes.length === 1, 5000, 'stale connection dropped');
    expect(peer.probes.map((c) => [c.selected, c.handshake, c.args])).toEqual([['rdp', [], {}]]);
    expect(peer.connections).toHaveLength(1);
  });
});

describe('RDP tunnel: guacd gives up before the first frame', () => {
  let recDir: string;
  const cleanups: (() => Promise<unknown> | void)[] = [];
  beforeAll(() => {
    recDir = mkdtempSync(join(tmpdir(), 'jitgate-rdp-fail-'));
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(() => rmSync(recDir, { recursive: true, force: true }));

  async function failing(policy: Record<string, unknown>, failAfterReady: { message: string; status: number | null }) {
    const peer = await startGuacdPeer({ failAfterReady });
    cleanups.push(() => peer.close());
    const broker = new FixedBroker(computer(policy), CREDS);
    const recorder = new SlotRecorder(recDir);
    const t = await startRdpTestApp({ broker, recorder, guacd: { host: peer.host, port: peer.port } });
    cleanups.push(() => t.app.close());
    const b = await openBrowser(t.wsUrl, Q);
    const closed = await b.closed;
    await until(() => broker.opened[0]?.ended.length === 1, 'end()');
    return { b, closed, broker, recorder, peer };
  }

  it('NLA against a server without NLA (guacd 1.5: UPSTREAM_NOT_FOUND): words, the NLA hint, the code in the end reason, teardown', async () => {
    const { b, closed, broker, recorder, peer } = await failing({}, { message: 'Security negotiation failed (wrong security type?)', status: 0x0207 });
    expect(jitgate(b, 'ready')).toHaveLength(1);
    expect(closed.code).toBe(4011);
    const [code, message] = jitgate(b, 'error')[0]!.slice(2);
    expect(code).toBe('JIT_ERR_RDP_REMOTE_FAILED');
    expect(message).toBe(
      'the remote desktop of win01 did not open: the computer could not be reached or refused the security negotiation. ' +
        'This computer may not support NLA: ask an admin to set RDP security to TLS. ' +
        '(guacd: 0x0207 UPSTREAM_NOT_FOUND, "Security negotiation failed (wrong security type?)")',
    );
    // guacd's bare `error` is not relayed: Guacamole.Client would drop the tunnel on it before our words arrive.
    expect(b.instructions.map((i) => i[0])).not.toContain('error');
    expect(broker.opened[0]?.ended).toEqual(['connection failed (JIT_ERR_RDP_REMOTE_FAILED, guacd 0x0207 UPSTREAM_NOT_FOUND)']);
    // Nothing was drawn: the password is not released as if logged in.
    expect(broker.opened[0]?.loggedInCalls).toBe(0);
    expect(recorder.slots[0]?.closedAt).not.toBeNull();
    expect(peer.connections[0]?.problems).toEqual([]);
    expect(b.frames.join('')).not.toContain(PASSWORD);
  });

  it('credentials refused (CLIENT_UNAUTHORIZED): says the just-in-time account was refused; the hint follows the security mode', async () => {
    const nla = await failing({}, { message: 'Authentication failure.', status: 0x0301 });
    expect(nla.closed.code).toBe(4011);
    expect(jitgate(nla.b, 'error')[0]?.slice(2)).toEqual([
      'JIT_ERR_RDP_LOGIN_REFUSED',
      "win01 refused the session's just-in-time account (the computer refused the credentials). " +
        'If it keeps happening, this computer may not support NLA: ask an admin to set RDP security to TLS, or to check that the account may sign in through Remote Desktop there. ' +
        '(guacd: 0x0301 CLIENT_UNAUTHORIZED, "Authentication failure.")',
    ]);
    expect(nla.broker.opened[0]?.ended).toEqual(['connection failed (JIT_ERR_RDP_LOGIN_REFUSED, guacd 0x0301 CLIENT_UNAUTHORIZED)']);
    // The account name stays out of the browser (as everywhere in the tunnel).
    expect(nla.b.frames.join('')).not.toContain(CREDS.username);

    const tls = await failing({ rdpSecurity: 'tls' }, { message: 'Authentication failure.', status: 0x0301 });
    const tlsMessage = jitgate(tls.b, 'error')[0]?.[3] ?? '';
    expect(tlsMessage).toContain("refused the session's just-in-time account");
    expect(tlsMessage).not.toContain('NLA');
  });

  it('TLS computer unreachable: no NLA hint, a Remote Desktop / certificate hint instead', async () => {
    const { b } = await failing({ rdpSecurity: 'tls' }, { message: 'Connection failed.', status: 0x0207 });
    const message = jitgate(b, 'error')[0]?.[3] ?? '';
    expect(jitgate(b, 'error')[0]?.[2]).toBe('JIT_ERR_RDP_REMOTE_FAILED');
    expect(message).not.toContain('NLA');
    expect(message).toContain('Ask an admin to check that Remote Desktop is enabled on it and reachable from guacd');
  });

  it('guacd closes after ready without any error: still explained, never a bare "session ended"', async () => {
    const { b, closed, broker } = await failing({}, { message: '', status: null });
    expect(closed.code).toBe(4011);
    expect(jitgate(b, 'error')[0]?.slice(2)).toEqual([
      'JIT_ERR_RDP_REMOTE_FAILED',
      'the remote desktop of win01 did not open: the connection closed before anything was shown. ' +
        'This computer may not support NLA: ask an admin to set RDP security to TLS. (guacd: closed without a reason)',
    ]);
    expect(broker.opened[0]?.ended).toEqual(['connection failed (JIT_ERR_RDP_REMOTE_FAILED, guacd closed without a reason)']);
  });
});

describe('checkGuacd', () => {
  it('reports version and offered protocols from select/args; unreachable and rdp-less guacd are not ok', async () => {
    const peer = await startGuacdPeer({ protocols: ['rdp', 'ssh', 'telnet'] });
    try {
      expect(await checkGuacd({ host: peer.host, port: peer.port })).toEqual({
        ok: true, address: `${peer.host}:${peer.port}`, version: 'VERSION_1_5_0', protocols: ['rdp', 'ssh', 'telnet'],
      });
      await peer.waitFor(() => peer.probes.length === 5, 5000, 'probes ended');
      expect(peer.probes.map((c) => c.selected).sort()).toEqual(['kubernetes', 'rdp', 'ssh', 'telnet', 'vnc']);
    } finally {
      await peer.close();
    }
    const noRdp = await startGuacdPeer({ protocols: ['vnc'] });
    try {
      expect(await checkGuacd({ host: noRdp.host, port: noRdp.port })).toMatchObject({ ok: false, protocols: ['vnc'], error: 'guacd does not offer rdp' });
    } finally {
      await noRdp.close();
    }
    const r = await checkGuacd({ host: '127.0.0.1', port: noRdp.port });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/cannot reach guacd at 127\.0\.0\.1:\d+: ECONNREFUSED/);
  });
});

/**
 * Against a real guacd when one is reachable (GUACD_HOST, GUACD_PORT): guacd
 * is not packaged for Debian and there is no Docker engine here, so this
 * runs only where someone provides one (e.g. `docker run -p 4822:4822 guacamole/guacd`).
 */
const GUACD_HOST = process.env.GUACD_HOST;
describe.skipIf(!GUACD_HOST)('against a real guacd (GUACD_HOST)', () => {
  const addr = { host: GUACD_HOST ?? '', port: Number(process.env.GUACD_PORT ?? 4822) };
  it('checkGuacd sees rdp and a VERSION_ in args', async () => {
    const r = await checkGuacd(addr);
    expect(r.ok).toBe(true);
    expect(r.version).toMatch(/^VERSION_1_\d+_\d+$/);
    expect(r.protocols).toContain('rdp');
  });
  // The namespace xrdp target (scripts/xrdp-host.sh): sshd + xrdp, so the JIT
  // account is a real Linux account created over sshd by the SSH store.
  // guacd must be able to route to the namespace address (guacd on this
  // machine, or a container whose traffic this machine forwards).
  const xrdp = xrdpHostAvailable();
  it.skipIf(!xrdp.ok)(`reaches a real desktop on the namespace xrdp target: first sync and img after the JIT account logs in${xrdp.ok ? '' : ` (skipped: ${xrdp.reason ?? ''})`}`, async () => {
    const host: XrdpHostHandle = await startXrdpHost();
    const store = new SshAccountStore({
      host: host.address, port: host.port, username: host.adminUser, privateKey: host.adminPrivateKey,
      hostKeySha256: host.hostKeySha256, groups: {}, logger: pino({ level: 'silent' }),
    });
    const dir = mkdtempSync(join(tmpdir(), 'jitgate-rdp-xrdp-'));
    try {
      const name = `jgx${String(Date.now() % 1e8)}`;
      const password = generatePassword(name);
      await store.create({ name, password, marker: `jitgate:rdp-tunnel-test:${name}`, expiresAt: new Date(Date.now() + 3_600_000) });
      // xrdp 0.9 speaks TLS, not NLA. Pin its certificate where guacd can (cert-fingerprints: guacd 1.6+).
      const caps = await checkGuacd(addr);
      const pin = /^VERSION_1_[6-9]_|^VERSION_[2-9]_/.test(caps.version ?? '');
      const policy = pin ? { rdpSecurity: 'tls', rdpCertFingerprint: host.rdpCertSha256 } : { rdpSecurity: 'tls', rdpIgnoreCert: true };
      const broker = new FixedBroker({ ...computer(policy), address: host.address, rdpPort: host.rdpPort }, { username: name, password: new Secret(password) });
      const t = await startRdpTestApp({ broker, recorder: new SlotRecorder(dir), guacd: addr });
      try {
        const b = await openBrowser(t.wsUrl, Q);
        await until(() => b.instructions.some((i) => i[0] === 'img') && b.instructions.some((i) => i[0] === 'sync'), 'first img and sync from the xrdp desktop', 60_000);
        expect(jitgate(b, 'error')).toEqual([]);
        // The first frame alone is no proof of login (xrdp may draw its login screen):
        // the session exists on the host, as the JIT account.
        let ps = '';
        for (const end = Date.now() + 20_000; Date.now() < end && !(/Xorg :\d+/.test(ps) && ps.includes('sleep infinity'));) {
          ps = (await host.exec(`pgrep -u ${name} -a . || true`)).stdout;
          if (!ps.includes('sleep infinity')) await new Promise((r) => setTimeout(r, 100));
        }
        expect(ps).toMatch(/Xorg :\d+/);
        expect(ps).toContain('sleep infinity');
        expect(b.frames.join('')).not.toContain(password);
        b.ws.close();
        await until(() => broker.opened[0]?.ended.length === 1, 'end()');
      } finally {
        await t.app.close();
      }
    } finally {
      await store.close().catch(() => undefined);
      await host.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
  it('the tunnel completes the handshake (ready) with server-built parameters', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jitgate-rdp-real-'));
    const broker = new FixedBroker({ ...computer(), address: '127.0.0.1', rdpPort: 1 }, CREDS);
    const t = await startRdpTestApp({ broker, recorder: new SlotRecorder(dir), guacd: addr });
    try {
      const b = await openBrowser(t.wsUrl, Q);
      await until(() => jitgate(b, 'ready').length > 0 || jitgate(b, 'error').length > 0, 'ready or error');
      expect(jitgate(b, 'error')).toEqual([]);
      expect(b.frames.join('')).not.toContain(PASSWORD);
      b.ws.close();
      await until(() => broker.opened[0]?.ended.length === 1, 'end()');
    } finally {
      await t.app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
if (!GUACD_HOST) console.info('rdp-tunnel: real-guacd tests skipped: GUACD_HOST is not set (guacd is not packaged for Debian and there is no Docker engine here)');
