import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../core/audit.js';
import { loadAuditKey } from '../core/audit-key.js';
import type { Database } from '../core/db/database.js';
import { silentLogger } from '../core/logging.js';
import { SecretBox } from '../core/secret-box.js';
import { AccessService } from '../gateway/access-policy.js';
import { apiRoutes } from '../gateway/api/index.js';
import { createAuth } from '../gateway/auth/index.js';
import type { Role } from '../gateway/auth/principal.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { jsonPart, parseBundle, sealBundle, sha256Hex, verifyBundle, type EvidenceBundle } from '../recorder/evidence.js';
import { evidenceSource, exportEvidence, type EvidenceExportDeps } from '../recorder/evidence-export.js';
import { EvidenceSigner, loadEvidenceSigner } from '../recorder/evidence-key.js';
import { runRetention } from '../recorder/retention.js';
import { createRecorder, type Recorder } from '../recorder/session-recorder.js';
import { loadSigningKey } from '../recorder/signing-key.js';
import { verifyRecordings } from '../recorder/verify.js';
import { MemoryLiveSessions } from './fixtures/api-fixture.js';
import { runCli } from './harness/cli.js';
import { signIn, type SignedInClient } from './fixtures/signed-in.js';
import { databaseFactories } from './harness/databases.js';

/**
 * Issue 19, evidence that verifies outside jitgate: a session's bundle is
 * exported from a real database and recorder, verified offline, tampered
 * part by part (each named), checked by the CLI in its own process, served
 * by the API to whom the recordings rule allows (two organizations, every
 * role, real sign-ins), and retention deletes old recordings but never those
 * under legal hold, auditing each deletion.
 */

const clone = (b: EvidenceBundle): EvidenceBundle => JSON.parse(JSON.stringify(b)) as EvidenceBundle;
const subjects = (b: EvidenceBundle, opts = {}) => [...new Set(verifyBundle(b, opts).problems.map((p) => p.subject))].sort();
const partJson = (b: EvidenceBundle, name: string) => JSON.parse(Buffer.from(b.parts[name]!, 'base64').toString('utf8')) as Record<string, unknown>;
const setPart = (b: EvidenceBundle, name: string, v: unknown) => void (b.parts[name] = jsonPart(v).toString('base64'));

