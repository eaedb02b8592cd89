import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { AuditLog } from '../../core/audit.js';
import type { Database } from '../../core/db/database.js';
import { silentLogger, type Logger } from '../../core/logging.js';
import { SecretBox } from '../../core/secret-box.js';
import { AccessService } from '../../gateway/access-policy.js';
import { AccessRequestService, SessionModerationService, accessRequestRoutes, computerSessionEnder, moderationRoutes } from '../../gateway/access-requests/index.js';
import { apiRoutes } from '../../gateway/api/index.js';
import type { ApiDeps, StoreInfo } from '../../gateway/api/deps.js';
import { checkCsrfQuery, createAuth, type Auth } from '../../gateway/auth/index.js';
import type { LiveSessions } from '../../gateway/contracts.js';
import { createMetrics } from '../../gateway/metrics.js';
import { buildServer } from '../../gateway/server.js';
import type { SshGateway } from '../../gateway/ssh/ssh-gateway.js';
import { webStatic } from '../../gateway/web-static.js';
import { JitAccountService } from '../../provisioner/jit-account.service.js';
import type { JitQueue } from '../../provisioner/jobs.js';
import type { SshAccountStore } from '../../provisioner/stores/ssh.store.js';
import { createRecorder, type Recorder } from '../../recorder/session-recorder.js';
import { buildWeb } from '../../web/build.js';
import { DirRecordingFiles, MemoryLiveSessions } from '../fixtures/api-fixture.js';
import type { JitFixture } from '../fixtures/jit-fixture.js';
import { databaseFactories } from '../harness/databases.js';
import type { SshHostHandle } from '../harness/ssh-host.js';
import { startSshBackend } from '../fixtures/ssh-gateway-fixture.js';

/**
 * The web app on the real gateway pieces, wired in-process the way
 * app/main.ts wires them, for the Chromium tests: the built web app, the auth
 * plugin (sign-in, CSRF), the administration API and the access-request
 * and moderation routes (the navigation polls them for every signed-in person), plus what a
 * test adds. One rig instead of a copy per test file.
 */
type Plugin = (app: FastifyInstance) => Promise<void>;

export interface WebRigOptions {
  /** A database the caller opened (and closes); absent → a fresh PGlite the rig closes. */
  db?: Database;
  audit?: AuditLog;
  /** Account stores the API shows. */
  stores?: StoreInfo[];
  /** Overrides for the administration API's dependencies (live sessions, recordings, extend, ...). */
  api?: Partial<ApiDeps>;
  /** More API plugins, built once the identity and access parts exist. */
  apiPlugins?: (parts: WebRigParts) => Plugin[];
  /** The origin people use (passkeys need `localhost`); absent → `http://127.0.0.1:<port>`. */
  hostname?: 'localhost' | '127.0.0.1';
  /** Sign-in limits other than the defaults (e.g. fewer failed sign-ins before a lockout). */
  maxFailedSignIns?: number;
  /** Access requests' clock (tests move time forward). */
  now?: () => Date;
}

export interface WebRigParts {
  db: Database;
  audit: AuditLog;
  auth: Auth;
  access: AccessService;
  live: LiveSessions;
  log: Logger;
  /** Where the server will listen (known before the plugins are built). */
  base: string;
}

export interface WebRig extends WebRigParts {
  app: FastifyInstance;
  requests: AccessRequestService;
  /** The recordings the API serves unless `api.recordingFiles` replaces them (`files.put(id, bytes)`). */
  files: DirRecordingFiles;
  /** The first-run setup link (`/setup#…`). */
  setupPath(): Promise<string>;
  close(): Promise<void>;
}

export async function startWebRig(o: WebRigOptions = {}): Promise<WebRig> {
  const dist = mkdtempSync(join(tmpdir(), 'jg-web-dist-'));
  const files = new DirRecordingFiles();
  const built = buildWeb(dist);
  const ownDb = o.db === undefined;
  const db = o.db ?? (await databaseFactories().find((f) => f.label === 'pglite')!.open());
  const audit = o.audit ?? new AuditLog(db);
  const log = silentLogger();
  const host = o.hostname ?? '127.0.0.1';
  // The port first: passkeys' RP ID and origin come from the public URL the auth plugin is built with.
  const probe = await buildServer({ log, metrics: createMetrics(), version: 'e2e', readiness: [] });
  await probe.listen({ host: '127.0.0.1', port: 0 });
  const port = (probe.server.address() as { port: number }).port;
  await probe.close();
  const base = `http://${host}:${port}`;
  const auth = createAuth({
    db, box: new SecretBox(randomBytes(32)), audit, log, publicUrl: base,
    cfg: { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: o.maxFailedSignIns ?? 5, lockoutMinutes: 15, totpIssuer: 'jitgate-e2e', cookieSecure: 'auto' },
  });
  const access = new AccessService(db, audit);
  const live = o.api?.liveSessions ?? new MemoryLiveSessions();
  const parts: WebRigParts = { db, audit, auth, access, live, log, base };
  const requests = new AccessRequestService({
    db, audit, log, ...(o.now ? { now: o.now } : {}),
    secondFactor: { confirm: async (personId, proof, purpose) => (proof.code ? auth.identity.confirmSecondFactor(personId, proof.code, purpose) : null) },
    endSessions: computerSessionEnder(db, live),
  });
  const app = await buildServer({
    log, metrics: createMetrics(), version: 'e2e', readiness: [],
    rootPlugins: [auth.plugin, webStatic(await built)],
    apiPlugins: [
      apiRoutes({
        db, audit, access, liveSessions: live, recordingFiles: files, stores: o.stores ?? [],
        checkStore: async () => ({ ok: true }),
        revokeAuthSessions: auth.revokeAuthSessions, hashPassword: auth.hashPassword,
        extendSession: () => Promise.reject(new Error('this test runs no sessions')),
        ...o.api,
      }),
      accessRequestRoutes(requests),
      moderationRoutes(new SessionModerationService({ db, audit, log }), live),
      ...(o.apiPlugins?.(parts) ?? []),
    ],
  });
  await app.listen({ host: '127.0.0.1', port });
  return {
    ...parts, app, requests, files,
    setupPath: async () => (await auth.bootstrapPath())!,
    close: async () => {
      await app.close();
      if (ownDb) await db.close();
      rmSync(dist, { recursive: true, force: true });
      rmSync(files.dir, { recursive: true, force: true });
    },
  };
}

