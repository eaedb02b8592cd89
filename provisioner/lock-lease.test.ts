import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../core/db/migrations.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import { JitFixture } from '../test/fixtures/jit-fixture.js';
import { LOCK_LEASE_MS } from './jit-account.service.js';
import { JIT_PRESETS } from './jit-settings.js';
import { MemoryAccountStore } from './stores/memory.store.js';

/**
 * Issue 18: a worker SIGKILLed mid-teardown leaves its `session:<id>` lock in
 * the database. The lock is a short lease renewed while its holder works, so
 * the next teardown waits at most that lease (not the minute a step may take),
 * and a live holder keeps it however long its step runs.
 */
let db: PgliteDatabase;
beforeAll(async () => {
  db = await PgliteDatabase.open();
  await migrate(db);
});
afterAll(async () => db.close());

const maxSec = { ...JIT_PRESETS.maximumSecurity, adminGroups: ['JIT Admins'] };

function setup() {
  const ad = new MemoryAccountStore({ groups: ['JIT Admins'] });
  const fx = new JitFixture(db, new Map([[`ad-${Math.random().toString(36).slice(2, 8)}`, ad]]));
  return { ad, fx };
}

describe('session lock lease', () => {
  it('a lock left by a holder that died lapses within the lease: the next teardown runs after at most LOCK_LEASE_MS', async () => {
    expect(LOCK_LEASE_MS).toBeLessThanOrEqual(15_000);
    const { ad, fx } = setup();
    const pc = await fx.computer(maxSec);
    const { sessionId, result } = await fx.open(pc, 'dora');
    // What a killed worker leaves: its lock, last renewed just now, and nobody to unlock it.
    await db.query("INSERT INTO locks (key, owner, expires_at) VALUES ($1, 'killed-worker', now() + ($2::double precision * interval '1 millisecond'))", [`session:${sessionId}`, LOCK_LEASE_MS]);
    const t0 = Date.now();
    expect(await fx.service.teardown(sessionId, 'lease expired')).toMatchObject({ state: 'ended' });
    const waited = Date.now() - t0;
    // It did wait for the dead holder's lease (the lock is honoured), and no longer than the lease plus slack.
    expect(waited).toBeGreaterThanOrEqual(LOCK_LEASE_MS - 1000);
    expect(waited).toBeLessThan(LOCK_LEASE_MS + 10_000);
    expect(await ad.get(result.account!)).toBeNull();
  }, 60_000);

  it('a live holder keeps the lock past the lease (renewed): a second teardown waits for it, the account is deleted once', async () => {
    const { ad, fx } = setup();
    const pc = await fx.computer(maxSec);
    const { sessionId, result } = await fx.open(pc, 'erin');
    const hold = ad.hold('delete');
    const first = fx.service.teardown(sessionId, 'closed');
    await hold.entered;
    // Longer than one lease: without renewal the lock would lapse and the second teardown would run now.
    await new Promise((r) => setTimeout(r, LOCK_LEASE_MS + 3000));
    let secondDone = false;
    const second = fx.service.teardown(sessionId, 'lease expired').then((r) => {
      secondDone = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 1500));
    expect(secondDone).toBe(false);
    expect((await db.query<{ state: string }>('SELECT state FROM sessions WHERE id = $1', [sessionId]))[0]!.state).toBe('ending');
    hold.release();
    expect(await first).toMatchObject({ state: 'ended' });
    expect(await second).toMatchObject({ state: 'ended' });
    expect(ad.calls.filter((c) => c.op === 'delete' && c.name === result.account)).toHaveLength(1);
  }, 60_000);
});
