/**
 * The browser terminal end to end on real services: a websocket client opens
 * a session through the gateway (fastify + @fastify/websocket), the JIT
 * engine provisions `<login>_xxxxxx` on a real sshd test host through BullMQ
 * on a real Redis, the gateway logs in with the injected password and relays
 * a pty; closing, terminating from LiveSessions, a pinned-key mismatch and a
 * SIGKILLed gateway process all end with no JIT account left on the host.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Database } from '../core/db/database.js';
import type { Computer } from '../core/domain.js';
import { CoreErrors, JitgateError } from '../core/errors.js';
import { createLogger, silentLogger } from '../core/logging.js';
import { SecretBox } from '../core/secret-box.js';
import type { Principal } from '../gateway/auth/principal.js';
import type { AccessChecker } from '../gateway/contracts.js';
import type { SshGateway } from '../gateway/ssh/ssh-gateway.js';
import type { JitQueue } from '../provisioner/jobs.js';
import { JitAccountService } from '../provisioner/jit-account.service.js';
import type { RecordingMeta, RecordingSummary, SessionRecorder, TerminalRecording, TerminalRecordingOptions } from '../recorder/recorder.js';
import { createRecorder, type Recorder } from '../recorder/session-recorder.js';
import type { JitFixture } from './fixtures/jit-fixture.js';
import { startSshGatewayFixture, type SshGatewayFixture } from './fixtures/ssh-gateway-fixture.js';
import { sshHostAvailable, type SshHostHandle } from './harness/ssh-host.js';
import { WsTerminal } from './harness/ws-terminal.js';

const avail = sshHostAvailable();
const redisSocket = inject('redisSocket');
const pgUrl = inject('pgUrl');
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STORE = 'web01-ssh';
/** JITGATE_TEST_LOG=debug shows the gateway's logs. */
const gwLog = process.env.JITGATE_TEST_LOG ? createLogger({ level: process.env.JITGATE_TEST_LOG }) : silentLogger();

/**
 * A small real asciicast v2 writer (the production recorder lives in
 * recorder/): header line, then `[seconds, "o"|"i"|"r", data]` lines.
 */
class AsciicastTestRecorder implements SessionRecorder {
  readonly files = new Map<string, string>();
  /** Bytes queued but not yet written, at most, per session (the memory a slow disk costs). */
  readonly maxPending = new Map<string, number>();
  /** High-water mark of the writer and an artificial per-write delay (a slow disk). */
  highWater = 256 * 1024;
  writeDelayMs = 0;
  constructor(readonly dir: string) {}

  async startTerminal(meta: RecordingMeta, opts: TerminalRecordingOptions): Promise<TerminalRecording> {
    const recordingId = randomUUID();
    const path = join(this.dir, `${meta.sessionId}.cast`);
    this.files.set(meta.sessionId, path);
    const fh: FileHandle = await openFile(path, 'w');
    const t0 = performance.now();
    let chain: Promise<unknown> = fh.write(`${JSON.stringify({ version: 2, width: opts.cols, height: opts.rows, timestamp: Math.floor(meta.startedAt.getTime() / 1000), env: { TERM: opts.term ?? 'xterm' } })}\n`);
    let pending = 0;
    let closed = false;
    const HIGH = this.highWater;
    const delay = this.writeDelayMs;
    this.maxPending.set(meta.sessionId, 0);
    const dec = { o: new TextDecoder('utf-8'), i: new TextDecoder('utf-8') };
    const line = (kind: 'o' | 'i' | 'r', data: string): boolean => {
      const s = `${JSON.stringify([(performance.now() - t0) / 1000, kind, data])}\n`;
      pending += s.length;
      if (pending > this.maxPending.get(meta.sessionId)!) this.maxPending.set(meta.sessionId, pending);
      chain = chain
        .then(() => (delay ? new Promise((r) => setTimeout(r, delay)) : undefined))
        .then(() => (closed ? undefined : fh.write(s)))
        .then(() => (pending -= s.length));
      return pending < HIGH;
    };
    let size = 0;
    return {
      recordingId,
      output: (d) => {
        size += d.length;
        return line('o', dec.o.decode(d, { stream: true }));
      },
      input: (d) => line('i', dec.i.decode(d, { stream: true })),
      resize: (c, r) => void line('r', `${c}x${r}`),
      drained: async () => {
        await chain;
      },
      close: async (): Promise<RecordingSummary> => {
        await chain;
        closed = true; // a line queued after this point is dropped, never written to a closed file
        await fh.close();
        return { recordingId, sizeBytes: size, sha256: '', manifestSeq: 0 };
      },
    };
  }
  startStream(): never {
    throw new Error('not used');
  }
  startRdp(): never {
    throw new Error('not used');
  }
}

