/**
 * Four-eyes sessions (docs/access-requests.md "Four-eyes sessions") through
 * the browser terminal on real services: the JIT account is provisioned on a
 * real sshd test host through BullMQ on a real Redis, the session waits
 * (no login, nothing typed reaches the host) until an approver of the
 * computer's organization watches it through the real watch websocket;
 * watchers who are not moderators do not count; when the moderator leaves,
 * input is dropped and the session ends after the grace period unless a
 * moderator rejoins; the moderator terminates from the watch. Presence goes
 * into the audit trail and the real recorder's `recordings.metadata`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions, Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Database } from '../core/db/database.js';
import { migrate } from '../core/db/migrations.js';
import { PgDatabase } from '../core/db/pg.database.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import type { Computer } from '../core/domain.js';
import { CoreErrors, JitgateError } from '../core/errors.js';
import { silentLogger } from '../core/logging.js';
import { redisOptions } from '../core/redis.js';
import { SessionModerationService } from '../gateway/access-requests/index.js';
import type { Principal } from '../gateway/auth/principal.js';
import type { AccessChecker } from '../gateway/contracts.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { startSshGateway, type SshGateway } from '../gateway/ssh/ssh-gateway.js';
import { buildJobHandlers } from '../provisioner/job-handlers.js';
import { JitQueue, startJitWorker } from '../provisioner/jobs.js';
import { JIT_PRESETS } from '../provisioner/jit-settings.js';
import { SshAccountStore } from '../provisioner/stores/ssh.store.js';
import { createRecorder } from '../recorder/session-recorder.js';
import { JitFixture } from './fixtures/jit-fixture.js';
import { createTestDatabase } from './harness/postgres.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from './harness/ssh-host.js';
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

describe.skipIf(!avail.ok || !redisSocket)(`four-eyes SSH sessions on an sshd test host${avail.ok ? (redisSocket ? '' : ' (skipped: no Redis)') : ` (skipped: ${avail.reason ?? ''})`}`, () => {
  let host: SshHostHandle;
  let db: Database;
  let fx: JitFixture;
  let store: SshAccountStore;
  let queue: JitQueue;
  let worker: Worker;
  let gw: SshGateway;
  let app: FastifyInstance;
  let base: string;
  let recDir: string;
  let orgId: string;
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const tag = randomBytes(2).toString('hex');
  const people = new Map<string, Principal>();
  const tokens = new Map<string, string>();

  function who(login: string, role: Principal['role']): Principal {
    const p: Principal = { personId: randomUUID(), login: `${login}${tag}`, displayName: login, role, organizationId: null, authSessionId: `auth-${randomBytes(6).toString('hex')}` };
    const token = randomBytes(12).toString('hex');
    people.set(token, p);
    tokens.set(p.personId, token);
    return p;
  }
  const alice = who('alice', 'technician');
  const mo = who('mo', 'org_admin');
  const nia = who('nia', 'technician');
  const audra = who('audra', 'auditor');

  const access: AccessChecker = {
    async computerForConnect(_principal, ref) {
      const c = await fx.repo.getComputer(ref);
      if (!c) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: `computer ${ref}` });
      return c;
    },
  };

  async function computer(policy: Record<string, unknown>): Promise<Computer> {
    const c = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local' }, { orgId, localStore: STORE, domainStore: STORE });
    await db.query('UPDATE computers SET address = $2, ssh_port = $3, policy = $4 WHERE id = $1', [c.id, host.address, host.port, JSON.stringify({ sshHostKeySha256: host.hostKeySha256, ...policy })]);
    return (await fx.repo.getComputer(c.id))!;
  }

  const csrf = (p: Principal) => `csrf-${p.authSessionId}`;
  const headers = (p: Principal) => ({ 'x-test-person': tokens.get(p.personId)! });
  const terminal = (p: Principal, pc: Computer) => new WsTerminal(`${base}/api/v1/terminal?computer=${pc.id}&cols=100&rows=30&csrf=${csrf(p)}`, { headers: headers(p), timeoutMs: 90_000 });
  const watch = (p: Principal, sessionId: string) => new WsTerminal(`${base}/api/v1/sessions/${sessionId}/watch?csrf=${csrf(p)}`, { headers: headers(p), timeoutMs: 60_000 });
  const moderation = (t: WsTerminal, state: string) => t.waitFor(`moderation ${state}`, () => t.messages.find((m) => m.type === 'moderation' && m.state === state));
  async function liveSessionOf(p: Principal): Promise<string> {
    let id = '';
    await waitUntil('the session in the live list', async () => {
      id = (await gw.live.list()).find((l) => l.personId === p.personId)?.sessionId ?? '';
      return id !== '';
    });
    return id;
  }
  async function moderationAudit(sessionId: string): Promise<{ event: string; actor: string }[]> {
    const rows = await db.query<{ actor: string; data: unknown }>("SELECT actor, data FROM audit_events WHERE type = 'session.moderation' AND session_id = $1 ORDER BY seq", [sessionId]);
    return rows.map((r) => ({ event: String((typeof r.data === 'string' ? JSON.parse(r.data) : r.data).event), actor: r.actor }));
  }

  beforeAll(async () => {
    host = await startSshHost();
    db = pgUrl ? new PgDatabase({ url: await createTestDatabase(pgUrl, `t_${randomBytes(6).toString('hex')}`), poolSize: 5 }) : await PgliteDatabase.open();
    await migrate(db);
    store = new SshAccountStore({
      host: host.address, port: host.port, username: host.adminUser, privateKey: host.adminPrivateKey, hostKeySha256: host.hostKeySha256,
      groups: { admins: 'sudo' }, logger: silentLogger(), timeoutMs: 20_000,
    });
    fx = new JitFixture(db, new Map([[STORE, store]]));
    orgId = (await fx.organization()).id;
    const other = (await fx.organization()).id;
    for (const p of people.values()) {
      // nia approves in another organization; the rest are of the computer's organization
      const org = p === nia ? other : orgId;
      await db.query('INSERT INTO people (id, login, display_name, role, organization_id) VALUES ($1, $2, $3, $4, $5)', [p.personId, p.login, p.displayName, p.role, org]);
    }
    const connection = redisOptions({ path: redisSocket }, { maxRetriesPerRequest: null }) as ConnectionOptions;
    queue = new JitQueue({ connection, prefix, teardownAttempts: 3 });
    await queue.ready();
    worker = startJitWorker({
      connection, prefix, concurrency: 4, log: silentLogger(),
      handlers: buildJobHandlers(fx.service, queue, async (id) => (await fx.repo.getSession(id))?.leaseExpiresAt ?? null),
    });
    recDir = mkdtempSync(join(tmpdir(), 'jitgate-4eyes-'));
    const recorder = createRecorder({ db, audit: fx.audit, log: silentLogger(), dir: recDir, signingKey: randomBytes(32) });
    const mod = new SessionModerationService({ db, audit: fx.audit, log: silentLogger() });
    gw = await startSshGateway({
      redis: redisOptions({ path: redisSocket }), queueEvents: { connection, prefix }, queue, engine: fx.service, access, recorder, audit: fx.audit,
      checkCsrf: (req) => (req.query as { csrf?: string }).csrf === `csrf-${req.principal?.authSessionId ?? ''}`,
      // as app/main.ts: auditors watch; moderators watch and terminate
      mayWatch: async (p, e) => p.role === 'auditor' || mod.mayModerate(p, e.sessionId),
      mayTerminate: (p, e) => mod.mayModerate(p, e.sessionId),
      moderation: mod,
      livePrefix: `${prefix}:live`, liveHeartbeatMs: 1000, log: silentLogger(),
    });
    app = await buildServer({
      log: silentLogger(), metrics: createMetrics(), readiness: [], version: 'test',
      rootPlugins: [
        async (a) => {
          a.addHook('onRequest', async (req) => {
            const t = req.headers['x-test-person'];
            req.principal = (typeof t === 'string' && people.get(t)) || null;
          });
        },
      ],
      apiPlugins: gw.apiPlugins,
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    base = `ws://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await gw?.close();
    await worker?.close();
    await queue?.close();
    await store?.close();
    await db?.close();
    await host?.stop();
    if (recDir) rmSync(recDir, { recursive: true, force: true });
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

    await waitUntil('the JIT account to be deleted', async () => (await host.exec(`getent passwd ${account}`)).code !== 0);
    const events = await moderationAudit(sessionId);
    expect(events.map((e) => e.event)).toEqual(['waiting', 'joined', 'left', 'paused', 'ended']);
    expect(events.filter((e) => e.event === 'joined' || e.event === 'left').map((e) => e.actor)).toEqual([mo.login, mo.login]);
    await waitUntil('the recording metadata to carry the end', async () => {
      const r = await db.query<{ metadata: unknown }>('SELECT metadata FROM recordings WHERE session_id = $1', [sessionId]);
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
      const r = await db.query<{ actor: string }>("SELECT actor FROM audit_events WHERE type = 'session.terminated' AND session_id = $1", [sessionId]);
      return r[0]?.actor === mo.login;
    }, 20_000);
    const events = (await moderationAudit(sessionId)).map((e) => e.event);
    expect(events).toEqual(['waiting', 'joined', 'left', 'paused', 'joined', 'resumed']);
  }, 180_000);
});
