import { randomUUID } from 'node:crypto';
import { CoreErrors, JitgateError, isJitgateError } from '../core/errors.js';
import { forEachLimited } from '../core/for-each-limited.js';
import type { AuditEventInput, AuditLog } from '../core/audit.js';
import type { AccountType, Computer, JitAccountRecord, Protocol, SessionRecord } from '../core/domain.js';
import type { Logger } from '../core/logging.js';
import { Secret } from '../core/secret.js';
import type { SecretBox } from '../core/secret-box.js';
import type { AccountStore, CreatedAccount } from './account-store.js';
import { generatePassword, jitAccountName, sharedAccountName } from './account-names.js';
import { StoreErrors } from './errors.js';
import { JitErrors } from './jit-errors.js';
import type { HolderLiveness } from './holder-liveness.js';
import { checkStoreScope, type StoreScope } from './store-scope.js';
import type { ElevationRecord, JitRepository } from './jit-repository.js';
import { jitSettingsSchema, usesPersistentAccount, type JitSettings } from './jit-settings.js';
import { makeMarker, planReconcile, provablyOver, type ReconcileAction } from './reconcile-plan.js';

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
  /**
   * A session that has not become active this long after it was requested is
   * rolled back by the reconciler (a crashed `jitgate checkout`, a worker
   * killed mid-provision). Default 60 s.
   */
  provisioningTimeoutMs?: number;
  /** Tells which gateways holding sessions are gone; absent: only leases and timeouts end sessions. */
  holders?: HolderLiveness;
  /**
   * Which organizations, groups and containers each store allows
   * (`accountStores[].organizations`, `groups`, `allowedContainers`). The API
   * checks them when a computer is saved; the engine checks again before it
   * creates or re-enables anything, so a computer row changed behind the
   * API's back still cannot reach another customer's directory.
   */
  storeScopes?: ReadonlyMap<string, StoreScope>;
  /**
   * Per store, the default rule naming a person's existing account for
   * elevation (`accountStores[].elevation.accountName`, `{login}` replaced by
   * the person's login; AD also accepts a UPN such as `{login}@corp.example`).
   * An admin's mapping (person_accounts) wins. Absent: `{login}`.
   */
  elevation?: ReadonlyMap<string, { accountName: string }>;
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
  /** Who holds the session open (`gateway:<id>`); the reconciler ends it when that holder is gone. */
  holder?: string | null;
}

export interface ProvisionResult {
  sessionId: string;
  state: 'active';
  accountType: AccountType | 'existing';
  account: string | null;
  store: string | null;
  groups: string[];
  leaseExpiresAt: string;
  /** The session raises the person's existing account (mode elevate); jitgate holds no password for it. */
  elevated: boolean;
  /** The person types their own password in the remote login (no credential injection). */
  passwordTypedByPerson: boolean;
}

export interface Credentials {
  username: string;
  password: Secret;
  /** NetBIOS/realm for domain accounts, when the store knows it. */
  domain?: string;
  /** `name@suffix` for domain accounts of a store with a UPN suffix (RDP logs in with it when no NetBIOS domain is configured). */
  upn?: string;
}

/**
 * How the gateway logs a session in: the JIT account's credentials, or for
 * an elevated session (the person's own account, whose password jitgate never
 * holds) `password: null` — the person types it in the remote login, which
 * the gateway relays and never keeps.
 */
export type SessionLogin = Credentials | (Omit<Credentials, 'password' | 'upn'> & { password: null });

export interface ReconcileReport {
  dryRun: boolean;
  expiredSessions: number;
  /** Sessions the sweep ended (or, in a dry run, would end), with why; their teardown removed their accounts. */
  sessions: { sessionId: string; computer: string; account: string | null; reason: string; done: boolean }[];
  actions: (ReconcileAction & { store: string; done: boolean })[];
  /** Accounts listed in a store but left alone: still in use, or created after the sweep began. */
  skipped: { store: string; name: string; reason: string }[];
  failures: { item: string; code: string }[];
  /** Memberships of elevated accounts the sweep settled: `removed` (jitgate added it), `kept` (the account was a member before: only the record is closed). */
  elevations: { store: string; name: string; group: string; sessionId: string; action: 'removed' | 'kept'; done: boolean }[];
}

type ElevationItem = ReconcileReport['elevations'][number];

/** An elevated session names an existing account but links no jit_accounts row (jitgate owns nothing of it). */
export function isElevatedSession(s: Pick<SessionRecord, 'accountType' | 'accountId' | 'accountName'>): boolean {
  return s.accountType !== 'existing' && s.accountId === null && s.accountName !== null;
}

const MAX_NAME_ATTEMPTS = 5;
/**
 * A held lock's lease in the database. The holder renews it every third of
 * the lease while it works, so a worker that dies holding a lock (SIGKILL
 * mid-teardown) delays the next holder by at most this, not by the whole
 * time a step may take (issue 18).
 */
export const LOCK_LEASE_MS = 10_000;
/** How long a caller waits for a lock before giving up (a transient error: the job is retried). */
const LOCK_WAIT_MS = 60_000;
/** Sessions the reconciler tears down at once when many must end together (a gateway died). */
const REAP_CONCURRENCY = 8;

/**
 * The JIT account engine: it decides what to create, reuse, remove and
 * delete, and in which order, so that no account or membership outlives its
 * lease. It talks to directories only through `AccountStore` and to the
 * database only through `JitRepository`; every step is idempotent so jobs
 * can be retried and repeated after a crash.
 */
