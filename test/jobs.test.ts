import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { ConnectionOptions, Worker } from 'bullmq';
import { migrate } from '../core/db/migrations.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import { silentLogger } from '../core/logging.js';
import { redisOptions } from '../core/redis.js';
import { buildJobHandlers } from '../provisioner/job-handlers.js';
import { JitQueue, startJitWorker } from '../provisioner/jobs.js';
import { JIT_PRESETS } from '../provisioner/jit-settings.js';
import { MemoryAccountStore } from '../provisioner/stores/memory.store.js';
import { JitFixture } from './fixtures/jit-fixture.js';

const socket = inject('redisSocket');

describe.skipIf(!socket)('JIT jobs on a real Redis (BullMQ)', () => {
  let db: PgliteDatabase;
  let queue: JitQueue;
  let worker: Worker;
  let fx: JitFixture;
  const store = new MemoryAccountStore({ groups: ['JIT Admins'] });

  beforeAll(async () => {
    db = await PgliteDatabase.open();
    await migrate(db);
    fx = new JitFixture(db, new Map([['ad', store]]));
    const connection = redisOptions({ path: socket }, { maxRetriesPerRequest: null }) as ConnectionOptions;
    const prefix = `t${randomBytes(4).toString('hex')}`;
    queue = new JitQueue({ connection, prefix, teardownAttempts: 3 });
    await queue.ready();
    worker = startJitWorker({
      connection, prefix, concurrency: 4, log: silentLogger(),
      handlers: buildJobHandlers(fx.service, queue, async (id) => (await fx.repo.getSession(id))?.leaseExpiresAt ?? null),
    });
  });
  afterAll(async () => {
    await worker?.close();
    await queue?.close();
    await db?.close();
  });

  it('refuses to start a worker with a job name that has no handler', () => {
    expect(() => startJitWorker({ connection: {}, prefix: 'x', concurrency: 1, log: silentLogger(), handlers: {} })).toThrow(/no handler for job name\(s\): provision, teardown, lease-expiry, reconcile/);
  });

  it('provisions through the queue (duplicates are one job) and tears down through it', async () => {
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['JIT Admins'] });
    const s = await fx.service.requestSession({ personLogin: 'alice', computer: pc, protocol: 'ssh' });
    const [j1, j2] = await Promise.all([queue.provision(s.id), queue.provision(s.id)]);
    expect(j1.id).toBe(j2.id);
    const r = await queue.waitFor<{ account: string }>(j1, 30_000);
    expect(r.account).toMatch(/^alice_/);
    expect((await store.get(r.account))!.groups).toEqual(['JIT Admins']);
    // the lease-expiry job was scheduled before provisioning, delayed to the lease end
    const lease = await queue.queue.getJob(`lease-${s.id}`);
    expect(lease).toBeDefined();
    expect(await lease!.getState()).toBe('delayed');
    const t = await queue.teardown(s.id, 'closed');
    await queue.waitFor(t, 30_000);
    expect(await store.get(r.account)).toBeNull();
  });

  it('a lease-expiry job at the lease end tears the session down with nobody else acting', async () => {
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['JIT Admins'] });
    const s = await fx.service.requestSession({ personLogin: 'bob', computer: pc, protocol: 'ssh', minutes: 1 });
    const p = await queue.provision(s.id);
    const r = await queue.waitFor<{ account: string }>(p, 30_000);
    expect(await store.get(r.account)).not.toBeNull();
    // move the clock past the lease and fire the expiry now
    fx.clock = new Date(Date.now() + 2 * 60_000);
    await queue.scheduleLeaseExpiry(s.id, new Date());
    const deadline = Date.now() + 20_000;
    while ((await fx.repo.getSession(s.id))!.state !== 'ended' && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    expect((await fx.repo.getSession(s.id))!.state).toBe('ended');
    expect(await store.get(r.account)).toBeNull();
    fx.clock = new Date();
  });

  it('a failed provisioning is permanent for typed non-transient errors (no retries)', async () => {
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['No Such Group'] });
    const s = await fx.service.requestSession({ personLogin: 'carol', computer: pc, protocol: 'ssh' });
    const job = await queue.provision(s.id);
    await expect(queue.waitFor(job, 30_000)).rejects.toThrow(/JIT_ERR_STORE_NO_SUCH_GROUP/);
    const again = await queue.queue.getJob(job.id!);
    expect(again!.attemptsMade).toBe(1);
    expect(store.accounts.size).toBe(0);
  });
});
