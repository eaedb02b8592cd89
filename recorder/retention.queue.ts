import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import type { Logger } from '../core/logging.js';
import type { RetentionResult } from './retention.js';

/**
 * The retention sweep as a BullMQ repeatable job (one schedule shared by
 * every worker, as the reconciler's sweep in provisioner/jobs.ts): a queue of
 * its own, so indexing or provisioning jobs never wait behind it.
 */
export const RETENTION_QUEUE = 'retention';
export const RETENTION_SCHEDULER = 'retention-sweep';

export interface RetentionQueueOptions {
  connection: ConnectionOptions;
  prefix: string;
  log: Logger;
  everySeconds: number;
  sweep: () => Promise<RetentionResult>;
  queueName?: string;
}

export interface RetentionWorker {
  /** Queue a sweep now (tests, an operator). */
  runNow(): Promise<void>;
  close(): Promise<void>;
}

export async function startRetention(o: RetentionQueueOptions): Promise<RetentionWorker> {
  const name = o.queueName ?? RETENTION_QUEUE;
  const log = o.log.child({ component: 'retention' });
  const queue = new Queue(name, { connection: o.connection, prefix: o.prefix });
  queue.on('error', () => undefined);
  await queue.upsertJobScheduler(RETENTION_SCHEDULER, { every: o.everySeconds * 1000 }, {
    name: 'sweep', data: {}, opts: { removeOnComplete: { count: 50 }, removeOnFail: { count: 50 } },
  });
  const worker = new Worker(
    name,
    async (job) => {
      if (job.name !== 'sweep') throw new Error(`unknown retention job ${job.name}`);
      const r = await o.sweep();
      // per-recording failures are reported, not retried at once: the next sweep takes them again
      if (r.failures.length) log.warn({ failures: r.failures }, 'retention could not delete some recordings');
      return r;
    },
    { connection: o.connection, prefix: o.prefix, concurrency: 1 },
  );
  worker.on('error', (err) => log.error({ err }, 'retention worker error'));
  return {
    runNow: async () => void (await queue.add('sweep', {}, { removeOnComplete: { count: 50 }, removeOnFail: { count: 50 } })),
    close: async () => {
      await Promise.race([worker.close(), new Promise((r) => setTimeout(r, 10_000))]);
      await queue.close();
    },
  };
}