/** Routes sessions to the real recorder (recorder/) or the test one, per test. */
class SwitchRecorder implements SessionRecorder {
  constructor(public current: SessionRecorder) {}
  startTerminal(meta: RecordingMeta, opts: TerminalRecordingOptions): Promise<TerminalRecording> {
    return this.current.startTerminal(meta, opts);
  }
  startStream(...a: Parameters<SessionRecorder['startStream']>): ReturnType<SessionRecorder['startStream']> {
    return this.current.startStream(...a);
  }
  startRdp(...a: Parameters<SessionRecorder['startRdp']>): ReturnType<SessionRecorder['startRdp']> {
    return this.current.startRdp(...a);
  }
}

/** Replay: the concatenated output events of an asciicast file. */
function replayOutput(path: string): string {
  return replayCast(readFileSync(path, 'utf8'));
}

function replayCast(cast: string): string {
  const [header, ...events] = cast.trim().split('\n');
  expect(JSON.parse(header!).version).toBe(2);
  return events
    .map((l) => JSON.parse(l) as [number, string, string])
    .filter((e) => e[1] === 'o')
    .map((e) => e[2])
    .join('');
}

const people = new Map<string, Principal>();
function person(login: string, role: Principal['role']): { token: string; principal: Principal } {
  const token = randomBytes(12).toString('hex');
  const principal: Principal = { personId: randomUUID(), login, displayName: login, role, organizationId: null, authSessionId: `auth-${token}` };
  people.set(token, principal);
  return { token, principal };
}

