import { Queue, Worker, UnrecoverableError, type ConnectionOptions, type Job } from 'bullmq';
import { isJitgateError } from '../core/errors.js';
import type { Logger } from '../core/logging.js';

/**
 * The search-index queue: one job per sealed recording (docs/api.md
 * "Search"). Its own queue, so a slow indexing backlog never delays
 * provisioning or teardown on the JIT queue. Job id = recording id: sealing
 * twice (close, then recovery) is one job; `reindex` replaces a finished one.
 * The processor is thin: it calls the indexer (recorder/search-index.ts).
 */
export const SEARCH_QUEUE_NAME = 'search-index';

export interface SearchIndexPayload {
  recordingId: string;
}

export class SearchIndexQueue {
  readonly queue: Queue;

  constructor(opts: { connection: ConnectionOptions; prefix: string; queueName?: string }) {
    this.queue = new Queue(opts.queueName ?? SEARCH_QUEUE_NAME, { connection: opts.connection, prefix: opts.prefix });
    this.queue.on('error', () => undefined);
  }

  /** Index a sealed recording (idempotent: the same recording is one job while it waits). */
  async enqueue(recordingId: string): Promise<Job> {
    return this.queue.add('index', { recordingId } satisfies SearchIndexPayload, {
      jobId: `index-${recordingId}`,
      // a file still being flushed by another gateway, a database hiccup: retried with backoff
      attempts: 8,
      backoff: { type: 'exponential', delay: 2000 },
      removeOnComplete: true,
      removeOnFail: { age: 7 * 86_400 },
    });
  }

  /** Index again (after an extractor change): replaces a finished or failed job of the same recording. */
  async reindex(recordingId: string): Promise<Job> {
    const old = await this.queue.getJob(`index-${recordingId}`);
    if (old && !(await old.isActive())) await old.remove().catch(() => undefined);
    return this.enqueue(recordingId);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/**
 * The search-index worker. Run it where the recordings are readable (the
 * gateway, or a worker sharing `recordings.dir`); a file another gateway
 * wrote is retried (`JIT_ERR_SEARCH_FILE_ELSEWHERE` is transient).
 */
export function startSearchIndexWorker(opts: {
  connection: ConnectionOptions;
  prefix: string;
  queueName?: string;
  concurrency?: number;
  log: Logger;
  index: (recordingId: string) => Promise<unknown>;
}): Worker {
  const log = opts.log.child({ component: 'search-index-worker' });
  const worker = new Worker(
    opts.queueName ?? SEARCH_QUEUE_NAME,
    async (job: Job<SearchIndexPayload>) => {
      try {
        return await opts.index(job.data.recordingId);
      } catch (err) {
        log.warn({ job: job.id, attempt: job.attemptsMade + 1, code: isJitgateError(err) ? err.code : undefined, err: isJitgateError(err) ? undefined : err }, 'search indexing failed');
        if (isJitgateError(err) && !err.transient) throw new UnrecoverableError(`${err.code}: ${err.message}`);
        throw err;
      }
    },
    // Indexing is background work: one at a time by default, so it never competes with live sessions for CPU.
    { connection: opts.connection, prefix: opts.prefix, concurrency: opts.concurrency ?? 1, autorun: true },
  );
  worker.on('error', (err) => log.error({ err }, 'search index worker error'));
  return worker;
}
