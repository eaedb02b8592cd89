import type { JitAccountService } from './jit-account.service.js';
import type { JitQueue, JobHandlers } from './jobs.js';

/**
 * Thin processors: parse the payload, call the engine. The lease-expiry job
 * is scheduled *before* provisioning starts, so a crash at any point still
 * ends in a forced teardown at lease end.
 */
export function buildJobHandlers(engine: JitAccountService, queue: JitQueue, getLeaseEnd: (sessionId: string) => Promise<Date | null>): JobHandlers {
  return {
    provision: async ({ sessionId }, job) => {
      const end = await getLeaseEnd(sessionId);
      if (end) await queue.scheduleLeaseExpiry(sessionId, end);
      return engine.provision(sessionId, (step) => void job.updateProgress({ step }).catch(() => undefined));
    },
    teardown: async ({ sessionId, reason }) => engine.teardown(sessionId, reason),
    'lease-expiry': async ({ sessionId }) => engine.expireLease(sessionId),
    reconcile: async ({ dryRun }) => {
      const r = await engine.reconcile({ dryRun: dryRun ?? false });
      return { expiredSessions: r.expiredSessions, actions: r.actions.length, failures: r.failures };
    },
  };
}
