import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { silentLogger } from '../core/logging.js';
import { Secret } from '../core/secret.js';
import type { RecordingMeta } from '../recorder/recorder.js';
import { FsRecordingStore } from '../recorder/fs-recording.store.js';
import type { RecordingWriteHandle } from '../recorder/recording.store.js';
import { createRecorder, type Recorder } from '../recorder/session-recorder.js';
import { loadSigningKey, signingKeyPath } from '../recorder/signing-key.js';
import { parseStreamRecord } from '../recorder/stream.format.js';
import { formatVerifyReport, verifyRecordings } from '../recorder/verify.js';
import { databaseFactories } from './harness/databases.js';

async function newSession(db: Database): Promise<RecordingMeta> {
  const id = randomUUID();
  await db.query(
    "INSERT INTO sessions (id, person_login, computer_name, protocol, account_type, state, lease_expires_at) VALUES ($1, 'alice', 'web01', 'ssh', 'local', 'active', now() + interval '1 hour')",
    [id],
  );
  return { sessionId: id, personLogin: 'alice', computerName: 'web01', account: 'alice_k3x9q2', protocol: 'ssh', startedAt: new Date() };
}

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

for (const f of databaseFactories()) {
  describe.skipIf(f.skip !== '')(`recorder on ${f.label}`, () => {
    let db: Database;
    let audit: AuditLog;
    let dir: string;
    let key: Buffer;
    let rec: Recorder;

    beforeAll(async () => {
      db = await f.open();
      audit = new AuditLog(db);
      dir = mkdtempSync(join(tmpdir(), 'jg-rec-'));
      key = loadSigningKey({ dataDir: dir });
      rec = createRecorder({ db, audit, log: silentLogger(), dir: join(dir, 'recordings'), signingKey: key, guacdDir: '/guacd-view/recordings' });
    });
    afterAll(async () => {
      await db?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('records a terminal session: file 0600 in <yyyy>/<mm>/<dd> (dirs 0700), signed row, audit started/completed, replay with integrity ok', async () => {
      const meta = await newSession(db);
      const t = await rec.startTerminal(meta, { cols: 80, rows: 24, recordInput: false, command: 'bash -l' });
      t.output(Buffer.from('$ whoami\r\nalice_k3x9q2\r\n'));
      t.resize(120, 40);
      const sum = await t.close();
      expect(await t.close()).toEqual(sum); // idempotent

      const [row] = await db.query<{ path: string; kind: string; size_bytes: string; sha256: string; manifest_seq: string; ended_at: Date | null }>('SELECT * FROM recordings WHERE id = $1', [t.recordingId]);
      const d = new Date();
      expect(row!.path).toMatch(new RegExp(`^${d.getUTCFullYear()}/\\d{2}/\\d{2}/${meta.sessionId}-${t.recordingId}\\.cast$`));
      expect(row!.kind).toBe('terminal');
      expect(Number(row!.size_bytes)).toBe(sum.sizeBytes);
      expect(row!.sha256).toBe(sum.sha256);
      expect(Number(row!.manifest_seq)).toBe(sum.manifestSeq);
      expect(row!.ended_at).not.toBeNull();
      const abs = rec.store.absolute(row!.path);
      expect(statSync(abs).mode & 0o777).toBe(0o600);
      expect(statSync(dirname(abs)).mode & 0o777).toBe(0o700);
      const header = JSON.parse(readFileSync(abs, 'utf8').split('\n')[0]!) as Record<string, unknown>;
      expect(header).toMatchObject({ version: 2, width: 80, height: 24, command: 'bash -l', jitgate: { sessionId: meta.sessionId, recordingId: t.recordingId, person: 'alice', computer: 'web01', account: 'alice_k3x9q2' } });

      const events = await audit.list({ sessionId: meta.sessionId });
      expect(events.map((e) => e.type)).toEqual(['recording.started', 'recording.completed']);
      expect(events[1]!.data).toMatchObject({ recordingId: t.recordingId, sha256: sum.sha256, sizeBytes: sum.sizeBytes });
      expect(events[1]!.outcome).toBe('success');

      const opened = await rec.open(t.recordingId);
      expect(opened).toMatchObject({ contentType: 'application/x-asciicast', size: sum.sizeBytes, integrity: 'ok' });
      expect((await readAll(opened!.stream)).equals(readFileSync(abs))).toBe(true);
      expect(await rec.open(randomUUID())).toBeNull();
      expect(await rec.open('../../etc/passwd')).toBeNull();
    });

    it('records exec channels as stream records with the exit code', async () => {
      const meta = await newSession(db);
      const s = await rec.startStream(meta, 'exec', 'uname -a');
      s.write('out', Buffer.from('Linux web01\n'));
      const sum = await s.close(0);
      const opened = await rec.open(s.recordingId);
      expect(opened).toMatchObject({ size: sum.sizeBytes, integrity: 'ok' });
      const parsed = parseStreamRecord(await readAll(opened!.stream));
      expect(parsed.header).toMatchObject({ kind: 'exec', command: 'uname -a', sessionId: meta.sessionId });
      expect(parsed.end).toEqual({ exitCode: 0, droppedBytes: 0 });
    });

    it('RDP slot: guacd sees its own directory; close indexes what guacd wrote, or audits a failure when it wrote nothing', async () => {
      const meta = { ...(await newSession(db)), protocol: 'rdp' as const };
      const slot = await rec.startRdp(meta);
      const [row] = await db.query<{ path: string }>('SELECT path FROM recordings WHERE id = $1', [slot.recordingId]);
      expect(slot.guacdPath).toBe(`/guacd-view/recordings/${dirname(row!.path)}`);
      expect(slot.guacdName).toBe(`${meta.sessionId}-${slot.recordingId}.guac`);
      // guacd (another process, its own umask) writes <recording-path>/<recording-name>
      const ours = rec.store.absolute(row!.path);
      expect(statSync(dirname(ours)).isDirectory()).toBe(true);
      writeFileSync(ours, '4.size,1.0,4.1024,3.768;', { mode: 0o644 });
      const sum = await slot.close();
      expect(sum).not.toBeNull();
      expect(statSync(ours).mode & 0o777).toBe(0o600);
      const guac = (await rec.open(slot.recordingId))!;
      expect(guac).toMatchObject({ size: 24, integrity: 'ok', contentType: 'application/octet-stream' });
      expect((await readAll(guac.stream)).toString()).toBe('4.size,1.0,4.1024,3.768;');

      const meta2 = { ...(await newSession(db)), protocol: 'rdp' as const };
      const empty = await rec.startRdp(meta2);
      expect(await empty.close()).toBeNull();
      const ev = await audit.list({ sessionId: meta2.sessionId, type: 'recording.completed' });
      expect(ev).toHaveLength(1);
      expect(ev[0]!.outcome).toBe('failure');
      expect((await rec.verify({ recordingId: empty.recordingId })).recordings[0]!.status).toBe('unsigned');
    });

    it('verify: ok, then a flipped byte, an edited row, a deleted entry and a wrong key are each detected', async () => {
      // a clean slate of three signed recordings
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const t = await rec.startTerminal(await newSession(db), { cols: 80, rows: 24, recordInput: true });
        t.output(Buffer.from(`recording ${i}\r\n`));
        t.input(Buffer.from('exit\r'));
        await t.close();
        ids.push(t.recordingId);
      }
      await db.query("DELETE FROM recordings WHERE manifest_seq IS NULL AND ended_at IS NOT NULL"); // the failed RDP slot above
      const clean = await verifyRecordings({ db, dir: join(dir, 'recordings'), signingKey: key });
      expect(clean.ok).toBe(true);
      expect(clean.chain.ok).toBe(true);
      expect(formatVerifyReport(clean)).toMatch(/0 problem\(s\); manifest \d+ entries intact/);

      // 1. a flipped byte in a file
      const [r0] = await db.query<{ path: string }>('SELECT path FROM recordings WHERE id = $1', [ids[0]]);
      const p0 = rec.store.absolute(r0!.path);
      const orig = readFileSync(p0);
      expect(await rec.integrity(ids[0]!)).toBe('ok'); // now cached by the file's fingerprint
      const flipped = Buffer.from(orig);
      flipped[flipped.length - 5]! ^= 0x01;
      writeFileSync(p0, flipped);
      let rep = await verifyRecordings({ db, dir: join(dir, 'recordings'), signingKey: key }, { recordingId: ids[0] });
      expect(rep.recordings[0]!.status).toBe('file-mismatch');
      expect(rep.ok).toBe(false);
      const bad = (await rec.open(ids[0]!))!;
      expect(bad.integrity).toBe('mismatch');
      expect(await rec.integrity(ids[0]!)).toBe('mismatch'); // the cache saw the file change
      (bad.stream as NodeJS.ReadStream).destroy();
      writeFileSync(p0, orig);
      expect((await rec.verify({ recordingId: ids[0] })).ok).toBe(true);

      // 2. an edited row (sha256 matching a forged file, as an attacker would)
      const [r1] = await db.query<{ sha256: string }>('SELECT sha256 FROM recordings WHERE id = $1', [ids[1]]);
      const [r1path] = await db.query<{ path: string }>('SELECT path FROM recordings WHERE id = $1', [ids[1]]);
      await db.query('UPDATE recordings SET sha256 = $2 WHERE id = $1', [ids[1], 'f'.repeat(64)]);
      rep = await rec.verify();
      expect(rep.recordings.find((r) => r.recordingId === ids[1])!.status).toBe('manifest-broken');
      // ... and editing the manifest entry too breaks its MAC
      await db.query('UPDATE recording_manifest SET sha256 = $2 WHERE recording_id = $1', [ids[1], 'f'.repeat(64)]);
      rep = await rec.verify();
      expect(rep.recordings.find((r) => r.recordingId === ids[1])!.status).toBe('manifest-broken');
      expect(rep.chain.ok).toBe(false);
      await db.query('UPDATE recordings SET sha256 = $2 WHERE id = $1', [ids[1], r1!.sha256]);
      await db.query('UPDATE recording_manifest SET sha256 = $2 WHERE recording_id = $1', [ids[1], r1!.sha256]);
      expect((await rec.verify()).ok).toBe(true);

      // 2b. a row pointed at another recording's file
      const [r2] = await db.query<{ path: string }>('SELECT path FROM recordings WHERE id = $1', [ids[2]]);
      await db.query('UPDATE recordings SET path = $2 WHERE id = $1', [ids[1], r2!.path]);
      expect((await rec.verify({ recordingId: ids[1] })).recordings[0]!.status).toBe('manifest-broken');
      await db.query('UPDATE recordings SET path = $2 WHERE id = $1', [ids[1], r1path!.path]);
      expect((await rec.verify()).ok).toBe(true);

      // 3. a deleted manifest entry breaks the chain (and its recording)
      const [m1] = await db.query<Record<string, unknown>>('SELECT * FROM recording_manifest WHERE recording_id = $1', [ids[1]]);
      await db.query('DELETE FROM recording_manifest WHERE recording_id = $1', [ids[1]]);
      rep = await rec.verify();
      expect(rep.chain.ok).toBe(false);
      expect(rep.chain.problems[0]!.reason).toMatch(/sequence gap/);
      expect(rep.recordings.find((r) => r.recordingId === ids[1])!.status).toBe('manifest-broken');
      expect(formatVerifyReport(rep)).toMatch(/BROKEN/);
      await db.query('INSERT INTO recording_manifest (seq, recording_id, sha256, size_bytes, prev_mac, mac, at) VALUES ($1,$2,$3,$4,$5,$6,$7)', [
        m1!.seq, m1!.recording_id, m1!.sha256, m1!.size_bytes, m1!.prev_mac, m1!.mac, m1!.at,
      ]);
      expect((await rec.verify()).ok).toBe(true);

      // 4. swapping two entries' seq (reordering) breaks the links
      const [a, b] = await db.query<{ seq: string }>('SELECT seq FROM recording_manifest ORDER BY seq DESC LIMIT 2');
      await db.transaction(async (tx) => {
        await tx.query('UPDATE recording_manifest SET seq = -1 WHERE seq = $1', [a!.seq]);
        await tx.query('UPDATE recording_manifest SET seq = $1 WHERE seq = $2', [a!.seq, b!.seq]);
        await tx.query('UPDATE recording_manifest SET seq = $1 WHERE seq = -1', [b!.seq]);
      });
      expect((await rec.verify()).chain.ok).toBe(false);
      await db.transaction(async (tx) => {
        await tx.query('UPDATE recording_manifest SET seq = -1 WHERE seq = $1', [a!.seq]);
        await tx.query('UPDATE recording_manifest SET seq = $1 WHERE seq = $2', [a!.seq, b!.seq]);
        await tx.query('UPDATE recording_manifest SET seq = $1 WHERE seq = -1', [b!.seq]);
      });

      // 5. a deleted recording row leaves an orphan entry
      const [row2] = await db.query<Record<string, unknown>>('SELECT * FROM recordings WHERE id = $1', [ids[2]]);
      await db.query('DELETE FROM recordings WHERE id = $1', [ids[2]]);
      rep = await rec.verify();
      expect(rep.chain.problems.map((p) => p.reason)).toEqual([`recording ${ids[2]} has no row (row deleted)`]);
      await db.query('INSERT INTO recordings (id, session_id, kind, path, size_bytes, sha256, manifest_seq, started_at, ended_at, dropped_bytes) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)', [
        row2!.id, row2!.session_id, row2!.kind, row2!.path, row2!.size_bytes, row2!.sha256, row2!.manifest_seq, row2!.started_at, row2!.ended_at, row2!.dropped_bytes,
      ]);
      expect((await rec.verify()).ok).toBe(true);

      // 6. the wrong key: every entry fails
      const wrong = loadSigningKey({ configured: new Secret(Buffer.alloc(32, 7).toString('base64')), dataDir: dir });
      rep = await verifyRecordings({ db, dir: join(dir, 'recordings'), signingKey: wrong });
      expect(rep.ok).toBe(false);
      expect(rep.chain.problems[0]).toMatchObject({ seq: 1 });
      expect(rep.recordings.every((r) => r.status === 'manifest-broken')).toBe(true);
    });

    it('the generated signing key file is 0600 and reused', () => {
      expect(statSync(signingKeyPath(dir)).mode & 0o777).toBe(0o600);
      expect(loadSigningKey({ dataDir: dir }).equals(key)).toBe(true);
      expect(() => loadSigningKey({ configured: new Secret('c2hvcnQ='), dataDir: dir })).toThrow(/32 bytes/);
      const rawDir = join(dir, 'raw');
      mkdirSync(rawDir);
      writeFileSync(signingKeyPath(rawDir), Buffer.alloc(32, 1));
      expect(loadSigningKey({ dataDir: rawDir }).equals(Buffer.alloc(32, 1))).toBe(true);
    });

    it('paths are built only from UUIDs', async () => {
      await expect(rec.startTerminal({ ...(await newSession(db)), sessionId: '../../etc' }, { cols: 80, rows: 24, recordInput: false })).rejects.toThrow(/UUID/);
      expect(() => rec.store.absolute('2026/01/01/../../x.cast')).toThrow(/not <yyyy>/);
    });

    it('never started: an RDP slot guacd refused and a file that could not be created are signed as such; verify accepts them, a late file is flagged', async () => {
      // guacd refused the handshake: no file, signed never-started, audited
      const meta = { ...(await newSession(db)), protocol: 'rdp' as const };
      const slot = await rec.startRdp(meta);
      expect(await slot.neverStarted('connection failed')).toBeNull();
      expect(await slot.close()).toBeNull(); // idempotent: one outcome per slot
      const [row] = await db.query<{ path: string; never_started: boolean; manifest_seq: string | null; sha256: string | null }>('SELECT * FROM recordings WHERE id = $1', [slot.recordingId]);
      expect(row).toMatchObject({ never_started: true, sha256: null });
      const ev = await audit.list({ sessionId: meta.sessionId, type: 'recording.completed' });
      expect(ev.map((e) => e.data)).toEqual([expect.objectContaining({ recordingId: slot.recordingId, neverStarted: true, reason: 'connection failed' })]);
      expect((await rec.verify({ recordingId: slot.recordingId })).recordings[0]!.status).toBe('never-started');
      expect(await rec.integrity(slot.recordingId)).toBe('ok');
      expect(await rec.open(slot.recordingId)).toBeNull();

      // a file showing up later for it is not silently accepted
      const abs = rec.store.absolute(row!.path);
      writeFileSync(abs, '4.sync,1.0;');
      expect((await rec.verify({ recordingId: slot.recordingId })).recordings[0]).toMatchObject({ status: 'file-mismatch' });
      rmSync(abs);

      // a slot whose file exists after all is sealed as a recording, not thrown away
      const meta2 = { ...(await newSession(db)), protocol: 'rdp' as const };
      const slot2 = await rec.startRdp(meta2);
      const [row2] = await db.query<{ path: string }>('SELECT path FROM recordings WHERE id = $1', [slot2.recordingId]);
      writeFileSync(rec.store.absolute(row2!.path), '4.sync,1.0;');
      expect(await slot2.neverStarted('connection failed')).toMatchObject({ sizeBytes: 11 });
      expect((await rec.verify({ recordingId: slot2.recordingId })).recordings[0]!.status).toBe('ok');

      // SSH: the file cannot be created, so the session is refused: never started, not "unsigned" for ever
      class NoCreate extends FsRecordingStore {
        override async create(): Promise<RecordingWriteHandle> {
          throw Object.assign(new Error('disk full'), { code: 'ENOSPC' });
        }
      }
      const broken = createRecorder({ db, audit, log: silentLogger(), dir: join(dir, 'recordings'), signingKey: key, store: new NoCreate(join(dir, 'recordings')) });
      const meta3 = await newSession(db);
      await expect(broken.startTerminal(meta3, { cols: 80, rows: 24, recordInput: false })).rejects.toThrow('disk full');
      const [row3] = await db.query<{ id: string; never_started: boolean }>('SELECT id, never_started FROM recordings WHERE session_id = $1', [meta3.sessionId]);
      expect(row3!.never_started).toBe(true);
      expect((await rec.verify({ recordingId: row3!.id })).recordings[0]!.status).toBe('never-started');
    });
  });
}
