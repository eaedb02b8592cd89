import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { AuditLog, type AuditEventInput } from '../core/audit.js';
import { AUDIT_GENESIS, legacyLink } from '../core/audit-chain.js';
import { AuditCheckpointer } from '../core/audit-checkpoint.js';
import { auditForwardConfigSchema, forwardAudit } from '../core/audit-forward.js';
import { auditCheckpointPath, loadAuditKey } from '../core/audit-key.js';
import { migrate } from '../core/db/migrations.js';
import { PgDatabase } from '../core/db/pg.database.js';
import { runCli } from './harness/cli.js';
import { createTestDatabase } from './harness/postgres.js';

/**
 * The keyed audit chain on a real PostgreSQL server, written by two
 * processes' worth of connection pools at once, then tampered with the way
 * someone holding database write access (but not the key) would, each
 * time checked with `jitgate audit verify` as an operator runs it.
 */
const pgUrl = inject('pgUrl');

describe.skipIf(!pgUrl)(`keyed audit chain on PostgreSQL and jitgate audit verify${pgUrl ? '' : ` (no PostgreSQL: ${inject('missing')})`}`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'jgt-audit-chain-'));
  const file = auditCheckpointPath(dir);
  let url: string;
  let admin: PgDatabase;
  let key: Buffer;
  const refusals: object[] = [];

  const ev = (who: string, i: number): AuditEventInput => ({ type: 'session.started', actor: who, outcome: 'success', computer: 'web01', account: `${who}_${i}`, data: { i } });
  const verifyCli = (...args: string[]) => runCli(['audit', 'verify', ...args], { JITGATE_DATA_DIR: dir, JITGATE_DATABASE__URL: url, JITGATE_LOG__LEVEL: 'warn' });

  beforeAll(async () => {
    url = await createTestDatabase(pgUrl, `t_audit_${randomBytes(5).toString('hex')}`);
    admin = new PgDatabase({ url, poolSize: 2 });
    await migrate(admin);
    // the generated key in the data directory, as `jitgate serve` would create it
    key = loadAuditKey({ dataDir: dir });

    // Events written before the upgrade: unkeyed.
    const before = new AuditLog(admin);
    for (let i = 0; i < 3; i++) await before.record(ev('legacy', i));

    // Two writers (separate pools, like two gateways) append concurrently, each checkpointing into the shared file.
    const writers = [0, 1].map(() => {
      const db = new PgDatabase({ url, poolSize: 4 });
      const audit = new AuditLog(db, { key });
      const cp = new AuditCheckpointer({ audit, key, file, every: 7, intervalMs: 0, log: { error: (o) => refusals.push(o) } });
      return { db, audit, cp };
    });
    const fwd = forwardAudit(writers[0]!.audit, auditForwardConfigSchema.parse({ file: join(dir, 'forwarded.jsonl') }));
    writers[0]!.cp.onCheckpoint((c) => fwd.checkpoint(c));
    await Promise.all(writers.flatMap((w, n) => Array.from({ length: 25 }, (_, i) => w.audit.record(ev(`gw${n}`, i)))));
    for (const w of writers) {
      await w.cp.close();
      await w.db.close();
    }
    await fwd.close();
    // A copy of the untouched table to restore between the scenarios.
    await admin.query('CREATE TABLE audit_backup AS SELECT * FROM audit_events');
  });
  afterEach(async () => {
    await admin.query('DELETE FROM audit_events');
    await admin.query('INSERT INTO audit_events SELECT * FROM audit_backup');
    await admin.query("INSERT INTO settings (key, value) VALUES ('audit.keyed_from', '4') ON CONFLICT (key) DO UPDATE SET value = excluded.value");
  });
  afterAll(async () => {
    await admin?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an intact chain (3 unkeyed events from before the upgrade, 50 keyed from two concurrent writers) verifies: exit 0', async () => {
    const r = await verifyCli();
    expect(r.stdout).toMatch(/^audit trail intact: 53 event\(s\), HMAC-keyed from event 4; (\d+) of \1 checkpoint\(s\) valid, latest at event 53/);
    expect(r.code).toBe(0);
    // concurrent checkpointers never saw a chain that did not extend their last checkpoint
    expect(refusals).toEqual([]);
  });

  it('an edited event: exit 1, names the event', async () => {
    await admin.query(`UPDATE audit_events SET actor = 'nobody' WHERE seq = 20`);
    const r = await verifyCli();
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/BROKEN: 1 problem\(s\)/);
    expect(r.stdout).toMatch(/\[event 20\] event 20 \(session\.started by nobody at .*\) does not match its HMAC: edited/);
  });

  it('a deleted event in the middle: exit 1, names the gap', async () => {
    await admin.query('DELETE FROM audit_events WHERE seq = 30');
    const r = await verifyCli();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[event 31] event 30 is missing (deleted); the chain resumes at event 31');
  });

  it('the newest 3 events deleted: exit 1 through the checkpoint file, and through a forwarded copy', async () => {
    await admin.query('DELETE FROM audit_events WHERE seq > 50');
    const r = await verifyCli();
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/the chain ends at event 50, but checkpoint .*audit-checkpoints\.jsonl line \d+ \(taken .*\) shows event 53 existed: events 51–53 were deleted/);

    // The operator verifies against what the SIEM collected, even if the local file is gone.
    const forwarded = join(dir, 'siem-copy.jsonl');
    copyFileSync(join(dir, 'forwarded.jsonl'), forwarded);
    const f = await verifyCli('--checkpoints', forwarded);
    expect(f.code).toBe(1);
    expect(f.stdout).toMatch(/siem-copy\.jsonl line \d+ .* shows event 53 existed/);
  });

  it('the whole chain rebuilt with the old unkeyed hash by someone without the key: exit 1', async () => {
    const rows = await admin.query<{ seq: string; at: Date; type: string; actor: string; outcome: string; session_id: string | null; computer: string | null; account: string | null; data: unknown }>(
      'SELECT * FROM audit_events ORDER BY seq',
    );
    let prev = AUDIT_GENESIS;
    for (const r of rows) {
      const seq = Number(r.seq);
      const actor = seq === 10 ? 'nobody' : r.actor;
      const hash = legacyLink(prev, { seq, at: r.at, type: r.type, actor, outcome: r.outcome, sessionId: r.session_id, computer: r.computer, account: r.account, data: r.data });
      await admin.query("UPDATE audit_events SET actor = $2, prev_hash = $3, hash = $4, alg = 'sha256' WHERE seq = $1", [seq, actor, prev, hash]);
      prev = hash;
    }
    await admin.query("DELETE FROM settings WHERE key = 'audit.keyed_from'");
    const r = await verifyCli();
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/event 4 \(.*\) is unkeyed although the chain is HMAC-keyed from event 4: rewritten by someone without the key/);
    expect(r.stdout).toMatch(/event \d+ is not the event checkpoint .* signed: the chain up to it was rewritten or replaced/);
  });
});