async function waitUntil(what: string, cond: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(!avail.ok || !redisSocket)(
  `browser SSH terminal on an sshd test host${avail.ok ? (redisSocket ? '' : ' (skipped: no Redis)') : ` (skipped: ${avail.reason ?? ''})`}`,
  () => {
    let rig: SshGatewayFixture;
    let host: SshHostHandle;
    let db: Database;
    let fx: JitFixture;
    let queue: JitQueue;
    let gw: SshGateway;
    let base: string;
    let recDir: string;
    let recorder: AsciicastTestRecorder;
    let realRecorder: Recorder;
    let switchRecorder: SwitchRecorder;
    let dbUrl: string | null = null;
    let engine: JitAccountService;
    let clock: Date | null = null;
    const prefix = `t${randomBytes(4).toString('hex')}`;
    const livePrefix = `${prefix}:live`;
    const boxKey = randomBytes(32);
    const recKey = randomBytes(32);
    const alice = person('alice', 'technician');
    const auditor = person('audra', 'auditor');

    const access: AccessChecker = {
      async computerForConnect(principal, ref) {
        const c = await fx.repo.getComputer(ref);
        if (!c) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: `computer ${ref}` });
        if (principal.role === 'auditor') throw new JitgateError(CoreErrors.JIT_ERR_ACCESS_DENIED, { computer: c.name });
        return c;
      },
    };

    /** A computer on the test host with its host key pinned (no trust on first use: an unpinned one is refused). */
    const computer = (policy: Record<string, unknown> = {}): Promise<Computer> => rig.computer(policy);

    function terminal(who: { token: string; principal: Principal }, query: string, csrf = `csrf-${who.principal.authSessionId}`): WsTerminal {
      return new WsTerminal(`${base}/api/v1/terminal?${query}&csrf=${encodeURIComponent(csrf)}`, { headers: { 'x-test-person': who.token }, timeoutMs: 90_000 });
    }

    async function accountExists(name: string): Promise<boolean> {
      return (await host.exec(`getent passwd ${name}`)).code === 0;
    }

    /** JIT accounts of this test's installation still on the host. */
    async function ourAccounts(): Promise<string[]> {
      const r = await host.exec('getent passwd');
      return r.stdout.split('\n').filter((l) => l.includes(`jitgate;${fx.installationId};`)).map((l) => l.split(':')[0]!);
    }

    beforeAll(async () => {
      recDir = mkdtempSync(join(tmpdir(), 'jitgate-ssh-rec-'));
      recorder = new AsciicastTestRecorder(recDir);
      switchRecorder = new SwitchRecorder(recorder);
      rig = await startSshGatewayFixture({
        redisSocket: redisSocket!, pgUrl, store: STORE, prefix, log: gwLog,
        // Our own engine over the fixture's repository: a known secret key (the crash test's child gateway
        // decrypts credentials with it) and a clock the test can move past a lease.
        engine: (f, store) => new JitAccountService({
          repo: f.repo, audit: f.audit, box: new SecretBox(boxKey), stores: new Map([[STORE, store]]), log: silentLogger(),
          installationId: f.installationId, leaseGraceMs: 1000, now: () => clock ?? new Date(),
        }),
        gateway: ({ db: d, fx: f }) => {
          realRecorder = createRecorder({ db: d, audit: f.audit, log: silentLogger(), dir: join(recDir, 'real'), signingKey: recKey });
          return { access, recorder: switchRecorder, mayWatch: (p) => p.role === 'global_admin' || p.role === 'auditor' };
        },
      });
      ({ host, db, dbUrl, fx, queue, gw, engine, base } = rig);
      for (const [token, p] of people) {
        rig.people.set(token, p);
        await db.query('INSERT INTO people (id, login, display_name, role) VALUES ($1, $2, $3, $4)', [p.personId, p.login, p.displayName, p.role]);
      }
    });

    afterAll(async () => {
      await rig?.close();
      if (recDir) rmSync(recDir, { recursive: true, force: true });
    });

    it('opens a session, runs id as the JIT account in sudo, and the account is gone after exit; the recording replays it', async () => {
      const pc = await computer();
      switchRecorder.current = realRecorder;
      const t0 = performance.now();
      const term = terminal(alice, `computer=${pc.id}&cols=100&rows=30`);
      const ready = await term.waitForMessage('ready');
      const openMs = performance.now() - t0;
      const account = String(ready.account);
      expect(account).toMatch(/^alice_[a-z0-9]{6}$/);
      expect(ready.computer).toBe(pc.name);
      // The lease end the session closes at, for the browser to show and warn about.
      const lease = (await fx.repo.getSession(String(ready.sessionId)))!.leaseExpiresAt;
      expect(ready.leaseExpiresAt).toBe(lease.toISOString());
      const steps = term.messages.filter((m) => m.type === 'progress').map((m) => m.step);
      expect(steps).toEqual(['creating account…', `account ${account} ready…`, 'added to admins…', `connecting to ${pc.name}…`]);
      expect(await accountExists(account)).toBe(true);

      const mark = term.text.length;
      term.send('id; echo "gr\u00fc\u00df: $((6*7))"\n');
      const m = await term.waitForOutput(/uid=\d+\(([a-z0-9_]+)\) gid=\d+\S* groups=(\S+)/, mark);
      const echoMs = term.firstByteAfterSend;
      expect(m[1]).toBe(account);
      expect(m[2]).toMatch(/\(sudo\)/);
      await term.waitForOutput(/grüß: 42/, mark);
      // resize reaches the pty
      term.resize(123, 41);
      const mark2 = term.text.length;
      term.send('stty size\n');
      await term.waitForOutput(/41 123/, mark2);

      const sessionId = String(ready.sessionId);
      term.send('exit\n');
      const closed = await term.waitClosed();
      expect(closed.code).toBe(1000);
      expect(term.messages.at(-1)).toEqual({ type: 'closed', reason: 'exited' });
      await waitUntil('the JIT account to be deleted on the host', async () => !(await accountExists(account)));
      await waitUntil('the session to end', async () => (await fx.repo.getSession(sessionId))?.state === 'ended');

      switchRecorder.current = recorder;
      // the real recorder (recorder/): indexed, signed, and it replays what the person saw
      const recs = await db.query<{ id: string }>('SELECT id FROM recordings WHERE session_id = $1', [sessionId]);
      expect(recs).toHaveLength(1);
      await waitUntil('the recording to be closed and signed', async () => (await realRecorder.open(recs[0]!.id))?.integrity === 'ok', 30_000);
      const file = (await realRecorder.open(recs[0]!.id))!;
      const chunks: Buffer[] = [];
      for await (const c of file.stream) chunks.push(Buffer.from(c as Buffer));
      const replay = replayCast(Buffer.concat(chunks).toString('utf8'));
      expect(replay).toContain(m[0]);
      expect(replay).toContain('grüß: 42');
      const audit = await db.query<{ type: string; data: unknown }>('SELECT type, data FROM audit_events WHERE session_id = $1 ORDER BY seq', [sessionId]);
      const types = audit.map((a) => a.type);
      expect(types).not.toContain('session.host_key_recorded');
      expect(types).toContain('account.deleted');
      expect((await fx.repo.getComputer(pc.id))!.policy.sshHostKeySha256).toBe(host.hostKeySha256);
      console.log(`[ssh-gateway] open→ready ${openMs.toFixed(0)} ms; keystroke→first output byte ${echoMs?.toFixed(1)} ms`);
    });

    it('relays bulk output completely; a slow recorder pauses the ssh stream so its queue stays bounded', async () => {
      const pc = await computer();
      // a slow disk: 2 ms per write, 64 KiB high-water mark
      recorder.highWater = 64 * 1024;
      recorder.writeDelayMs = 2;
      const term = terminal(alice, `computer=${pc.id}`);
      const ready = await term.waitForMessage('ready');
      const mark = term.text.length;
      const t0 = performance.now();
      term.send('seq 1 200000; echo bulk-$((40+2))-done\n');
      await term.waitForOutput(/\n200000\r\nbulk-42-done/, mark, 120_000);
      const seconds = (performance.now() - t0) / 1000;
      const got = term.text.slice(mark);
      // every line arrived, in order
      const nums = got.split('\r\n').map((l) => l.slice(l.lastIndexOf('\r') + 1)).filter((l) => /^[0-9]+$/.test(l)).map(Number);
      expect(nums.length).toBe(200000);
      expect(nums.every((n, i) => n === i + 1)).toBe(true);
      term.close();
      await term.waitClosed();
      await waitUntil('the JIT account to be deleted', async () => !(await accountExists(String(ready.account))));
      const replay = replayOutput(recorder.files.get(String(ready.sessionId))!);
      expect(replay).toContain('\r\n199999\r\n200000\r\n');
      // ~1.9 MB of asciicast went through a 64 KiB queue: the gateway waited instead of buffering
      const peak = recorder.maxPending.get(String(ready.sessionId))!;
      expect(peak).toBeGreaterThan(64 * 1024);
      expect(peak).toBeLessThan(64 * 1024 + 128 * 1024);
      recorder.highWater = 256 * 1024;
      recorder.writeDelayMs = 0;
      console.log(`[ssh-gateway] bulk output ${(got.length / 1e6).toFixed(2)} MB in ${seconds.toFixed(2)} s = ${(got.length / 1e6 / seconds).toFixed(1)} MB/s`);
    });

    it('a pinned host key that does not match refuses before logging in (4011) and tears the account down', async () => {
      const pc = await computer({ sshHostKeySha256: `SHA256:${randomBytes(32).toString('base64').replace(/=+$/, '')}` });
      const term = terminal(alice, `computer=${pc.id}`);
      const closed = await term.waitClosed();
      expect(closed.code).toBe(4011);
      const err = term.messages.find((x) => x.type === 'error');
      expect(err?.code).toBe('JIT_ERR_SSH_HOST_KEY_MISMATCH');
      expect(String(err?.message)).toContain('does not match the pinned fingerprint');
      const rows = await db.query<{ account_name: string | null }>('SELECT account_name FROM sessions WHERE computer_id = $1', [pc.id]);
      expect(rows).toHaveLength(1);
      expect(rows[0]!.account_name).toMatch(/^alice_/);
      await waitUntil('the JIT account to be deleted', async () => !(await accountExists(rows[0]!.account_name!)));
      // the pinned fingerprint was not overwritten
      expect((await fx.repo.getComputer(pc.id))!.policy.sshHostKeySha256).not.toBe(host.hostKeySha256);
    });

    it('refuses without sign-in (4001), with a wrong CSRF token, for an auditor (4003) and on bad parameters (4014)', async () => {
      const pc = await computer();
      const anon = new WsTerminal(`${base}/api/v1/terminal?computer=${pc.id}`, { timeoutMs: 30_000 });
      expect((await anon.waitClosed()).code).toBe(4001);
      const csrf = terminal(alice, `computer=${pc.id}`, 'wrong');
      expect((await csrf.waitClosed()).code).toBe(4003);
      expect(csrf.messages[0]?.code).toBe('JIT_ERR_AUTH_CSRF');
      const aud = terminal(auditor, `computer=${pc.id}`);
      expect((await aud.waitClosed()).code).toBe(4003);
      expect(aud.messages[0]).toMatchObject({ type: 'error', code: 'JIT_ERR_ACCESS_DENIED', message: `you do not have access to ${pc.name}` });
      const bad = terminal(alice, `computer=${pc.id}&cols=0`);
      expect((await bad.waitClosed()).code).toBe(4014);
      const none = terminal(alice, `computer=${randomUUID()}`);
      expect((await none.waitClosed()).code).toBe(4003);
    });

    it('is watched live by an admin and terminated from LiveSessions (4012), then torn down', async () => {
      const pc = await computer();
      const term = terminal(alice, `computer=${pc.id}&cols=90&rows=20`);
      const ready = await term.waitForMessage('ready');
      const sessionId = String(ready.sessionId);
      const account = String(ready.account);
      const listed = await gw.live.list();
      expect(listed.find((s) => s.sessionId === sessionId)).toMatchObject({ personLogin: 'alice', computerName: pc.name, account, gateway: gw.live.gatewayId });

      // an auditor may watch; a technician may not
      const nosy = new WsTerminal(`${base}/api/v1/sessions/${sessionId}/watch?csrf=csrf-${alice.principal.authSessionId}`, { headers: { 'x-test-person': alice.token } });
      expect((await nosy.waitClosed()).code).toBe(4003);
      const watcher = new WsTerminal(`${base}/api/v1/sessions/${sessionId}/watch?csrf=csrf-${auditor.principal.authSessionId}`, { headers: { 'x-test-person': auditor.token } });
      expect(await watcher.waitForMessage('header')).toEqual({ type: 'header', cols: 90, rows: 20 });
      // The gateway starts publishing when the watch request reaches it (pub/sub): repeat until seen.
      for (let n = 0; n < 20 && !watcher.text.includes('watch-me-42'); n++) {
        term.send('echo watch-me-$((6*7))\n');
        await watcher.waitForOutput(/watch-me-42/, 0, 3_000).catch(() => undefined);
      }
      expect(watcher.text).toContain('watch-me-42');

      expect(await gw.live.terminate(sessionId, 'root-admin')).toBe(true);
      const closed = await term.waitClosed();
      expect(closed.code).toBe(4012);
      expect(term.messages.at(-1)).toEqual({ type: 'closed', reason: 'terminated' });
      expect((await watcher.waitClosed()).code).toBe(1000);
      await waitUntil('the JIT account to be deleted', async () => !(await accountExists(account)));
      expect((await gw.live.list()).some((s) => s.sessionId === sessionId)).toBe(false);
      const types = (await db.query<{ type: string; actor: string }>('SELECT type, actor FROM audit_events WHERE session_id = $1', [sessionId])).map((a) => `${a.type}:${a.actor}`);
      expect(types).toContain('session.terminated:root-admin');
      expect(await gw.live.terminate(sessionId, 'root-admin')).toBe(false);
    });

    it('closes the terminal with 4013 when the provisioner expires the lease, and the account is gone', async () => {
      const pc = await computer();
      const term = terminal(alice, `computer=${pc.id}`);
      const ready = await term.waitForMessage('ready');
      const sessionId = String(ready.sessionId);
      clock = new Date(Date.now() + 3 * 3600_000);
      try {
        await queue.scheduleLeaseExpiry(sessionId, new Date());
        const closed = await term.waitClosed();
        expect(closed.code).toBe(4013);
        expect(term.messages.at(-1)).toEqual({ type: 'closed', reason: 'lease-expired' });
        await waitUntil('the session to end', async () => (await fx.repo.getSession(sessionId))?.state === 'ended');
      } finally {
        clock = null;
      }
      expect(await accountExists(String(ready.account))).toBe(false);
      const types = (await db.query<{ type: string }>('SELECT type FROM audit_events WHERE session_id = $1', [sessionId])).map((a) => a.type);
      expect(types).toContain('lease.expired');
    });

    it('an extended session stays open past its first lease end: the gateway re-reads the lease before closing', async () => {
      const pc = await computer();
      // A lease that ends LEASE_S seconds from now (the engine's clock, moved back, sets the lease at request time).
      const LEASE_S = 25;
      clock = new Date(Date.now() - (60 * 60 - LEASE_S) * 1000);
      let term: WsTerminal;
      let ready: Record<string, unknown>;
      try {
        term = terminal(alice, `computer=${pc.id}`);
        ready = await term.waitForMessage('ready');
      } finally {
        clock = null;
      }
      const sessionId = String(ready.sessionId);
      const first = (await fx.repo.getSession(sessionId))!.leaseExpiresAt;
      expect(first.getTime() - Date.now()).toBeLessThan(LEASE_S * 1000);
      const r = await engine.extendLease(sessionId, 10, alice.principal.login);
      await queue.scheduleLeaseExpiry(sessionId, r.leaseExpiresAt);
      // Past the first end (the gateway's own timer fired then): still open, still the same account.
      while (Date.now() < first.getTime() + 3000) await new Promise((res) => setTimeout(res, 250));
      const mark = term.text.length;
      term.send('echo still-$((40+2))\n');
      await term.waitForOutput(/still-42/, mark);
      expect((await fx.repo.getSession(sessionId))!.state).toBe('active');
      expect(await accountExists(String(ready.account))).toBe(true);
      term.send('exit\n');
      await term.waitClosed();
      await waitUntil('the session to end', async () => (await fx.repo.getSession(sessionId))?.state === 'ended');
      const types = (await db.query<{ type: string }>('SELECT type FROM audit_events WHERE session_id = $1', [sessionId])).map((a) => a.type);
      expect(types).toContain('session.extended');
      expect(types).not.toContain('lease.expired');
    }, 120_000);

    it.skipIf(!pgUrl)('a gateway process SIGKILLed mid-session leaves no JIT account after lease expiry and reconcile', async () => {
      const pc = await computer({ sshHostKeySha256: host.hostKeySha256 });
      const child = spawnChildGateway({
        dbUrl: dbUrl!, redisSocket, prefix, livePrefix, boxKey: boxKey.toString('hex'), installationId: fx.installationId, token: alice.token, principal: alice.principal,
        recDir: join(recDir, 'real'), recKey: recKey.toString('hex'),
      });
      try {
        const port = await child.port;
        const term = new WsTerminal(`ws://127.0.0.1:${port}/api/v1/terminal?computer=${pc.id}&csrf=csrf-${alice.principal.authSessionId}`, { headers: { 'x-test-person': alice.token }, timeoutMs: 90_000 });
        const ready = await term.waitForMessage('ready');
        const account = String(ready.account);
        const sessionId = String(ready.sessionId);
        const mark = term.text.length;
        term.send('id -un\n');
        await term.waitForOutput(new RegExp(`[\\r\\n]${account}\\r\\n`), mark);
        expect((await gw.live.list()).some((s) => s.sessionId === sessionId)).toBe(true);

        child.proc.kill('SIGKILL');
        await term.waitClosed();
        // nobody ended the session: the account is still there, the lease still live
        expect(await accountExists(account)).toBe(true);
        expect((await fx.repo.getSession(sessionId))!.state).toBe('active');
        // the dead gateway's entry goes stale and drops out of the live list
        await waitUntil('the stale live entry to disappear', async () => !(await gw.live.list()).some((s) => s.sessionId === sessionId), 90_000);

        // the lease runs out: the provisioner's lease-expiry job removes the account
        clock = new Date(Date.now() + 3 * 3600_000);
        try {
          await queue.scheduleLeaseExpiry(sessionId, new Date());
          await waitUntil('the lease-expiry job to end the session', async () => (await fx.repo.getSession(sessionId))?.state === 'ended');
          const rj = await queue.reconcileNow();
          await queue.waitFor(rj, 60_000);
        } finally {
          clock = null;
        }
        expect(await accountExists(account)).toBe(false);
        expect(await ourAccounts()).toEqual([]);

        // The recording the dead gateway was writing is sealed as found by a gateway sharing its directory.
        const [open] = await db.query<{ id: string; ended_at: Date | null }>('SELECT id, ended_at FROM recordings WHERE session_id = $1', [sessionId]);
        expect(open?.ended_at).toBeNull();
        const later = new Date(Date.now() + 4 * 3600_000); // the session ended on the test's moved clock
        expect((await realRecorder.recoverInterrupted({ graceMs: 0, now: later })).sealed).toBe(1);
        expect(await realRecorder.integrity(open!.id)).toBe('ok');
        const file = await realRecorder.open(open!.id);
        const cast = (await new Promise<Buffer>((resolve) => {
          const chunks: Buffer[] = [];
          file!.stream.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks)));
        })).toString('utf8');
        expect(replayCast(cast)).toContain(account);
      } finally {
        child.proc.kill('SIGKILL');
      }
    }, 240_000);
  },
);