for (const factory of databaseFactories()) {
  describe.skipIf(factory.skip)(`evidence bundles, legal hold and retention (${factory.label})`, () => {
    let db: Database;
    let dir: string;
    let audit: AuditLog;
    let auditKey: Buffer;
    let recordingKey: Buffer;
    let rec: Recorder;
    let deps: EvidenceExportDeps;
    let app: FastifyInstance;
    const orgs = { a: randomUUID(), b: randomUUID() };
    const people: Record<string, { id: string; login: string }> = {};
    const clients: Record<string, SignedInClient> = {};
    const password = `pw-${randomBytes(8).toString('hex')}-long enough`;

    async function newSession(org: string, owner: { id: string; login: string }): Promise<string> {
      const id = randomUUID();
      await db.query(
        "INSERT INTO sessions (id, person_id, person_login, computer_name, protocol, account_type, account_name, state, lease_expires_at, organization_id, started_at) VALUES ($1,$2,$3,'web01','ssh','local','alice_k3x9q2','active', now() + interval '1 hour', $4, now())",
        [id, owner.id, owner.login, org],
      );
      return id;
    }

    /** A recorded session with the life an auditor asks about: request, approval, account, start, a terminal and an exec recording, end. */
    async function recordedSession(org: string, owner: { id: string; login: string }) {
      const sessionId = await newSession(org, owner);
      const requestId = randomUUID();
      await db.query(
        "INSERT INTO access_requests (id, organization_id, computer_name, requester_id, requester_login, reason, minutes, required_approvals, state, pending_until) VALUES ($1,$2,'web01',$3,$4,'disk full',60,1,'approved', now())",
        [requestId, org, owner.id, owner.login],
      );
      await db.query('INSERT INTO access_request_sessions (request_id, session_id) VALUES ($1,$2)', [requestId, sessionId]);
      await audit.record({ type: 'access_request.approved', actor: 'boss', outcome: 'success', computer: 'web01', data: { requestId, person: owner.login } });
      await audit.record({ type: 'session.requested', actor: owner.login, outcome: 'success', sessionId, computer: 'web01', data: { protocol: 'ssh' } });
      await audit.record({ type: 'account.created', actor: 'system:provisioner', outcome: 'success', sessionId, computer: 'web01', account: 'alice_k3x9q2' });
      // another session's event in between: never in this bundle
      await audit.record({ type: 'session.requested', actor: 'mallory', outcome: 'success', sessionId: randomUUID(), computer: 'db01' });
      await audit.record({ type: 'account.group_added', actor: 'system:provisioner', outcome: 'success', sessionId, computer: 'web01', account: 'alice_k3x9q2', data: { group: 'sudo' } });
      await audit.record({ type: 'session.started', actor: owner.login, outcome: 'success', sessionId, computer: 'web01', account: 'alice_k3x9q2' });
      const meta = { sessionId, personLogin: owner.login, computerName: 'web01', account: 'alice_k3x9q2', protocol: 'ssh' as const, startedAt: new Date() };
      const t = await rec.startTerminal(meta, { cols: 80, rows: 24, recordInput: false });
      t.output(Buffer.from('$ rm -rf /var/tmp/evidence-marker\r\n'));
      const terminal = await t.close();
      const x = await rec.startStream(meta, 'exec', 'uptime');
      x.write('out', Buffer.from(' 10:00 up 3 days\n'));
      const exec = await x.close(0);
      await audit.record({ type: 'account.group_removed', actor: 'system:provisioner', outcome: 'success', sessionId, computer: 'web01', account: 'alice_k3x9q2', data: { group: 'sudo' } });
      await audit.record({ type: 'account.deleted', actor: 'system:provisioner', outcome: 'success', sessionId, computer: 'web01', account: 'alice_k3x9q2' });
      await audit.record({ type: 'session.ended', actor: owner.login, outcome: 'success', sessionId, computer: 'web01', account: 'alice_k3x9q2' });
      await db.query("UPDATE sessions SET state = 'ended', ended_at = now() WHERE id = $1", [sessionId]);
      return { sessionId, requestId, terminal, exec };
    }

    async function signedIn(key: string, role: Role, organizationId: string | null): Promise<void> {
      const login = `${key}-${randomBytes(3).toString('hex')}`;
      const c = await signIn(app, db, { login, role, organizationId, password });
      people[key] = { id: c.id, login: c.login };
      clients[key] = c;
    }

    beforeAll(async () => {
      db = await factory.open();
      dir = mkdtempSync(join(tmpdir(), 'jg-evidence-'));
      auditKey = loadAuditKey({ dataDir: dir });
      recordingKey = loadSigningKey({ dataDir: dir });
      audit = new AuditLog(db, { key: auditKey });
      const log = silentLogger();
      rec = createRecorder({ db, audit, log, dir: join(dir, 'recordings'), signingKey: recordingKey });
      deps = { db, store: rec.store, recordingKey, auditKey, signer: loadEvidenceSigner({ dataDir: dir }) };
      for (const [k, id] of Object.entries(orgs)) await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1,$2,$3)', [id, `ev-${k}-${id.slice(0, 6)}`, String(10_000_000 + randomBytes(3).readUIntBE(0, 3))]);
      const auth = createAuth({
        db, box: new SecretBox(randomBytes(32)), audit, log,
        cfg: { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' },
      });
      app = await buildServer({
        log, metrics: createMetrics(), version: 'test', readiness: [], rootPlugins: [auth.plugin],
        apiPlugins: [
          apiRoutes({
            db, audit, access: new AccessService(db, audit), liveSessions: new MemoryLiveSessions(), recordingFiles: rec, stores: [],
            checkStore: async () => ({ ok: true }), hashPassword: auth.hashPassword, extendSession: () => Promise.reject(new Error('not in this test')),
            evidence: evidenceSource(deps),
          }),
        ],
      });
      await app.ready();
      await Promise.all([
        signedIn('adminA', 'org_admin', orgs.a), signedIn('adminB', 'org_admin', orgs.b), signedIn('auditorA', 'auditor', orgs.a),
        signedIn('auditorB', 'auditor', orgs.b), signedIn('techA', 'technician', orgs.a), signedIn('techA2', 'technician', orgs.a),
        signedIn('global', 'global_admin', null),
      ]);
    }, 120_000);

    afterAll(async () => {
      await app?.close();
      await db?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("exports a session's bundle that verifies offline: both recordings, their manifest entries, the session's audit events and the approval", async () => {
      const s = await recordedSession(orgs.a, people.techA!);
      const b = (await exportEvidence(deps, s.sessionId, 'auditor'))!;
      const report = verifyBundle(parseBundle(JSON.stringify(b)), { fingerprint: deps.signer.fingerprint, auditKey, recordingKey });
      expect(report.problems).toEqual([]);
      expect(report).toMatchObject({ ok: true, pinned: true, sessionId: s.sessionId, counts: { recordings: 2, manifestEntries: 2 } });
      expect(b.statement.recordings.map((r) => [r.id, r.status])).toEqual([[s.terminal.recordingId, 'ok'], [s.exec.recordingId, 'ok']]);
      expect(sha256Hex(Buffer.from(b.parts[`recordings/${s.terminal.recordingId}.cast`]!, 'base64'))).toBe(s.terminal.sha256);
      const types = b.statement.auditEvents.map((e) => partJson(b, e.part).type);
      expect(types).toEqual([
        'access_request.approved', 'session.requested', 'account.created', 'account.group_added', 'session.started',
        'recording.started', 'recording.completed', 'recording.started', 'recording.completed',
        'account.group_removed', 'account.deleted', 'session.ended',
      ]);
      expect(b.statement.auditEvents.every((e) => e.link === 'verified')).toBe(true);
      // each event is tied to the next one in the chain; the last one was the chain's head when exported
      expect(b.statement.auditEvents.slice(0, -1).every((e) => e.successor?.seq === e.seq + 1)).toBe(true);
      expect(b.statement.auditEvents.at(-1)!.successor).toBeNull();
      expect(b.statement.heads.audit!.seq).toBe(b.statement.auditEvents.at(-1)!.seq);
      expect(b.statement.manifestEntries.every((e) => e.mac === 'verified')).toBe(true);
      expect(await exportEvidence(deps, randomUUID(), 'auditor')).toBeNull();
    });

    it('names exactly the part that changed: recording bytes, a manifest entry, an audit event, the signature', async () => {
      const s = await recordedSession(orgs.a, people.techA!);
      const b = (await exportEvidence(deps, s.sessionId, 'auditor'))!;
      const cast = `recordings/${s.terminal.recordingId}.cast`;
      const entry = b.statement.manifestEntries[0]!.part;
      const event = b.statement.auditEvents.find((e) => partJson(b, e.part).type === 'account.deleted')!.part;

      const bytes = clone(b);
      const raw = Buffer.from(bytes.parts[cast]!, 'base64');
      raw[raw.length - 5] = raw[raw.length - 5]! ^ 0x01;
      bytes.parts[cast] = raw.toString('base64');
      expect(subjects(bytes)).toEqual(['recording']);
      expect(verifyBundle(bytes).problems[0]!.part).toBe(cast);

      const manifest = clone(b);
      setPart(manifest, entry, { ...partJson(b, entry), at: new Date(0).toISOString() });
      expect(verifyBundle(manifest).problems.map((p) => [p.subject, p.part])).toEqual([['manifest-entry', entry]]);

      const ev = clone(b);
      setPart(ev, event, { ...partJson(b, event), actor: 'nobody' });
      expect(verifyBundle(ev).problems.map((p) => [p.subject, p.part])).toEqual([['audit-event', event]]);

      const sig = clone(b);
      const v = Buffer.from(sig.signature.value, 'base64');
      v[0] = v[0]! ^ 0x80;
      sig.signature.value = v.toString('base64');
      expect(subjects(sig)).toEqual(['signature']);

      const statement = clone(b);
      statement.statement.session.person = 'someone-else';
      expect(subjects(statement)).toEqual(['signature']);
      expect(() => parseBundle(JSON.stringify({ format: 'other' }))).toThrow(/JIT_ERR_EVIDENCE_BUNDLE|not a jitgate evidence bundle/);

      // A forger edits an event and re-signs the whole bundle with a key of their own: only the published fingerprint, or the audit key, tells.
      const forged = clone(b);
      const parts = new Map<string, Buffer>(Object.entries(forged.parts).map(([k, x]) => [k, Buffer.from(x, 'base64')]));
      parts.set(event, jsonPart({ ...partJson(b, event), actor: 'nobody' }));
      const { format: _f, parts: _p, ...rest } = forged.statement;
      const resigned = sealBundle(rest, parts, new EvidenceSigner(randomBytes(32)));
      expect(verifyBundle(resigned).ok).toBe(true);
      expect(subjects(resigned, { fingerprint: deps.signer.fingerprint })).toEqual(['signature']);
      expect(verifyBundle(resigned, { auditKey }).problems.map((p) => [p.subject, p.part])).toEqual([['audit-event', event]]);
      // A recording swapped together with its entry's digest in the statement: the manifest entry's MAC still signs the old bytes.
      const swapped = new Map<string, Buffer>(parts);
      swapped.set(event, Buffer.from(b.parts[event]!, 'base64'));
      swapped.set(cast, Buffer.from('{"version":2}\n') as Buffer);
      expect(subjects(sealBundle(rest, swapped, new EvidenceSigner(randomBytes(32))))).toEqual(['recording']);

      // The CLI, in its own process, with no configuration and no database (once: the same code on either database).
      if (factory.label !== 'pglite') return;
      const files = mkdtempSync(join(tmpdir(), 'jg-evidence-cli-'));
      try {
        const write = (name: string, x: EvidenceBundle) => {
          const f = join(files, name);
          writeFileSync(f, JSON.stringify(x));
          return f;
        };
        const ok = await runCli(['evidence', 'verify', write('ok.json', b), '--fingerprint', deps.signer.fingerprint]);
        expect([ok.code, ok.stderr]).toEqual([0, '']);
        expect(ok.stdout).toContain('INTACT');
        expect(ok.stdout).toContain(`signed by ${deps.signer.fingerprint} (matches the fingerprint given)`);
        // two tampered bundles (the naming of each part is checked in-process above): each process costs seconds
        const cases = [
          ['bytes.json', bytes, `recording bytes ${cast}: changed`],
          ['event.json', ev, `audit event ${event}: changed`],
        ] as const;
        const runs = await Promise.all(cases.map(([name, x]) => runCli(['evidence', 'verify', write(name, x)])));
        for (const [i, [name, , words]] of cases.entries()) {
          expect(runs[i]!.code, name).toBe(1);
          expect(runs[i]!.stdout, name).toContain(words);
          expect(runs[i]!.stdout, name).toContain('TAMPERED');
        }
      } finally {
        rmSync(files, { recursive: true, force: true });
      }
    }, 120_000);

    it('the API serves bundles as the recordings rule allows, across two organizations and every role, and audits each export', async () => {
      const s = await recordedSession(orgs.a, people.techA!);
      const url = `/sessions/${s.sessionId}/evidence`;
      for (const who of ['adminA', 'auditorA', 'techA', 'global']) {
        const r = await clients[who]!.get(url);
        expect(r.statusCode, who).toBe(200);
        expect(r.headers['content-disposition']).toBe(`attachment; filename="jitgate-evidence-${s.sessionId}.json"`);
        expect(verifyBundle(parseBundle(r.body), { fingerprint: deps.signer.fingerprint }).ok, who).toBe(true);
      }
      for (const who of ['adminB', 'auditorB', 'techA2']) expect((await clients[who]!.get(url)).statusCode, who).toBe(404);
      expect((await clients.adminA!.get('/sessions/not-a-uuid/evidence')).statusCode).toBe(404);
      const exports = await audit.list({ sessionId: s.sessionId, type: 'recording.evidence_exported' });
      expect(exports.map((e) => e.actor).sort()).toEqual([people.adminA!.login, people.auditorA!.login, people.global!.login, people.techA!.login].sort());
      expect(exports[0]!.data).toMatchObject({ organizationId: orgs.a, fingerprint: deps.signer.fingerprint });
      expect((await clients.techA!.get('/evidence/key')).json()).toEqual({ alg: 'ed25519', publicKey: deps.signer.publicKey.toString('base64'), fingerprint: deps.signer.fingerprint });
    });

    it('downloads a recording file from the API, audited as a download (a replay stays a view)', async () => {
      const s = await recordedSession(orgs.a, people.techA!);
      const r = await clients.auditorA!.get(`/recordings/${s.terminal.recordingId}/file?download=1`);
      expect(r.statusCode).toBe(200);
      expect(sha256Hex(r.rawPayload)).toBe(s.terminal.sha256);
      expect(r.headers['content-disposition']).toBe(`attachment; filename="${s.terminal.recordingId}.cast"`);
      expect((await clients.auditorB!.get(`/recordings/${s.terminal.recordingId}/file?download=1`)).statusCode).toBe(404);
      await clients.auditorA!.get(`/recordings/${s.terminal.recordingId}/file`);
      const evs = await audit.list({ sessionId: s.sessionId, actor: people.auditorA!.login });
      expect(evs.map((e) => e.type)).toEqual(['recording.downloaded', 'recording.viewed']);
      expect(evs[0]!.data).toMatchObject({ recordingId: s.terminal.recordingId, integrity: 'ok' });
    });

    it('legal hold: admins and auditors of the organization set it, audited; technicians and other organizations cannot', async () => {
      const s = await recordedSession(orgs.a, people.techA!);
      const url = `/sessions/${s.sessionId}/legal-hold`;
      expect((await clients.techA!.put(url, { hold: true })).statusCode).toBe(403);
      expect((await clients.adminB!.put(url, { hold: true })).statusCode).toBe(404);
      expect((await clients.auditorA!.put(url, { hold: 'yes' })).statusCode).toBe(400);
      const held = await clients.auditorA!.put(url, { hold: true, reason: 'case 42' });
      expect(held.json()).toMatchObject({ sessionId: s.sessionId, legalHold: true, by: people.auditorA!.login });
      expect((await clients.adminA!.get(url)).json()).toMatchObject({ legalHold: true });
      await clients.auditorA!.put(url, { hold: true }); // unchanged: not audited again
      const evs = await audit.list({ sessionId: s.sessionId, type: 'session.legal_hold' });
      expect(evs.map((e) => [e.actor, e.data.hold, e.data.reason])).toEqual([[people.auditorA!.login, true, 'case 42']]);
      expect((await clients.adminA!.put(url, { hold: false })).json()).toMatchObject({ legalHold: false, by: null });
      expect((await audit.list({ sessionId: s.sessionId, type: 'session.legal_hold' })).length).toBe(2);
    });

    it('retention: admins set days per organization (audited); the sweep deletes old recordings, keeps legal hold, recent ones and other organizations, audits each deletion', async () => {
      const url = `/organizations/${orgs.a}/retention`;
      expect((await clients.adminB!.put(url, { recordingRetentionDays: 1 })).statusCode).toBe(404);
      expect((await clients.auditorA!.put(url, { recordingRetentionDays: 1 })).statusCode).toBe(403);
      expect((await clients.adminA!.put(url, { recordingRetentionDays: 0 })).statusCode).toBe(400);
      expect((await clients.adminA!.put(url, { recordingRetentionDays: 30 })).json()).toEqual({ organizationId: orgs.a, recordingRetentionDays: 30, canChange: true });
      expect((await clients.auditorA!.get(url)).json()).toEqual({ organizationId: orgs.a, recordingRetentionDays: 30, canChange: false });
      const changed = await audit.list({ type: 'admin.changed', actor: people.adminA!.login });
      expect(changed.at(-1)!.data).toMatchObject({ action: 'organization.retention_changed', organizationId: orgs.a, recordingRetentionDays: 30 });

      const old = await recordedSession(orgs.a, people.techA!);
      const held = await recordedSession(orgs.a, people.techA!);
      const recent = await recordedSession(orgs.a, people.techA!);
      const otherOrg = await recordedSession(orgs.b, people.techA!);
      const age = (id: string) => db.query("UPDATE recordings SET started_at = now() - interval '40 days' WHERE session_id = $1", [id]);
      for (const s of [old, held, otherOrg]) await age(s.sessionId);
      expect((await clients.auditorA!.put(`/sessions/${held.sessionId}/legal-hold`, { hold: true })).statusCode).toBe(200);
      // earlier tests' recordings are recent: untouched
      const paths = async (sessionId: string) => (await db.query<{ path: string }>('SELECT path FROM recordings WHERE session_id = $1', [sessionId])).map((r) => r.path);
      const oldFiles = (await paths(old.sessionId)).map((p) => rec.store.absolute(p));
      expect(oldFiles.every((f) => existsSync(f))).toBe(true);

      const r = await runRetention({ db, store: rec.store, audit, log: silentLogger() });
      expect(r).toEqual({ deleted: 2, held: 2, failures: [] });
      expect(await paths(old.sessionId)).toEqual([]);
      expect(oldFiles.some((f) => existsSync(f))).toBe(false);
      for (const s of [held, recent, otherOrg]) expect((await paths(s.sessionId)).length, s.sessionId).toBe(2);
      const deleted = await audit.list({ sessionId: old.sessionId, type: 'recording.deleted' });
      expect(deleted.map((e) => [e.actor, e.data.recordingId, e.data.retentionDays]).sort()).toEqual(
        [['system:retention', old.terminal.recordingId, 30], ['system:retention', old.exec.recordingId, 30]].sort(),
      );
      // The manifest keeps the deleted recordings' entries: verify knows them as purged, not as deleted rows.
      const v = await verifyRecordings({ db, store: rec.store, signingKey: recordingKey });
      expect(v.chain.problems).toEqual([]);
      expect(v.ok).toBe(true);
      // The evidence of a purged session still carries its audit trail, with the deletions.
      const b = (await exportEvidence(deps, old.sessionId, 'auditor'))!;
      expect(verifyBundle(b).ok).toBe(true);
      expect(b.statement.recordings).toEqual([]);
      expect(b.statement.auditEvents.map((e) => partJson(b, e.part).type).filter((t) => t === 'recording.deleted').length).toBe(2);
      expect(await runRetention({ db, store: rec.store, audit, log: silentLogger() })).toEqual({ deleted: 0, held: 2, failures: [] });
    });
  });
}
