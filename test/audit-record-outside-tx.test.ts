import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AuditLog, type AuditEventInput } from '../core/audit.js';
import { migrate } from '../core/db/migrations.js';
import { PgDatabase } from '../core/db/pg.database.js';
import { createTestDatabase } from './harness/postgres.js';

/**
 * `AuditLog.record(event, q)` where the caller's `q` is the database itself
 * rather than a transaction (identity.service.ts passes `q = this.#db` by
 * default): the append must still hold the advisory lock until its insert
 * commits. Two pools (two gateways' worth) appending concurrently, one of them
 * through such a `q`, on real PostgreSQL: every append succeeds and the chain
 * has no gap or fork. Issue 18's multi-node bench lost sign-ins and provisions
 * to `duplicate key ... audit_events_pkey` before this was fixed.
 */
const pgUrl = inject('pgUrl');

describe.skipIf(!pgUrl)(`audit append with the database passed as the caller's queryable${pgUrl ? '' : ` (no PostgreSQL: ${inject('missing')})`}`, () => {
  let url: string;
  const pools: PgDatabase[] = [];

  beforeAll(async () => {
    url = await createTestDatabase(pgUrl, `t_audit_q_${randomBytes(5).toString('hex')}`);
    const admin = new PgDatabase({ url, poolSize: 1 });
    pools.push(admin);
    await migrate(admin);
  });
  afterAll(async () => {
    for (const p of pools) await p.close();
  });

  it('concurrent appenders on two pools, half passing the database as queryable: no duplicate seq, one unbroken chain', async () => {
    const key = randomBytes(32);
    const ev = (who: string, i: number): AuditEventInput => ({ type: 'auth.signed_in', actor: who, outcome: 'success', data: { i } });
    const writers = [0, 1].map(() => {
      const db = new PgDatabase({ url, poolSize: 6 });
      pools.push(db);
      return { db, audit: new AuditLog(db, { key }) };
    });
    const results = await Promise.allSettled(
      writers.flatMap((w, n) => Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? w.audit.record(ev(`gw${n}`, i), w.db) : w.audit.record(ev(`gw${n}`, i))))),
    );
    const failures = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    expect(failures).toEqual([]);
    const rows = await writers[0]!.db.query<{ seq: string; prev_hash: string; hash: string }>('SELECT seq, prev_hash, hash FROM audit_events ORDER BY seq');
    expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.prev_hash).toBe(rows[i - 1]!.hash);
    expect((await writers[0]!.audit.verify()).ok).toBe(true);
  });
});
