import { randomUUID } from 'node:crypto';
import { CoreErrors, JitgateError, isJitgateError } from '../core/errors.js';
import type { AuditEventInput, AuditLog } from '../core/audit.js';
import type { AccountType, Computer, JitAccountRecord, Protocol, SessionRecord } from '../core/domain.js';
import type { Logger } from '../core/logging.js';
import { Secret } from '../core/secret.js';
import type { SecretBox } from '../core/secret-box.js';
import type { AccountStore } from './account-store.js';
import { generatePassword, jitAccountName, sharedAccountName } from './account-names.js';
import { StoreErrors } from './errors.js';
import { JitErrors } from './jit-errors.js';
import type { JitRepository } from './jit-repository.js';
import { jitSettingsSchema, usesPersistentAccount, type JitSettings } from './jit-settings.js';
import { makeMarker, planReconcile, type ReconcileAction } from './reconcile-plan.js';

export interface JitServiceOptions {
  repo: JitRepository;
  audit: AuditLog;
  box: SecretBox;
  stores: ReadonlyMap<string, AccountStore>;
  log: Logger;
  installationId: string;
  /** Extra time past the lease before the account's own fail-safe expiry and the reconciler act. */
  leaseGraceMs?: number;
  defaultSessionMinutes?: number;
  now?: () => Date;
}

export interface SessionRequest {
  personLogin: string;
  personId?: string | null;
  computer: Computer;
  protocol: Protocol;
  /** Required when the computer's accountType is `choose`. */
  accountType?: AccountType;
  minutes?: number;
}

export interface ProvisionResult {
  sessionId: string;
  state: 'active';
  accountType: AccountType | 'existing';
  account: string | null;
  store: string | null;
  groups: string[];
  leaseExpiresAt: string;
}

export interface Credentials {
  username: string;
  password: Secret;
  /** NetBIOS/realm for domain accounts, when the store knows it. */
  domain?: string;
}

export interface ReconcileReport {
  dryRun: boolean;
  expiredSessions: number;
  actions: (ReconcileAction & { store: string; done: boolean })[];
  failures: { item: string; code: string }[];
}

const MAX_NAME_ATTEMPTS = 5;
const LOCK_TTL_MS = 60_000;

/**
 * The JIT account engine: it decides what to create, reuse, remove and
 * delete, and in which order, so that no account or membership outlives its
 * lease. It talks to directories only through `AccountStore` and to the
 * database only through `JitRepository`; every step is idempotent so jobs
 * can be retried and repeated after a crash.
 */
export class JitAccountService {
  readonly #o: Required<Omit<JitServiceOptions, 'now'>> & { now: () => Date };
  readonly #log: Logger;

  constructor(opts: JitServiceOptions) {
    this.#o = { leaseGraceMs: 60_000, defaultSessionMinutes: 60, now: () => new Date(), ...opts };
    this.#log = opts.log.child({ component: 'jit' });
  }

  get installationId(): string {
    return this.#o.installationId;
  }

  settingsOf(computer: Computer): JitSettings {
    const r = jitSettingsSchema.safeParse(computer.jit);
    if (!r.success) {
      throw new JitgateError(JitErrors.JIT_ERR_JIT_SETTINGS_INVALID, { computer: computer.name, reason: r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
    }
    return r.data;
  }

  #store(name: string | null, computer: string): { name: string; store: AccountStore } {
    const store = name ? this.#o.stores.get(name) : undefined;
    if (!name || !store) throw new JitgateError(JitErrors.JIT_ERR_JIT_NO_STORE, { computer, store: name ?? '(none)' });
    return { name, store };
  }

  async #audit(e: AuditEventInput): Promise<void> {
    await this.#o.audit.record(e);
  }

