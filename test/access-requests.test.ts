import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { generate } from 'otplib';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { isJitgateError } from '../core/errors.js';
import { silentLogger } from '../core/logging.js';
import { redisOptions } from '../core/redis.js';
import { SecretBox } from '../core/secret-box.js';
import { AccessService } from '../gateway/access-policy.js';
import { apiRoutes } from '../gateway/api/index.js';
import { createAuth, createPerson, type Auth } from '../gateway/auth/index.js';
import type { Principal } from '../gateway/auth/principal.js';
import { AccessRequestService, ChannelNotifier, accessRequestRoutes, computerSessionEnder, smtpSender, type RequestView } from '../gateway/access-requests/index.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { RedisLiveSessions } from '../gateway/sessions/live-sessions.js';
import { DirRecordingFiles } from './fixtures/api-fixture.js';
import { databaseFactories } from './harness/databases.js';

/**
 * Access requests with approval through the real HTTP server, the real
 * sign-in (password + TOTP computed from the enrolled secret) and the real
 * administration API, on PGlite and PostgreSQL, across two organizations.
 * Email goes to a real SMTP server on loopback (smtp-server) and is read
 * there; webhooks go to a real HTTP receiver on loopback that checks the
 * HMAC signature. Live sessions run in the real registry on Redis with two
 * gateways: a revocation on one ends the session held by the other. The clock
 * is injected so TOTP steps and expiry are exact.
 */
const redisSocket = inject('redisSocket');

const PASSWORD = 'correct horse battery staple';
const validJit = { enabled: true, deleteOnCheckIn: true, adminGroups: ['sudo'], accountType: 'local', maxSessionMinutes: 120 };

interface Mail {
  to: string[];
  raw: string;
}
interface Hook {
  path: string;
  body: string;
  signatureOk: boolean;
  json: Record<string, unknown>;
}

/** Quoted-printable soft breaks and escapes, so the test reads the text as a person would. */
const unQp = (s: string) => s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));