/** The gateway side alone in a child process (same PostgreSQL, Redis, queue and secret key). */
function spawnChildGateway(o: {
  dbUrl: string; redisSocket: string; prefix: string; livePrefix: string; boxKey: string; installationId: string; token: string; principal: Principal; recDir: string; recKey: string;
}): { proc: ChildProcess; port: Promise<number> } {
  const script = `
    import { PgDatabase } from '${ROOT}core/db/pg.database.js';
    import { AuditLog } from '${ROOT}core/audit.js';
    import { SecretBox } from '${ROOT}core/secret-box.js';
    import { silentLogger } from '${ROOT}core/logging.js';
    import { redisOptions } from '${ROOT}core/redis.js';
    import { JitAccountService } from '${ROOT}provisioner/jit-account.service.js';
    import { JitRepository } from '${ROOT}provisioner/jit-repository.js';
    import { JitQueue } from '${ROOT}provisioner/jobs.js';
    import { createMetrics } from '${ROOT}gateway/metrics.js';
    import { buildServer } from '${ROOT}gateway/server.js';
    import { startSshGateway } from '${ROOT}gateway/ssh/ssh-gateway.js';
    import { createRecorder } from '${ROOT}recorder/session-recorder.js';
    const cfg = JSON.parse(process.env.CHILD_CFG);
    const db = new PgDatabase({ url: cfg.dbUrl, poolSize: 2 });
    const repo = new JitRepository(db);
    const audit = new AuditLog(db);
    const engine = new JitAccountService({ repo, audit, box: new SecretBox(Buffer.from(cfg.boxKey, 'hex')), stores: new Map([['${STORE}', {}]]), log: silentLogger(), installationId: cfg.installationId });
    const connection = redisOptions({ path: cfg.redisSocket }, { maxRetriesPerRequest: null });
    const queue = new JitQueue({ connection, prefix: cfg.prefix });
    await queue.ready();
    const recorder = createRecorder({ db, audit, log: silentLogger(), dir: cfg.recDir, signingKey: Buffer.from(cfg.recKey, 'hex') });
    const gw = await startSshGateway({
      redis: redisOptions({ path: cfg.redisSocket }), queueEvents: { connection, prefix: cfg.prefix }, queue, engine, audit,
      access: { computerForConnect: async (_p, ref) => repo.getComputer(ref) },
      recorder,
      checkCsrf: () => true, mayWatch: () => false, livePrefix: cfg.livePrefix, liveHeartbeatMs: 1000, log: silentLogger(),
    });
    const app = await buildServer({ log: silentLogger(), metrics: createMetrics(), readiness: [], version: 'child',
      rootPlugins: [async (a) => a.addHook('onRequest', async (req) => { req.principal = req.headers['x-test-person'] === cfg.token ? cfg.principal : null; })],
      apiPlugins: gw.apiPlugins });
    await app.listen({ host: '127.0.0.1', port: 0 });
    process.stdout.write('PORT ' + app.server.address().port + '\\n');
  `;
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, CHILD_CFG: JSON.stringify(o) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const port = new Promise<number>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (code) => reject(new Error(`child gateway exited (${code}): ${err.slice(-2000)}`)));
  });
  return { proc, port };
}
