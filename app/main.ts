import { mkdirSync, existsSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Worker, ConnectionOptions } from 'bullmq';
import type { Config } from '../config/load.js';
import type { Database } from '../core/db/database.js';
import type { Logger } from '../core/logging.js';
import { EmbeddedRedis, pingRedis, redisOptions, type RedisTarget } from '../core/redis.js';
import { buildServer } from '../gateway/server.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildJobHandlers } from '../provisioner/job-handlers.js';
import { JitQueue, startJitWorker } from '../provisioner/jobs.js';
import { restoreSchedules } from '../provisioner/schedule-restore.js';
import { openCore, type Core } from './core.js';
import { VERSION } from './version.js';
import { createAuth, checkCsrfQuery, stepUpCheck, type Auth } from '../gateway/auth/index.js';
import { AccessService, canConnect, canSeeSession, canTerminateSession } from '../gateway/access-policy.js';
import { apiRoutes, storeInfos } from '../gateway/api/index.js';
import { startSshGateway, type SshGateway } from '../gateway/ssh/ssh-gateway.js';
import { startFrontDoor, type FrontDoorHandle } from '../gateway/ssh/front-door.js';
import { rdpRoutes } from '../gateway/rdp/rdp-tunnel.js';
import { rdpWatchRoutes } from '../gateway/rdp/rdp-watch.js';
import { GuacdCapabilities } from '../gateway/rdp/guacd-capabilities.js';
import { liveSessionEnder } from '../gateway/sessions/end-live-sessions.js';
import { RedisGatewayLiveness } from '../gateway/sessions/gateway-liveness.js';
import { webStatic } from '../gateway/web-static.js';
import { forwardAudit, type AuditForwarder } from '../core/audit-forward.js';
import { SearchIndexer } from '../recorder/search-index.js';
import { SearchIndexQueue, startSearchIndexWorker } from '../provisioner/search-index.jobs.js';
import { evidenceDepsFromConfig, recorderFromConfig, recordingsDir } from '../recorder/wiring.js';
import { FsRecordingStore } from '../recorder/fs-recording.store.js';
import { runRetention } from '../recorder/retention.js';
import { startRetention, type RetentionWorker } from '../recorder/retention.queue.js';
import { evidenceSource } from '../recorder/evidence-export.js';
import type { Principal } from '../gateway/auth/principal.js';
import { AccessRequestService, ChannelNotifier, SessionModerationService, accessRequestRoutes, computerSessionEnder, moderationRoutes, smtpSender } from '../gateway/access-requests/index.js';

export { VERSION } from './version.js';
export { openCore, buildStores, secretBoxFor, type Core } from './core.js';

/**
 * The one place where real adapters are wired together: database, Redis,
 * account stores (app/core.ts), the JIT engine, the job worker and the HTTP server.
 */

export interface Runtime {
  core: Core;
  app?: FastifyInstance;
  url?: string;
  /** `<url>/setup#<token>` while no global admin exists (first run). */
  setupUrl?: string | null;
  frontDoor?: FrontDoorHandle;
  queue: JitQueue;
  redis: RedisTarget;
  close(): Promise<void>;
}

