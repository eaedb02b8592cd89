/**
 * Opens SSH/RDP sessions for the gateway: access check → session row →
 * `provision` job on the JIT queue (progress relayed from the worker through
 * BullMQ QueueEvents) → credentials → an OpenedSession that is announced in
 * the live-session registry.
 *
 * Ending is always a `teardown` job (job id `teardown-<session>`, so ending
 * twice is one job) — enqueued by `end()`, which every proxy calls from its
 * close handler whatever the cause (client gone, host gone, terminate, lease).
 * If the gateway dies before that, the session's holder (`gateway:<id>`)
 * stops being alive and the reconciler ends it within seconds; the
 * lease-expiry job is the backstop.
 *
 * Lease expiry on the gateway side: each opened session arms a timer for its
 * lease end and also listens for the completion of its `lease-<id>` and
 * `teardown-<id>` jobs (a CLI check-in, or the worker acting first); either
 * fires `onTerminate`, so the proxy closes the connection when the account
 * is being removed.
 */
import { gatewayHolder } from '../../provisioner/holder-liveness.js';
import { QueueEvents } from 'bullmq';
import type { AuditEventInput } from '../../core/audit.js';
import type { Computer, SessionRecord } from '../../core/domain.js';
import { JitgateError, isJitgateError } from '../../core/errors.js';
import type { Logger } from '../../core/logging.js';
import type { JitAccountService, SessionLogin } from '../../provisioner/jit-account.service.js';
import type { ProvisionProgress } from '../../provisioner/job-handlers.js';
import { JitErrors } from '../../provisioner/jit-errors.js';
import { QUEUE_NAME, type JitQueue, type QueueOptions } from '../../provisioner/jobs.js';
import type { AccessChecker, OpenSessionRequest, OpenedSession, ProgressFn, SessionBroker, SessionGate, SessionModeration } from '../contracts.js';
import { SshGatewayErrors } from '../ssh/errors.js';
import { SessionErrors } from './errors.js';
import type { LiveRegistration, LiveTap, RedisLiveSessions, TerminateReason, WatchersChange } from './live-sessions.js';

export interface SessionBrokerDeps {
  access: AccessChecker;
  engine: Pick<JitAccountService, 'requestSession' | 'sessionLogin' | 'releaseCredentials' | 'leaseEnd'>;
  queue: JitQueue;
  /** Same connection/prefix/queue name as `queue`: the broker listens to job progress and completion. */
  queueEvents: QueueOptions;
  live: RedisLiveSessions;
  audit: { record(e: AuditEventInput): Promise<unknown> };
  log: Logger;
  /** How long to wait for the provision job; default 120 s. */
  provisionTimeoutMs?: number;
  /** Four-eyes sessions (gateway/access-requests/moderation.ts): a gate for sessions on computers that require a moderator. */
  moderation?: SessionModeration;
}

/** An OpenedSession from this broker: also a tap feeding live watchers. */
export interface BrokeredSession extends OpenedSession {
  readonly tap: LiveTap;
  /** Called whenever somebody starts or stops watching this session live (the person is told). */
  onWatchers(cb: (change: WatchersChange) => void): void;
}

const JIT_CODE = /^(JIT_ERR_[A-Z0-9_]+): ([^\n]*)$/;

class Opened implements BrokeredSession {
  readonly #terminateCbs: ((reason: TerminateReason, by: string) => void)[] = [];
  readonly #watcherCbs: ((change: WatchersChange) => void)[] = [];
  #pendingTerminate: { reason: TerminateReason; by: string } | null = null;
  #ended: Promise<void> | null = null;
  #leaseTimer: NodeJS.Timeout | null = null;
  registration: LiveRegistration | null = null;
  moderation: SessionGate | null = null;

  constructor(
    readonly session: SessionRecord,
    readonly computer: Computer,
    readonly credentials: SessionLogin,
    readonly tap: LiveTap,
    private readonly broker: JitSessionBroker,
  ) {
    this.#armLease(session.leaseExpiresAt);
  }

