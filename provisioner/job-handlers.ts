import type { JitAccountService } from './jit-account.service.js';
import type { JitQueue, JobHandlers } from './jobs.js';

/** The progress a provision job reports (`job.updateProgress`); `seq` counts from 1 within one attempt. */
export interface ProvisionProgress {
  step: string;
  seq: number;
  attempt: number;
}

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
      // Every step carries its attempt and sequence number, and the result carries the whole ordered
      // list: a gateway whose event reader lags behind completion still shows every step, in order.
      const steps: string[] = [];
      let written: Promise<unknown> = Promise.resolve();
      const attempt = job.attemptsMade;
      const result = await engine.provision(sessionId, (step) => {
        steps.push(step);
        const progress: ProvisionProgress = { step, seq: steps.length, attempt };
        written = written.then(() => job.updateProgress(progress)).catch(() => undefined);
      });
      await written;
      return { ...result, steps, attempt };
    },
    teardown: async ({ sessionId, reason }) => engine.teardown(sessionId, reason),
    'lease-expiry': async ({ sessionId }) => engine.expireLease(sessionId),
    reconcile: async ({ dryRun }) => {
      const r = await engine.reconcile({ dryRun: dryRun ?? false });
      return { expiredSessions: r.expiredSessions, actions: r.actions.length, failures: r.failures };
    },
  };
}
