/**
 * Wiring for the SSH side of a gateway process: the live-session registry,
 * the session broker and the two websocket route plugins. main.ts calls
 * `startSshGateway` once and registers `apiPlugins` with buildServer.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RedisOptions } from 'ioredis';
import type { AuditEventInput } from '../../core/audit.js';
import type { Logger } from '../../core/logging.js';
import type { JitAccountService } from '../../provisioner/jit-account.service.js';
import type { JitQueue, QueueOptions } from '../../provisioner/jobs.js';
import type { SessionRecorder } from '../../recorder/recorder.js';
import type { Principal } from '../auth/principal.js';
import type { AccessChecker, SessionModeration } from '../contracts.js';
import { RedisLiveSessions, type LiveEntry } from '../sessions/live-sessions.js';
import { JitSessionBroker } from '../sessions/session-broker.js';
import { terminalRoutes, watchRoutes, type TerminalDeps } from './terminal.route.js';

export interface SshGatewayOptions {
  /** Redis for the live-session registry (same Redis as the queue). */
  redis: RedisOptions;
  /** BullMQ connection/prefix/queue name of the JIT queue (for progress and completion events). */
  queueEvents: QueueOptions;
  queue: JitQueue;
  engine: Pick<JitAccountService, 'requestSession' | 'sessionLogin' | 'releaseCredentials' | 'leaseEnd'>;
  access: AccessChecker;
  recorder: SessionRecorder;
  audit: { record(e: AuditEventInput): Promise<unknown> };
  checkCsrf: (req: FastifyRequest) => boolean;
  /** Step-up check for the browser terminal (gateway/auth/step-up.ts). */
  stepUp?: TerminalDeps['stepUp'];
  mayWatch: (principal: Principal, session: LiveEntry) => boolean | Promise<boolean>;
  /** Who may end a session from its watch (its moderators, admins). */
  mayTerminate?: (principal: Principal, session: LiveEntry) => boolean | Promise<boolean>;
  /** Four-eyes sessions (gateway/access-requests/moderation.ts). */
  moderation?: SessionModeration;
  /** Key/channel prefix of the live-session registry; default `jitgate:live`. */
  livePrefix?: string;
  gatewayId?: string;
  /** Live-session heartbeat period; an entry is dead after 4 missed beats. Default 5000 ms. */
  liveHeartbeatMs?: number;
  provisionTimeoutMs?: number;
  log: Logger;
}

export interface SshGateway {
  broker: JitSessionBroker;
  live: RedisLiveSessions;
  /** `terminalRoutes` and `watchRoutes`, for buildServer's `apiPlugins`. */
  apiPlugins: ((app: FastifyInstance) => Promise<void>)[];
  close(): Promise<void>;
}

export async function startSshGateway(o: SshGatewayOptions): Promise<SshGateway> {
  const live = new RedisLiveSessions({ redis: o.redis, prefix: o.livePrefix ?? 'jitgate:live', log: o.log,
    ...(o.gatewayId ? { gatewayId: o.gatewayId } : {}),
    ...(o.liveHeartbeatMs ? { heartbeatMs: o.liveHeartbeatMs } : {}),
  });
  await live.start();
  const broker = new JitSessionBroker({
    access: o.access, engine: o.engine, queue: o.queue, queueEvents: o.queueEvents, live, audit: o.audit, log: o.log,
    ...(o.provisionTimeoutMs ? { provisionTimeoutMs: o.provisionTimeoutMs } : {}),
    ...(o.moderation ? { moderation: o.moderation } : {}),
  });
  await broker.ready();
  return {
    broker,
    live,
    apiPlugins: [
      terminalRoutes({ broker, recorder: o.recorder, audit: o.audit, checkCsrf: o.checkCsrf, log: o.log, ...(o.stepUp ? { stepUp: o.stepUp } : {}) }),
      watchRoutes({ live, checkCsrf: o.checkCsrf, mayWatch: o.mayWatch, audit: o.audit, log: o.log, ...(o.mayTerminate ? { mayTerminate: o.mayTerminate } : {}) }),
    ],
    async close() {
      await broker.close();
      await live.close();
    },
  };
}