/** Poll `probe` every 200 ms until it gives a value; fail naming `what` after `ms`. */
export async function waitFor<T>(what: string, ms: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The SSH side for the browser terminal tests: a real sshd test host, its
 * account store, the JIT engine behind BullMQ on the test Redis, the real
 * recorder and the terminal websocket gateway. `web()` then serves the web app
 * over them.
 */
export interface SshWebRig {
  host: SshHostHandle;
  store: SshAccountStore;
  fx: JitFixture;
  db: Database;
  engine: JitAccountService;
  queue: JitQueue;
  gw: SshGateway;
  recorder: Recorder;
  /** Where the recorder writes its files. */
  recDir: string;
  /** The test Redis as BullMQ takes it. */
  connection: ConnectionOptions;
  web: WebRig;
  base: string;
  close(): Promise<void>;
}

export async function startSshWebRig(o: {
  redisSocket: string; prefix: string; store: string;
  /** Called after the recorder seals a recording (app/main.ts enqueues its search indexing there). */
  onSealed?: (recordingId: string) => Promise<void>;
  /** Where the gateway, worker and store log (a test searching the logs for a secret); absent → silent. */
  log?: Logger;
  /** Four-eyes sessions as app/main.ts wires them: the gateway gates sessions on computers that require a moderator, whose moderators may watch and terminate. */
  moderation?: boolean;
  /** More API plugins beside the terminal's (e.g. the remote desktop tunnel over the guacd test peer). */
  apiPlugins?: (parts: WebRigParts) => Plugin[];
}): Promise<SshWebRig> {
  const recDir = mkdtempSync(join(tmpdir(), 'jg-web-rec-'));
  const log = o.log ?? silentLogger();
  const backend = await startSshBackend({
    redisSocket: o.redisSocket, prefix: o.prefix, store: o.store, log, concurrency: 2,
    // The engine on the real clock, with its own secret key.
    engine: (f, store) => new JitAccountService({ repo: f.repo, audit: f.audit, box: new SecretBox(randomBytes(32)), stores: new Map([[o.store, store]]), log, installationId: f.installationId, leaseGraceMs: 1000 }),
  });
  const { host, store, fx, db, engine, queue, connection } = backend;
  const recorder = createRecorder({ db, audit: fx.audit, log, dir: recDir, signingKey: randomBytes(32), ...(o.onSealed ? { onSealed: o.onSealed } : {}) });
  const moderation = o.moderation ? new SessionModerationService({ db, audit: fx.audit, log }) : null;
  const gw = await backend.startGateway({
    access: new AccessService(db, fx.audit), recorder, checkCsrf: checkCsrfQuery,
    mayWatch: async (p, e) => p.role !== 'technician' || ((await moderation?.mayModerate(p, e.sessionId)) ?? false),
    ...(moderation ? { moderation, mayTerminate: (p, e) => moderation.mayModerate(p, e.sessionId) } : {}),
  });
  const web = await startWebRig({
    db, audit: fx.audit,
    stores: [{ name: o.store, type: 'ssh', url: `ssh://${host.address}:${host.port}`, organizations: null, groups: ['admins'], allowedContainers: null }],
    api: {
      liveSessions: gw.live, recordingFiles: recorder,
      extendSession: async (id, minutes, actor) => {
        const r = await engine.extendLease(id, minutes, actor);
        await queue.scheduleLeaseExpiry(id, r.leaseExpiresAt);
        return r;
      },
    },
    apiPlugins: (parts) => [...gw.apiPlugins, ...(o.apiPlugins?.(parts) ?? [])],
  });
  return {
    host, store, fx, db, engine, queue, gw, recorder, recDir, connection, web, base: web.base,
    close: async () => {
      await web.close();
      await backend.close();
      rmSync(recDir, { recursive: true, force: true });
    },
  };
}
