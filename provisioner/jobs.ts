import { Queue, QueueEvents, Worker, UnrecoverableError, type Job, type ConnectionOptions } from 'bullmq';
import { isJitgateError } from '../core/errors.js';
import type { Logger } from '../core/logging.js';

/**
 * The JIT job queue. One queue, four job names. Processors are thin: parse
 * the payload, call the service, map errors (permanent → UnrecoverableError,
 * transient → retried with backoff). The worker refuses to start when a job
 * name has no handler.
 */
export const JOB_NAMES = ['provision', 'teardown', 'lease-expiry', 'reconcile'] as const;
export type JobName = (typeof JOB_NAMES)[number];

export interface JobPayloads {
  provision: { sessionId: string };
  teardown: { sessionId: string; reason: string };
  'lease-expiry': { sessionId: string };
  reconcile: { dryRun?: boolean; trigger: 'schedule' | 'manual' | 'startup' };
}

export type JobHandlers = {
  [K in JobName]: (data: JobPayloads[K], job: Job) => Promise<unknown>;
};

export const QUEUE_NAME = 'jit';

export interface QueueOptions {
  connection: ConnectionOptions;
  prefix: string;
  queueName?: string;
}

export class JitQueue {
  readonly queue: Queue;
  readonly #events: QueueEvents;
  readonly #teardownAttempts: number;

  constructor(opts: QueueOptions & { teardownAttempts?: number }) {
    const name = opts.queueName ?? QUEUE_NAME;
    this.queue = new Queue(name, { connection: opts.connection, prefix: opts.prefix });
    this.#events = new QueueEvents(name, { connection: opts.connection, prefix: opts.prefix });
    this.queue.on('error', () => undefined);
    this.#events.on('error', () => undefined);
    this.#teardownAttempts = opts.teardownAttempts ?? 12;
  }

  async ready(): Promise<void> {
    await this.queue.waitUntilReady();
    await this.#events.waitUntilReady();
  }

  /** Job id = session id: a duplicate request is the same job. */
  async provision(sessionId: string): Promise<Job> {
    return this.queue.add('provision', { sessionId } satisfies JobPayloads['provision'], {
      jobId: `provision-${sessionId}`,
      attempts: 3,
      backoff: { type: 'exponential', delay: 500 },
      removeOnComplete: { age: 3600, count: 10_000 },
      removeOnFail: { age: 7 * 86_400 },
    });
  }

  async waitFor<T>(job: Job, timeoutMs: number): Promise<T> {
    return (await job.waitUntilFinished(this.#events, timeoutMs)) as T;
  }

  /** Teardown is retried for a long time with backoff; the reconciler catches the rest. */
  async teardown(sessionId: string, reason: string): Promise<Job> {
    return this.queue.add('teardown', { sessionId, reason } satisfies JobPayloads['teardown'], {
      jobId: `teardown-${sessionId}`,
      attempts: this.#teardownAttempts,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: { age: 3600, count: 10_000 },
      removeOnFail: { age: 30 * 86_400 },
    });
  }

  /** Delayed job that forces teardown at lease end even if every gateway died. */
  async scheduleLeaseExpiry(sessionId: string, at: Date): Promise<void> {
    const jobId = `lease-${sessionId}`;
    const existing = await this.queue.getJob(jobId);
    if (existing) await existing.remove().catch(() => undefined);
    await this.queue.add('lease-expiry', { sessionId } satisfies JobPayloads['lease-expiry'], {
      jobId,
      delay: Math.max(0, at.getTime() - Date.now()),
      attempts: this.#teardownAttempts,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: true,
      removeOnFail: { age: 30 * 86_400 },
    });
  }

  /**
   * Add the lease-expiry job unless one exists: after Redis lost its data the
   * database still knows every lease. Never moves an existing job (an
   * extension replaced it already). true when it added one.
   */
  async ensureLeaseExpiry(sessionId: string, at: Date): Promise<boolean> {
    if (await this.queue.getJob(`lease-${sessionId}`)) return false;
    await this.scheduleLeaseExpiry(sessionId, at);
    return true;
  }

  /** Whether the repeatable reconcile sweep is scheduled (it is gone when Redis lost its data). */
  async reconcileScheduled(): Promise<boolean> {
    return (await this.queue.getJobScheduler('reconcile-sweep')) !== undefined;
  }

  async reconcileNow(dryRun = false): Promise<Job> {
    return this.queue.add('reconcile', { dryRun, trigger: 'manual' } satisfies JobPayloads['reconcile'], {
      removeOnComplete: { count: 100 },
      removeOnFail: { count: 100 },
    });
  }

  /** Repeatable reconcile sweep (one schedule shared by every worker). */
  async scheduleReconcile(everySeconds: number): Promise<void> {
    await this.queue.upsertJobScheduler('reconcile-sweep', { every: everySeconds * 1000 }, {
      name: 'reconcile',
      data: { trigger: 'schedule' } satisfies JobPayloads['reconcile'],
      opts: { removeOnComplete: { count: 50 }, removeOnFail: { count: 50 } },
    });
  }

  async ping(): Promise<void> {
    await this.queue.getJobCounts('wait');
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.#events.close(), this.queue.close()]);
  }
}

export interface WorkerOptions extends QueueOptions {
  handlers: Partial<JobHandlers>;
  concurrency: number;
  log: Logger;
  onJob?: (name: string, outcome: 'completed' | 'failed' | 'retry', seconds: number) => void;
}

export function startJitWorker(opts: WorkerOptions): Worker {
  const missing = JOB_NAMES.filter((n) => typeof opts.handlers[n] !== 'function');
  if (missing.length > 0) throw new Error(`no handler for job name(s): ${missing.join(', ')}`);
  const handlers = opts.handlers as JobHandlers;
  const log = opts.log.child({ component: 'worker' });
  const worker = new Worker(
    opts.queueName ?? QUEUE_NAME,
    async (job: Job) => {
      const name = job.name as JobName;
      const handler = handlers[name] as ((d: unknown, j: Job) => Promise<unknown>) | undefined;
      if (!handler) throw new UnrecoverableError(`unknown job name ${job.name}`);
      const t0 = performance.now();
      try {
        const out = await handler(job.data, job);
        opts.onJob?.(name, 'completed', (performance.now() - t0) / 1000);
        return out;
      } catch (err) {
        const permanent = isJitgateError(err) && !err.transient;
        opts.onJob?.(name, permanent ? 'failed' : 'retry', (performance.now() - t0) / 1000);
        log.warn({ job: job.id, jobName: name, attempt: job.attemptsMade + 1, code: isJitgateError(err) ? err.code : undefined, err: isJitgateError(err) ? undefined : err }, 'job failed');
        if (permanent) {
          const u = new UnrecoverableError(`${err.code}: ${err.message}`);
          (u as UnrecoverableError & { jitCode?: string }).jitCode = err.code;
          throw u;
        }
        throw err;
      }
    },
    { connection: opts.connection, prefix: opts.prefix, concurrency: opts.concurrency, autorun: true },
  );
  worker.on('error', (err) => log.error({ err }, 'worker error'));
  return worker;
}