export class JitAccountService {
  readonly #o: Required<Omit<JitServiceOptions, 'now' | 'holders' | 'storeScopes' | 'elevation'>> & {
    now: () => Date; holders?: HolderLiveness; storeScopes?: ReadonlyMap<string, StoreScope>; elevation?: ReadonlyMap<string, { accountName: string }>;
  };
  readonly #log: Logger;

  constructor(opts: JitServiceOptions) {
    this.#o = { leaseGraceMs: 60_000, defaultSessionMinutes: 60, provisioningTimeoutMs: 60_000, now: () => new Date(), ...opts };
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
    // Validated here, not only in the API: a lease that has already ended would put an account in the admin group for nothing.
    if (req.minutes !== undefined && (!Number.isInteger(req.minutes) || req.minutes < 1)) {
      throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `minutes must be a whole number from 1 to ${settings.maxSessionMinutes} (the maximum of ${req.computer.name})` });
    }
    if (req.minutes !== undefined && req.minutes > settings.maxSessionMinutes) {
      throw new JitgateError(JitErrors.JIT_ERR_JIT_LEASE_TOO_LONG, { computer: req.computer.name, minutes: settings.maxSessionMinutes, asked: req.minutes });
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
      holder: req.holder ?? null,
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
    await this.#checkScope(storeName, computer, settings, sessionId);
    if (settings.mode === 'elevate') return this.#provisionElevated(s, computer, settings, storeName, store, onProgress);
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
        // With AD Privileged Access Management the DC drops the membership itself at the account's expiry.
        await store.addToGroup(account.name, group, { until: accountExpires });
        await this.#audit({ type: 'account.group_added', actor, outcome: 'success', sessionId, computer: computer.name, account: account.name, data: { group, store: storeName } });
      }
    } catch (err) {
      log.warn({ code: isJitgateError(err) ? err.code : undefined, err: isJitgateError(err) ? undefined : err }, 'provisioning failed; rolling back');
      await this.#rollback(sessionId, err);
      throw err;
    }
    const active = await repo.transitionSession(sessionId, ['provisioning'], 'active');
    if (!active) {
      // A teardown raced us (closed, timed out, its gateway gone) and may have run before our last
      // step: release again under the session's lock (teardown itself returns early once ended).
      await this.#withLock(`session:${sessionId}`, () => this.#release(sessionId, 'closed during provisioning', 'system:provisioner'));
      const now = await repo.getSession(sessionId);
      throw new JitgateError(JitErrors.JIT_ERR_JIT_SESSION_CLOSED, { session: sessionId, state: now?.state ?? 'ended' });
    }
    await this.#audit({ type: 'session.started', actor, outcome: 'success', sessionId, computer: computer.name, account: account.name, data: { protocol: s.protocol, store: storeName, groups: settings.adminGroups } });
    log.info({ account: account.name, store: storeName }, 'session provisioned');
    return this.#result(active);
  }

  /** Refuse (and fail the session, nothing created) when the computer's organization, groups or container are not the store's. */
  async #checkScope(storeName: string, computer: Computer, settings: JitSettings, sessionId: string): Promise<void> {
    const scope = this.#o.storeScopes?.get(storeName);
    if (!scope) return;
    const org = await this.#o.repo.getOrganization(computer.organizationId);
    // byGlobalAdmin: the engine cannot know who configured the computer; ownership, groups and containers still hold.
    const refusal = checkStoreScope(scope, { organizationName: org?.name ?? '', adminGroups: settings.adminGroups, container: settings.container ?? null, byGlobalAdmin: true });
    if (!refusal) return;
    await this.#rollback(sessionId, refusal);
    throw refusal;
  }

  #result(s: SessionRecord): ProvisionResult {
    const elevated = isElevatedSession(s);
    return {
      sessionId: s.id, state: 'active', accountType: s.accountType, account: s.accountName, store: s.store, groups: s.groups, leaseExpiresAt: s.leaseExpiresAt.toISOString(),
      elevated, passwordTypedByPerson: elevated,
    };
  }

  // --- elevation: the person's existing account joins the groups for the lease ---

  /** The existing account to elevate: the admin's mapping, else the store's rule (`{login}`). */
  async #existingAccountName(s: SessionRecord, storeName: string): Promise<string> {
    const mapped = s.personId ? await this.#o.repo.personAccount(s.personId, storeName) : null;
    if (mapped) return mapped;
    return (this.#o.elevation?.get(storeName)?.accountName ?? '{login}').replaceAll('{login}', s.personLogin);
  }

  /** Lock serialising every membership decision about one existing account on one store. */
  #elevationLock(storeName: string, accountName: string): string {
    return `elevate:${storeName}:${accountName.toLowerCase()}`;
  }

  async #provisionElevated(s: SessionRecord, computer: Computer, settings: JitSettings, storeName: string, store: AccountStore, onProgress?: (step: string) => void): Promise<ProvisionResult> {
    const repo = this.#o.repo;
    const actor = s.personLogin;
    const log = this.#log.child({ sessionId: s.id, computer: computer.name });
    let accountName: string | null = null;
    try {
      const wanted = await this.#existingAccountName(s, storeName);
      onProgress?.(`looking up your account ${wanted}`);
      const found = await store.findExisting(wanted);
      const words = { person: s.personLogin, name: wanted, store: storeName };
      if (!found) throw new JitgateError(JitErrors.JIT_ERR_JIT_ELEVATE_NO_ACCOUNT, words);
      if (!found.enabled) throw new JitgateError(JitErrors.JIT_ERR_JIT_ELEVATE_DISABLED, words);
      if (found.protectedReason) throw new JitgateError(JitErrors.JIT_ERR_JIT_ELEVATE_PROTECTED, { ...words, reason: found.protectedReason });
      accountName = found.name;
      await repo.setSessionElevated(s.id, found.name, storeName);
      for (const group of settings.adminGroups) {
        onProgress?.(`adding ${found.name} to ${group}`);
        await this.#withLock(this.#elevationLock(storeName, found.name), () => this.#elevateOne(s, computer.name, storeName, store, found.name, group));
      }
    } catch (err) {
      log.warn({ code: isJitgateError(err) ? err.code : undefined, err: isJitgateError(err) ? undefined : err }, 'elevation failed; rolling back');
      await this.#rollback(s.id, err);
      throw err;
    }
    const active = await repo.transitionSession(s.id, ['provisioning'], 'active');
    if (!active) {
      await this.#withLock(`session:${s.id}`, () => this.#release(s.id, 'closed during provisioning', 'system:provisioner'));
      const now = await repo.getSession(s.id);
      throw new JitgateError(JitErrors.JIT_ERR_JIT_SESSION_CLOSED, { session: s.id, state: now?.state ?? 'ended' });
    }
    await this.#audit({ type: 'session.started', actor, outcome: 'success', sessionId: s.id, computer: computer.name, account: accountName, data: { protocol: s.protocol, store: storeName, groups: settings.adminGroups, mode: 'elevate' } });
    log.info({ account: accountName, store: storeName }, 'session elevated');
    return this.#result(active);
  }

  /**
   * One group, under the account's elevation lock: read the membership
   * first. Already a member through nobody but its admins → recorded as not
   * added by jitgate and never removed. Already a member because jitgate
   * added it for another session (an open jitgate row) → shared, recorded
   * as jitgate's. Not a member → the row is written (`adding`) before the add,
   * so a crash mid-add leaves a record the reconciler acts on.
   */
  /** When a membership jitgate added should end by itself: the latest lease among the sessions sharing it, plus grace. */
  async #membershipUntil(lease: Date, storeName: string, name: string, group: string, rowId: string): Promise<Date> {
    const others = await this.#o.repo.openJitgateElevations(storeName, name, group, rowId);
    const live = others.filter((o) => o.session.state !== 'ended' && o.session.state !== 'failed');
    return new Date(Math.max(lease.getTime(), ...live.map((o) => o.session.leaseExpiresAt.getTime())) + this.#o.leaseGraceMs);
  }

  async #elevateOne(s: SessionRecord, computer: string, storeName: string, store: AccountStore, name: string, group: string): Promise<void> {
    const repo = this.#o.repo;
    const mine = (await repo.elevationsOfSession(s.id)).find((e) => e.group === group && e.state !== 'removed');
    if (mine?.state === 'active') return;
    const member = await store.isMember(name, group);
    const ours = !member || mine?.addedByJitgate === true || (await repo.openJitgateElevations(storeName, name, group, mine?.id ?? null)).length > 0;
    const row = mine ?? (await repo.insertElevation({ id: randomUUID(), sessionId: s.id, store: storeName, accountName: name, group, addedByJitgate: ours, state: member ? 'active' : 'adding' }));
    await repo.addSessionGroup(s.id, group);
    if (!member) {
      await store.addMember(name, group, { until: await this.#membershipUntil(s.leaseExpiresAt, storeName, name, group, row.id) });
      await repo.setElevationState(row.id, 'active');
    } else {
      // Shared with another session of jitgate: where the directory holds a time-to-live, it must cover this lease too.
      if (row.addedByJitgate && (await store.timeBoundMembership?.())) {
        await store.addMember(name, group, { until: await this.#membershipUntil(s.leaseExpiresAt, storeName, name, group, row.id) });
      }
      if (row.state !== 'active') await repo.setElevationState(row.id, 'active');
    }
    await this.#audit({
      type: 'account.group_added', actor: s.personLogin, outcome: 'success', sessionId: s.id, computer, account: name,
      data: { group, store: storeName, mode: 'elevate', alreadyMember: member, addedByJitgate: row.addedByJitgate },
    });
  }

  /**
   * Close one elevation record under the account's lock: a membership
   * jitgate added is removed unless another open record of jitgate for the
   * same account and group belongs to a live session (it is shared; the last
   * one removes it); a membership the account had before is never touched.
   * Returns what happened, or null when the record was already closed.
   */
  async #releaseElevation(e: ElevationRecord, store: AccountStore, actor: string, reason: string, sink?: ElevationItem[]): Promise<'removed' | 'kept' | null> {
    const repo = this.#o.repo;
    const r = await this.#withLock(this.#elevationLock(e.store, e.accountName), async () => {
      const row = await repo.getElevation(e.id);
      if (!row || row.state === 'removed') return null;
      let removed = false;
      if (row.addedByJitgate) {
        const others = await repo.openJitgateElevations(row.store, row.accountName, row.group, row.id);
        const liveOthers = others.filter((o) => o.session.state !== 'ended' && o.session.state !== 'failed');
        if (liveOthers.length === 0) {
          try {
            await store.removeMember(row.accountName, row.group);
          } catch (err) {
            if (!isJitgateError(err, StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP)) throw err;
          }
          removed = true;
        }
      }
      await repo.setElevationState(row.id, 'removed');
      await repo.removeSessionGroup(row.sessionId, row.group);
      const s = await repo.getSession(row.sessionId);
      await this.#audit({
        type: 'account.group_removed', actor, outcome: 'success', sessionId: row.sessionId, computer: s?.computerName ?? null, account: row.accountName,
        data: { group: row.group, store: row.store, reason, mode: 'elevate', removed, ...(row.addedByJitgate ? {} : { keptBecause: 'member before the session' }) },
      });
      return removed ? ('removed' as const) : ('kept' as const);
    });
    if (r !== null) sink?.push({ store: e.store, name: e.accountName, group: e.group, sessionId: e.sessionId, action: r, done: true });
    return r;
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
      let created: CreatedAccount | void;
      try {
        created = await store.create({
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
      await this.#markCreated(storeName, store, { ...row, location: null }, created, s.id);
      await this.#audit({ type: 'account.created', actor: s.personLogin, outcome: 'success', sessionId: s.id, computer: computer.name, account: name, data: { store: storeName, mode: 'named', expiresAt: expiresAt.toISOString() } });
      for (const group of groups) {
        await this.#audit({ type: 'account.group_added', actor: s.personLogin, outcome: 'success', sessionId: s.id, computer: computer.name, account: name, data: { group, store: storeName } });
      }
      return { ...row, state: 'active' };
    }
  }

  /**
   * The account now exists: creating → active, with where the store made it.
   * When the row was released meanwhile (teardown or a timed-out rollback ran
   * while the store was creating), the account we just made is deleted here:
   * nobody else would know to.
   */
  async #markCreated(storeName: string, store: AccountStore, row: JitAccountRecord, created: CreatedAccount | void, sessionId: string): Promise<void> {
    const location = created?.location ?? undefined;
    const ok = await this.#o.repo.markAccountCreated(row.id, location ?? null);
    if (ok) return;
    await store.delete(row.name);
    await this.#o.repo.updateAccount(row.id, { state: 'deleted', passwordEnc: null });
    await this.#audit({ type: 'account.deleted', actor: 'system:provisioner', outcome: 'success', sessionId, account: row.name, data: { reason: 'session closed while the account was being created', store: storeName } });
    throw new JitgateError(JitErrors.JIT_ERR_JIT_SESSION_CLOSED, { session: sessionId, state: 'ended' });
  }

  async #withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const owner = randomUUID();
    const deadline = Date.now() + LOCK_WAIT_MS;
    while (!(await this.#o.repo.tryLock(key, owner, LOCK_LEASE_MS))) {
      if (Date.now() > deadline) throw new JitgateError(JitErrors.JIT_ERR_JIT_LOCK_TIMEOUT, { key });
      await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
    }
    // Renew while working; a lease lost meanwhile (the database unreachable for longer than the
    // lease) is logged: every step is idempotent and re-reads what it acts on.
    const renew = setInterval(() => {
      this.#o.repo.renewLock(key, owner, LOCK_LEASE_MS).then(
        (held) => held || this.#log.warn({ key }, 'lock lease lost while working'),
        () => undefined,
      );
    }, LOCK_LEASE_MS / 3);
    renew.unref();
    try {
      return await fn();
    } finally {
      clearInterval(renew);
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
      const created = await store.create({ name, password, marker: makeMarker(this.#o.installationId, id), expiresAt, displayName: shared ? `JIT shared ${name}` : `JIT ${s.personLogin}`, container: settings.container });
      await this.#markCreated(storeName, store, row, created, s.id);
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
      const failed = await this.#o.repo.transitionSession(sessionId, ['pending', 'provisioning', 'active', 'ending'], 'failed', { endReason: 'provisioning failed', errorCode: code });
      // Already ended by someone else (a timed-out rollback by the reconciler): its session.ended stands.
      if (failed) await this.#audit({ type: 'session.failed', actor: s?.personLogin ?? 'system:provisioner', outcome: 'failure', sessionId, computer: s?.computerName, account: s?.accountName, data: { code } });
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
    return this.#teardown(sessionId, reason, actor);
  }

  /** teardown; `sink` collects the elevations it settles (the reconciler's report). */
  async #teardown(sessionId: string, reason: string, actor: string, sink?: ElevationItem[]): Promise<{ state: string }> {
    const repo = this.#o.repo;
    const first = await repo.getSession(sessionId);
    if (!first) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: `session ${sessionId}` });
    if (first.state === 'ended' || first.state === 'failed') return { state: first.state };
    // One teardown per session at a time (the lease job, the reconciler, a check-in may race): the
    // second waits, then finds it ended. The lock is leased (LOCK_LEASE_MS, renewed while held), so a
    // worker that dies holding it only delays the next teardown by that lease, never blocks it.
    return this.#withLock(`session:${sessionId}`, async () => {
      const s0 = await repo.getSession(sessionId);
      if (!s0 || s0.state === 'ended' || s0.state === 'failed') return { state: s0?.state ?? 'ended' };
      await repo.transitionSession(sessionId, ['pending', 'provisioning', 'active', 'ending'], 'ending', { endReason: reason });
      await this.#release(sessionId, reason, actor, sink);
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

  async #release(sessionId: string, reason: string, actor: string, sink?: ElevationItem[]): Promise<void> {
    const repo = this.#o.repo;
    const s = await repo.getSession(sessionId);
    if (s && isElevatedSession(s)) {
      // Elevated: jitgate owns no account, only the memberships its records say it added.
      const open = (await repo.elevationsOfSession(sessionId)).filter((e) => e.state !== 'removed');
      if (open.length === 0) return;
      const store = this.#o.stores.get(open[0]!.store);
      if (!store) throw new JitgateError(JitErrors.JIT_ERR_JIT_NO_STORE, { computer: s.computerName, store: open[0]!.store });
      const who = actor.startsWith('system:') ? s.personLogin : actor;
      for (const e of open) await this.#releaseElevation(e, store, who, reason, sink);
      return;
    }
    if (!s?.accountId || !s.store) return;
    const account = await repo.getAccount(s.accountId);
    if (!account || account.state === 'deleted') return;
    const store = this.#o.stores.get(s.store);
    if (!store) throw new JitgateError(JitErrors.JIT_ERR_JIT_NO_STORE, { computer: s.computerName, store: s.store });
    const who = actor.startsWith('system:') ? s.personLogin : actor;
    const ctx = { sessionId, computer: s.computerName, account: account.name };
    const body = async () => {
      const others = await repo.otherLiveLeases(account.id, sessionId);
      // A shared account another live session still uses keeps its logons.
      if (others.length === 0) await this.#logOff(s.store!, store, account.name, s.computerId, sessionId, reason);
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

  /**
   * Where the directory removes memberships by itself (AD with Privileged
   * Access Management), move their time-to-live with the lease, before the
   * new lease is recorded: a membership must not vanish mid-session, nor
   * outlast the session by more than the grace. Pre-existing memberships of
   * an elevated account are never touched.
   */
  async #extendTimeBoundMemberships(s: SessionRecord, computerName: string, until: Date): Promise<void> {
    if (!s.store || !s.accountName) return;
    const { store } = this.#store(s.store, computerName);
    const timeBound = await store.timeBoundMembership?.();
    if (!isElevatedSession(s)) {
      if (!timeBound) return;
      for (const group of s.groups) await store.addToGroup(s.accountName, group, { until: new Date(until.getTime() + this.#o.leaseGraceMs) });
      return;
    }
    // Elevated: re-added with the new end where the store bounds it itself (AD's TTL; the SSH store's sudo fail-safe).
    if (!timeBound && store.kind !== 'ssh') return;
    const rows = (await this.#o.repo.elevationsOfSession(s.id)).filter((e) => e.addedByJitgate && e.state === 'active');
    for (const e of rows) {
      await this.#withLock(this.#elevationLock(e.store, e.accountName), async () => {
        await store.addMember(e.accountName, e.group, { until: await this.#membershipUntil(until, e.store, e.accountName, e.group, e.id) });
      });
    }
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
    if (s.accountName && s.store && !isElevatedSession(s)) {
      // (An elevated account is not ours: its expiry is not jitgate's to move.)
      const { store } = this.#store(s.store, computer.name);
      // The account's own expiry is the backstop if every job is lost: it must not cut the session short.
      await store.enable(s.accountName, new Date(until.getTime() + this.#o.leaseGraceMs));
    }
    await this.#extendTimeBoundMemberships(s, computer.name, until);
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
    if (s?.state === 'active' && isElevatedSession(s)) {
      // The person's own account: jitgate never knew its password; the remote login asks for it.
      throw new JitgateError(JitErrors.JIT_ERR_JIT_PASSWORD_FROM_PERSON, { session: sessionId, name: s.accountName! });
    }
    if (!s || s.state !== 'active' || !s.accountId) throw new JitgateError(JitErrors.JIT_ERR_JIT_NO_CREDENTIALS, { session: sessionId });
    const a = await this.#o.repo.getAccount(s.accountId);
    if (!a?.passwordEnc) throw new JitgateError(JitErrors.JIT_ERR_JIT_NO_CREDENTIALS, { session: sessionId });
    const store = s.store ? this.#o.stores.get(s.store) : undefined;
    const domain = store?.domain;
    const upn = store?.upnSuffix ? `${a.name}@${store.upnSuffix}` : undefined;
    return { username: a.name, password: new Secret(this.#o.box.decrypt(a.passwordEnc, a.id)), ...(domain ? { domain } : {}), ...(upn ? { upn } : {}) };
  }

  /** What the gateway logs in with (SessionLogin): `credentials()`, or for an elevated session the account name only. Never logged. */
  async sessionLogin(sessionId: string): Promise<SessionLogin> {
    const s = await this.#o.repo.getSession(sessionId);
    if (s?.state !== 'active' || !isElevatedSession(s)) return this.credentials(sessionId);
    const name = s.accountName!;
    // A UPN names its domain itself; a plain name goes with the store's NetBIOS domain, when it has one.
    const domain = name.includes('@') || !s.store ? undefined : this.#o.stores.get(s.store)?.domain;
    return { username: name, password: null, ...(domain ? { domain } : {}) };
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
   * Sessions that must end now, with why: lease (and grace) past, never
   * became active within the provisioning timeout (a crashed checkout or
   * worker), or held by a gateway that is gone (its heartbeat stopped).
   */
  async #sessionsToEnd(now: Date): Promise<{ session: SessionRecord; reason: string; expired: boolean }[]> {
    const repo = this.#o.repo;
    const out = new Map<string, { session: SessionRecord; reason: string; expired: boolean }>();
    for (const s of await repo.expiredLiveSessions(now, this.#o.leaseGraceMs)) out.set(s.id, { session: s, reason: 'lease expired (reconciler)', expired: true });
    for (const s of await repo.stuckProvisioning(now, this.#o.provisioningTimeoutMs)) {
      if (!out.has(s.id)) out.set(s.id, { session: s, reason: `provisioning did not finish within ${Math.round(this.#o.provisioningTimeoutMs / 1000)} s`, expired: false });
    }
    if (this.#o.holders) {
      const held = (await repo.heldLiveSessions()).filter((s) => !out.has(s.id));
      const holders = [...new Set(held.map((s) => s.holder!))];
      let dead: ReadonlySet<string> = new Set<string>();
      try {
        if (holders.length > 0) dead = await this.#o.holders.deadHolders(holders);
      } catch (err) {
        // Redis unreachable: nobody is judged gone on no evidence; leases and timeouts still apply.
        this.#log.warn({ err }, 'could not tell which gateways are alive; holders left alone this time');
      }
      for (const s of held) if (dead.has(s.holder!)) out.set(s.id, { session: s, reason: 'its gateway is gone', expired: false });
    }
    return [...out.values()];
  }

  /**
   * End the sessions that must end now (see #sessionsToEnd) without
   * comparing stores: cheap enough to run every few seconds, and at start.
   */
  async reapSessions(opts: { dryRun?: boolean } = {}): Promise<{ ended: ReconcileReport['sessions']; failures: ReconcileReport['failures']; elevations: ReconcileReport['elevations'] }> {
    const dryRun = opts.dryRun ?? false;
    const ended: ReconcileReport['sessions'] = [];
    const failures: ReconcileReport['failures'] = [];
    const elevations: ElevationItem[] = [];
    const due = await this.#sessionsToEnd(this.#o.now());
    for (const { session: s, reason } of due) ended.push({ sessionId: s.id, computer: s.computerName, account: s.accountName, reason, done: false });
    if (!dryRun) {
      // Several teardowns at once (each under its session's lock; store connections bound their own
      // channels): a gateway that dies with hundreds of sessions must not leave the last account
      // waiting for every other one's round trips.
      await forEachLimited(due, REAP_CONCURRENCY, async ({ session: s, expired }, i) => {
        const item = ended[i]!;
        try {
          if (expired) await this.#audit({ type: 'lease.expired', actor: 'system:reconciler', outcome: 'success', sessionId: s.id, computer: s.computerName, account: s.accountName });
          const r = await this.#teardown(s.id, item.reason, 'system:reconciler', elevations);
          item.done = r.state === 'ended';
        } catch (err) {
          failures.push({ item: `session ${s.id}`, code: isJitgateError(err) ? err.code : 'JIT_ERR_INTERNAL' });
        }
      });
    }
    if (ended.length > 0 && !dryRun) this.#log.warn({ sessions: ended.map((e) => ({ sessionId: e.sessionId, reason: e.reason })) }, 'reconciler ended sessions');
    return { ended, failures, elevations };
  }

  /**
   * Sweep: end the sessions that must end (lease past, provisioning timed
   * out, gateway gone), then compare every store's jitgate-marked accounts
   * with the database and remove what no live lease needs. A listing is only
   * a hint: each account is settled under its lock with everything re-read at
   * that moment (docs/jit-engine.md "Reconciler"), and nothing created after
   * the sweep began is touched. Per-item failures are collected; the sweep
   * goes on.
   */
  async reconcile(opts: { dryRun?: boolean } = {}): Promise<ReconcileReport> {
    const dryRun = opts.dryRun ?? false;
    const repo = this.#o.repo;
    const sweepStartedAt = await repo.dbNow();
    const reaped = await this.reapSessions({ dryRun });
    const report: ReconcileReport = {
      dryRun, expiredSessions: reaped.ended.length, sessions: reaped.ended, actions: [], skipped: [], failures: [...reaped.failures], elevations: [...reaped.elevations],
    };
    await this.#settleElevations(report, sweepStartedAt, dryRun, new Set(reaped.ended.map((x) => x.sessionId)));
    // In a dry run the sessions above were not ended: their accounts show up below as what their teardown would remove.
    for (const [storeName, store] of this.#o.stores) {
      let listed;
      try {
        listed = await store.listManaged();
      } catch (err) {
        report.failures.push({ item: `store ${storeName}`, code: isJitgateError(err) ? err.code : 'JIT_ERR_INTERNAL' });
        continue;
      }
      const rows = await repo.accountsInStore(storeName);
      const live = await repo.liveLeaseAccountIds(this.#o.now(), this.#o.leaseGraceMs);
      const hinted = planReconcile({ installationId: this.#o.installationId, storeAccounts: listed, rows, liveAccountIds: live });
      // One settlement per account: the hint says which accounts may need work, not what to do.
      const targets = new Map<string, { name: string; accountId: string | null }>();
      for (const a of hinted) targets.set(a.accountId ?? `name:${a.name.toLowerCase()}`, { name: a.name, accountId: a.accountId });
      for (const t of targets.values()) {
        try {
          const r = await this.#settle(storeName, store, t, sweepStartedAt, dryRun);
          if (r.skipped) report.skipped.push({ store: storeName, name: t.name, reason: r.skipped });
          for (const a of r.actions) report.actions.push({ ...a, store: storeName, done: a.done });
          for (const f of r.failures) report.failures.push({ item: `${storeName}/${t.name} ${f.kind}`, code: f.code });
        } catch (err) {
          report.failures.push({ item: `${storeName}/${t.name}`, code: isJitgateError(err) ? err.code : 'JIT_ERR_INTERNAL' });
        }
      }
    }
    if (!dryRun) {
      await this.#audit({
        type: 'reconcile.completed', actor: 'system:reconciler', outcome: report.failures.length ? 'failure' : 'success',
        data: {
          sessionsEnded: report.sessions.filter((x) => x.done).length, expiredSessions: report.expiredSessions,
          actions: report.actions.filter((x) => x.done).length, elevationsClosed: report.elevations.filter((x) => x.done).length, skipped: report.skipped.length, failures: report.failures.length,
        },
      });
    }
    if (report.failures.length) this.#log.warn({ failures: report.failures }, 'reconcile finished with failures');
    return report;
  }

  /**
   * Settle one account the listing hinted at: under the lock its provisioning
   * and teardown use, re-read its row, every session that used it and the
   * store's own answer for its name, and act only when its use is provably
   * over and it existed before the sweep began. A row is forgotten only on the
   * store's positive "no such account".
   */
  async #settle(
    storeName: string, store: AccountStore, t: { name: string; accountId: string | null }, sweepStartedAt: Date, dryRun: boolean,
  ): Promise<{ skipped?: string; actions: (ReconcileAction & { done: boolean })[]; failures: { kind: string; code: string }[] }> {
    const repo = this.#o.repo;
    const first = t.accountId ? await repo.getAccount(t.accountId) : null;
    const lockKey = first?.keep ? `account:${first.store}:${first.ownerKey}` : `reconcile:${storeName}:${(first?.name ?? t.name).toLowerCase()}`;
    const body = async () => {
      const row = t.accountId ? await repo.getAccount(t.accountId) : null;
      const now = this.#o.now();
      if (row && row.state !== 'deleted') {
        const sessions = await repo.sessionsOfAccount(row.id);
        const over = provablyOver({ createdAt: row.createdAt, sessions, sweepStartedAt, now, leaseGraceMs: this.#o.leaseGraceMs, provisioningTimeoutMs: this.#o.provisioningTimeoutMs });
        if (!over) {
          return { skipped: row.createdAt >= sweepStartedAt ? 'created after the sweep began' : 'in use by a live session', actions: [], failures: [] };
        }
      }
      const name = row?.name ?? t.name;
      // The store's own answer, now: null only on a positive "no such account".
      const inStore = await store.get(name);
      const actions = planReconcile({
        installationId: this.#o.installationId,
        storeAccounts: inStore ? [inStore] : [],
        rows: row && row.state !== 'deleted' ? [row] : [],
        liveAccountIds: new Set(),
      });
      const out: (ReconcileAction & { done: boolean })[] = [];
      const failures: { kind: string; code: string }[] = [];
      for (const a of actions) {
        let done = false;
        if (!dryRun) {
          try {
            await this.#apply(storeName, store, a, row);
            done = true;
          } catch (err) {
            failures.push({ kind: a.kind, code: isJitgateError(err) ? err.code : 'JIT_ERR_INTERNAL' });
            // Later steps (disable after a failed group removal) would leave a half-done account: stop here, retry next sweep.
            out.push({ ...a, done });
            break;
          }
        }
        out.push({ ...a, done });
      }
      return { actions: out, failures };
    };
    return dryRun ? body() : this.#withLock(lockKey, body);
  }

  /**
   * Elevation records still open after the sessions were reaped (a teardown
   * that crashed or failed mid-remove, a session ended elsewhere without its
   * memberships): settled per session under the session's lock, the lock
   * every teardown takes, with the session and each record re-read there and
   * acted on only when the session's use is provably over (the same rule as
   * accounts). The record is the proof: a membership jitgate did not record
   * as its own is never removed, whatever the directory shows. A dry run
   * lists what would happen, including the elevations of sessions the reaper
   * would end (`reaping`).
   */
  async #settleElevations(report: ReconcileReport, sweepStartedAt: Date, dryRun: boolean, reaping: ReadonlySet<string>): Promise<void> {
    const repo = this.#o.repo;
    const bySession = new Map<string, ElevationRecord[]>();
    for (const e of await repo.openElevations()) bySession.set(e.sessionId, [...(bySession.get(e.sessionId) ?? []), e]);
    const overNow = (e: ElevationRecord, s: SessionRecord | null) =>
      !!s && provablyOver({ createdAt: e.createdAt, sessions: [s], sweepStartedAt, now: this.#o.now(), leaseGraceMs: this.#o.leaseGraceMs, provisioningTimeoutMs: this.#o.provisioningTimeoutMs });
    const skip = (e: ElevationRecord) =>
      report.skipped.push({ store: e.store, name: e.accountName, reason: e.createdAt >= sweepStartedAt ? 'created after the sweep began' : 'in use by a live session' });
    for (const [sessionId, rows] of bySession) {
      if (dryRun) {
        const s = await repo.getSession(sessionId);
        for (const e of rows) {
          if (!reaping.has(sessionId) && !overNow(e, s)) {
            skip(e);
            continue;
          }
          report.elevations.push({ store: e.store, name: e.accountName, group: e.group, sessionId, action: e.addedByJitgate ? 'removed' : 'kept', done: false });
        }
        continue;
      }
      try {
        await this.#withLock(`session:${sessionId}`, async () => {
          const s = await repo.getSession(sessionId);
          for (const listed of rows) {
            try {
              const e = await repo.getElevation(listed.id);
              if (!e || e.state === 'removed') continue;
              if (!overNow(e, s)) {
                skip(e);
                continue;
              }
              const store = this.#o.stores.get(e.store);
              if (!store) throw new JitgateError(JitErrors.JIT_ERR_JIT_NO_STORE, { computer: s?.computerName ?? '', store: e.store });
              await this.#releaseElevation(e, store, 'system:reconciler', 'lease ended (reconciler)', report.elevations);
            } catch (err) {
              report.failures.push({ item: `${listed.store}/${listed.accountName} ${listed.group}`, code: isJitgateError(err) ? err.code : 'JIT_ERR_INTERNAL' });
            }
          }
        });
      } catch (err) {
        report.failures.push({ item: `session ${sessionId} elevations`, code: isJitgateError(err) ? err.code : 'JIT_ERR_INTERNAL' });
      }
    }
  }

  async #apply(storeName: string, store: AccountStore, a: ReconcileAction, row: JitAccountRecord | null): Promise<void> {
    const repo = this.#o.repo;
    const base = { actor: 'system:reconciler', outcome: 'success' as const, account: a.name };
    switch (a.kind) {
      case 'delete':
        await this.#logOff(storeName, store, a.name, row?.computerId ?? null, null, 'reconcile');
        await store.delete(a.name);
        if (a.accountId) await repo.updateAccount(a.accountId, { state: 'deleted', passwordEnc: null });
        await this.#audit({ type: 'reconcile.removed', ...base, data: { store: storeName, action: 'delete', reason: a.reason, ...(row?.location ? { location: row.location } : {}) } });
        return;
      case 'remove-group':
        await this.#logOff(storeName, store, a.name, row?.computerId ?? null, null, 'reconcile');
        await store.removeFromGroup(a.name, a.group);
        await this.#audit({ type: 'reconcile.removed', ...base, data: { store: storeName, action: 'remove-group', group: a.group, reason: a.reason } });
        return;
      case 'disable':
        await this.#logOff(storeName, store, a.name, row?.computerId ?? null, null, 'reconcile');
        await store.disable(a.name);
        await store.setPassword(a.name, generatePassword(a.name));
        await repo.updateAccount(a.accountId, { state: 'idle', passwordEnc: null });
        await this.#audit({ type: 'reconcile.removed', ...base, data: { store: storeName, action: 'disable', reason: a.reason } });
        return;
      case 'forget':
        // Only reached when the store just said, for this name, that no such account exists.
        await repo.updateAccount(a.accountId, { state: 'deleted', passwordEnc: null });
        await this.#audit({ type: 'reconcile.forgotten', ...base, data: { store: storeName, reason: a.reason, ...(row?.location ? { location: row.location } : {}) } });
        return;
    }
  }

  /**
   * Log the account off before its rights go (a disconnected Windows session
   * keeps its admin token; a Linux process keeps its groups): on the store
   * that holds it, and for a domain account also on the computer's local
   * store, which reaches the computer itself. Best effort: a computer that
   * does not answer must not keep the directory from removing the rights;
   * the failure is audited and logged.
   */
  async #logOff(storeName: string, store: AccountStore, name: string, computerId: string | null, sessionId: string | null, reason: string): Promise<void> {
    const targets: { storeName: string; store: AccountStore }[] = [];
    if (store.logOff) targets.push({ storeName, store });
    const computer = computerId ? await this.#o.repo.getComputer(computerId) : null;
    if (computer?.localStore && computer.localStore !== storeName) {
      const local = this.#o.stores.get(computer.localStore);
      if (local?.logOff) targets.push({ storeName: computer.localStore, store: local });
    }
    if (targets.length === 0) return;
    const failed: { store: string; code: string }[] = [];
    for (const t of targets) {
      try {
        await t.store.logOff!(name);
      } catch (err) {
        const code = isJitgateError(err) ? err.code : 'JIT_ERR_INTERNAL';
        this.#log.warn({ sessionId, account: name, store: t.storeName, code }, 'could not log the account off; removing its rights anyway');
        failed.push({ store: t.storeName, code });
      }
    }
    await this.#audit({
      type: 'account.logged_off', actor: 'system:provisioner', outcome: failed.length ? 'failure' : 'success', sessionId, computer: computer?.name ?? null, account: name,
      data: { stores: targets.map((t) => t.storeName), reason, ...(failed.length ? { failed: failed.map((f) => `${f.store}: ${f.code}`) } : {}) },
    });
  }

  /** Collect per-store reachability for `jitgate check`. */
  async checkStores(): Promise<{ store: string; ok: boolean; error?: string; timeBoundMembership?: boolean }[]> {
    const out = [];
    for (const [name, store] of this.#o.stores) {
      try {
        await store.check();
        // Whether the directory itself removes memberships at lease end (AD Privileged Access Management); absent where no store can.
        const timeBound = store.timeBoundMembership ? await store.timeBoundMembership() : undefined;
        out.push({ store: name, ok: true, ...(timeBound === undefined ? {} : { timeBoundMembership: timeBound }) });
      } catch (err) {
        out.push({ store: name, ok: false, error: isJitgateError(err) ? `${err.code}: ${err.message}` : String(err) });
      }
    }
    return out;
  }
}

