/**
 * Recordings whose writer died with its gateway (SIGKILL mid-session) are
 * sealed afterwards: an asciicast loses only its torn last line (so it still
 * replays), is hashed, signed into the manifest and audited as interrupted.
 * Real files, PGlite and PostgreSQL.
 */
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { silentLogger } from '../core/logging.js';
import type { RecordingMeta } from '../recorder/recorder.js';
import { createRecorder, type Recorder } from '../recorder/session-recorder.js';
import { loadSigningKey } from '../recorder/signing-key.js';
import { databaseFactories } from './harness/databases.js';

async function newSession(db: Database, state = 'active'): Promise<RecordingMeta> {
  const id = randomUUID();
  await db.query(
    "INSERT INTO sessions (id, person_login, computer_name, account_name, protocol, account_type, state, lease_expires_at) VALUES ($1, 'alice', 'web01', 'alice_k3x9q2', 'ssh', 'local', $2, now() + interval '1 hour')",
    [id, state],
  );
  return { sessionId: id, personLogin: 'alice', computerName: 'web01', account: 'alice_k3x9q2', protocol: 'ssh', startedAt: new Date() };
}

/** What teardown does once the session is over (the gateway that recorded it is gone). */
async function endSession(db: Database, sessionId: string, minutesAgo: number): Promise<void> {
  await db.query(`UPDATE sessions SET state = 'ended', ended_at = now() - ($2 || ' minutes')::interval WHERE id = $1`, [sessionId, String(minutesAgo)]);
}

type Row = { path: string; sha256: string | null; manifest_seq: string | number | null; ended_at: Date | null; dropped_bytes: string | number | null; size_bytes: string | number | null };

for (const f of databaseFactories()) {
  describe.skipIf(f.skip !== '')(`interrupted recordings on ${f.label}`, () => {
    let db: Database;
    let audit: AuditLog;
    let dir: string;
    let rec: Recorder;
    const row = async (id: string): Promise<Row> => (await db.query<Row>('SELECT path, sha256, manifest_seq, ended_at, dropped_bytes, size_bytes FROM recordings WHERE id = $1', [id]))[0]!;

    beforeAll(async () => {
      db = await f.open();
      audit = new AuditLog(db);
      dir = mkdtempSync(join(tmpdir(), 'jg-recover-'));
      rec = createRecorder({ db, audit, log: silentLogger(), dir: join(dir, 'recordings'), signingKey: loadSigningKey({ dataDir: dir }) });
    });
    afterAll(async () => {
      await db?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('seals a torn asciicast as found minus its incomplete last line; it verifies, replays and is audited as interrupted', async () => {
      const meta = await newSession(db);
      const t = await rec.startTerminal(meta, { cols: 80, rows: 24, recordInput: false });
      t.output(Buffer.from('$ id\r\nuid=1001(alice_k3x9q2) groups=1001,27(sudo)\r\n'));
      await t.drained();
      // The gateway dies in the middle of writing the next event: the file ends in half a JSON line.
      const path = (await row(t.recordingId)).path;
      const abs = rec.store.absolute(path);
      await new Promise((r) => setTimeout(r, 50));
      const torn = '[1.25, "o", "half a li';
      appendFileSync(abs, torn);
      expect(readFileSync(abs, 'utf8').endsWith(torn)).toBe(true);

      // While the session is still live nothing is touched (a gateway may still be writing).
      expect(await rec.recoverInterrupted({ graceMs: 0 })).toEqual({ sealed: 0, elsewhere: 0 });
      await endSession(db, meta.sessionId, 5);
      // Within the grace period after the end, nothing either.
      expect((await rec.recoverInterrupted({ graceMs: 10 * 60_000 })).sealed).toBe(0);

      expect(await rec.recoverInterrupted({ graceMs: 60_000 })).toEqual({ sealed: 1, elsewhere: 0 });
      const r = await row(t.recordingId);
      expect(r.ended_at).not.toBeNull();
      expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(r.manifest_seq).not.toBeNull();
      expect(Number(r.dropped_bytes)).toBe(Buffer.byteLength(torn));
      const text = readFileSync(abs, 'utf8');
      expect(Number(r.size_bytes)).toBe(Buffer.byteLength(text));
      expect(text.endsWith('\n')).toBe(true);
      const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown);
      expect(lines[0]).toMatchObject({ version: 2, width: 80, height: 24 });
      expect(lines.slice(1).map((e) => (e as [number, string, string])[2]).join('')).toContain('uid=1001(alice_k3x9q2)');

      const report = await rec.verify({ recordingId: t.recordingId });
      expect(report.recordings.map((x) => x.status)).toEqual(['ok']);
      expect(await rec.integrity(t.recordingId)).toBe('ok');
      const ev = (await audit.list({ sessionId: meta.sessionId })).filter((e) => e.type === 'recording.completed');
      expect(ev).toHaveLength(1);
      expect(ev[0]).toMatchObject({ outcome: 'failure', actor: 'system:recorder' });
      expect(String((ev[0]!.data as { reason?: string }).reason)).toMatch(/^interrupted/);

      // Idempotent: a second sweep (or another gateway) changes nothing.
      expect((await rec.recoverInterrupted({ graceMs: 0 })).sealed).toBe(0);
      expect((await rec.verify()).ok).toBe(true);
    });

    it('seals an RDP recording guacd was writing when the gateway died, as found and readable only by jitgate', async () => {
      const meta = await newSession(db);
      const slot = await rec.startRdp(meta);
      // guacd writes the file itself (here: the test, with guacd's permissive mode).
      const file = join(slot.guacdPath, slot.guacdName);
      writeFileSync(rec.store.absolute((await row(slot.recordingId)).path), '4.size,1.0,4.1024,3.768;4.sync,4.1234;', { mode: 0o644 });
      expect(file).toBe(rec.store.absolute((await row(slot.recordingId)).path));
      await endSession(db, meta.sessionId, 5);
      expect((await rec.recoverInterrupted({ graceMs: 0 })).sealed).toBe(1);
      const r = await row(slot.recordingId);
      expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(statSync(rec.store.absolute(r.path)).mode & 0o777).toBe(0o600);
      expect((await rec.verify({ recordingId: slot.recordingId })).recordings.map((x) => x.status)).toEqual(['ok']);
    });

    it('leaves a recording whose file is on another gateway alone, and seals a stream record as found', async () => {
      const metaA = await newSession(db);
      const a = await rec.startTerminal(metaA, { cols: 80, rows: 24, recordInput: false });
      a.output(Buffer.from('elsewhere\r\n'));
      await a.drained();
      await new Promise((r) => setTimeout(r, 50));
      unlinkSync(rec.store.absolute((await row(a.recordingId)).path));
      const metaB = await newSession(db);
      const b = await rec.startStream(metaB, 'exec', 'uname -a');
      b.write('out', Buffer.from('Linux web01\n'));
      await b.drained();
      await new Promise((r) => setTimeout(r, 50));
      await endSession(db, metaA.sessionId, 5);
      await endSession(db, metaB.sessionId, 5);

      expect(await rec.recoverInterrupted({ graceMs: 0 })).toEqual({ sealed: 1, elsewhere: 1 });
      expect((await row(a.recordingId)).ended_at).toBeNull();
      const rb = await row(b.recordingId);
      expect(rb.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(Number(rb.dropped_bytes)).toBe(0);
      expect((await rec.verify({ recordingId: b.recordingId })).recordings.map((x) => x.status)).toEqual(['ok']);
    });
  });
}