for (const factory of databaseFactories()) {
  describe.skipIf(factory.skip !== '' || !redisSocket)(`access requests with approval (${factory.label}${redisSocket ? '' : ', skipped: no Redis'})`, () => {
    let db: Database;
    let app: FastifyInstance;
    let auth: Auth;
    let audit: AuditLog;
    let access: AccessService;
    let service: AccessRequestService;
    let smtp: SMTPServer;
    let receiver: http.Server;
    let gwA: RedisLiveSessions;
    let gwB: RedisLiveSessions;
    /** session id → who ended it, as the holding gateway's proxy is told. */
    const ended = new Map<string, string>();
    const files = new DirRecordingFiles();
    const mails: Mail[] = [];
    const hooks: Hook[] = [];
    const tag = randomBytes(3).toString('hex');
    const hookSecret = randomBytes(24).toString('hex');
    let clock = Date.now();
    const now = () => new Date(clock);
    const lastStep = new Map<string, number>();

    /** A fresh code for `secret`: moves the injected clock one TOTP step on when this secret already used the current one. */
    async function code(secret: string): Promise<string> {
      let step = Math.floor(clock / 30_000);
      if (lastStep.get(secret) === step) {
        clock += 30_000;
        step++;
      }
      lastStep.set(secret, step);
      return generate({ secret, epoch: step * 30 });
    }

    class Client {
      cookie = '';
      csrf = '';
      secret = '';
      id = '';
      constructor(readonly login: string) {}
      async req(method: InjectOptions['method'], url: string, body?: unknown) {
        const headers: Record<string, string> = {};
        if (this.cookie) headers.cookie = `jitgate_session=${this.cookie}`;
        if (this.csrf && method !== 'GET') headers['x-csrf-token'] = this.csrf;
        const r = await app.inject({ method, url: `/api/v1${url}`, headers, ...(body !== undefined ? { payload: body as object } : {}) });
        const sc = r.headers['set-cookie'];
        for (const c of sc === undefined ? [] : Array.isArray(sc) ? sc : [sc]) {
          const m = /^jitgate_session=([^;]*)/.exec(c);
          if (m) this.cookie = m[1] ?? '';
        }
        return r;
      }
      async principal(): Promise<Principal> {
        const me = (await this.req('GET', '/auth/me')).json() as { person: { id: string; login: string; displayName: string; role: Principal['role']; organizationId: string | null } };
        return { personId: me.person.id, login: me.person.login, displayName: me.person.displayName, role: me.person.role, organizationId: me.person.organizationId, authSessionId: 'test' };
      }
    }

    /** Create the person, sign in with the password, enroll TOTP with a real code: a signed-in client. */
    async function person(label: string, role: Principal['role'], organizationId: string | null, email: string | null = null): Promise<Client> {
      const login = `${label}${tag}`;
      const p = await createPerson(db, { login, displayName: label, role, organizationId, password: PASSWORD, ...(email ? { email } : {}) });
      const c = new Client(login);
      c.id = p.id;
      expect((await c.req('POST', '/auth/sign-in', { login, password: PASSWORD })).json()).toEqual({ next: 'totp-enrollment' });
      c.csrf = ((await c.req('GET', '/auth/me')).json() as { csrfToken: string }).csrfToken;
      const e = (await c.req('POST', '/auth/totp/enrollment')).json() as { secret: string };
      c.secret = e.secret;
      expect((await c.req('POST', '/auth/totp/enrollment/confirm', { code: await code(c.secret) })).statusCode).toBe(200);
      c.csrf = ((await c.req('GET', '/auth/me')).json() as { csrfToken: string }).csrfToken;
      return c;
    }

    async function org(label: string): Promise<{ id: string; name: string }> {
      const id = randomUUID();
      const name = `${label}-${tag}`;
      await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1,$2,$3)', [id, name, String(10_000_000 + Math.floor(Math.random() * 89_999_999))]);
      return { id, name };
    }

    /** A computer made through the administration API by an admin, with the approval policy. */
    async function computer(admin: Client, organizationId: string, policy: Record<string, unknown>, restricted = false): Promise<{ id: string; name: string }> {
      const name = `pc-${randomBytes(3).toString('hex')}`;
      const r = await admin.req('POST', '/computers', { organizationId, name, address: '192.0.2.10', protocols: ['ssh'], localStore: 'linux', jit: validJit, policy, restricted });
      expect(r.statusCode, r.body).toBe(201);
      return { id: r.json().id as string, name };
    }

    async function connect(c: Client, computerId: string): Promise<string> {
      try {
        return (await access.computerForConnect(await c.principal(), computerId, 'ssh')).name;
      } catch (err) {
        if (isJitgateError(err)) return err.code;
        throw err;
      }
    }

    async function auditOf(requestId: string): Promise<{ type: string; actor: string; outcome: string; data: Record<string, unknown>; session_id: string | null }[]> {
      return db.query("SELECT type, actor, outcome, data, session_id FROM audit_events WHERE data->>'requestId' = $1 ORDER BY seq", [requestId]);
    }

    async function waitFor<T>(what: string, f: () => T | undefined): Promise<T> {
      const until = Date.now() + 30_000;
      for (;;) {
        await service.idle();
        const v = f();
        if (v !== undefined) return v;
        if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    let orgA: { id: string; name: string };
    let orgB: { id: string; name: string };
    let tech: Client;
    let admin1: Client;
    let admin2: Client;
    let senior: Client;
    let adminB: Client;
    let techB: Client;

    beforeAll(async () => {
      db = await factory.open();
      audit = new AuditLog(db);
      const log = silentLogger();
      const prefix = `jgt-ar-${tag}`;
      gwA = new RedisLiveSessions({ redis: redisOptions({ path: redisSocket }), prefix, gatewayId: `gw-a-${tag}`, log });
      gwB = new RedisLiveSessions({ redis: redisOptions({ path: redisSocket }), prefix, gatewayId: `gw-b-${tag}`, log });
      await gwA.start();
      await gwB.start();
      smtp = new SMTPServer({
        authOptional: true,
        disabledCommands: ['STARTTLS', 'AUTH'],
        logger: false,
        onData(stream, session, cb) {
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            mails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: unQp(Buffer.concat(chunks).toString('utf8')) });
            cb();
          });
        },
      });
      await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
      receiver = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          const ts = String(req.headers['x-jitgate-timestamp'] ?? '');
          const got = Buffer.from(String(req.headers['x-jitgate-signature'] ?? ''));
          const want = Buffer.from(`v1=${createHmac('sha256', hookSecret).update(`${ts}.${body}`).digest('hex')}`);
          const signatureOk = got.length === want.length && timingSafeEqual(got, want) && Math.abs(Date.now() / 1000 - Number(ts)) < 300;
          hooks.push({ path: req.url ?? '', body, signatureOk, json: JSON.parse(body) as Record<string, unknown> });
          res.writeHead(signatureOk ? 200 : 401).end();
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      const hookBase = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
      orgA = await org('acme');
      orgB = await org('globex');
      auth = createAuth({ db, box: new SecretBox(randomBytes(32)), audit, log, now, cfg: { sessionHours: 720, idleMinutes: 24 * 60, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' } });
      access = new AccessService(db, audit);
      const mail = smtpSender({ host: '127.0.0.1', port: (smtp.server.address() as AddressInfo).port, tls: 'none', from: 'jitgate <jitgate@example.test>' });
      service = new AccessRequestService({
        db, audit, log, now, publicUrl: 'https://jitgate.example.test/', pendingMinutes: 60,
        secondFactor: { confirm: async (personId, proof, purpose) => (proof.code ? auth.identity.confirmSecondFactor(personId, proof.code, purpose) : null) },
        endSessions: computerSessionEnder(db, gwA),
        notifier: new ChannelNotifier({
          log, mail,
          webhooks: [
            { name: 'slack-a', url: `${hookBase}/slack`, format: 'slack', secret: hookSecret, organizations: [orgA.name] },
            { name: 'teams-all', url: `${hookBase}/teams`, format: 'teams', secret: hookSecret },
            { name: 'slack-b', url: `${hookBase}/slack-b`, format: 'slack', secret: hookSecret, organizations: [orgB.name] },
          ],
        }),
      });
      app = await buildServer({
        log, metrics: createMetrics(), version: 'test', readiness: [],
        rootPlugins: [auth.plugin],
        apiPlugins: [
          apiRoutes({
            db, audit, access, liveSessions: gwA, recordingFiles: files,
            // The organizations' own store (a store without organizations is for global admins only).
            stores: [{ name: 'linux', type: 'ssh', url: 'ssh://192.0.2.10:22', organizations: [orgA.name, orgB.name], groups: ['sudo'], allowedContainers: null }],
            checkStore: async () => ({ ok: true }),
            extendSession: () => Promise.reject(new Error('not in this test')),
          }),
          accessRequestRoutes(service),
        ],
      });
      await app.ready();
      tech = await person('tess', 'technician', orgA.id);
      admin1 = await person('ada', 'org_admin', orgA.id, `ada-${tag}@a.example.test`);
      admin2 = await person('abe', 'org_admin', orgA.id, `abe-${tag}@a.example.test`);
      senior = await person('sam', 'technician', orgA.id, `sam-${tag}@a.example.test`);
      adminB = await person('bea', 'org_admin', orgB.id, `bea-${tag}@b.example.test`);
      techB = await person('bob', 'technician', orgB.id);
    }, 240_000);

    afterAll(async () => {
      await service?.idle();
      await app?.close();
      await gwA?.close();
      await gwB?.close();
      await new Promise<void>((r) => smtp?.close(() => r()));
      await new Promise<void>((r) => receiver?.close(() => r()));
      await db?.close();
    });

    it('2 of 3 approvals with MFA open a window; email and signed webhooks reach the approvers; the other organization sees nothing; revoking ends the live session', async () => {
      const pc = await computer(admin1, orgA.id, { requireApproval: true, approvalsRequired: 2, approverRoles: ['org_admin'], approverLogins: [senior.login] });
      expect(await connect(tech, pc.id)).toBe('JIT_ERR_APPROVAL_REQUIRED');
      // Admins need approval too; the computer's policy applies to everyone who connects.
      expect(await connect(admin1, pc.id)).toBe('JIT_ERR_APPROVAL_REQUIRED');

      const listed = (await tech.req('GET', '/access-requests/computers')).json() as { id: string; requireApproval: boolean; approvalsRequired: number; maxSessionMinutes: number }[];
      expect(listed.find((c) => c.id === pc.id)).toMatchObject({ requireApproval: true, approvalsRequired: 2, maxSessionMinutes: 120 });
      expect(((await techB.req('GET', '/access-requests/computers')).json() as { id: string }[]).map((c) => c.id)).not.toContain(pc.id);

      const tooLong = await tech.req('POST', '/access-requests', { computerId: pc.id, reason: 'patch openssl', minutes: 121 });
      expect(tooLong.statusCode).toBe(400);
      expect((await tech.req('POST', '/access-requests', { computerId: pc.id, reason: '', minutes: 30 })).json().details.fields).toHaveProperty('reason');
      expect((await techB.req('POST', '/access-requests', { computerId: pc.id, reason: 'cross-tenant try', minutes: 30 })).statusCode).toBe(404);

      const created = await tech.req('POST', '/access-requests', { computerId: pc.id, reason: 'patch <openssl> & reboot', minutes: 30, ticket: 'INC-4711' });
      expect(created.statusCode, created.body).toBe(201);
      const req = created.json() as RequestView;
      expect(req).toMatchObject({ state: 'pending', required: 2, approvals: 0, status: 'waiting for 2 of 2 approvals', ticket: 'INC-4711', mine: true, mayDecide: false });
      expect((await tech.req('POST', '/access-requests', { computerId: pc.id, reason: 'again', minutes: 30 })).statusCode).toBe(409);

      // Email: to the three approvers with an address, never the requester, with the link to the request page only.
      const mail = await waitFor('the email', () => mails.find((m) => m.raw.includes(req.id)));
      expect(mail.to.sort()).toEqual(['ada', 'abe', 'sam'].map((l) => `${l}-${tag}@a.example.test`).sort());
      expect(mail.raw).toContain(`Subject: [jitgate] Access request: ${tech.login} asks for ${pc.name}`);
      expect(mail.raw).toContain(`https://jitgate.example.test/requests/${req.id}`);
      expect(mail.raw).toContain('confirm with your second factor');
      expect(mail.raw).toContain('INC-4711');
      // Webhooks: the organization's Slack and the all-organizations Teams hook, both signed; not the other organization's.
      const slack = await waitFor('the Slack webhook', () => hooks.find((h) => h.path === '/slack' && h.body.includes(req.id)));
      const teams = await waitFor('the Teams webhook', () => hooks.find((h) => h.path === '/teams' && h.body.includes(req.id)));
      expect(slack.signatureOk && teams.signatureOk).toBe(true);
      expect(slack.json.text).toContain(`${tech.login} asks for ${pc.name}`);
      expect(slack.body).toContain('patch &lt;openssl&gt; &amp; reboot'); // escaped: a reason cannot forge a Slack link
      expect(JSON.stringify((slack.json.blocks as unknown[]).at(-1))).toContain(`/requests/${req.id}`);
      expect(teams.json).toMatchObject({ '@type': 'MessageCard', potentialAction: [{ '@type': 'OpenUri', targets: [{ uri: `https://jitgate.example.test/requests/${req.id}` }] }] });
      expect(hooks.some((h) => h.path === '/slack-b')).toBe(false);

      // The other organization: not visible, not decidable (404, no oracle).
      expect((await adminB.req('GET', `/access-requests/${req.id}`)).statusCode).toBe(404);
      expect((await adminB.req('POST', `/access-requests/${req.id}/approve`, { code: await code(adminB.secret) })).statusCode).toBe(404);
      expect(((await adminB.req('GET', '/access-requests')).json() as RequestView[]).map((r) => r.id)).not.toContain(req.id);
      // Never the requester.
      const own = await tech.req('POST', `/access-requests/${req.id}/approve`, { code: await code(tech.secret) });
      expect(own.statusCode).toBe(403);
      // No approval without a second factor, nor with a wrong one (counted like a failed sign-in).
      expect((await admin1.req('POST', `/access-requests/${req.id}/approve`, {})).json().code).toBe('JIT_ERR_ACCESS_REQUEST_MFA');
      expect((await admin1.req('POST', `/access-requests/${req.id}/approve`, { code: '000000' })).json().code).toBe('JIT_ERR_ACCESS_REQUEST_MFA');
      const failed = await db.query("SELECT 1 FROM audit_events WHERE type = 'auth.sign_in_failed' AND actor = $1 AND data->>'via' = 'access-request'", [admin1.login]);
      expect(failed.length).toBe(1);

      const first = await admin1.req('POST', `/access-requests/${req.id}/approve`, { code: await code(admin1.secret), comment: 'ok for INC-4711' });
      expect(first.statusCode, first.body).toBe(200);
      expect(first.json()).toMatchObject({ state: 'pending', approvals: 1, status: 'waiting for 1 of 2 approvals' });
      expect((await admin1.req('POST', `/access-requests/${req.id}/approve`, { code: await code(admin1.secret) })).statusCode).toBe(403);
      expect(await connect(tech, pc.id)).toBe('JIT_ERR_APPROVAL_REQUIRED');
      const second = await senior.req('POST', `/access-requests/${req.id}/approve`, { code: await code(senior.secret) });
      expect(second.json()).toMatchObject({ state: 'approved', approvals: 2 });
      expect(second.json().decisions.map((d: { approver: string; factor: string }) => `${d.approver}:${d.factor}`)).toEqual([`${admin1.login}:totp`, `${senior.login}:totp`]);
      // The requester's live status shows it without anything else happening.
      expect(((await tech.req('GET', `/access-requests/${req.id}`)).json() as RequestView).status).toMatch(/^approved: sessions may start for (29|30) more minutes$/);
      expect(await connect(tech, pc.id)).toBe(pc.name);
      // Only the requester's window: the admin still needs their own.
      expect(await connect(admin1, pc.id)).toBe('JIT_ERR_APPROVAL_REQUIRED');

      // A session starts in the window; the sweep records which one used it.
      const sessionId = randomUUID();
      await db.query(
        `INSERT INTO sessions (id, person_id, person_login, computer_id, computer_name, protocol, account_type, state, lease_expires_at, started_at, created_at)
         VALUES ($1,$2,$3,$4,$5,'ssh','local','active', now() + interval '1 hour', $6, $6)`,
        [sessionId, tech.id, tech.login, pc.id, pc.name, now()],
      );
      // Held by the other gateway, as the session broker registers it; its proxy closes when told to.
      const reg = await gwB.register(
        { sessionId, personLogin: tech.login, personId: tech.id, computerName: pc.name, protocol: 'ssh', account: null, startedAt: now().toISOString() },
        (_reason, by) => {
          ended.set(sessionId, by);
          void reg.unregister();
        },
      );
      // Another session of the same person on another computer: revoking this window leaves it alone.
      const otherId = randomUUID();
      const other = await gwB.register({ sessionId: otherId, personLogin: tech.login, personId: tech.id, computerName: 'elsewhere', protocol: 'ssh', account: null, startedAt: now().toISOString() }, (_r, by) => ended.set(otherId, by));
      expect((await service.sweep()).linked).toBe(1);
      expect((await service.sweep()).linked).toBe(0);
      expect(((await tech.req('GET', `/access-requests/${req.id}`)).json() as RequestView).sessions).toEqual([sessionId]);

      // Revoking ends the window and the live session; the next start is refused.
      expect((await adminB.req('POST', `/access-requests/${req.id}/revoke`, {})).statusCode).toBe(404);
      const revoked = await admin2.req('POST', `/access-requests/${req.id}/revoke`, { reason: 'change window closed' });
      expect(revoked.json()).toMatchObject({ state: 'revoked', endedBy: admin2.login });
      await expect.poll(() => ended.get(sessionId), { timeout: 15_000 }).toBe(admin2.login);
      expect(ended.has(otherId)).toBe(false);
      await other.unregister();
      expect(await connect(tech, pc.id)).toBe('JIT_ERR_APPROVAL_REQUIRED');

      const trail = await auditOf(req.id);
      expect(trail.map((e) => e.type)).toEqual(expect.arrayContaining(['access_request.requested', 'access_request.notified', 'access_request.decided', 'access_request.approved', 'access_request.used', 'access_request.revoked']));
      expect(trail.find((e) => e.type === 'access_request.used')).toMatchObject({ actor: tech.login, session_id: sessionId });
      expect(trail.find((e) => e.type === 'access_request.revoked')?.data).toMatchObject({ endedSessions: [sessionId], reason: 'change window closed' });
      expect(trail.filter((e) => e.type === 'access_request.notified' && e.outcome === 'success').map((e) => e.data.target).sort()).toEqual(expect.arrayContaining(['slack-a', 'smtp', 'teams-all']));
      expect(trail.filter((e) => e.type === 'access_request.decided' && e.outcome === 'success').map((e) => e.actor)).toEqual([admin1.login, senior.login]);
    });

    it('two approvers answering at the same moment are counted once each: one approval event, one window', async () => {
      const pc = await computer(admin1, orgA.id, { requireApproval: true, approvalsRequired: 2 });
      const r = (await tech.req('POST', '/access-requests', { computerId: pc.id, reason: 'race', minutes: 5 })).json() as RequestView;
      const [c1, c2] = [await code(admin1.secret), await code(admin2.secret)];
      const answers = await Promise.all([
        admin1.req('POST', `/access-requests/${r.id}/approve`, { code: c1 }),
        admin2.req('POST', `/access-requests/${r.id}/approve`, { code: c2 }),
      ]);
      expect(answers.map((a) => a.statusCode)).toEqual([200, 200]);
      expect(((await tech.req('GET', `/access-requests/${r.id}`)).json() as RequestView)).toMatchObject({ state: 'approved', approvals: 2 });
      expect((await auditOf(r.id)).filter((e) => e.type === 'access_request.approved')).toHaveLength(1);
      expect(await connect(tech, pc.id)).toBe(pc.name);
    });

    it('one deny denies; an approved window expires; a pending request expires unanswered', async () => {
      const pc = await computer(admin1, orgA.id, { requireApproval: true });
      const denied = (await tech.req('POST', '/access-requests', { computerId: pc.id, reason: 'look at logs', minutes: 10 })).json() as RequestView;
      const d = await admin1.req('POST', `/access-requests/${denied.id}/deny`, { code: await code(admin1.secret), comment: 'use the staging box' });
      expect(d.json()).toMatchObject({ state: 'denied', status: 'denied', endedBy: admin1.login });
      expect((await admin2.req('POST', `/access-requests/${denied.id}/approve`, { code: await code(admin2.secret) })).statusCode).toBe(409);
      expect(await connect(tech, pc.id)).toBe('JIT_ERR_APPROVAL_REQUIRED');
      expect((await auditOf(denied.id)).find((e) => e.type === 'access_request.denied')).toMatchObject({ actor: admin1.login, outcome: 'denied' });

      const r = (await tech.req('POST', '/access-requests', { computerId: pc.id, reason: 'look at logs again', minutes: 10 })).json() as RequestView;
      expect((await admin2.req('POST', `/access-requests/${r.id}/approve`, { code: await code(admin2.secret) })).json().state).toBe('approved');
      expect(await connect(tech, pc.id)).toBe(pc.name);
      clock += 11 * 60_000;
      expect((await service.sweep()).expired).toBeGreaterThanOrEqual(1);
      expect(((await tech.req('GET', `/access-requests/${r.id}`)).json() as RequestView).state).toBe('expired');
      expect(await connect(tech, pc.id)).toBe('JIT_ERR_APPROVAL_REQUIRED');
      expect((await auditOf(r.id)).find((e) => e.type === 'access_request.expired')?.data).toMatchObject({ phase: 'window' });

      const waiting = (await tech.req('POST', '/access-requests', { computerId: pc.id, reason: 'nobody answers', minutes: 10 })).json() as RequestView;
      clock += 61 * 60_000;
      await service.sweep();
      expect(((await tech.req('GET', `/access-requests/${waiting.id}`)).json() as RequestView).state).toBe('expired');
      expect((await admin1.req('POST', `/access-requests/${waiting.id}/approve`, { code: await code(admin1.secret) })).statusCode).toBe(409);
      expect((await auditOf(waiting.id)).find((e) => e.type === 'access_request.expired')?.data).toMatchObject({ phase: 'pending' });
    });

    it('break-glass: only where enabled, with a reason and the second factor; opens at once, alerts every approver, flagged in audit', async () => {
      const closed = await computer(admin1, orgA.id, { requireApproval: true });
      expect((await tech.req('POST', '/access-requests/break-glass', { computerId: closed.id, reason: 'outage', minutes: 15, code: await code(tech.secret) })).json().code).toBe('JIT_ERR_ACCESS_REQUEST_NOT_REQUESTABLE');
      const pc = await computer(admin1, orgA.id, { requireApproval: true, breakGlass: true, approvalsRequired: 2, approverLogins: [senior.login] });
      expect((await tech.req('POST', '/access-requests/break-glass', { computerId: pc.id, reason: 'outage', minutes: 15 })).json().code).toBe('JIT_ERR_ACCESS_REQUEST_MFA');
      expect((await tech.req('POST', '/access-requests/break-glass', { computerId: pc.id, minutes: 15, code: await code(tech.secret) })).statusCode).toBe(400);
      const bg = await tech.req('POST', '/access-requests/break-glass', { computerId: pc.id, reason: 'database down, all hands', minutes: 15, code: await code(tech.secret) });
      expect(bg.statusCode, bg.body).toBe(201);
      expect(bg.json()).toMatchObject({ state: 'approved', breakGlass: true });
      expect(await connect(tech, pc.id)).toBe(pc.name);
      const id = (bg.json() as RequestView).id;
      const mail = await waitFor('the break-glass email', () => mails.find((m) => m.raw.includes(id)));
      expect(mail.raw).toContain('BREAK-GLASS');
      expect(mail.to).toHaveLength(3);
      await waitFor('the break-glass webhook', () => hooks.find((h) => h.path === '/teams' && h.body.includes(id) && h.body.includes('BREAK-GLASS')));
      const ev = (await auditOf(id)).find((e) => e.type === 'access_request.break_glass');
      expect(ev?.data).toMatchObject({ breakGlass: true, reason: 'database down, all hands', factor: 'totp' });
      expect((ev?.data.alerted as string[]).sort()).toEqual([admin1.login, admin2.login, senior.login].sort());
    });

    it('a computer not shared with the technician: requestable only where the organization allows; an admin turns the approval into a standing grant', async () => {
      const pc = await computer(admin1, orgA.id, {}, true);
      expect(await connect(tech, pc.id)).toBe('JIT_ERR_ACCESS_DENIED');
      const ids = async () => ((await tech.req('GET', '/access-requests/computers')).json() as { id: string }[]).map((c) => c.id);
      expect(await ids()).not.toContain(pc.id);
      expect((await tech.req('POST', '/access-requests', { computerId: pc.id, reason: 'need it', minutes: 5 })).statusCode).toBe(404);
      expect((await adminB.req('PUT', `/organizations/${orgA.id}/access-request-settings`, { unsharedRequests: true })).statusCode).toBe(404);
      expect((await tech.req('PUT', `/organizations/${orgA.id}/access-request-settings`, { unsharedRequests: true })).statusCode).toBe(403);
      expect((await admin1.req('PUT', `/organizations/${orgA.id}/access-request-settings`, { unsharedRequests: true })).json()).toEqual({ organizationId: orgA.id, unsharedRequests: true });
      try {
        expect(await ids()).toContain(pc.id);
        const r = (await tech.req('POST', '/access-requests', { computerId: pc.id, reason: 'need it', minutes: 5 })).json() as RequestView;
        expect((await tech.req('POST', `/access-requests/${r.id}/grant`)).statusCode).toBe(403);
        expect((await admin1.req('POST', `/access-requests/${r.id}/approve`, { code: await code(admin1.secret) })).json().state).toBe('approved');
        expect(await connect(tech, pc.id)).toBe(pc.name);
        const g = await admin1.req('POST', `/access-requests/${r.id}/grant`);
        expect(g.json().grantedAt).not.toBeNull();
        expect(await db.query('SELECT 1 FROM grants WHERE computer_id = $1 AND person_id = $2', [pc.id, tech.id])).toHaveLength(1);
        // The grant stands after the window is gone.
        await tech.req('POST', `/access-requests/${r.id}/revoke`, {});
        expect(await connect(tech, pc.id)).toBe(pc.name);
        expect((await auditOf(r.id)).map((e) => e.type)).toEqual(expect.arrayContaining(['access_request.granted', 'access_request.revoked']));
      } finally {
        await admin1.req('PUT', `/organizations/${orgA.id}/access-request-settings`, { unsharedRequests: false });
      }
    });

    it('refuses a request no one could approve, and lets the requester cancel a pending one', async () => {
      const pc = await computer(admin1, orgA.id, { requireApproval: true, approvalsRequired: 4, approverRoles: ['org_admin'] });
      const r = await tech.req('POST', '/access-requests', { computerId: pc.id, reason: 'x-ray', minutes: 5 });
      expect(r.json()).toMatchObject({ code: 'JIT_ERR_ACCESS_REQUEST_NO_APPROVERS' });
      const pc2 = await computer(admin1, orgA.id, { requireApproval: true });
      const p = (await tech.req('POST', '/access-requests', { computerId: pc2.id, reason: 'x-ray', minutes: 5 })).json() as RequestView;
      expect((await admin1.req('POST', `/access-requests/${p.id}/cancel`)).statusCode).toBe(403);
      expect((await tech.req('POST', `/access-requests/${p.id}/cancel`)).json().state).toBe('cancelled');
      expect((await admin1.req('POST', `/access-requests/${p.id}/approve`, { code: await code(admin1.secret) })).statusCode).toBe(409);
    });
  });
}
