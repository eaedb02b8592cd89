import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog, type AuditEventInput } from './audit.js';
import { AUDIT_GENESIS, legacyLink, parseCheckpoints } from './audit-chain.js';
import { AuditCheckpointer, readCheckpointFiles } from './audit-checkpoint.js';
import { auditForwardConfigSchema, forwardAudit } from './audit-forward.js';
import { auditKeyPath, loadAuditKey } from './audit-key.js';
import { formatAuditReport } from './audit-verify.js';
import type { Database } from './db/database.js';
import { migrate } from './db/migrations.js';
import { PgliteDatabase } from './db/pglite.database.js';
import { isJitgateError } from './errors.js';
import { Secret } from './secret.js';

const ev = (i: number): AuditEventInput => ({ type: 'account.created', actor: 'system:test', outcome: 'success', account: `a${i}`, computer: 'web01', data: { group: 'JIT Admins', i } });

/**
 * What someone who can write the database but cannot read the key can do:
 * rebuild every link with the unkeyed SHA-256 of old and drop the marker of
 * the switch, so the table is a self-consistent unkeyed chain.
 */
async function rewriteUnkeyed(db: Database, edit?: (seq: number) => string | null): Promise<void> {
  const rows = await db.query<{ seq: string | number; at: Date; type: string; actor: string; outcome: string; session_id: string | null; computer: string | null; account: string | null; data: unknown }>(
    'SELECT * FROM audit_events ORDER BY seq',
  );
  let prev = AUDIT_GENESIS;
  for (const r of rows) {
    const seq = Number(r.seq);
    const account = edit?.(seq) ?? r.account;
    const hash = legacyLink(prev, { seq, at: new Date(r.at), type: r.type, actor: r.actor, outcome: r.outcome, sessionId: r.session_id, computer: r.computer, account, data: r.data });
    await db.query("UPDATE audit_events SET account = $2, prev_hash = $3, hash = $4, alg = 'sha256' WHERE seq = $1", [seq, account, prev, hash]);
    prev = hash;
  }
  await db.query("DELETE FROM settings WHERE key = 'audit.keyed_from'");
}

