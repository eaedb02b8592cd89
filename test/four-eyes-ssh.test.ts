/**
 * Four-eyes sessions (docs/access-requests.md "Four-eyes sessions") on real
 * services, through the browser terminal and the native SSH front door (the
 * real OpenSSH client): the JIT account is provisioned on a real sshd test
 * host through BullMQ on a real Redis, the session waits (no login, nothing
 * typed reaches the host) until an approver of the computer's organization
 * watches it through the real watch websocket; watchers who are not
 * moderators do not count; when the moderator leaves, input is dropped and
 * the session ends after the grace period unless a moderator rejoins; the
 * moderator terminates from the watch. Presence goes into the audit trail
 * and the real recorder's `recordings.metadata`.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Computer } from '../core/domain.js';
import { silentLogger } from '../core/logging.js';
import { SessionModerationService } from '../gateway/access-requests/index.js';
import type { Principal } from '../gateway/auth/principal.js';
import { startFrontDoor, type FrontDoorHandle } from '../gateway/ssh/front-door.js';
import { createRecorder } from '../recorder/session-recorder.js';
import { frontDoorPerson, opensshArgs, opensshEnv, RigIdentity, type RigPerson } from '../bench/ssh-front-door-rig.js';
import { startSshGatewayFixture, type SshGatewayFixture } from './fixtures/ssh-gateway-fixture.js';
import { sshHostAvailable } from './harness/ssh-host.js';
import { WsTerminal } from './harness/ws-terminal.js';

const avail = sshHostAvailable();
const redisSocket = inject('redisSocket');
const pgUrl = inject('pgUrl');
const STORE = 'web01-ssh';
const GRACE_SECONDS = 5;

async function waitUntil(what: string, cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The real OpenSSH client at a terminal (`-tt`): what it prints (stdout and stderr together), what it is sent, how it exits. */
class OpenSshTerminal {
  text = '';
  readonly exited: Promise<number | null>;
  readonly #child: ChildProcessWithoutNullStreams;

  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.#child = spawn('ssh', ['-tt', ...args], { stdio: 'pipe', env });
    this.#child.stdout.on('data', (d: Buffer) => (this.text += d.toString()));
    this.#child.stderr.on('data', (d: Buffer) => (this.text += d.toString()));
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 170_000);
    this.exited = new Promise((resolve) => this.#child.on('close', (code) => (clearTimeout(timer), resolve(code))));
  }

  type(line: string): void {
    this.#child.stdin.write(line);
  }

  async waitFor(re: RegExp, from = 0, timeoutMs = 90_000): Promise<void> {
    await waitUntil(`${String(re)} on the terminal; it shows:\n${this.text.slice(-600)}`, async () => re.test(this.text.slice(from)), timeoutMs);
  }

  kill(): void {
    this.#child.kill('SIGKILL');
  }
}