  #armLease(at: Date): void {
    if (this.#leaseTimer) clearTimeout(this.#leaseTimer);
    const ms = at.getTime() - Date.now();
    // setTimeout overflows past ~24.8 days; leases are far shorter, but clamp anyway.
    this.#leaseTimer = setTimeout(() => void this.#leaseDue(), Math.max(0, Math.min(ms, 2_000_000_000)));
    this.#leaseTimer.unref();
  }

  /** At the lease end as known at open: close, unless the session was extended meanwhile (then wait for the new end). */
  async #leaseDue(): Promise<void> {
    if (this.#ended || this.#pendingTerminate) return;
    const end = await this.currentLeaseEnd().catch(() => null);
    if (end && end.getTime() > Date.now() + 1000) return this.#armLease(end);
    this.fireTerminate('lease-expired', 'system:lease');
  }

  async currentLeaseEnd(): Promise<Date> {
    return (await this.broker.deps.engine.leaseEnd(this.session.id)) ?? this.session.leaseExpiresAt;
  }

  onTerminate(cb: (reason: TerminateReason, by: string) => void): void {
    this.#terminateCbs.push(cb);
    if (this.#pendingTerminate) cb(this.#pendingTerminate.reason, this.#pendingTerminate.by);
  }

  onWatchers(cb: (change: WatchersChange) => void): void {
    this.#watcherCbs.push(cb);
  }

  fireWatchers(change: WatchersChange): void {
    this.moderation?.watchers(change);
    for (const cb of this.#watcherCbs) {
      try {
        cb(change);
      } catch {
        // a callback's failure must not stop the others
      }
    }
  }

  fireTerminate(reason: TerminateReason, by: string): void {
    if (this.#pendingTerminate || this.#ended) return;
    this.#pendingTerminate = { reason, by };
    for (const cb of this.#terminateCbs) {
      try {
        cb(reason, by);
      } catch {
        // a callback's failure must not stop the others
      }
    }
  }

  async loggedIn(): Promise<void> {
    await this.broker.deps.engine.releaseCredentials(this.session.id);
  }

  /** The access-request window the session runs in (break-glass flagged) and, for a four-eyes session, the moderation so far. */
  async recordingMetadata(): Promise<Record<string, unknown>> {
    const window = this.session.personId ? await this.broker.deps.moderation?.windowMetadata({ computerId: this.computer.id, personId: this.session.personId }) : undefined;
    return { ...window, ...(this.moderation ? { moderated: true, moderation: [...this.moderation.log()] } : {}) };
  }

  async setGuacdConnection(id: string): Promise<void> {
    await this.registration?.setGuacdConnection(id);
  }

  end(reason: string): Promise<void> {
    this.#ended ??= (async () => {
      if (this.#leaseTimer) clearTimeout(this.#leaseTimer);
      this.moderation?.close();
      this.broker.forget(this.session.id);
      await this.registration?.unregister();
      await this.broker.enqueueTeardown(this.session.id, reason);
    })();
    return this.#ended;
  }
}

export class JitSessionBroker implements SessionBroker {
  readonly #events: QueueEvents;
  readonly #log: Logger;
  readonly #open = new Map<string, Opened>();
  /** Per provision job: where its steps go, and how far that has got (attempt, last seq shown). */
  readonly #progress = new Map<string, StepRelay>();