  /** Create the session row (pending). Provisioning happens in the `provision` job. */
  async requestSession(req: SessionRequest): Promise<SessionRecord> {
    // Logins reach names, audit rows and directory attributes: no control
    // characters (PostgreSQL text cannot even hold NUL), bounded length.
    if (req.personLogin.length === 0 || req.personLogin.length > 256 || /[\u0000-\u001f\u007f]/.test(req.personLogin)) {
      throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'login must be 1-256 characters without control characters' });
    }
    const settings = this.settingsOf(req.computer);
    let accountType: AccountType | 'existing';
    if (!settings.enabled) accountType = 'existing';
    else if (settings.accountType === 'choose') {
      if (!req.accountType) throw new JitgateError(JitErrors.JIT_ERR_JIT_CHOOSE_ACCOUNT_TYPE, { computer: req.computer.name });
      accountType = req.accountType;
    } else {
      if (req.accountType && req.accountType !== settings.accountType) {
        throw new JitgateError(JitErrors.JIT_ERR_JIT_ACCOUNT_TYPE_NOT_ALLOWED, { computer: req.computer.name, type: req.accountType });
      }
      accountType = settings.accountType;
    }
    if (accountType !== 'existing') {
      this.#store(accountType === 'domain' ? req.computer.domainStore : req.computer.localStore, req.computer.name);
    }
    const minutes = Math.min(req.minutes ?? this.#o.defaultSessionMinutes, settings.maxSessionMinutes);
    const session = await this.#o.repo.insertSession({
      id: randomUUID(),
      personId: req.personId ?? null,
      personLogin: req.personLogin,
      computerId: req.computer.id,
      computerName: req.computer.name,
      protocol: req.protocol,
      accountType,
      leaseExpiresAt: new Date(this.#o.now().getTime() + minutes * 60_000),
    });
    await this.#audit({ type: 'session.requested', actor: req.personLogin, outcome: 'success', sessionId: session.id, computer: req.computer.name, data: { protocol: req.protocol, accountType, minutes } });
    return session;
  }

  /**
   * Provision the session's account: create or re-enable it, join the JIT
   * groups. Idempotent by session id; rolls back on partial failure.
   */
  async provision(sessionId: string, onProgress?: (step: string) => void): Promise<ProvisionResult> {
    const repo = this.#o.repo;
    const s0 = await repo.getSession(sessionId);
    if (!s0) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: `session ${sessionId}` });
    if (s0.state === 'active') return this.#result(s0);
    if (s0.state !== 'pending' && s0.state !== 'provisioning') {
      throw new JitgateError(JitErrors.JIT_ERR_JIT_SESSION_CLOSED, { session: sessionId, state: s0.state });
    }
    const computer = s0.computerId ? await repo.getComputer(s0.computerId) : null;
    if (!computer) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: `computer of session ${sessionId}` });
    const log = this.#log.child({ sessionId, computer: computer.name });
    const s = (await repo.transitionSession(sessionId, ['pending', 'provisioning'], 'provisioning'))!;
    if (s.accountType === 'existing') {
      const active = await repo.transitionSession(sessionId, ['provisioning'], 'active');
      await this.#audit({ type: 'session.started', actor: s.personLogin, outcome: 'success', sessionId, computer: computer.name, data: { jit: false } });
      return this.#result(active!);
    }
    const settings = this.settingsOf(computer);
    const { name: storeName, store } = this.#store(s.accountType === 'domain' ? computer.domainStore : computer.localStore, computer.name);
    const actor = s.personLogin;
    const accountExpires = new Date(s.leaseExpiresAt.getTime() + this.#o.leaseGraceMs);
    let account: JitAccountRecord | null = s.accountId ? await repo.getAccount(s.accountId) : null;
    // Groups a fresh per-session account joined as part of its creation (stores with groupsOnCreate).
    let joined: readonly string[] = [];
    try {
      if (!account || account.state === 'deleted' || account.state === 'failed') {
        onProgress?.(usesPersistentAccount(settings) ? 'preparing your account' : 'creating account');
        if (usesPersistentAccount(settings)) {
          account = await this.#acquirePersistent(s, computer, settings, storeName, store, accountExpires);
        } else {
          joined = store.groupsOnCreate ? settings.adminGroups : [];
          account = await this.#createEphemeral(s, computer, settings, storeName, store, accountExpires, joined);
        }
        onProgress?.(`account ${account.name} ready`);
        for (const group of joined) onProgress?.(`added to ${group}`);
      }
      for (const group of settings.adminGroups) {
        if (joined.includes(group)) continue;
        onProgress?.(`adding to ${group}`);
        await repo.addSessionGroup(sessionId, group);
        await store.addToGroup(account.name, group);
        await this.#audit({ type: 'account.group_added', actor, outcome: 'success', sessionId, computer: computer.name, account: account.name, data: { group, store: storeName } });
      }
    } catch (err) {
      log.warn({ code: isJitgateError(err) ? err.code : undefined, err: isJitgateError(err) ? undefined : err }, 'provisioning failed; rolling back');
      await this.#rollback(sessionId, err);
      throw err;
    }
    const active = await repo.transitionSession(sessionId, ['provisioning'], 'active');
    if (!active) {
      // A teardown raced us (session closed while provisioning): undo what we did.
      await this.teardown(sessionId, 'closed during provisioning');
      throw new JitgateError(JitErrors.JIT_ERR_JIT_SESSION_CLOSED, { session: sessionId, state: 'ended' });
    }
    await this.#audit({ type: 'session.started', actor, outcome: 'success', sessionId, computer: computer.name, account: account.name, data: { store: storeName, groups: settings.adminGroups } });
    log.info({ account: account.name, store: storeName }, 'session provisioned');
    return this.#result(active);
  }

  #result(s: SessionRecord): ProvisionResult {
    return { sessionId: s.id, state: 'active', accountType: s.accountType, account: s.accountName, store: s.store, groups: s.groups, leaseExpiresAt: s.leaseExpiresAt.toISOString() };
  }

  async #createEphemeral(s: SessionRecord, computer: Computer, settings: JitSettings, storeName: string, store: AccountStore, expiresAt: Date, groups: readonly string[]): Promise<JitAccountRecord> {
    const repo = this.#o.repo;
    for (let attempt = 1; ; attempt++) {
      const id = randomUUID();
      const name = jitAccountName(s.personLogin, store.nameRules.maxLength);
      const password = generatePassword(name);
      let row: JitAccountRecord;
      try {
        row = await repo.insertAccount({
          id, store: storeName, name, mode: 'named', ownerKey: `person:${s.personLogin}`, personId: s.personId, organizationId: computer.organizationId,
          computerId: computer.id, state: 'creating', passwordEnc: this.#o.box.encrypt(password, id), groups: settings.adminGroups, keep: !settings.deleteOnCheckIn,
        });
      } catch (err) {
        // the unique (store, name) index: a live row already has this name
        if (attempt < MAX_NAME_ATTEMPTS) continue;
        throw err;
      }
      // Link before creating: a crash from here on leaves a lease the reconciler sees.
      await repo.linkSessionAccount(s.id, row);
      // Memberships made with the creation are on the session's record first, like addToGroup's.
      for (const group of groups) await repo.addSessionGroup(s.id, group);
      try {
        await store.create({
          name, password, marker: makeMarker(this.#o.installationId, id), expiresAt, displayName: `JIT ${s.personLogin} (${computer.name})`, container: settings.container,
          ...(groups.length > 0 ? { groups } : {}),
        });
      } catch (err) {
        if (isJitgateError(err, StoreErrors.JIT_ERR_STORE_ACCOUNT_EXISTS) && attempt < MAX_NAME_ATTEMPTS) {
          // Someone else's account has this name: never touch it, pick another.
          await repo.deleteAccountRow(id);
          continue;
        }
        throw err;
      }
      await repo.updateAccount(id, { state: 'active' });
      await this.#audit({ type: 'account.created', actor: s.personLogin, outcome: 'success', sessionId: s.id, computer: computer.name, account: name, data: { store: storeName, mode: 'named', expiresAt: expiresAt.toISOString() } });
      for (const group of groups) {
        await this.#audit({ type: 'account.group_added', actor: s.personLogin, outcome: 'success', sessionId: s.id, computer: computer.name, account: name, data: { group, store: storeName } });
      }
      return { ...row, state: 'active' };
    }
  }

  async #withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const owner = randomUUID();
    const deadline = Date.now() + LOCK_TTL_MS;
    while (!(await this.#o.repo.tryLock(key, owner, LOCK_TTL_MS))) {
      if (Date.now() > deadline) throw new JitgateError(JitErrors.JIT_ERR_JIT_LOCK_TIMEOUT, { key });
      await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
    }
    try {
      return await fn();
    } finally {
      await this.#o.repo.unlock(key, owner).catch(() => undefined);
    }
  }

  /** Reused named or shared account: enable it (rotated password) or create it; serialised per account. */
  async #acquirePersistent(s: SessionRecord, computer: Computer, settings: JitSettings, storeName: string, store: AccountStore, expiresAt: Date): Promise<JitAccountRecord> {
    const repo = this.#o.repo;
    const shared = settings.accountMode === 'shared';
    const ownerKey = shared ? `org:${computer.organizationId}` : `person:${s.personLogin}`;
    const mode = shared ? 'shared' : 'named';
    return this.#withLock(`account:${storeName}:${ownerKey}`, async () => {
      const kept = await repo.findKeptAccount(storeName, mode, ownerKey);
      if (kept) {
        const inStore = await store.get(kept.name);
        if (inStore && inStore.marker === makeMarker(this.#o.installationId, kept.id)) {
          await repo.linkSessionAccount(s.id, kept);
          const others = await repo.otherLiveLeases(kept.id, s.id);
          if (kept.state === 'active' && others.length > 0 && kept.passwordEnc) {
            // In use by another live session: keep its password, extend the fail-safe expiry.
            const latest = Math.max(expiresAt.getTime(), ...others.map((o) => o.leaseExpiresAt.getTime() + this.#o.leaseGraceMs));
            await store.enable(kept.name, new Date(latest));
            await this.#audit({ type: 'account.reused', actor: s.personLogin, outcome: 'success', sessionId: s.id, computer: computer.name, account: kept.name, data: { store: storeName, sharedWith: others.length } });
            return kept;
          }
          const password = generatePassword(kept.name);
          const enc = this.#o.box.encrypt(password, kept.id);
          await store.setPassword(kept.name, password);
          await repo.updateAccount(kept.id, { state: 'active', passwordEnc: enc });
          await this.#audit({ type: 'account.password_rotated', actor: s.personLogin, outcome: 'success', sessionId: s.id, computer: computer.name, account: kept.name, data: { store: storeName } });
          await store.enable(kept.name, expiresAt);
          await this.#audit({ type: 'account.enabled', actor: s.personLogin, outcome: 'success', sessionId: s.id, computer: computer.name, account: kept.name, data: { store: storeName, expiresAt: expiresAt.toISOString() } });
          return { ...kept, state: 'active', passwordEnc: enc };
        }
        // Gone from the store or no longer ours: forget it, create a new one.
        await repo.updateAccount(kept.id, { state: 'deleted', passwordEnc: null });
      }
      const id = randomUUID();
      const name = shared
        ? sharedAccountName((await repo.getOrganization(computer.organizationId))?.sharedCode ?? '')
        : jitAccountName(s.personLogin, store.nameRules.maxLength);
      const password = generatePassword(name);
      const row = await repo.insertAccount({
        id, store: storeName, name, mode, ownerKey, personId: shared ? null : s.personId, organizationId: computer.organizationId,
        computerId: shared ? null : computer.id, state: 'creating', passwordEnc: this.#o.box.encrypt(password, id), groups: settings.adminGroups, keep: true,
      });
      await repo.linkSessionAccount(s.id, row);
      await store.create({ name, password, marker: makeMarker(this.#o.installationId, id), expiresAt, displayName: shared ? `JIT shared ${name}` : `JIT ${s.personLogin}`, container: settings.container });
      await repo.updateAccount(id, { state: 'active' });
      await this.#audit({ type: 'account.created', actor: s.personLogin, outcome: 'success', sessionId: s.id, computer: computer.name, account: name, data: { store: storeName, mode, expiresAt: expiresAt.toISOString() } });
      return { ...row, state: 'active' };
    });
  }

  async #rollback(sessionId: string, cause: unknown): Promise<void> {
    const code = isJitgateError(cause) ? cause.code : 'JIT_ERR_INTERNAL';
    try {
      await this.#release(sessionId, 'rollback', 'system:provisioner');
      const s = await this.#o.repo.getSession(sessionId);
      if (s?.accountName) {
        await this.#audit({ type: 'account.rolled_back', actor: s.personLogin, outcome: 'success', sessionId, computer: s.computerName, account: s.accountName, data: { cause: code } });
      }
      await this.#o.repo.transitionSession(sessionId, ['pending', 'provisioning', 'active', 'ending'], 'failed', { endReason: 'provisioning failed', errorCode: code });
      await this.#audit({ type: 'session.failed', actor: s?.personLogin ?? 'system:provisioner', outcome: 'failure', sessionId, computer: s?.computerName, account: s?.accountName, data: { code } });
    } catch (err) {
      // The session stays live with its lease: teardown retries and the reconciler finish the job.
      this.#log.error({ sessionId, code: isJitgateError(err) ? err.code : undefined }, 'rollback incomplete; left for teardown/reconcile');
      throw err;
    }
  }

  /**
   * End the session: remove its memberships (unless another live lease on
   * the same account needs them), then delete or disable the account as the
   * computer's settings say. Idempotent; safe after a crash at any point.
   */
  async teardown(sessionId: string, reason: string, actor = 'system:provisioner'): Promise<{ state: string }> {
    const repo = this.#o.repo;
    const first = await repo.getSession(sessionId);
    if (!first) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: `session ${sessionId}` });
    if (first.state === 'ended' || first.state === 'failed') return { state: first.state };
    // One teardown per session at a time (the lease job, the reconciler, a check-in may race): the
    // second waits, then finds it ended. The lock is leased, so a worker that dies holding it only
    // delays the next teardown by its lease, never blocks it.
    return this.#withLock(`session:${sessionId}`, async () => {
      const s0 = await repo.getSession(sessionId);
      if (!s0 || s0.state === 'ended' || s0.state === 'failed') return { state: s0?.state ?? 'ended' };
      await repo.transitionSession(sessionId, ['pending', 'provisioning', 'active', 'ending'], 'ending', { endReason: reason });
      await this.#release(sessionId, reason, actor);
      // The state and its audit event commit together: no ended session without its session.ended event.
      await repo.db.transaction(async (tx) => {
        const done = await repo.transitionSession(sessionId, ['ending'], 'ended', { endReason: reason }, tx);
        if (done) {
          await this.#o.audit.record({ type: 'session.ended', actor: actor === 'system:provisioner' ? s0.personLogin : actor, outcome: 'success', sessionId, computer: s0.computerName, account: s0.accountName, data: { reason } }, tx);
        }
      });
      return { state: 'ended' };
    });
  }

  async #release(sessionId: string, reason: string, actor: string): Promise<void> {
    const repo = this.#o.repo;
    const s = await repo.getSession(sessionId);
    if (!s?.accountId || !s.store) return;
    const account = await repo.getAccount(s.accountId);
    if (!account || account.state === 'deleted') return;
    const store = this.#o.stores.get(s.store);
    if (!store) throw new JitgateError(JitErrors.JIT_ERR_JIT_NO_STORE, { computer: s.computerName, store: s.store });
    const who = actor.startsWith('system:') ? s.personLogin : actor;
    const ctx = { sessionId, computer: s.computerName, account: account.name };
    const body = async () => {
      const others = await repo.otherLiveLeases(account.id, sessionId);
      const stillNeeded = new Set(others.flatMap((o) => o.groups));
      for (const group of s.groups) {
        if (stillNeeded.has(group)) continue;
        try {
          await store.removeFromGroup(account.name, group);
        } catch (err) {
          // A group that does not exist holds no membership: nothing to remove.
          if (!isJitgateError(err, StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP)) throw err;
        }
        await repo.removeSessionGroup(sessionId, group);
        await this.#audit({ type: 'account.group_removed', actor: who, outcome: 'success', ...ctx, data: { group, reason } });
      }
      if (others.length > 0) return;
      if (!account.keep || account.state === 'creating') {
        await store.delete(account.name);
        await repo.updateAccount(account.id, { state: 'deleted', passwordEnc: null });
        await this.#audit({ type: 'account.deleted', actor: who, outcome: 'success', ...ctx, data: { reason, store: s.store } });
        return;
      }
      await store.disable(account.name);
      await this.#audit({ type: 'account.disabled', actor: who, outcome: 'success', ...ctx, data: { reason } });
      // A random password nobody knows, not stored anywhere.
      await store.setPassword(account.name, generatePassword(account.name));
      await repo.updateAccount(account.id, { state: 'idle', passwordEnc: null });
      await this.#audit({ type: 'account.password_rotated', actor: who, outcome: 'success', ...ctx, data: { reason: 'check-in' } });
    };
    if (account.keep) await this.#withLock(`account:${account.store}:${account.ownerKey}`, body);
    else await body();
  }

  /** Lease-expiry job: tear the session down if its lease really ended. */
  /**
   * Move an active session's lease end `minutes` later, capped at the
   * computer's `maxSessionMinutes` from when the session was requested. The
   * account's own fail-safe expiry moves with it. The caller reschedules the
   * lease-expiry job (JitQueue.scheduleLeaseExpiry); gateways re-read the
   * lease before closing a session at its old end.
   */
  async extendLease(sessionId: string, minutes: number, actor: string): Promise<{ leaseExpiresAt: Date }> {
    const repo = this.#o.repo;
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 24 * 60) {
      throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'minutes must be a whole number from 1 to 1440' });
    }
    const s = await repo.getSession(sessionId);
    if (!s) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: `session ${sessionId}` });
    if (s.state !== 'active') throw new JitgateError(JitErrors.JIT_ERR_JIT_SESSION_CLOSED, { session: sessionId, state: s.state });
    const computer = s.computerId ? await repo.getComputer(s.computerId) : null;
    if (!computer) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: `computer of session ${sessionId}` });
    const settings = this.settingsOf(computer);
    const cap = s.createdAt.getTime() + settings.maxSessionMinutes * 60_000;
    const from = s.leaseExpiresAt;
    const until = new Date(Math.min(from.getTime() + minutes * 60_000, cap));
    if (until.getTime() <= from.getTime() + 1000) {
      throw new JitgateError(JitErrors.JIT_ERR_JIT_MAX_DURATION, { computer: computer.name, minutes: settings.maxSessionMinutes });
    }
    if (s.accountName && s.store) {
      const { store } = this.#store(s.store, computer.name);
      // The account's own expiry is the backstop if every job is lost: it must not cut the session short.
      await store.enable(s.accountName, new Date(until.getTime() + this.#o.leaseGraceMs));
    }
    await repo.extendLease(sessionId, until);
    await this.#audit({
      type: 'session.extended', actor, outcome: 'success', sessionId, computer: computer.name, ...(s.accountName ? { account: s.accountName } : {}),
      data: { from: from.toISOString(), to: until.toISOString(), minutes },
    });
    return { leaseExpiresAt: until };
  }

  /** The session's current lease end (it moves when the session is extended); null when unknown. */
  async leaseEnd(sessionId: string): Promise<Date | null> {
    return (await this.#o.repo.getSession(sessionId))?.leaseExpiresAt ?? null;
  }

  async expireLease(sessionId: string): Promise<{ expired: boolean }> {
    const s = await this.#o.repo.getSession(sessionId);
    if (!s || s.state === 'ended' || s.state === 'failed') return { expired: false };
    if (s.leaseExpiresAt.getTime() > this.#o.now().getTime() + 1000) return { expired: false };
    await this.#audit({ type: 'lease.expired', actor: 'system:lease', outcome: 'success', sessionId, computer: s.computerName, account: s.accountName });
    await this.teardown(sessionId, 'lease expired', 'system:lease');
    return { expired: true };
  }

  /** The session's account credentials, for the gateway to inject. Never logged. */
  async credentials(sessionId: string): Promise<Credentials> {
    const s = await this.#o.repo.getSession(sessionId);
    if (!s || s.state !== 'active' || !s.accountId) throw new JitgateError(JitErrors.JIT_ERR_JIT_NO_CREDENTIALS, { session: sessionId });
    const a = await this.#o.repo.getAccount(s.accountId);
    if (!a?.passwordEnc) throw new JitgateError(JitErrors.JIT_ERR_JIT_NO_CREDENTIALS, { session: sessionId });
    return { username: a.name, password: new Secret(this.#o.box.decrypt(a.passwordEnc, a.id)) };
  }

  /**
   * After the gateway has logged the session in: erase the stored password
   * of a per-session account (kept/shared accounts keep it while another
   * session may still need it, and lose it at check-in).
   */
  async releaseCredentials(sessionId: string): Promise<void> {
    const s = await this.#o.repo.getSession(sessionId);
    if (!s?.accountId) return;
    const a = await this.#o.repo.getAccount(s.accountId);
    if (a && !a.keep && a.state === 'active') await this.#o.repo.updateAccount(a.id, { passwordEnc: null });
  }

  /**
   * Sweep: tear down sessions whose lease ran out, then compare every store's
   * jitgate-marked accounts with the database and remove what has no live
   * lease. Per-item failures are collected; the sweep goes on.
   */
  async reconcile(opts: { dryRun?: boolean } = {}): Promise<ReconcileReport> {
    const dryRun = opts.dryRun ?? false;
    const repo = this.#o.repo;
    const now = this.#o.now();
    const report: ReconcileReport = { dryRun, expiredSessions: 0, actions: [], failures: [] };
    const expired = await repo.expiredLiveSessions(now, this.#o.leaseGraceMs);
    report.expiredSessions = expired.length;
    if (!dryRun) {
      for (const s of expired) {
        try {
          await this.#audit({ type: 'lease.expired', actor: 'system:reconciler', outcome: 'success', sessionId: s.id, computer: s.computerName, account: s.accountName });
          await this.teardown(s.id, 'lease expired (reconciler)', 'system:reconciler');
        } catch (err) {
          report.failures.push({ item: `session ${s.id}`, code: isJitgateError(err) ? err.code : 'JIT_ERR_INTERNAL' });
        }
      }
    }
    const live = await repo.liveLeaseAccountIds(now, this.#o.leaseGraceMs);
    for (const [storeName, store] of this.#o.stores) {
      let listed;
      try {
        listed = await store.listManaged();
      } catch (err) {
        report.failures.push({ item: `store ${storeName}`, code: isJitgateError(err) ? err.code : 'JIT_ERR_INTERNAL' });
        continue;
      }
      const rows = await repo.accountsInStore(storeName);
      const actions = planReconcile({ installationId: this.#o.installationId, storeAccounts: listed, rows, liveAccountIds: live });
      for (const a of actions) {
        let done = false;
        if (!dryRun) {
          try {
            await this.#apply(storeName, store, a);
            done = true;
          } catch (err) {
            report.failures.push({ item: `${storeName}/${a.name} ${a.kind}`, code: isJitgateError(err) ? err.code : 'JIT_ERR_INTERNAL' });
          }
        }
        report.actions.push({ ...a, store: storeName, done });
      }
    }
    if (!dryRun) {
      await this.#audit({
        type: 'reconcile.completed', actor: 'system:reconciler', outcome: report.failures.length ? 'failure' : 'success',
        data: { expiredSessions: report.expiredSessions, actions: report.actions.length, failures: report.failures.length },
      });
    }
    if (report.failures.length) this.#log.warn({ failures: report.failures }, 'reconcile finished with failures');
    return report;
  }

  async #apply(storeName: string, store: AccountStore, a: ReconcileAction): Promise<void> {
    const repo = this.#o.repo;
    const base = { actor: 'system:reconciler', outcome: 'success' as const, account: a.name };
    switch (a.kind) {
      case 'delete':
        await store.delete(a.name);
        if (a.accountId) await repo.updateAccount(a.accountId, { state: 'deleted', passwordEnc: null });
        await this.#audit({ type: 'reconcile.removed', ...base, data: { store: storeName, action: 'delete', reason: a.reason } });
        return;
      case 'remove-group':
        await store.removeFromGroup(a.name, a.group);
        await this.#audit({ type: 'reconcile.removed', ...base, data: { store: storeName, action: 'remove-group', group: a.group, reason: a.reason } });
        return;
      case 'disable':
        await store.disable(a.name);
        await store.setPassword(a.name, generatePassword(a.name));
        await repo.updateAccount(a.accountId, { state: 'idle', passwordEnc: null });
        await this.#audit({ type: 'reconcile.removed', ...base, data: { store: storeName, action: 'disable', reason: a.reason } });
        return;
      case 'forget':
        await repo.updateAccount(a.accountId, { state: 'deleted', passwordEnc: null });
        return;
    }
  }

  /** Collect per-store reachability for `jitgate check`. */
  async checkStores(): Promise<{ store: string; ok: boolean; error?: string }[]> {
    const out = [];
    for (const [name, store] of this.#o.stores) {
      try {
        await store.check();
        out.push({ store: name, ok: true });
      } catch (err) {
        out.push({ store: name, ok: false, error: isJitgateError(err) ? `${err.code}: ${err.message}` : String(err) });
      }
    }
    return out;
  }
}

