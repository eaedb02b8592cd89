import type { JitRepository } from './jit-repository.js';
import type { JitQueue } from './jobs.js';

/**
 * Redis holds the JIT engine's timers (delayed lease-expiry jobs, the
 * repeatable reconcile sweep), the database holds the truth. A worker calls
 * this at start, and again whenever it finds the sweep's schedule gone (a
 * Redis restarted without its data): the sweep is scheduled again and every
 * live session gets its lease-expiry job back, at the lease end the database
 * records. Idempotent; two workers doing it at once add each job once (the
 * job id is the session's).
 */
export async function restoreSchedules(repo: Pick<JitRepository, 'liveSessions'>, queue: JitQueue, reconcileEverySeconds: number): Promise<{ leaseJobsAdded: number }> {
  await queue.scheduleReconcile(reconcileEverySeconds);
  let leaseJobsAdded = 0;
  for (const s of await repo.liveSessions()) {
    if (await queue.ensureLeaseExpiry(s.id, s.leaseExpiresAt)) leaseJobsAdded++;
  }
  return { leaseJobsAdded };
}
