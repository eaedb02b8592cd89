import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions, Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { silentLogger } from '../core/logging.js';
import { redisOptions } from '../core/redis.js';
import { SecretBox } from '../core/secret-box.js';
import { AccessService } from '../gateway/access-policy.js';
import { apiRoutes } from '../gateway/api/index.js';
import { createAuth } from '../gateway/auth/index.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { SearchIndexQueue, startSearchIndexWorker } from '../provisioner/search-index.jobs.js';
import type { RecordingMeta } from '../recorder/recorder.js';
import { SearchIndexer } from '../recorder/search-index.js';
import { createRecorder, type Recorder } from '../recorder/session-recorder.js';
import { MemoryLiveSessions } from './fixtures/api-fixture.js';
import { signIn, type SignedInClient } from './fixtures/signed-in.js';
import { databaseFactories } from './harness/databases.js';

/**
 * Search across sessions (issue 19, first part) through the real API with
 * people who signed in for real: two organizations, every role. Recordings
 * are written by the real recorder (files on disk, sealed into the manifest)
 * and indexed by the indexer the search-index job runs; with Redis, through
 * the real BullMQ queue and worker.
 */
type Hit = { sessionId: string; recordingId: string; person: string; computer: string; account: string | null; protocol: string; kind: string; line: string; before: string[]; after: string[]; atMs: number; at: string };

const SECRET = `Pw-${randomBytes(6).toString('hex')}`;