export async function startRuntime(cfg: Config, log: Logger): Promise<Runtime> {
  mkdirSync(cfg.dataDir, { recursive: true });
  let embedded: EmbeddedRedis | undefined;
  let redis: RedisTarget;
  if (cfg.redis.url) {
    redis = { url: cfg.redis.url.reveal() };
    await pingRedis(redis);
  } else {
    embedded = new EmbeddedRedis(cfg.dataDir, cfg.redis.binary, log);
    redis = await embedded.start();
  }
  let core: Core | undefined;
  let queue: JitQueue | undefined;
  let worker: Worker | undefined;
  let app: FastifyInstance | undefined;
  let ssh: SshGateway | undefined;
  let frontDoor: FrontDoorHandle | undefined;
  let forwarder: AuditForwarder | undefined;
  let recoverTimer: NodeJS.Timeout | undefined;
  let reapTimer: NodeJS.Timeout | undefined;
  let liveness: RedisGatewayLiveness | undefined;
  let requestSweepTimer: NodeJS.Timeout | undefined;
  let search: GatewayParts['search'] | undefined;
  let retention: RetentionWorker | undefined;
  const close = async () => {
    clearInterval(recoverTimer);
    clearInterval(requestSweepTimer);
    clearInterval(reapTimer);
    await frontDoor?.close().catch(() => undefined);
    await app?.close().catch(() => undefined);
    await ssh?.close().catch(() => undefined);
    await retention?.close().catch(() => undefined);
    if (worker) {
      // bounded: a stuck job must not hold the shutdown forever
      await Promise.race([worker.close(), new Promise((r) => setTimeout(r, 10_000))]);
    }
    await search?.close();
    await queue?.close();
    // the last checkpoint before forwarding stops, so the forwarded copy has it too
    await core?.checkpoints.close().catch(() => undefined);
    await forwarder?.close().catch(() => undefined);
    await core?.close().catch(() => undefined);
    await liveness?.close();
    await embedded?.stop();
  };
  try {
    // Sessions whose gateway died are ended by the reconciler as soon as that gateway's alive key expires.
    liveness = new RedisGatewayLiveness(redisOptions(redis), `${cfg.redis.prefix}:live`);
    core = await openCore(cfg, log, { holders: liveness });
    // Anchor the audit chain's head now (after an upgrade: the last unkeyed event), then by count and time.
    core.checkpoints.start();
    void core.checkpoints.checkpoint().catch((err: unknown) => log.error({ err }, 'audit checkpoint failed'));
    const connection = redisOptions(redis, { maxRetriesPerRequest: null }) as ConnectionOptions;
    queue = new JitQueue({ connection, prefix: cfg.redis.prefix, teardownAttempts: cfg.jit.teardownAttempts });
    await queue.ready();
    const metrics = createMetrics();
    if (cfg.role !== 'gateway') {
      const c = core;
      worker = startJitWorker({
        connection, prefix: cfg.redis.prefix, concurrency: cfg.jit.provisionConcurrency, log,
        handlers: buildJobHandlers(c.engine, queue, async (id) => (await c.repo.getSession(id))?.leaseExpiresAt ?? null),
        onJob: (name, outcome, seconds) => {
          metrics.jobs.inc({ name, outcome });
          metrics.jobDuration.observe({ name }, seconds);
        },
      });
      // Recordings past their organization's retention, hourly (never those under legal hold; docs/evidence.md).
      const store = new FsRecordingStore(recordingsDir(cfg));
      retention = await startRetention({
        connection, prefix: cfg.redis.prefix, log, everySeconds: 3600,
        sweep: () => runRetention({ db: c.db, store, audit: c.audit, log }),
      });
      // Timers live in Redis, leases in the database: rebuild the sweep and the lease-expiry jobs from it.
      const q = queue;
      const restore = async (why: string) => {
        const r = await restoreSchedules(c.repo, q, cfg.jit.reconcileIntervalSeconds);
        if (why !== 'start' || r.leaseJobsAdded > 0) log.warn({ why, leaseJobsAdded: r.leaseJobsAdded }, 'restored job schedules from the database');
      };
      await restore('start');
      await queue.reconcileNow(false);
      // Between full sweeps: end sessions whose gateway is gone or whose provisioning timed out (no store listing),
      // and notice a Redis that came back without its data (the sweep's schedule is gone).
      let reaping = false;
      reapTimer = setInterval(() => {
        if (reaping) return;
        reaping = true;
        void (async () => {
          if (!(await q.reconcileScheduled())) await restore('redis lost its data');
          await c.engine.reapSessions();
        })().catch((err: unknown) => log.error({ err }, 'ending orphaned sessions failed')).finally(() => (reaping = false));
      }, cfg.jit.orphanCheckSeconds * 1000);
      reapTimer.unref();
    }
    if (cfg.role !== 'worker') {
      const q = queue;
      const c = core;
      const fwd = forwardAudit(c.audit, cfg.audit.forward);
      forwarder = fwd;
      c.checkpoints.onCheckpoint((cp) => fwd.checkpoint(cp));
      const gw = await buildGateway(cfg, c, q, connection, redis);
      ssh = gw.ssh;
      search = gw.search;
      // Access-request windows expire and sessions are linked to the window they ran in (safe on every gateway at once).
      requestSweepTimer = setInterval(() => void gw.requests.sweep().catch((err: unknown) => log.error({ err }, 'access request sweep failed')), cfg.accessRequests.sweepSeconds * 1000);
      requestSweepTimer.unref();
      // Recordings whose writer died with a gateway (this one before a restart, or one sharing the directory).
      const recover = () =>
        void gw.recorder
          .recoverInterrupted({ graceMs: cfg.jit.leaseGraceSeconds * 1000 })
          .then((r) => r.sealed > 0 && log.warn({ sealed: r.sealed }, 'sealed interrupted recordings'))
          .catch((err: unknown) => log.error({ err }, 'sealing interrupted recordings failed'));
      recover();
      recoverTimer = setInterval(recover, cfg.jit.reconcileIntervalSeconds * 1000);
      recoverTimer.unref();
      app = await buildServer({
        log, metrics, version: VERSION, trustProxy: cfg.server.trustProxy,
        ...(cfg.server.metricsToken ? { metricsToken: cfg.server.metricsToken } : {}),
        readiness: [
          { name: 'database', check: () => c.db.ping() },
          { name: 'redis', check: () => q.ping() },
        ],
        rootPlugins: gw.rootPlugins,
        apiPlugins: gw.apiPlugins,
      });
      const address = await app.listen({ host: cfg.server.host, port: cfg.server.port });
      log.info({ url: address, role: cfg.role, database: core.db.kind, redis: embedded ? 'embedded' : 'external' }, 'jitgate gateway listening');
      if (cfg.sshFrontDoor.enabled) {
        frontDoor = await startFrontDoor({
          host: cfg.sshFrontDoor.host, port: cfg.sshFrontDoor.port, dataDir: cfg.dataDir,
          ...(cfg.sshFrontDoor.hostKeyFile ? { hostKeyFile: cfg.sshFrontDoor.hostKeyFile } : {}),
          identity: gw.auth.frontDoor, broker: gw.ssh.broker, recorder: gw.recorder,
          listComputers: (p) => connectableComputers(c, gw.access, p),
          audit: c.audit, log,
        });
      }
      const base = (cfg.server.publicUrl ?? address).replace(/\/$/, '');
      const setupPath = await gw.auth.bootstrapPath();
      const setupUrl = setupPath ? `${base}${setupPath}` : null;
      // The one-time link is the only way in on first run: it is a credential, so it goes to the operator's
      // terminal only (the CLI prints runtime.setupUrl), never through the log pipeline and its collectors.
      if (setupUrl) log.info('first run: no administrator yet; the one-time setup link is printed on the terminal');
      return { core, app, url: address, setupUrl, ...(frontDoor ? { frontDoor } : {}), queue, redis, close };
    }
    log.info({ role: cfg.role }, 'jitgate worker running');
    return { core, queue, redis, close };
  } catch (err) {
    await close();
    throw err;
  }
}


