import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import type { Computer } from '../core/domain.js';
import { silentLogger } from '../core/logging.js';
import { Secret } from '../core/secret.js';
import type { Principal } from '../gateway/auth/principal.js';
import { recordingRoutes } from '../gateway/api/recordings.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { createRecorder, type Recorder } from '../recorder/session-recorder.js';
import { loadSigningKey } from '../recorder/signing-key.js';
import { formatVerifyReport } from '../recorder/verify.js';
import { databaseFactories } from './harness/databases.js';
import { FixedBroker, startGuacdPeer, startRdpTestApp } from './harness/guacd-peer.js';

/**
 * RDP recordings through the real recorder (recorder/session-recorder.ts on
 * PGlite and PostgreSQL): the tunnel asks for a slot, guacd (the peer, which
 * writes its output like guacd does) writes the file at recording-path /
 * recording-name, and on close the gateway has it hashed, signed and indexed.
 */

const PASSWORD = 'Rec;pw,😀';
const computer: Computer = {
  id: 'c1', organizationId: 'o1', name: 'win01', address: '10.9.8.7', protocols: ['rdp'], sshPort: 22, rdpPort: 3389,
  domainStore: 'ad', localStore: null, jit: {}, policy: {}, restricted: false,
};

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

async function until<T>(fn: () => T | undefined | false | null | Promise<T | undefined | false | null>, what: string, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false && v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

for (const f of databaseFactories()) {
  describe.skipIf(f.skip !== '')(`RDP recording through the recorder on ${f.label}`, () => {
    let db: Database;
    let dir: string;
    let rec: Recorder;

    beforeAll(async () => {
      db = await f.open();
      dir = mkdtempSync(join(tmpdir(), 'jitgate-rdp-rec-'));
      rec = createRecorder({ db, audit: new AuditLog(db), log: silentLogger(), dir: join(dir, 'recordings'), signingKey: loadSigningKey({ dataDir: dir }) });
    });
    afterAll(async () => {
      await db?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('guacd writes the file named by the slot; closing the session indexes it (sha256, size, integrity ok)', async () => {
      const peer = await startGuacdPeer({ writeRecordings: true, extra: [['name', 'Desktop 😀']] });
      const broker = new FixedBroker(computer, { username: 'alice_k3x9q2', password: new Secret(PASSWORD), domain: 'CORP' });
      broker.onSession = async (s) => {
        await db.query(
          "INSERT INTO sessions (id, person_login, computer_name, protocol, account_type, state, lease_expires_at) VALUES ($1, 'alice', 'win01', 'rdp', 'domain', 'active', now() + interval '1 hour')",
          [s.id],
        );
      };
      const t = await startRdpTestApp({ broker, recorder: rec, guacd: { host: peer.host, port: peer.port } });
      try {
        const ws = new WebSocket(`${t.wsUrl}?computer=win01&csrf=good`, 'guacamole');
        const frames: string[] = [];
        ws.on('message', (d: Buffer) => frames.push(d.toString('utf8')));
        await until(() => frames.some((x) => x.includes('7.jitgate,5.ready')), 'ready');
        const conn = peer.connections[0]!;
        expect(conn.args['recording-path']?.startsWith(join(dir, 'recordings'))).toBe(true);
        expect(conn.args['recording-name']).toMatch(/\.guac$/);
        await until(() => frames.some((x) => x.includes('Desktop')), 'drawing relayed');
        ws.send('10.disconnect;');
        const sessionId = broker.opened[0]!.session.id;
        await until(() => broker.opened[0]!.ended.length === 1, 'end()');

        const rows = await db.query<{ id: string; kind: string; size_bytes: string; sha256: string; ended_at: Date | null }>(
          'SELECT id, kind, size_bytes, sha256, ended_at FROM recordings WHERE session_id = $1', [sessionId],
        );
        expect(rows).toHaveLength(1);
        const row = rows[0]!;
        const file = readFileSync(conn.recordingFile!);
        expect(row.kind).toBe('rdp');
        expect(row.ended_at).not.toBeNull();
        expect(Number(row.size_bytes)).toBe(file.length);
        expect(row.sha256).toBe(createHash('sha256').update(file).digest('hex'));
        expect(file.toString('utf8')).toMatch(/^4\.size,1\.0,2\.64,2\.48;3\.img,/);
        expect(file.toString('utf8')).toContain('4.name,9.Desktop 😀;');
        expect(file.toString('utf8')).not.toContain(PASSWORD);

        const opened = await rec.open(row.id);
        expect(opened?.integrity).toBe('ok');
        expect(await readAll(opened!.stream)).toEqual(file);
      } finally {
        await t.app.close();
        await peer.close();
      }
    });

    it('guacd refusing the connection before its first frame leaves a signed "never started" recording: verify passes, the API says so, no file', async () => {
      const peer = await startGuacdPeer({ writeRecordings: true, failConnect: { message: 'Upstream not found', status: 0x0207 } });
      const broker = new FixedBroker(computer, { username: 'alice_k3x9q2', password: new Secret(PASSWORD), domain: 'CORP' });
      broker.onSession = async (s) => {
        await db.query(
          "INSERT INTO sessions (id, person_login, computer_name, protocol, account_type, state, lease_expires_at) VALUES ($1, 'alice', 'win01', 'rdp', 'domain', 'active', now() + interval '1 hour')",
          [s.id],
        );
      };
      const t = await startRdpTestApp({ broker, recorder: rec, guacd: { host: peer.host, port: peer.port } });
      // The recordings API as the gateway serves it, to a global auditor.
      const auditor: Principal = { personId: randomUUID(), login: 'audra', displayName: 'Audra', role: 'auditor', organizationId: null, authSessionId: 'auth-2' };
      const api = await buildServer({
        log: silentLogger(), metrics: createMetrics(), version: 'test', readiness: [],
        rootPlugins: [async (a) => void a.addHook('onRequest', async (req) => void (req.principal = auditor))],
        apiPlugins: [recordingRoutes({ db, audit: new AuditLog(db), recordingFiles: rec })],
      });
      try {
        const ws = new WebSocket(`${t.wsUrl}?computer=win01&csrf=good`, 'guacamole');
        const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
        expect(await closed).toBe(4011);
        await until(() => broker.opened[0]?.ended.length === 1, 'end()');
        const sessionId = broker.opened[0]!.session.id;
        expect(peer.connections[0]?.recordingFile).toBeNull();

        const rows = await db.query<{ id: string; path: string; never_started: boolean; ended_at: Date | null; manifest_seq: string | null }>(
          'SELECT id, path, never_started, ended_at, manifest_seq FROM recordings WHERE session_id = $1', [sessionId],
        );
        expect(rows).toHaveLength(1);
        const row = rows[0]!;
        expect(row).toMatchObject({ never_started: true });
        expect(row.ended_at).not.toBeNull();
        expect(row.manifest_seq).not.toBeNull();
        expect(existsSync(rec.store.absolute(row.path))).toBe(false);

        // `jitgate recordings verify` (the same function and report): no problem, now and later.
        const report = await rec.verify();
        expect(report.recordings.find((c) => c.recordingId === row.id)?.status).toBe('never-started');
        expect(report.ok).toBe(true);
        expect(formatVerifyReport(report)).toMatch(/1 never started, 0 problem\(s\); manifest \d+ entr(y|ies) intact/);

        const got = await api.inject({ method: 'GET', url: `/api/v1/recordings/${row.id}` });
        expect(got.statusCode).toBe(200);
        expect(got.json()).toMatchObject({ id: row.id, sessionId, state: 'never_started', sizeBytes: null, integrity: 'ok' });
        const list = (await api.inject({ method: 'GET', url: '/api/v1/recordings?limit=500' })).json() as { recordings: { id: string; state: string }[] };
        expect(list.recordings.find((r) => r.id === row.id)?.state).toBe('never_started');
        expect((await api.inject({ method: 'GET', url: `/api/v1/recordings/${row.id}/file` })).statusCode).toBe(404);

        // Flipping the flag on a real recording (no signed marker) is caught, and so is clearing it on this one.
        await db.query('UPDATE recordings SET never_started = false, sha256 = NULL WHERE id = $1', [row.id]);
        expect((await rec.verify({ recordingId: row.id })).recordings[0]).toMatchObject({ status: 'manifest-broken' });
        await db.query('UPDATE recordings SET never_started = true WHERE id = $1', [row.id]);
        expect((await rec.verify()).ok).toBe(true);
        const t2 = await rec.startTerminal({ sessionId, personLogin: 'alice', computerName: 'win01', account: null, protocol: 'ssh', startedAt: new Date() }, { cols: 80, rows: 24, recordInput: false });
        t2.output(Buffer.from('hello\r\n'));
        const sum = await t2.close();
        expect((await api.inject({ method: 'GET', url: `/api/v1/recordings/${t2.recordingId}` })).json()).toMatchObject({ state: 'recorded', sizeBytes: sum.sizeBytes });
        await db.query('UPDATE recordings SET never_started = true, sha256 = NULL WHERE id = $1', [t2.recordingId]);
        expect((await rec.verify({ recordingId: t2.recordingId })).recordings[0]).toMatchObject({ status: 'manifest-broken' });
        await db.query('UPDATE recordings SET never_started = false, sha256 = $2 WHERE id = $1', [t2.recordingId, sum.sha256]);
        expect((await rec.verify()).ok).toBe(true);
      } finally {
        await api.close();
        await t.app.close();
        await peer.close();
      }
    });
  });
}