for (const factory of databaseFactories()) {
  describe.skipIf(factory.skip)(`search across sessions (${factory.label})`, () => {
    let db: Database;
    let app: FastifyInstance;
    let dir: string;
    let rec: Recorder;
    let indexer: SearchIndexer;
    let now = 0;
    const sealed: string[] = [];
    const orgs = { acme: '', beta: '' };
    const computers = { acme: { id: '', name: '' }, beta: { id: '', name: '' } };
    const password = `pw-${randomBytes(8).toString('hex')}-long enough`;
    const t = randomBytes(3).toString('hex');
    const needle = `needle${t}`;
    let techA: SignedInClient, techA2: SignedInClient, adminA: SignedInClient, auditorA: SignedInClient, adminB: SignedInClient, auditorB: SignedInClient, ga: SignedInClient;
    const sessions = { a: '', a2: '', b: '' };

    async function session(org: 'acme' | 'beta', person: SignedInClient, login: string, protocol = 'ssh'): Promise<RecordingMeta> {
      const id = randomUUID();
      const c = computers[org];
      await db.query(
        `INSERT INTO sessions (id, person_id, person_login, computer_id, computer_name, organization_id, protocol, account_type, account_name, state, lease_expires_at, started_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,'local',$8,'ended', now() + interval '1 hour', now())`,
        [id, person.id, login, c.id, c.name, orgs[org], protocol, `acct-${login}`],
      );
      return { sessionId: id, personLogin: login, computerName: c.name, account: `acct-${login}`, protocol: 'ssh', startedAt: new Date() };
    }

    /** A shell session: a prompt, a typed command echoed back, its output; then sudo with a password typed without echo. */
    async function shell(meta: RecordingMeta, command: string, output: string): Promise<string> {
      now = 0;
      const term = await rec.startTerminal(meta, { cols: 80, rows: 24, recordInput: true });
      const at = (ms: number) => (now = ms);
      const o = (s: string) => term.output(Buffer.from(s));
      const i = (s: string) => term.input(Buffer.from(s));
      at(200);
      o('\x1b[01;32mtech@host\x1b[00m:~$ ');
      let ms = 1000;
      for (const ch of command) {
        at((ms += 50));
        i(ch);
        o(ch);
      }
      at((ms += 500));
      i('\r');
      o(`\r\n${output}\r\ntech@host:~$ `);
      at(5000);
      for (const ch of 'sudo -v') {
        i(ch);
        o(ch);
      }
      i('\r');
      o('\r\n[sudo] password for tech: ');
      at(6000);
      for (const ch of SECRET) i(ch);
      at(7000);
      i('\r');
      o('\r\ntech@host:~$ ');
      at(8000);
      await term.close();
      return term.recordingId;
    }

    beforeAll(async () => {
      db = await factory.open();
      const audit = new AuditLog(db);
      const log = silentLogger();
      dir = mkdtempSync(join(tmpdir(), 'jgt-search-'));
      rec = createRecorder({ db, audit, log, dir, signingKey: randomBytes(32), clock: () => now, onSealed: async (id) => void sealed.push(id) });
      indexer = new SearchIndexer({ db, store: rec.store, log });
      const auth = createAuth({
        db, box: new SecretBox(randomBytes(32)), audit, log,
        cfg: { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' },
      });
      app = await buildServer({
        log, metrics: createMetrics(), version: 'test', readiness: [], rootPlugins: [auth.plugin],
        apiPlugins: [
          apiRoutes({
            db, audit, access: new AccessService(db, audit), liveSessions: new MemoryLiveSessions(), recordingFiles: rec, stores: [],
            checkStore: async () => ({ ok: true }), hashPassword: auth.hashPassword,
            extendSession: () => Promise.reject(new Error('not in this test')),
          }),
        ],
      });
      await app.ready();
      for (const name of ['acme', 'beta'] as const) {
        orgs[name] = randomUUID();
        await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1,$2,$3)', [orgs[name], `${name}-${t}`, String(10_000_000 + randomBytes(3).readUIntBE(0, 3))]);
        computers[name] = { id: randomUUID(), name: `${name}-web-${t}` };
        await db.query("INSERT INTO computers (id, organization_id, name, address, jit) VALUES ($1,$2,$3,'10.0.0.5','{}')", [computers[name].id, orgs[name], computers[name].name]);
      }
      const who = (login: string, role: Parameters<typeof signIn>[2]['role'], org: string | null) => signIn(app, db, { login: `${login}-${t}`, role, organizationId: org, password });
      [techA, techA2, adminA, auditorA, adminB, auditorB, ga] = await Promise.all([
        who('tech-a', 'technician', orgs.acme), who('tech-a2', 'technician', orgs.acme), who('admin-a', 'org_admin', orgs.acme),
        who('aud-a', 'auditor', orgs.acme), who('admin-b', 'org_admin', orgs.beta), who('aud-b', 'auditor', orgs.beta), who('global', 'global_admin', null),
      ]);
      const a = await session('acme', techA, `tech-a-${t}`);
      const a2 = await session('acme', techA2, `tech-a2-${t}`);
      const b = await session('beta', adminB, `admin-b-${t}`);
      sessions.a = a.sessionId;
      sessions.a2 = a2.sessionId;
      sessions.b = b.sessionId;
      for (const id of [
        await shell(a, `echo ${needle} alpha`, `${needle} alpha`),
        await shell(a2, `grep ${needle} /etc/hosts`, '10.0.0.9 db01'),
        await shell(b, `systemctl restart ${needle}-beta`, 'done'),
      ]) {
        await indexer.index(id);
      }
    }, 180_000);

    afterAll(async () => {
      await app?.close();
      await db?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const search = async (c: SignedInClient, q: string, extra = '') => {
      const r = await c.get(`/search?q=${encodeURIComponent(q)}${extra}`);
      expect(r.statusCode, r.body).toBe(200);
      return r.json() as { hits: Hit[]; next?: number };
    };
    const sessionsOf = async (c: SignedInClient, q: string, extra = '') => [...new Set((await search(c, q, extra)).hits.map((h) => h.sessionId))].sort();

    it('the recorder hands every sealed recording to indexing, after the close', () => {
      expect(sealed).toHaveLength(3);
    });

    it('auditors and admins find their organizations\' sessions, technicians only their own, global admins all', async () => {
      expect(await sessionsOf(auditorA, needle)).toEqual([sessions.a, sessions.a2].sort());
      expect(await sessionsOf(adminA, needle)).toEqual([sessions.a, sessions.a2].sort());
      expect(await sessionsOf(techA, needle)).toEqual([sessions.a]);
      expect(await sessionsOf(techA2, needle)).toEqual([sessions.a2]);
      expect(await sessionsOf(adminB, needle)).toEqual([sessions.b]);
      expect(await sessionsOf(auditorB, needle)).toEqual([sessions.b]);
      expect(await sessionsOf(ga, needle)).toEqual([sessions.a, sessions.a2, sessions.b].sort());
      // A filter naming another organization cannot widen the scope.
      expect(await sessionsOf(auditorA, needle, `&organization=${orgs.beta}`)).toEqual([]);
    });

    it('each hit carries its session, computer, person, account, the line in context and the offset into the recording', async () => {
      const { hits } = await search(auditorA, `"echo ${needle}"`);
      const typed = hits.find((h) => h.kind === 'input');
      const printed = hits.find((h) => h.kind === 'output');
      // both at the moment Enter was typed (and echoed): the player opened there shows the command
      const enter = 1000 + 50 * `echo ${needle} alpha`.length + 500;
      expect(typed).toMatchObject({ sessionId: sessions.a, person: `tech-a-${t}`, computer: computers.acme.name, account: `acct-tech-a-${t}`, protocol: 'ssh', line: `echo ${needle} alpha`, atMs: enter });
      expect(printed).toMatchObject({ line: `tech@host:~$ echo ${needle} alpha`, atMs: enter, after: [`${needle} alpha`, 'tech@host:~$ sudo -v'] });
      expect(new Date(printed!.at).getTime()).toBeGreaterThan(Date.now() - 600_000);
    });

    it('filters: person, computer, organization, account, protocol, time range', async () => {
      expect(await sessionsOf(ga, needle, `&person=tech-a-${t}`)).toEqual([sessions.a]);
      expect(await sessionsOf(ga, needle, `&computer=${computers.beta.name.toUpperCase()}`)).toEqual([sessions.b]);
      expect(await sessionsOf(ga, needle, `&organization=${orgs.acme}`)).toEqual([sessions.a, sessions.a2].sort());
      expect(await sessionsOf(ga, needle, `&account=acct-tech-a2-${t}`)).toEqual([sessions.a2]);
      expect(await sessionsOf(ga, needle, '&protocol=rdp')).toEqual([]);
      expect(await sessionsOf(ga, needle, '&protocol=ssh')).toHaveLength(3);
      expect(await sessionsOf(ga, needle, `&from=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`)).toEqual([]);
      expect(await sessionsOf(ga, needle, `&to=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`)).toHaveLength(3);
      const page = await search(ga, needle, '&limit=1');
      expect(page.hits).toHaveLength(1);
      expect(page.next).toBe(1);
      const bad = await ga.get('/search?q=');
      expect([bad.statusCode, bad.json().code]).toEqual([400, 'JIT_ERR_VALIDATION']);
      expect((await ga.get(`/search?q=x&organization=not-a-uuid`)).statusCode).toBe(400);
      expect((await ga.get(`/search?q=x&bogus=1`)).statusCode).toBe(400);
    });

    it('a password typed at the sudo prompt is masked: not found, not shown', async () => {
      expect((await search(ga, SECRET)).hits).toEqual([]);
      expect((await search(ga, SECRET.toLowerCase())).hits).toEqual([]);
      const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM search_lines WHERE text ILIKE $1', [`%${SECRET}%`]);
      expect(rows[0]!.n).toBe(0);
      const tl = (await techA.get(`/sessions/${sessions.a}/timeline`)).json() as { entries: { kind: string; text: string; masked: boolean; atMs: number }[] };
      expect(tl.entries.map((e) => [e.atMs, e.kind, e.masked ? '(masked)' : e.text])).toEqual([
        [1000 + 50 * `echo ${needle} alpha`.length + 500, 'input', `echo ${needle} alpha`],
        [5000, 'input', 'sudo -v'],
        [7000, 'input', '(masked)'],
      ]);
    });

    it('the command timeline follows the recordings rule', async () => {
      expect((await auditorA.get(`/sessions/${sessions.a2}/timeline`)).statusCode).toBe(200);
      expect((await techA.get(`/sessions/${sessions.a2}/timeline`)).statusCode).toBe(404);
      expect((await auditorB.get(`/sessions/${sessions.a}/timeline`)).statusCode).toBe(404);
      expect((await adminB.get(`/sessions/${sessions.b}/timeline`)).json().recordings).toEqual([expect.objectContaining({ kind: 'terminal', indexed: true })]);
      expect((await ga.get('/sessions/not-a-uuid/timeline')).statusCode).toBe(404);
    });

    it('re-indexing replaces; deleting the recording removes its index', async () => {
      const [r] = await db.query<{ id: string }>('SELECT id FROM recordings WHERE session_id = $1', [sessions.a2]);
      const count = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM search_lines WHERE recording_id = $1', [r!.id]))[0]!.n;
      const before = await count();
      expect(before).toBeGreaterThan(3);
      await indexer.index(r!.id);
      await indexer.index(r!.id);
      expect(await count()).toBe(before);
      await db.query('DELETE FROM recordings WHERE id = $1', [r!.id]);
      expect(await count()).toBe(0);
      expect(await db.query('SELECT 1 FROM search_indexed WHERE recording_id = $1', [r!.id])).toEqual([]);
      expect(await sessionsOf(ga, needle)).toEqual([sessions.a, sessions.b].sort());
    });

    const socket = inject('redisSocket');
    it.skipIf(!socket)('a sealed recording is indexed by the search-index job on a real Redis (BullMQ)', async () => {
      const connection = redisOptions({ path: socket! }, { maxRetriesPerRequest: null }) as ConnectionOptions;
      const prefix = `t${randomBytes(4).toString('hex')}`;
      const queue = new SearchIndexQueue({ connection, prefix });
      let worker: Worker | undefined;
      try {
        worker = startSearchIndexWorker({ connection, prefix, log: silentLogger(), index: (id) => indexer.index(id) });
        const queued = createRecorder({ db, audit: new AuditLog(db), log: silentLogger(), dir, signingKey: randomBytes(32), clock: () => now, onSealed: async (id) => void (await queue.enqueue(id)) });
        const saved = rec;
        rec = queued;
        const meta = await session('acme', techA, `tech-a-${t}`);
        const word = `queued${randomBytes(3).toString('hex')}`;
        const id = await shell(meta, `echo ${word}`, word).finally(() => (rec = saved));
        const deadline = Date.now() + 60_000;
        while (!(await db.query('SELECT 1 FROM search_indexed WHERE recording_id = $1', [id])).length) {
          if (Date.now() > deadline) throw new Error('the search-index job did not index the recording within 60 s');
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(await sessionsOf(techA, word)).toEqual([meta.sessionId]);
      } finally {
        await worker?.close();
        await queue.close();
      }
    }, 90_000);
  });
}