/** Where the built web app is (web/dist next to the sources or the package). */
export function webDistDir(): string {
  for (const rel of ['../web/dist', '../../web/dist']) {
    const u = new URL(rel, import.meta.url);
    if (existsSync(new URL('./index.html', u.href + '/'))) return u.pathname;
  }
  return new URL('../web/dist', import.meta.url).pathname;
}

interface GatewayParts {
  auth: Auth;
  access: AccessService;
  ssh: SshGateway;
  recorder: ReturnType<typeof recorderFromConfig>;
  requests: AccessRequestService;
  /** Search indexing of sealed recordings (its queue and worker), closed with the runtime. */
  search: { queue: SearchIndexQueue; close(): Promise<void> };
  rootPlugins: ((app: FastifyInstance) => Promise<void>)[];
  apiPlugins: ((app: FastifyInstance) => Promise<void>)[];
}

/** The HTTP/websocket side of a gateway: identity, administration API, SSH and RDP sessions, recordings, the web app. */
async function buildGateway(cfg: Config, c: Core, queue: JitQueue, connection: ConnectionOptions, redis: RedisTarget): Promise<GatewayParts> {
  const { db, audit, log, engine } = c;
  const access = new AccessService(db, audit);
  // Sealed recordings are indexed for search by a job, off the live path; the worker runs here, where the files are.
  const searchQueue = new SearchIndexQueue({ connection, prefix: cfg.redis.prefix });
  const recorder = recorderFromConfig(cfg, { db, audit, log, onSealed: async (id) => void (await searchQueue.enqueue(id)) });
  const indexer = new SearchIndexer({ db, store: recorder.store, log });
  const searchWorker = startSearchIndexWorker({ connection, prefix: cfg.redis.prefix, log, index: (id) => indexer.index(id) });
  const search = {
    queue: searchQueue,
    close: async () => {
      await Promise.race([searchWorker.close(), new Promise((r) => setTimeout(r, 10_000))]);
      await searchQueue.close();
    },
  };
  // Where approvers and moderators are told (email, webhooks): access requests and four-eyes sessions waiting for a moderator.
  const smtp = cfg.notifications.smtp;
  const notifier = new ChannelNotifier({
    log,
    mail: smtp ? smtpSender({ host: smtp.host, port: smtp.port, tls: smtp.tls, user: smtp.user, password: smtp.password?.reveal(), from: smtp.from }) : undefined,
    webhooks: cfg.notifications.webhooks.map((w) => ({ name: w.name, url: w.url, format: w.format, secret: w.secret.reveal(), organizations: w.organizations })),
  });
  // Four-eyes sessions (docs/access-requests.md): moderators are the computer's approvers, checked when they join.
  const moderation = new SessionModerationService({ db, audit, log, notifier, publicUrl: cfg.server.publicUrl });
  // Who may watch a live session (SSH or RDP): admins and auditors who can see it, and its moderators.
  const mayWatch = async (p: Principal, live: { sessionId: string }): Promise<boolean> =>
    (p.role !== 'technician' && canSeeSession(p, await sessionRef(db, live.sessionId))) || moderation.mayModerate(p, live.sessionId);
  // Ending it from the watch: its moderators, and whoever may terminate it from the live list.
  const mayTerminate = async (p: Principal, live: { sessionId: string }): Promise<boolean> =>
    canTerminateSession(p, await sessionRef(db, live.sessionId)) || moderation.mayModerate(p, live.sessionId);
  const ssh = await startSshGateway({
    redis: redisOptions(redis), queueEvents: { connection, prefix: cfg.redis.prefix }, queue, engine, access, recorder, audit,
    checkCsrf: checkCsrfQuery,
    stepUp: stepUpCheck(db),
    mayWatch,
    mayTerminate,
    moderation,
    livePrefix: `${cfg.redis.prefix}:live`,
    log,
  });
  // Signing out, revoking a sign-in or changing a password ends the live sessions it opened, on every gateway.
  const auth = createAuth({
    db, box: c.box, audit, log, cfg: cfg.auth, trustProxy: cfg.server.trustProxy, endLiveSessions: liveSessionEnder(ssh.live),
    identityProviders: cfg.identityProviders, publicUrl: cfg.server.publicUrl,
  });
  // One cached view of guacd's RDP parameters: the tunnel checks it before provisioning, the API before accepting a pinned certificate.
  const guacd = new GuacdCapabilities({ host: cfg.guacd.host, port: cfg.guacd.port });
  const api = apiRoutes({
    db, audit, access, guacd,
    stores: storeInfos(cfg.accountStores),
    checkStore: async (name) => (await engine.checkStores()).find((s) => s.store === name) ?? { ok: false, error: 'no such account store' },
    findExistingAccount: async (name, account) => {
      const store = c.stores.get(name);
      if (!store) throw new Error(`no account store ${name}`);
      return store.findExisting(account);
    },
    liveSessions: ssh.live,
    endSession: async (id, reason) => void (await queue.teardown(id, reason)),
    recordingFiles: recorder,
    evidence: evidenceSource(evidenceDepsFromConfig(cfg, db)),
    revokeAuthSessions: auth.revokeAuthSessions,
    hashPassword: auth.hashPassword,
    extendSession: async (id, minutes, actor) => {
      const r = await engine.extendLease(id, minutes, actor);
      await queue.scheduleLeaseExpiry(id, r.leaseExpiresAt);
      return r;
    },
  });
  // Access requests with approval (docs/access-requests.md): approvers confirm with a fresh second factor; revoking ends live sessions.
  const requests = new AccessRequestService({
    db, audit, log, publicUrl: cfg.server.publicUrl, pendingMinutes: cfg.accessRequests.pendingMinutes,
    secondFactor: { confirm: async (personId, proof, purpose) => (proof.code ? auth.identity.confirmSecondFactor(personId, proof.code, purpose) : null) },
    endSessions: computerSessionEnder(db, ssh.live),
    notifier,
  });
  const rdp = rdpRoutes({ log, broker: ssh.broker, recorder, audit, checkCsrf: checkCsrfQuery, stepUp: stepUpCheck(db), guacd: guacd.address, capabilities: guacd });
  const rdpWatch = rdpWatchRoutes({ log, live: ssh.live, checkCsrf: checkCsrfQuery, mayWatch, mayTerminate, audit, guacd: guacd.address });
  return {
    auth, access, ssh, recorder, requests, search,
    rootPlugins: [auth.plugin, webStatic(webDistDir())],
    apiPlugins: [api, ...ssh.apiPlugins, rdp, rdpWatch, accessRequestRoutes(requests), moderationRoutes(moderation, ssh.live)],
  };
}

async function sessionRef(db: Database, sessionId: string): Promise<{ personId: string | null; organizationId: string | null }> {
  const rows = await db.query<{ person_id: string | null; organization_id: string | null }>('SELECT person_id, organization_id FROM sessions WHERE id = $1', [sessionId]);
  return { personId: rows[0]?.person_id ?? null, organizationId: rows[0]?.organization_id ?? null };
}

/** The SSH front door's menu: computers accepting SSH that the person may connect to. */
async function connectableComputers(c: Core, access: AccessService, p: Principal): Promise<{ name: string }[]> {
  const rows = await c.repo.listComputers();
  const out: { name: string }[] = [];
  for (const comp of rows) {
    if (!comp.protocols.includes('ssh')) continue;
    const granted = comp.restricted ? await access.hasGrant(comp.id, p.personId) : false;
    if (canConnect(p, comp, granted)) out.push({ name: comp.name });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
