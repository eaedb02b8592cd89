import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { AuditEventInput } from '../core/audit.js';
import type { Computer } from '../core/domain.js';
import { silentLogger } from '../core/logging.js';
import { Secret } from '../core/secret.js';
import type { Principal } from '../gateway/auth/principal.js';
import type { OpenSessionRequest, OpenedSession, ProgressFn } from '../gateway/contracts.js';
import { ModerationGate } from '../gateway/access-requests/moderation-gate.js';
import { rdpWatchRoutes } from '../gateway/rdp/rdp-watch.js';
import { RedisLiveSessions, type LiveRegistration, type WatchersChange } from '../gateway/sessions/live-sessions.js';
import type { Credentials } from '../provisioner/jit-account.service.js';
import { until } from './harness/guac-browser.js';
import { FixedBroker, SlotRecorder, TEST_PRINCIPAL, solidPng, startGuacdPeer, startRdpTestApp, type GuacdPeer } from './harness/guacd-peer.js';
import { redisAvailable, startRedis, type RedisHandle } from './harness/redis.js';

/**
 * Watching a live RDP session (issue 13, "Shared viewing"): the watcher's
 * gateway joins guacd's connection by its id from the live list (Redis),
 * read-only; the Guacamole test peer plays guacd's part (it replays its
 * current screen to a joining user and ends joined users with the owner).
 */

interface GuacParser {
  oninstruction: ((opcode: string, args: string[]) => void) | null;
  receive(s: string): void;
}
const guacModule = 'guacamole-common-js';
const Guacamole = ((await import(guacModule)) as { default: { Parser: new () => GuacParser } }).default;

const CREDS: Credentials = { username: 'alice_w7', password: new Secret('Pw-1'), domain: 'CORP' };
const AUDITOR: Principal = { ...TEST_PRINCIPAL, personId: 'p2', login: 'sam', displayName: 'Sam', role: 'auditor', authSessionId: 'auth-2' };
const COMPUTER: Computer = {
  id: 'c1', organizationId: 'o1', name: 'win01', address: '10.9.8.7', protocols: ['rdp'], sshPort: 22, rdpPort: 3389,
  domainStore: 'ad', localStore: null, jit: {}, policy: { clipboard: 'both' }, restricted: false,
};

/** FixedBroker whose sessions are in the live list, as the real broker's are (terminate, watch). */
class LiveBroker extends FixedBroker {
  /** Four-eyes: sessions get the real gate, with the auditor as the one eligible moderator (eligibility on the database: four-eyes-ssh.test.ts). */
  moderatedGraceMs: number | null = null;
  constructor(readonly live: RedisLiveSessions) {
    super(COMPUTER, CREDS);
  }
  override async open(req: OpenSessionRequest, onProgress: ProgressFn): Promise<OpenedSession> {
    if (this.moderatedGraceMs !== null) {
      // the tunnel reads the policy in onAccessGranted (no early guacd handshake for a four-eyes session)
      const onAccessGranted = req.onAccessGranted;
      req = { ...req, onAccessGranted: (c) => onAccessGranted?.({ ...c, policy: { ...c.policy, requireModerator: true } }) };
    }
    const o = (await super.open(req, onProgress)) as OpenedSession & { fireTerminate(r: 'terminated' | 'lease-expired', by: string): void };
    const moderation =
      this.moderatedGraceMs === null
        ? null
        : new ModerationGate({
            graceMs: this.moderatedGraceMs, waitMs: 60_000, isModerator: async (pid) => pid === AUDITOR.personId,
            onEvent: () => undefined, end: () => o.fireTerminate('terminated', 'system:moderation'),
          });
    const watcherCbs: ((change: WatchersChange) => void)[] = [];
    const reg: LiveRegistration = await this.live.register(
      { sessionId: o.session.id, personLogin: req.principal.login, computerName: COMPUTER.name, protocol: 'rdp', account: CREDS.username, startedAt: new Date().toISOString() },
      (reason, by) => o.fireTerminate(reason, by),
      (change) => {
        moderation?.watchers(change);
        for (const cb of watcherCbs) cb(change);
      },
    );
    const end = o.end.bind(o);
    return Object.assign(o, {
      moderation,
      onWatchers: (cb: (change: WatchersChange) => void) => void watcherCbs.push(cb),
      setGuacdConnection: (id: string) => reg.setGuacdConnection(id),
      end: async (reason: string) => {
        await reg.unregister();
        await end(reason);
      },
    });
  }
}