  constructor(readonly deps: SessionBrokerDeps) {
    this.#log = deps.log.child({ component: 'session-broker' });
    const q = deps.queueEvents;
    this.#events = new QueueEvents(q.queueName ?? QUEUE_NAME, { connection: q.connection, prefix: q.prefix });
    this.#events.on('error', (err) => this.#log.warn({ err }, 'queue events error'));
    this.#events.on('progress', ({ jobId, data }) => {
      const relay = this.#progress.get(jobId);
      if (relay && typeof data === 'object' && data !== null) relay.offer(data as Partial<ProvisionProgress>);
    });
    this.#events.on('completed', ({ jobId, returnvalue }) => {
      if (jobId.startsWith('lease-')) {
        const expired = typeof returnvalue === 'object' && returnvalue !== null && (returnvalue as { expired?: unknown }).expired === true;
        if (expired) this.#open.get(jobId.slice('lease-'.length))?.fireTerminate('lease-expired', 'system:lease');
      } else if (jobId.startsWith('teardown-')) {
        // Torn down from elsewhere (check-in, admin with no gateway reachable): close the connection too.
        this.#open.get(jobId.slice('teardown-'.length))?.fireTerminate('terminated', 'system:teardown');
      }
    });
  }

  async ready(): Promise<void> {
    await this.#events.waitUntilReady();
  }

  async close(): Promise<void> {
    await this.#events.close();
  }

  /** Sessions opened through this broker and not yet ended. */
  get openCount(): number {
    return this.#open.size;
  }

  forget(sessionId: string): void {
    this.#open.delete(sessionId);
  }

  /** Enqueue teardown, retrying while Redis is briefly unavailable; the lease-expiry job is the backstop. */
  async enqueueTeardown(sessionId: string, reason: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.deps.queue.teardown(sessionId, reason);
        return;
      } catch (err) {
        if (attempt >= 5) {
          this.#log.error({ sessionId, err }, 'could not enqueue teardown; the lease-expiry job will remove the account');
          return;
        }
        await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
      }
    }
  }

  async open(req: OpenSessionRequest, onProgress: ProgressFn): Promise<BrokeredSession> {
    const { principal } = req;
    const computer = await this.deps.access.computerForConnect(principal, req.computerRef, req.protocol);
    await req.admit?.(computer);
    try {
      req.onAccessGranted?.(computer);
    } catch (err) {
      this.#log.warn({ err }, 'onAccessGranted hook failed');
    }
    const session = await this.deps.engine.requestSession({
      personLogin: principal.login,
      personId: principal.personId,
      computer,
      protocol: req.protocol,
      ...(req.accountType ? { accountType: req.accountType } : {}),
      ...(req.minutes ? { minutes: req.minutes } : {}),
      // The reconciler ends the session at once if this gateway dies (its alive key expires).
      holder: gatewayHolder(this.deps.live.gatewayId),
    });
    const log = this.#log.child({ sessionId: session.id, computer: computer.name, via: req.via });
    if (session.accountType === 'existing') {
      // Not supported yet in the proxies: close the row right away so nothing stays pending.
      await this.enqueueTeardown(session.id, 'existing-account sessions are not supported');
      throw new JitgateError(SshGatewayErrors.JIT_ERR_SSH_EXISTING_ACCOUNT, { computer: computer.name });
    }
    const jobId = `provision-${session.id}`;
    const relay = new StepRelay(onProgress);
    this.#progress.set(jobId, relay);
    try {
      await this.#events.waitUntilReady();
      const job = await this.deps.queue.provision(session.id);
      const result = await this.#waitProvisioned(job, session.id, computer.name);
      // Completion can be read before the last progress events: the result holds every step of the attempt that succeeded.
      relay.finish(result);
    } catch (err) {
      log.warn({ code: isJitgateError(err) ? err.code : undefined }, 'provisioning failed');
      await this.enqueueTeardown(session.id, 'provisioning failed');
      throw err;
    } finally {
      this.#progress.delete(jobId);
    }
    let credentials: SessionLogin;
    try {
      // An elevated session gets the account name only: the person types their own password in the remote login.
      credentials = await this.deps.engine.sessionLogin(session.id);
    } catch (err) {
      await this.enqueueTeardown(session.id, 'no credentials');
      throw err;
    }
    const fresh = { ...session, state: 'active' as const, startedAt: new Date() };
    const registrationRef: { r: LiveRegistration | null } = { r: null };
    const tap: LiveTap = {
      output: (c) => registrationRef.r?.output(c),
      resize: (cols, rows) => registrationRef.r?.resize(cols, rows),
    };
    const opened = new Opened(fresh, computer, credentials, tap, this);
    this.#open.set(session.id, opened);
    // Four-eyes: the gate exists before the live entry, so the first moderator's join is counted.
    opened.moderation = this.deps.moderation?.gateFor(
      { sessionId: session.id, computer, personId: principal.personId, personLogin: principal.login, protocol: req.protocol },
      (reason) => {
        log.info({ reason }, 'moderated session ends');
        opened.fireTerminate('terminated', 'system:moderation');
      },
    ) ?? null;
    try {
      opened.registration = registrationRef.r = await this.deps.live.register(
        {
          sessionId: session.id, personLogin: principal.login, computerName: computer.name, protocol: req.protocol, account: credentials.username, startedAt: fresh.startedAt.toISOString(),
          // Which sign-in opened it: signing out or revoking that sign-in ends it (gateway/sessions/end-live-sessions.ts).
          personId: principal.personId, authSessionId: principal.authSessionId,
        },
        (reason, by) => {
          if (reason === 'terminated') {
            void this.deps.audit
              .record({ type: 'session.terminated', actor: by, outcome: 'success', sessionId: session.id, computer: computer.name, account: credentials.username, data: { via: req.via, person: principal.login } })
              .catch((err: unknown) => log.error({ err }, 'audit failed'));
          }
          opened.fireTerminate(reason, by);
        },
        (change) => opened.fireWatchers(change),
      );
    } catch (err) {
      // Without a live entry nobody could terminate or watch it: do not hand it out.
      await opened.end('live registration failed');
      throw err;
    }
    log.info({ account: credentials.username }, 'session opened');
    return opened;
  }

  async #waitProvisioned(job: Awaited<ReturnType<JitQueue['provision']>>, sessionId: string, computer: string): Promise<unknown> {
    const timeoutMs = this.deps.provisionTimeoutMs ?? 120_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new JitgateError(JitErrors.JIT_ERR_JIT_PROVISION_TIMEOUT, { session: sessionId })), timeoutMs);
    });
    try {
      return await Promise.race([this.deps.queue.waitFor(job, 0), timeout]);
    } catch (err) {
      if (isJitgateError(err)) throw err;
      // A failed job carries "<code>: <message>" for typed (permanent) failures; anything else stays in the worker log.
      const m = JIT_CODE.exec((err as Error).message ?? '');
      throw new JitgateError(SessionErrors.JIT_ERR_SESSION_PROVISION_FAILED, { computer, reason: m?.[2] ?? 'the provisioning job failed (see the worker log)', cause: m?.[1] ?? null });
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Relays a provision job's steps to the person exactly once each and in
 * order. Progress events carry (attempt, seq); a retried attempt starts its
 * count again. The job's result lists the final attempt's steps, so whatever
 * the event stream had not delivered by completion is delivered then.
 */
export class StepRelay {
  #attempt = -1;
  #shown = 0;
  constructor(private readonly fn: ProgressFn) {}

  offer(p: Partial<ProvisionProgress>): void {
    if (typeof p.step !== 'string' || !Number.isInteger(p.seq) || !Number.isInteger(p.attempt)) return;
    if (p.attempt! > this.#attempt) {
      this.#attempt = p.attempt!;
      this.#shown = 0;
    }
    if (p.attempt! < this.#attempt || p.seq! <= this.#shown) return;
    // A step arriving ahead of a lost one waits for the result (finish) rather than jump the queue.
    if (p.seq! !== this.#shown + 1) return;
    this.#shown = p.seq!;
    this.fn(p.step);
  }

  finish(result: unknown): void {
    const r = typeof result === 'object' && result !== null ? (result as { steps?: unknown; attempt?: unknown }) : {};
    const steps = r.steps;
    if (!Array.isArray(steps)) return;
    if (typeof r.attempt === 'number' && r.attempt > this.#attempt) {
      this.#attempt = r.attempt;
      this.#shown = 0;
    }
    for (let i = this.#shown; i < steps.length; i++) {
      const step: unknown = steps[i];
      if (typeof step === 'string') this.fn(step);
    }
    this.#shown = Math.max(this.#shown, steps.length);
  }
}

/** Wiring helper: the broker and its live-session registry, started. */
export async function createSessionBroker(deps: SessionBrokerDeps): Promise<JitSessionBroker> {
  const b = new JitSessionBroker(deps);
  await b.ready();
  return b;
}