describe.skipIf(!avail.ok || !redisSocket)(`four-eyes SSH sessions on an sshd test host${avail.ok ? (redisSocket ? '' : ' (skipped: no Redis)') : ` (skipped: ${avail.reason ?? ''})`}`, () => {
  let rig: SshGatewayFixture;
  let door: FrontDoorHandle;
  let dir: string;
  let knownHosts: string;
  let orgId: string;
  let aliceAtSsh: RigPerson;
  const identity = new RigIdentity();
  const tag = randomBytes(2).toString('hex');
  const tokens = new Map<string, string>();
  const all: Principal[] = [];

  function who(login: string, role: Principal['role']): Principal {
    // Letters only: the front door's JIT account names derive from the login.
    const p: Principal = { personId: randomUUID(), login: `${login}${tag}`.replace(/[0-9]/g, 'q'), displayName: login, role, organizationId: null, authSessionId: `auth-${randomBytes(6).toString('hex')}` };
    tokens.set(p.personId, randomBytes(12).toString('hex'));
    all.push(p);
    return p;
  }
  const alice = who('alice', 'technician');
  const mo = who('mo', 'org_admin');
  const nia = who('nia', 'technician');
  const audra = who('audra', 'auditor');

  const computer = (policy: Record<string, unknown>): Promise<Computer> => rig.computer(policy, { orgId });
  const csrf = (p: Principal) => `csrf-${p.authSessionId}`;
  const headers = (p: Principal) => ({ 'x-test-person': tokens.get(p.personId)! });
  const terminal = (p: Principal, pc: Computer) => new WsTerminal(`${rig.base}/api/v1/terminal?computer=${pc.id}&cols=100&rows=30&csrf=${csrf(p)}`, { headers: headers(p), timeoutMs: 90_000 });
  const watch = (p: Principal, sessionId: string) => new WsTerminal(`${rig.base}/api/v1/sessions/${sessionId}/watch?csrf=${csrf(p)}`, { headers: headers(p), timeoutMs: 60_000 });
  const moderation = (t: WsTerminal, state: string) => t.waitFor(`moderation ${state}`, () => t.messages.find((m) => m.type === 'moderation' && m.state === state));
  const frontDoor = (pc: Computer) => new OpenSshTerminal([...opensshArgs(knownHosts, aliceAtSsh), '-p', String(door.port), `${alice.login}+${pc.name}@127.0.0.1`], opensshEnv(dir, aliceAtSsh));
  const seen = new Set<string>();
  /** The person's newest live session (one not returned before). */
  async function liveSessionOf(p: Principal): Promise<string> {
    let id = '';
    await waitUntil('the session in the live list', async () => {
      id = (await rig.gw.live.list()).find((l) => l.personId === p.personId && !seen.has(l.sessionId))?.sessionId ?? '';
      return id !== '';
    });
    seen.add(id);
    return id;
  }
  async function moderationAudit(sessionId: string): Promise<{ event: string; actor: string }[]> {
    const rows = await rig.db.query<{ actor: string; data: unknown }>("SELECT actor, data FROM audit_events WHERE type = 'session.moderation' AND session_id = $1 ORDER BY seq", [sessionId]);
    return rows.map((r) => ({ event: String((typeof r.data === 'string' ? JSON.parse(r.data) : r.data).event), actor: r.actor }));
  }
  const accountOf = async (sessionId: string): Promise<string | null> => (await rig.fx.repo.getSession(sessionId))?.accountName ?? null;
  const accountGone = (account: string) => waitUntil(`the JIT account ${account} to be deleted`, async () => (await rig.host.exec(`getent passwd ${account}`)).code !== 0);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jitgate-4eyes-'));
    rig = await startSshGatewayFixture({
      redisSocket: redisSocket!, pgUrl, store: STORE, prefix: `t${randomBytes(4).toString('hex')}`,
      gateway: ({ db, fx }) => {
        const mod = new SessionModerationService({ db, audit: fx.audit, log: silentLogger() });
        return {
          recorder: createRecorder({ db, audit: fx.audit, log: silentLogger(), dir: join(dir, 'recordings'), signingKey: randomBytes(32) }),
          // as app/main.ts: auditors watch; moderators watch and terminate
          mayWatch: async (p, e) => p.role === 'auditor' || mod.mayModerate(p, e.sessionId),
          mayTerminate: (p, e) => mod.mayModerate(p, e.sessionId),
          moderation: mod,
        };
      },
    });
    orgId = (await rig.fx.organization()).id;
    const other = (await rig.fx.organization()).id;
    for (const p of all) {
      rig.people.set(tokens.get(p.personId)!, p);
      // nia approves in another organization; the rest are of the computer's organization
      await rig.db.query('INSERT INTO people (id, login, display_name, role, organization_id) VALUES ($1, $2, $3, $4, $5)', [p.personId, p.login, p.displayName, p.role, p === nia ? other : orgId]);
    }
    aliceAtSsh = frontDoorPerson(identity, dir, alice);
    door = await startFrontDoor({ host: '127.0.0.1', port: 0, dataDir: dir, identity, broker: rig.gw.broker, audit: rig.fx.audit, log: silentLogger() });
    knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:${door.port} ${door.hostKeyPublic}\n`);
  }, 120_000);

  afterAll(async () => {
    await door?.close();
    await rig?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('waits for a moderator (other watchers do not count), pauses input when the moderator leaves and ends after the grace period; presence in audit and recording metadata', async () => {
    const pc = await computer({ requireModerator: true, moderatorGraceSeconds: GRACE_SECONDS });
    const term = terminal(alice, pc);
    const waiting = await moderation(term, 'waiting');
    expect(String(waiting.message)).toMatch(/waiting for a moderator/);
    const sessionId = await liveSessionOf(alice);

    // an auditor may watch but does not moderate; an approver of another organization may not even watch
    const auditorView = watch(audra, sessionId);
    await auditorView.waitForMessage('header');
    const outsider = watch(nia, sessionId);
    expect((await outsider.waitClosed()).code).toBe(4003);
    await new Promise((r) => setTimeout(r, 2500));
    expect(term.messages.some((m) => m.type === 'ready')).toBe(false);
    // nothing typed while waiting reaches the host
    term.send('echo early-$((40+2))\n');

    const modView = watch(mo, sessionId);
    await modView.waitForMessage('header');
    const active = await moderation(term, 'active');
    expect(active.moderators).toEqual([mo.login]);
    const ready = await term.waitForMessage('ready');
    const account = String(ready.account);
    const mark = term.text.length;
    term.send('echo four-$((2*2))\n');
    await term.waitForOutput(/four-4/, mark);
    await modView.waitForOutput(/four-4/);

    // the moderator leaves: paused, input dropped, ended after the grace period
    modView.close();
    const paused = await moderation(term, 'paused');
    expect(Date.parse(String(paused.graceEndsAt)) - Date.now()).toBeLessThanOrEqual(GRACE_SECONDS * 1000);
    const mark2 = term.text.length;
    term.send('echo typed-while-paused-$((1+1))\n');
    const closed = await term.waitClosed(GRACE_SECONDS * 1000 + 15_000);
    expect(closed.code).toBe(4012);
    expect(term.text.slice(mark2)).not.toMatch(/typed-while-paused-2/);
    expect(term.text).not.toMatch(/early-42/);
    expect(term.messages.find((m) => m.type === 'moderation' && m.state === 'ended')?.message).toMatch(/no moderator rejoined within 5 seconds/);
    auditorView.close();

    await accountGone(account);
    const events = await moderationAudit(sessionId);
    expect(events.map((e) => e.event)).toEqual(['waiting', 'joined', 'left', 'paused', 'ended']);
    expect(events.filter((e) => e.event === 'joined' || e.event === 'left').map((e) => e.actor)).toEqual([mo.login, mo.login]);
    await waitUntil('the recording metadata to carry the end', async () => {
      const r = await rig.db.query<{ metadata: unknown }>('SELECT metadata FROM recordings WHERE session_id = $1', [sessionId]);
      const m = (typeof r[0]?.metadata === 'string' ? JSON.parse(r[0].metadata) : r[0]?.metadata) as { moderated?: boolean; moderation?: { event: string; by?: string }[] } | undefined;
      return m?.moderated === true && (m.moderation ?? []).map((e) => e.event).join(',') === 'waiting,joined,left,paused,ended' && m.moderation?.[1]?.by === mo.login;
    }, 20_000);
  }, 180_000);

  it('a moderator rejoining resumes the session; the moderator terminates it from the watch', async () => {
    const pc = await computer({ requireModerator: true, moderatorGraceSeconds: 60 });
    const term = terminal(alice, pc);
    await moderation(term, 'waiting');
    const sessionId = await liveSessionOf(alice);
    const first = watch(mo, sessionId);
    await first.waitForMessage('header');
    await term.waitForMessage('ready');
    first.close();
    await moderation(term, 'paused');
    const again = watch(mo, sessionId);
    await again.waitForMessage('header');
    // after the pause, active again
    await term.waitFor('active again', () => term.messages.findLast((m) => m.type === 'moderation')?.state === 'active' && term.messages.some((m) => m.type === 'moderation' && m.state === 'paused'));
    const mark = term.text.length;
    term.send('echo resumed-$((3*3))\n');
    await term.waitForOutput(/resumed-9/, mark);

    again.ws.send(JSON.stringify({ type: 'terminate' }));
    expect((await term.waitClosed()).code).toBe(4012);
    await waitUntil('the termination in the audit trail', async () => {
      const r = await rig.db.query<{ actor: string }>("SELECT actor FROM audit_events WHERE type = 'session.terminated' AND session_id = $1", [sessionId]);
      return r[0]?.actor === mo.login;
    }, 20_000);
    const events = (await moderationAudit(sessionId)).map((e) => e.event);
    expect(events).toEqual(['waiting', 'joined', 'left', 'paused', 'joined', 'resumed']);
  }, 180_000);

  it('SSH front door (OpenSSH): told it waits for a moderator and not logged in until one joins; input typed then is dropped; paused with a notice when the moderator leaves; ended after the grace period with the reason', async () => {
    const pc = await computer({ requireModerator: true, moderatorGraceSeconds: GRACE_SECONDS });
    const ssh = frontDoor(pc);
    try {
      await ssh.waitFor(/jitgate: waiting for a moderator: an approver of this organization must join the session as observer before it connects/);
      const sessionId = await liveSessionOf(alice);
      const account = (await accountOf(sessionId))!;
      // The JIT account exists, but nothing logs in to the host with it until a moderator watches.
      await new Promise((r) => setTimeout(r, 2500));
      expect(ssh.text).not.toMatch(/connecting to/);
      expect((await rig.host.exec(`pgrep -u ${account} || true`)).stdout.trim()).toBe('');
      ssh.type('echo early-$((40+2))\n');
      // A watcher who is not a moderator (an auditor) does not let it start.
      const auditorView = watch(audra, sessionId);
      await auditorView.waitForMessage('header');
      await new Promise((r) => setTimeout(r, 1500));
      expect(ssh.text).not.toMatch(/connecting to/);

      const modView = watch(mo, sessionId);
      await modView.waitForMessage('header');
      await ssh.waitFor(new RegExp(`jitgate: moderated by ${mo.login}`));
      await ssh.waitFor(new RegExp(`jitgate: connecting to ${pc.name} as ${account}`));
      await ssh.waitFor(/\$ $/);
      let mark = ssh.text.length;
      ssh.type('echo four-$((2*2))\n');
      await ssh.waitFor(/four-4/, mark);
      await modView.waitForOutput(/four-4/);

      // the moderator leaves: told, input dropped, ended after the grace period with the reason
      modView.close();
      await ssh.waitFor(/jitgate: paused: the moderator left, input is blocked; the session ends at \d\d:\d\d:\d\d UTC unless a moderator rejoins/, mark);
      mark = ssh.text.length;
      ssh.type('echo typed-while-paused-$((1+1))\n');
      const code = await ssh.exited;
      expect(code).not.toBe(0);
      expect(ssh.text.slice(mark)).toContain(`jitgate: session ended: no moderator rejoined within ${GRACE_SECONDS} seconds`);
      expect(ssh.text.slice(mark)).not.toMatch(/typed-while-paused-2/);
      expect(ssh.text).not.toMatch(/early-42/);
      auditorView.close();
      await accountGone(account);
      expect((await moderationAudit(sessionId)).map((e) => e.event)).toEqual(['waiting', 'joined', 'left', 'paused', 'ended']);
      await waitUntil('the session to end', async () => (await rig.fx.repo.getSession(sessionId))?.state === 'ended');
    } finally {
      ssh.kill();
    }
  }, 180_000);

  it('SSH front door: the moderator terminates from the watch and the person is told by whom; leaving while waiting ends the session at once', async () => {
    const pc = await computer({ requireModerator: true, moderatorGraceSeconds: 60 });
    const ssh = frontDoor(pc);
    try {
      await ssh.waitFor(/waiting for a moderator/);
      const sessionId = await liveSessionOf(alice);
      const modView = watch(mo, sessionId);
      await modView.waitForMessage('header');
      await ssh.waitFor(/\$ $/);
      const mark = ssh.text.length;
      ssh.type('echo moderated-$((6*7))\n');
      await ssh.waitFor(/moderated-42/, mark);
      modView.ws.send(JSON.stringify({ type: 'terminate' }));
      await ssh.exited;
      expect(ssh.text).toContain(`jitgate: session terminated by ${mo.login}`);
      await waitUntil('the termination in the audit trail', async () => {
        const r = await rig.db.query<{ actor: string }>("SELECT actor FROM audit_events WHERE type = 'session.terminated' AND session_id = $1", [sessionId]);
        return r[0]?.actor === mo.login;
      }, 20_000);
      await accountGone((await accountOf(sessionId))!);
    } finally {
      ssh.kill();
    }

    // Nobody comes and the person gives up: the session ends now, not when the wait for a moderator runs out.
    const gaveUp = frontDoor(pc);
    await gaveUp.waitFor(/waiting for a moderator/);
    const sessionId = await liveSessionOf(alice);
    const account = (await accountOf(sessionId))!;
    gaveUp.kill();
    await waitUntil('the session to leave the live list', async () => !(await rig.gw.live.list()).some((l) => l.sessionId === sessionId), 30_000);
    await accountGone(account);
    await waitUntil('the session to end', async () => (await rig.fx.repo.getSession(sessionId))?.state === 'ended');
  }, 180_000);
});