interface Client {
  ws: WebSocket;
  instructions: string[][];
  closed: Promise<number>;
  send(...elements: string[]): void;
}

async function open(url: string): Promise<Client> {
  const ws = new WebSocket(url, 'guacamole');
  const instructions: string[][] = [];
  const parser = new Guacamole.Parser();
  parser.oninstruction = (op, args) => instructions.push([op, ...args]);
  ws.on('message', (data: Buffer) => parser.receive(data.toString('utf8')));
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, instructions, closed, send: (...els) => ws.send(els.map((e) => `${e.length}.${e}`).join(',') + ';') };
}


const jit = (c: Client, kind: string): string[] | undefined => c.instructions.find((i) => i[0] === 'jitgate' && i[1] === kind);
const avail = redisAvailable();

describe.skipIf(!avail.ok)('watching a live RDP session', () => {
  let redis: RedisHandle;
  let live: RedisLiveSessions;
  let peer: GuacdPeer;
  let recDir: string;
  let app: Awaited<ReturnType<typeof startRdpTestApp>>;
  let broker: LiveBroker;
  const audit: AuditEventInput[] = [];
  let base: string;

  beforeAll(async () => {
    redis = await startRedis();
    live = new RedisLiveSessions({ redis: { path: redis.socketPath }, prefix: `t-${randomUUID().slice(0, 8)}`, heartbeatMs: 500, log: silentLogger() });
    await live.start();
    peer = await startGuacdPeer();
    recDir = mkdtempSync(join(tmpdir(), 'jgt-rdpwatch-'));
    broker = new LiveBroker(live);
    app = await startRdpTestApp({
      broker, recorder: new SlotRecorder(recDir), guacd: { host: peer.host, port: peer.port },
      principals: { auditor: AUDITOR },
      apiPlugins: [
        rdpWatchRoutes({
          log: silentLogger(), live, guacd: { host: peer.host, port: peer.port },
          checkCsrf: (req) => (req.query as Record<string, unknown>).csrf === 'good',
          mayWatch: (p) => p.role !== 'technician',
          mayTerminate: (p) => p.role !== 'technician',
          audit: { record: async (e) => void audit.push(e) },
        }),
      ],
    });
    base = app.wsUrl;
  }, 60_000);

  afterAll(async () => {
    await app?.app.close();
    await peer?.close();
    await live?.close();
    await redis?.stop();
    if (recDir) rmSync(recDir, { recursive: true, force: true });
  });

  async function startSession(): Promise<{ person: Client; sessionId: string; owner: (typeof peer.connections)[number] }> {
    const person = await open(`${base}?computer=win01&accountType=domain&csrf=good`);
    const ready = await until(() => jit(person, 'ready'), 'ready');
    const sessionId = ready[2] as string;
    const owner = await until(() => [...peer.connections].reverse().find((c) => c.args.username === CREDS.username && !c.closed), 'owner at guacd');
    // The tunnel publishes guacd's connection id in the live list once guacd is ready.
    for (let i = 0; i < 500 && !(await live.get(sessionId))?.guacdConnection; i++) await new Promise((r) => setTimeout(r, 20));
    return { person, sessionId, owner };
  }

  /** The live session still waiting for guacd (a four-eyes session before its moderator). */
  async function waitingSession(): Promise<string> {
    for (let i = 0; i < 500; i++) {
      const e = (await live.list()).find((l) => l.protocol === 'rdp');
      const full = e ? await live.get(e.sessionId) : null;
      if (e && full && !full.guacdConnection) return e.sessionId;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('no live session waiting for its moderator');
  }

  const watchUrl = (sessionId: string, as = 'auditor'): string => `${base}/watch?session=${sessionId}&as=${as}&csrf=good&width=800&height=600`;

  it('joins mid-session read-only: the current screen first, then updates; nothing the watcher sends acts; the person is told', async () => {
    const { person, sessionId, owner } = await startSession();
    expect((await live.get(sessionId))?.guacdConnection).toBe(owner.id);
    // The screen changes before the watcher comes: the watcher must get this one, not the first.
    const blue = solidPng(8, 8, [0, 0, 255]).toString('base64');
    owner.send('img', '1', '14', '0', 'image/png', '0', '0');
    owner.send('blob', '1', blue);
    owner.send('end', '1');
    owner.send('sync', '12345');
    await until(() => person.instructions.some((i) => i[0] === 'blob' && i[2] === blue), 'blue frame at the person');

    const watcher = await open(watchUrl(sessionId));
    const watching = await until(() => jit(watcher, 'watching'), 'watching');
    expect(watching.slice(2)).toEqual([sessionId, 'win01', 'alice', CREDS.username]);
    await until(() => watcher.instructions.some((i) => i[0] === 'blob' && i[2] === blue), 'current screen at the watcher');
    const joined = await until(() => peer.joins.find((j) => j.joined === owner.id && j.version), 'join at guacd');
    expect(joined.selected).toBe(owner.id);
    expect(joined.args['read-only']).toBe('true');
    expect(joined.args.password ?? '').toBe('');

    // Updates after the join reach the watcher; the remote clipboard does not.
    owner.send('clipboard', '7', 'text/plain');
    owner.send('blob', '7', Buffer.from('secret text').toString('base64'));
    owner.send('end', '7');
    owner.send('x-mark', 'after-join');
    await until(() => watcher.instructions.some((i) => i[0] === 'x-mark'), 'update at the watcher');
    expect(watcher.instructions.some((i) => i[0] === 'clipboard')).toBe(false);
    expect(watcher.instructions.some((i) => i[0] === 'blob' && i[1] === '7')).toBe(false);

    // The watcher tries to act: keys, mouse, clipboard, a file, a resize. Only its frame acknowledgement goes on.
    watcher.send('key', '65', '1');
    watcher.send('mouse', '10', '10', '1');
    watcher.send('clipboard', '0', 'text/plain');
    watcher.send('blob', '0', Buffer.from('typed by the watcher').toString('base64'));
    watcher.send('file', '1', 'text/plain', 'x.txt');
    watcher.send('size', '300', '200');
    watcher.send('sync', '999');
    await until(() => joined.received.some((i) => i[0] === 'sync' && i[1] === '999'), 'sync from the watcher');
    expect(joined.received.map((i) => i[0]).filter((o) => o !== 'sync' && o !== 'nop')).toEqual([]);
    expect(owner.received.some((i) => i[0] === 'key' || i[0] === 'clipboard')).toBe(false);

    const started = await until(() => audit.find((e) => e.type === 'session.watch' && e.sessionId === sessionId), 'audit');
    expect(started).toMatchObject({ actor: 'sam', outcome: 'success', computer: 'win01', account: CREDS.username, data: { phase: 'started', protocol: 'rdp', person: 'alice' } });

    // The watched person is told who watches, and when they stop.
    const told = await until(() => jit(person, 'watchers'), 'the person told of the watcher');
    expect(told.slice(2)).toEqual(['1', 'joined', 'sam']);

    watcher.ws.close();
    await until(() => audit.find((e) => e.type === 'session.watch' && e.sessionId === sessionId && e.data?.phase === 'stopped'), 'stop audited');
    const left = await until(() => person.instructions.find((i) => i[0] === 'jitgate' && i[1] === 'watchers' && i[3] === 'left'), 'the person told the watcher left');
    expect(left.slice(2)).toEqual(['0', 'left', 'sam']);
    // The person's session goes on.
    owner.send('x-mark', 'still-here');
    await until(() => person.instructions.some((i) => i[0] === 'x-mark' && i[1] === 'still-here'), 'person still connected');
    person.ws.close();
    await person.closed;
  }, 60_000);

  it('terminate from the live list closes the person and every watcher', async () => {
    const { person, sessionId } = await startSession();
    const watcher = await open(watchUrl(sessionId));
    await until(() => jit(watcher, 'watching'), 'watching');
    expect(await live.terminate(sessionId, 'admin:sam')).toBe(true);
    expect(await person.closed).toBe(4012);
    expect(await watcher.closed).toBe(1000);
    expect(jit(watcher, 'closed')?.[2]).toBe('the session ended');
    expect(await live.get(sessionId)).toBeNull();
    await until(() => audit.find((e) => e.type === 'session.watch' && e.sessionId === sessionId && e.data?.phase === 'stopped'), 'stop audited');
  }, 60_000);

  it('four-eyes: no credentials reach guacd until the moderator watches; input held back while paused; ends after the grace period', async () => {
    broker.moderatedGraceMs = 1500;
    try {
      const before = peer.connections.length;
      const person = await open(`${base}?computer=win01&accountType=domain&csrf=good`);
      const waiting = await until(() => person.instructions.find((i) => i[0] === 'jitgate' && i[1] === 'moderation' && i[2] === 'waiting'), 'waiting for a moderator');
      expect(waiting[3]).toMatch(/waiting for a moderator/);
      const id = await waitingSession();
      await new Promise((r) => setTimeout(r, 500));
      // nothing at guacd yet: no handshake, no credentials
      expect(peer.connections.slice(before).some((c) => c.args.username === CREDS.username)).toBe(false);
      expect(jit(person, 'ready')).toBeUndefined();

      const watcher = await open(watchUrl(id));
      await until(() => jit(watcher, 'waiting'), 'the watcher waits for the connection');
      await until(() => jit(person, 'ready'), 'ready once the moderator is there');
      const owner = await until(() => peer.connections.slice(before).find((c) => c.args.username === CREDS.username && !c.closed), 'owner at guacd');
      await until(() => jit(watcher, 'watching'), 'watching');
      person.send('key', '65', '1');
      await until(() => owner.received.some((i) => i[0] === 'key' && i[1] === '65'), 'key while moderated');

      watcher.ws.close();
      await until(() => person.instructions.find((i) => i[0] === 'jitgate' && i[1] === 'moderation' && i[2] === 'paused'), 'paused');
      person.send('key', '66', '1');
      person.send('size', '900', '700');
      await until(() => owner.received.some((i) => i[0] === 'size' && i[1] === '900'), 'size still passes');
      expect(owner.received.some((i) => i[0] === 'key' && i[1] === '66')).toBe(false);
      expect(await person.closed).toBe(4012);
      expect(person.instructions.find((i) => i[0] === 'jitgate' && i[1] === 'moderation' && i[2] === 'ended')?.[3]).toMatch(/no moderator rejoined/);
    } finally {
      broker.moderatedGraceMs = null;
    }
  }, 60_000);

  it('four-eyes: the moderator terminates from the watch', async () => {
    broker.moderatedGraceMs = 60_000;
    try {
      const person = await open(`${base}?computer=win01&accountType=domain&csrf=good`);
      await until(() => person.instructions.find((i) => i[0] === 'jitgate' && i[1] === 'moderation' && i[2] === 'waiting'), 'waiting');
      const watcher = await open(watchUrl(await waitingSession()));
      await until(() => jit(watcher, 'watching'), 'watching');
      watcher.send('jitgate', 'terminate');
      expect(await person.closed).toBe(4012);
      expect(await watcher.closed).toBe(1000);
    } finally {
      broker.moderatedGraceMs = null;
    }
  }, 60_000);

  it('refuses technicians, and sessions that are not live', async () => {
    const { person, sessionId } = await startSession();
    const joinsBefore = peer.joins.length;
    const tech = await open(watchUrl(sessionId, 'none'));
    expect(await tech.closed).toBe(4003);
    expect(jit(tech, 'error')?.[2]).toBe('JIT_ERR_FORBIDDEN');
    const gone = await open(watchUrl(randomUUID()));
    expect(await gone.closed).toBe(4014);
    expect(jit(gone, 'error')?.[2]).toBe('JIT_ERR_NOT_FOUND');
    // Refused before guacd is asked.
    expect(peer.joins.length).toBe(joinsBefore);
    person.ws.close();
    await person.closed;
  }, 60_000);
});
