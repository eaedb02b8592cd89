import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from '../core/db/database.js';
import { migrate, schemaVersion, MIGRATIONS } from '../core/db/migrations.js';
import { AuditLog } from '../core/audit.js';
import { databaseFactories } from './harness/databases.js';

for (const f of databaseFactories()) {
  describe.skipIf(f.skip !== '')(`database on ${f.label}`, () => {
    let db: Database | undefined;
    afterEach(async () => {
      await db?.close();
      db = undefined;
    });

    it('migrates to the latest version and is idempotent', async () => {
      db = await f.open();
      expect(await schemaVersion(db)).toBe(Math.max(...MIGRATIONS.map((m) => m.version)));
      const again = await migrate(db);
      expect(again.applied).toEqual([]);
      const tables = await db.query<{ t: string }>("SELECT table_name AS t FROM information_schema.tables WHERE table_schema='public' ORDER BY 1");
      expect(tables.map((r) => r.t)).toEqual(
        expect.arrayContaining(['organizations', 'people', 'computers', 'grants', 'jit_accounts', 'sessions', 'recordings', 'audit_events']),
      );
    });

    it('rolls a failed transaction back', async () => {
      db = await f.open();
      await expect(
        db.transaction(async (tx) => {
          await tx.query("INSERT INTO organizations (id, name, shared_code) VALUES ('00000000-0000-0000-0000-000000000001', 'acme', '0001')");
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect(await db.query('SELECT * FROM organizations')).toHaveLength(0);
    });

    it('enforces one live account per store and name', async () => {
      db = await f.open();
      const ins = (id: string, state: string) =>
        db!.query("INSERT INTO jit_accounts (id, store, name, mode, owner_key, state) VALUES ($1, 'ad', 'alice_k3x9q2', 'named', 'person:alice', $2)", [id, state]);
      await ins('00000000-0000-0000-0000-00000000000a', 'deleted');
      await ins('00000000-0000-0000-0000-00000000000b', 'active');
      await expect(ins('00000000-0000-0000-0000-00000000000c', 'creating')).rejects.toThrow();
    });

    it('keeps a hash-chained audit trail that detects edits and deletions', async () => {
      db = await f.open();
      const audit = new AuditLog(db);
      await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          audit.record({ type: 'account.created', actor: 'system:test', outcome: 'success', account: `a${i}`, computer: 'web01', data: { group: 'JIT Admins' } }),
        ),
      );
      expect(await audit.verify()).toMatchObject({ ok: true, count: 12 });
      const events = await audit.list({ account: 'a3' });
      expect(events).toHaveLength(1);
      expect(events[0]!.data).toEqual({ group: 'JIT Admins' });

      const original5 = (await audit.list({ afterSeq: 4, limit: 1 }))[0]!.account;
      await db.query("UPDATE audit_events SET account = 'mallory' WHERE seq = 5");
      const edited = await audit.verify();
      expect(edited).toMatchObject({ ok: false, brokenAt: 5 });

      // restore the edit, then delete a row instead: the chain breaks at the next one
      await db.query('UPDATE audit_events SET account = $1 WHERE seq = 5', [events.length ? original5 : '']);
      expect((await audit.verify()).ok).toBe(true);
      await db.query('DELETE FROM audit_events WHERE seq = 5');
      expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: 6 });
    });

    it('an event recorded in a transaction that rolls back leaves no trace in the chain', async () => {
      db = await f.open();
      const audit = new AuditLog(db);
      await audit.record({ type: 'session.requested', actor: 'system:test', outcome: 'success' });
      await expect(
        db.transaction(async (tx) => {
          await audit.record({ type: 'session.started', actor: 'system:test', outcome: 'success' }, tx);
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      await Promise.all([1, 2, 3].map(() => audit.record({ type: 'session.ended', actor: 'system:test', outcome: 'success' })));
      // a second writer on the same database continues the same chain
      await new AuditLog(db).record({ type: 'session.ended', actor: 'system:test', outcome: 'success' });
      expect(await audit.verify()).toMatchObject({ ok: true, count: 5 });
      expect((await audit.list({})).map((e) => e.type)).not.toContain('session.started');
    });
  });
}