describe('keyed audit chain', () => {
  let db: Database;
  let dir: string;
  let key: Buffer;
  let file: string;
  // One embedded database (opening PGlite is the slow part), emptied before each test.
  beforeAll(async () => {
    db = await PgliteDatabase.open();
    await migrate(db);
  });
  afterAll(async () => db?.close());
  beforeEach(async () => {
    await db.query('DELETE FROM audit_events');
    await db.query("DELETE FROM settings WHERE key = 'audit.keyed_from'");
    dir = mkdtempSync(join(tmpdir(), 'jgt-audit-'));
    key = randomBytes(32);
    file = join(dir, 'audit-checkpoints.jsonl');
  });

  const verify = async (audit: AuditLog, files = [file]) => audit.verify({ checkpoints: await readCheckpointFiles(files) });
  /**
   * The database as a freshly started jitgate sees it. AuditLog caches the
   * head per embedded Database object (PGlite has one process); rows deleted
   * behind its back are what an attacker does while jitgate is down.
   */
  const view = (): Database => ({ kind: db.kind, query: db.query.bind(db), transaction: db.transaction.bind(db), ping: db.ping.bind(db), close: async () => undefined });
  /** A keyed log with a checkpointer (as app/main.ts wires it), every `every` events. */
  function keyed(every = 5, on: Database = view()) {
    const audit = new AuditLog(on, { key });
    const errors: object[] = [];
    const cp = new AuditCheckpointer({ audit, key, file, every, intervalMs: 0, log: { error: (o) => errors.push(o) } });
    return { audit, cp, errors };
  }
  async function write(audit: AuditLog, n: number, from = 0) {
    for (let i = from; i < from + n; i++) await audit.record(ev(i));
  }

  it('links each event with an HMAC and verifies against signed checkpoints', async () => {
    const { audit, cp } = keyed();
    const taken: number[] = [];
    let wake: () => void = () => undefined;
    cp.onCheckpoint((c) => {
      taken.push(c.seq);
      wake();
    });
    const next = () => new Promise<void>((r) => (wake = r));
    // a checkpoint after the first event, then after every 5th
    let n = next();
    await write(audit, 1);
    await n;
    await write(audit, 4, 1);
    n = next();
    await write(audit, 1, 5);
    await n;
    expect(taken).toEqual([1, 6]);
    await write(audit, 6, 6);
    await cp.close();
    const rows = await audit.list();
    expect(rows.map((r) => r.alg)).toEqual(Array(12).fill('hmac-sha256'));
    // no one without the key can compute the link: it is not the unkeyed hash
    expect(rows[0]!.hash).not.toBe(legacyLink(AUDIT_GENESIS, rows[0]!));
    const r = await verify(audit);
    expect(r).toMatchObject({ ok: true, count: 12, head: 12, keyedFrom: 1, problems: [] });
    // after the first event, about every 5 (of the head when taken), and at close
    const cps = parseCheckpoints(readFileSync(file, 'utf8'), file).checkpoints.map((c) => c.checkpoint.seq);
    expect(cps[0]).toBe(1);
    expect(cps.at(-1)).toBe(12);
    expect(cps).toEqual(taken);
    expect(r.checkpoints).toEqual({ read: cps.length, valid: cps.length, latestSeq: 12 });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(formatAuditReport(r)).toMatch(/^audit trail intact: 12 event\(s\), HMAC-keyed; \d+ of \d+ checkpoint\(s\) valid, latest at event 12/);
  });

  it("detects an edited event's data (HMAC mismatch)", async () => {
    const { audit, cp } = keyed();
    await write(audit, 8);
    await cp.close();
    await db.query(`UPDATE audit_events SET data = '{"group":"Domain Admins","i":4}' WHERE seq = 5`);
    const r = await verify(audit);
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([expect.objectContaining({ kind: 'edited', seq: 5 })]);
    expect(r.brokenAt).toBe(5);
    expect(formatAuditReport(r)).toContain('[event 5] event 5 (account.created by system:test at');
    expect(formatAuditReport(r)).toContain('does not match its HMAC: edited');
  });

  it('detects a deleted event in the middle (seq gap)', async () => {
    const { audit, cp } = keyed();
    await write(audit, 8);
    await cp.close();
    await db.query('DELETE FROM audit_events WHERE seq = 4');
    const r = await verify(audit);
    expect(r.problems).toEqual([expect.objectContaining({ kind: 'gap', seq: 5, message: 'event 4 is missing (deleted); the chain resumes at event 5' })]);
  });

  it('detects deletion of the newest 3 events only through the checkpoints', async () => {
    const { audit, cp } = keyed();
    await write(audit, 10);
    await cp.close();
    await db.query('DELETE FROM audit_events WHERE seq > 7');
    // the rows left are a perfect chain: without a checkpoint nothing is wrong
    expect((await audit.verify()).ok).toBe(true);
    const r = await verify(audit);
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([expect.objectContaining({ kind: 'truncated', seq: 10 })]);
    expect(r.problems[0]!.message).toMatch(/the chain ends at event 7, but checkpoint .* shows event 10 existed: events 8–10 were deleted/);

    // new events refill seq 8..10 with a valid chain: the checkpoint's link at 10 still tells
    const again = keyed();
    await write(again.audit, 4, 100);
    const r2 = await verify(again.audit);
    expect(r2.problems).toEqual([expect.objectContaining({ kind: 'checkpoint-mismatch', seq: 10 })]);
    // and the checkpointer refuses to sign a chain that does not extend the last checkpoint
    expect(await again.cp.checkpoint()).toBeNull();
    expect(again.errors).toEqual(expect.arrayContaining([expect.objectContaining({ lastCheckpointSeq: 10, problem: 'event 10 is not the one the last checkpoint signed' })]));
  });

  it('detects a chain rebuilt with the old unkeyed algorithm by someone without the key', async () => {
    const { audit, cp } = keyed();
    await write(audit, 10);
    await cp.close();
    await rewriteUnkeyed(db, (seq) => (seq === 3 ? 'mallory' : null));
    const r = await verify(audit);
    expect(r.ok).toBe(false);
    const kinds = new Set(r.problems.map((p) => p.kind));
    // every row is now unkeyed where checkpoints vouch for keyed rows, and no checkpointed link matches
    expect(kinds).toEqual(new Set(['downgrade', 'checkpoint-mismatch']));
    const signed = parseCheckpoints(readFileSync(file, 'utf8'), file).checkpoints.map((c) => c.checkpoint.seq);
    expect(r.problems.filter((p) => p.kind === 'checkpoint-mismatch').map((p) => p.seq)).toEqual(signed);
    expect(r.problems.find((p) => p.kind === 'downgrade')!.message).toMatch(/event 1 .* is unkeyed although the chain is HMAC-keyed from event 1/);
  });

  it('detects a chain re-signed with another key, and checkpoints forged with another key', async () => {
    const { audit, cp } = keyed();
    await write(audit, 6);
    await cp.close();
    const mallory = new AuditLog(view(), { key: randomBytes(32) });
    await db.query('DELETE FROM audit_events');
    await write(mallory, 6);
    const forged = new AuditCheckpointer({ audit: mallory, key: randomBytes(32), file: join(dir, 'forged.jsonl'), every: 1000, intervalMs: 0 });
    await forged.checkpoint();
    const r = await verify(audit, [file, join(dir, 'forged.jsonl')]);
    expect(r.problems.map((p) => p.kind)).toEqual(expect.arrayContaining(['checkpoint-signature', 'edited', 'wrong-key', 'checkpoint-mismatch']));
  });

  it('old unkeyed events from before the switch still verify; an unkeyed event after it is a downgrade', async () => {
    const v = view();
    const old = new AuditLog(v); // no key: the chain as written before migration 8
    await write(old, 3);
    const { audit, cp } = keyed(5, v);
    await write(audit, 4, 3);
    await cp.close();
    const r = await verify(audit);
    expect(r).toMatchObject({ ok: true, count: 7, keyedFrom: 4 });
    expect((await audit.list()).map((e) => e.alg)).toEqual(['sha256', 'sha256', 'sha256', 'hmac-sha256', 'hmac-sha256', 'hmac-sha256', 'hmac-sha256']);
    expect(await audit.keyedFrom()).toBe(4);

    await old.record(ev(99));
    const bad = await verify(audit);
    expect(bad.problems).toEqual([expect.objectContaining({ kind: 'downgrade', seq: 8 })]);
  });

  it('an upgraded database (rows written before migration 8) verifies, then continues keyed', async () => {
    // the schema as the previous release left it
    await db.query('ALTER TABLE audit_events DROP COLUMN alg');
    await db.query('DELETE FROM schema_migrations WHERE version = 8');
    const fresh = view();
    {
      // rows as the previous release wrote them: no alg column
      let prev = AUDIT_GENESIS;
      for (let seq = 1; seq <= 3; seq++) {
        const e = { seq, at: new Date(1_700_000_000_000 + seq), type: 'session.started', actor: 'alice', outcome: 'success', sessionId: null, computer: 'web01', account: null, data: { n: seq } };
        const hash = legacyLink(prev, e);
        await fresh.query(
          'INSERT INTO audit_events (seq, at, type, actor, session_id, computer, account, outcome, data, prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)',
          [seq, e.at, e.type, e.actor, null, e.computer, null, e.outcome, JSON.stringify(e.data), prev, hash],
        );
        prev = hash;
      }
      expect((await migrate(fresh)).applied).toEqual([8]);
      const audit = new AuditLog(fresh, { key });
      expect(await audit.verify()).toMatchObject({ ok: true, count: 3, keyedFrom: null });
      await audit.record(ev(4));
      expect(await audit.verify()).toMatchObject({ ok: true, count: 4, keyedFrom: 4 });
    }
  });

  it('two writers appending concurrently keep one chain that verifies', async () => {
    // one embedded database, two writers (the PostgreSQL suite runs two processes' worth of pools)
    const v = view();
    const a = keyed(3, v);
    const b = keyed(4, v);
    await Promise.all([...Array.from({ length: 20 }, (_, i) => a.audit.record(ev(i))), ...Array.from({ length: 20 }, (_, i) => b.audit.record(ev(100 + i)))]);
    await Promise.all([a.cp.close(), b.cp.close()]);
    const r = await verify(a.audit);
    expect(r).toMatchObject({ ok: true, count: 40, problems: [] });
    expect(r.checkpoints.valid).toBeGreaterThanOrEqual(2);
    expect(a.errors).toEqual([]);
    expect(b.errors).toEqual([]);
  });

  it('sends checkpoints with audit forwarding; verify accepts the forwarded copy', async () => {
    const { audit, cp } = keyed(4);
    const fwdFile = join(dir, 'forwarded.jsonl');
    const fwd = forwardAudit(audit, auditForwardConfigSchema.parse({ file: fwdFile }));
    cp.onCheckpoint((c) => fwd.checkpoint(c));
    await write(audit, 9);
    await cp.close();
    await fwd.close();
    const lines = readFileSync(fwdFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind?: string; seq: number });
    const signed = lines.filter((l) => l.kind === 'audit.checkpoint').map((l) => l.seq);
    expect(signed[0]).toBe(1);
    expect(signed.at(-1)).toBe(9);
    expect(lines.filter((l) => l.kind === undefined)).toHaveLength(9);
    await db.query('DELETE FROM audit_events WHERE seq >= 8');
    const r = await verify(audit, [fwdFile]);
    expect(r.problems).toEqual([expect.objectContaining({ kind: 'truncated', seq: 9 })]);
    expect(r.problems[0]!.message).toContain(fwdFile);
  });

  it('says so when the checkpoint file is missing or damaged', async () => {
    const { audit } = keyed();
    await write(audit, 2);
    const r = await verify(audit, [join(dir, 'nope.jsonl')]);
    expect(r.problems).toEqual([expect.objectContaining({ kind: 'checkpoint-missing' })]);
    writeFileSync(file, '{"kind":"audit.checkpoint","v":1,"seq":"x"}\n');
    expect((await verify(audit)).problems.map((p) => p.kind)).toEqual(['checkpoint-malformed', 'checkpoint-missing']);
  });
});

describe('audit key', () => {
  it('is generated once in the data directory (0600) and reused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jgt-audit-key-'));
    const k = loadAuditKey({ dataDir: dir });
    expect(k).toHaveLength(32);
    expect(statSync(auditKeyPath(dir)).mode & 0o777).toBe(0o600);
    expect(loadAuditKey({ dataDir: dir }).equals(k)).toBe(true);
  });

  it('takes audit.signingKey when configured and refuses a key of the wrong size', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jgt-audit-key-'));
    const k = Buffer.alloc(32, 7);
    expect(loadAuditKey({ dataDir: dir, configured: new Secret(k.toString('base64')) }).equals(k)).toBe(true);
    try {
      loadAuditKey({ dataDir: dir, configured: new Secret('c2hvcnQ=') });
      expect.unreachable();
    } catch (err) {
      expect(isJitgateError(err) && err.code).toBe('JIT_ERR_AUDIT_SIGNING_KEY');
    }
  });
});
