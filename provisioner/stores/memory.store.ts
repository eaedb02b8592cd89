import { JitgateError } from '../../core/errors.js';
import { MARKER_PREFIX, type AccountStore, type CreateAccountSpec, type ExistingAccount, type ManagedAccount, type NameRules } from '../account-store.js';
import { StoreErrors } from '../errors.js';

interface MemAccount {
  name: string;
  password: string;
  marker: string;
  enabled: boolean;
  expiresAt: Date | null;
  /** Why it must never be elevated (a built-in administrator, root); null otherwise. */
  protectedReason?: string | null;
}

export type MemoryOp = 'create' | 'addToGroup' | 'removeFromGroup' | 'disable' | 'enable' | 'setPassword' | 'setMarker' | 'delete' | 'get' | 'listManaged' | 'logOff' | 'findExisting' | 'isMember' | 'addMember' | 'removeMember';

/**
 * An AccountStore that keeps users and groups in maps: real state, real
 * rules (name limits, collisions, ownership). The engine's logic tests run
 * against it in milliseconds; the same contract suite runs against the real
 * stores. `failNext` injects a failure into the next call of an operation;
 * `hold` makes the next call of an operation wait until released (a slow
 * directory, a process killed mid-step), so races are tested by order, not by
 * timing.
 */
export class MemoryAccountStore implements AccountStore {
  readonly kind = 'memory' as const;
  readonly nameRules: NameRules;
  readonly accounts = new Map<string, MemAccount>();
  readonly groups = new Map<string, Set<string>>();
  readonly calls: { op: MemoryOp; name: string }[] = [];
  /** Accounts with a logon session on the computer (test seam: `logOn`); `logOff` ends them. */
  readonly logons = new Set<string>();
  /** Names `listManaged` does not show (an account in a container the listing does not search); `get` still finds them. */
  readonly hiddenFromList = new Set<string>();
  #faults = new Map<MemoryOp, Error[]>();
  #holds = new Map<MemoryOp, { entered: () => void; release: Promise<void> }[]>();

  readonly groupsOnCreate: boolean;

  constructor(opts: { groups?: string[]; maxLength?: number; groupsOnCreate?: boolean } = {}) {
    this.nameRules = { maxLength: opts.maxLength ?? 20 };
    this.groupsOnCreate = opts.groupsOnCreate ?? false;
    for (const g of opts.groups ?? ['JIT Admins', 'Helpdesk']) this.groups.set(g, new Set());
  }

  failNext(op: MemoryOp, err: Error = new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: 'memory', reason: 'injected fault' })): void {
    const list = this.#faults.get(op) ?? [];
    list.push(err);
    this.#faults.set(op, list);
  }

  /**
   * The next call of `op` waits, after it is entered, until `release()`.
   * `entered` resolves once the call has reached the store.
   */
  hold(op: MemoryOp): { entered: Promise<void>; release: () => void } {
    let release!: () => void;
    let entered!: () => void;
    const r = new Promise<void>((res) => (release = res));
    const e = new Promise<void>((res) => (entered = res));
    const list = this.#holds.get(op) ?? [];
    list.push({ entered, release: r });
    this.#holds.set(op, list);
    return { entered: e, release };
  }

  async #wait(op: MemoryOp): Promise<void> {
    const h = this.#holds.get(op)?.shift();
    if (!h) return;
    h.entered();
    await h.release;
  }

  /** Test seam: the account logs on to the computer (a session that keeps its token until logged off). */
  logOn(name: string): void {
    this.logons.add(name.toLowerCase());
  }

  async logOff(name: string): Promise<void> {
    await this.#wait('logOff');
    this.#enter('logOff', name);
    this.#managed(name);
    this.logons.delete(name.toLowerCase());
  }

  /** Test seam: an account someone else created (no marker). */
  seedUnmanaged(name: string): void {
    this.accounts.set(name.toLowerCase(), { name, password: 'x', marker: '', enabled: true, expiresAt: null });
  }

  /** Test seam: a person's own account, made outside jitgate (no marker), optionally disabled or protected. */
  seedExisting(name: string, opts: { enabled?: boolean; protectedReason?: string; groups?: string[] } = {}): void {
    this.accounts.set(name.toLowerCase(), { name, password: 'x', marker: '', enabled: opts.enabled ?? true, expiresAt: null, protectedReason: opts.protectedReason ?? null });
    for (const g of opts.groups ?? []) this.#group(g).add(name.toLowerCase());
  }

  /** Test seam: whether `name` is a member of `group` now. */
  memberOf(name: string, group: string): boolean {
    return this.groups.get(group)?.has(name.toLowerCase()) ?? false;
  }

  /** Test seam: whether a password would log on (enabled, not expired, matches). */
  canLogOn(name: string, password: string, now = new Date()): boolean {
    const a = this.accounts.get(name.toLowerCase());
    return !!a && a.enabled && a.password === password && (a.expiresAt === null || a.expiresAt > now);
  }

  #enter(op: MemoryOp, name: string): void {
    this.calls.push({ op, name });
    const f = this.#faults.get(op);
    const err = f?.shift();
    if (err) throw err;
  }

  #validate(name: string): void {
    if (name.length === 0 || name.length > this.nameRules.maxLength || /[^a-z0-9_-]/.test(name)) {
      throw new JitgateError(StoreErrors.JIT_ERR_STORE_INVALID_NAME, { what: 'account', reason: `"${name.slice(0, 40)}" is not [a-z0-9_-]{1,${this.nameRules.maxLength}}` });
    }
  }

  #managed(name: string): MemAccount | undefined {
    const a = this.accounts.get(name.toLowerCase());
    if (a && !a.marker.startsWith(MARKER_PREFIX)) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NOT_MANAGED, { name });
    return a;
  }

  #group(group: string): Set<string> {
    const g = this.groups.get(group);
    if (!g) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP, { group });
    return g;
  }

  async create(spec: CreateAccountSpec): Promise<void> {
    await this.#wait('create');
    this.#enter('create', spec.name);
    this.#validate(spec.name);
    if (spec.password.length === 0) throw new JitgateError(StoreErrors.JIT_ERR_STORE_PASSWORD_POLICY, { reason: 'empty password' });
    if (this.accounts.has(spec.name.toLowerCase())) throw new JitgateError(StoreErrors.JIT_ERR_STORE_ACCOUNT_EXISTS, { name: spec.name });
    const join = this.groupsOnCreate ? (spec.groups ?? []).map((g) => this.#group(g)) : [];
    for (const g of join) g.add(spec.name.toLowerCase());
    this.accounts.set(spec.name.toLowerCase(), { name: spec.name, password: spec.password, marker: spec.marker, enabled: true, expiresAt: spec.expiresAt });
  }

  async addToGroup(name: string, group: string): Promise<void> {
    await this.#wait('addToGroup');
    this.#enter('addToGroup', name);
    const g = this.#group(group);
    const a = this.#managed(name);
    if (!a) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT, { name });
    g.add(a.name.toLowerCase());
  }

  async removeFromGroup(name: string, group: string): Promise<void> {
    await this.#wait('removeFromGroup');
    this.#enter('removeFromGroup', name);
    const g = this.#group(group);
    const a = this.#managed(name);
    if (!a) return;
    g.delete(a.name.toLowerCase());
  }

  async disable(name: string): Promise<void> {
    await this.#wait('disable');
    this.#enter('disable', name);
    const a = this.#managed(name);
    if (!a) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT, { name });
    a.enabled = false;
  }

  async enable(name: string, expiresAt: Date): Promise<void> {
    await this.#wait('enable');
    this.#enter('enable', name);
    const a = this.#managed(name);
    if (!a) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT, { name });
    a.enabled = true;
    a.expiresAt = expiresAt;
  }

  async setPassword(name: string, password: string): Promise<void> {
    await this.#wait('setPassword');
    this.#enter('setPassword', name);
    const a = this.#managed(name);
    if (!a) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT, { name });
    if (password.length === 0) throw new JitgateError(StoreErrors.JIT_ERR_STORE_PASSWORD_POLICY, { reason: 'empty password' });
    a.password = password;
  }

  async setMarker(name: string, marker: string): Promise<void> {
    await this.#wait('setMarker');
    this.#enter('setMarker', name);
    const a = this.#managed(name);
    if (!a) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT, { name });
    a.marker = marker;
  }

  async delete(name: string): Promise<void> {
    await this.#wait('delete');
    this.#enter('delete', name);
    const a = this.#managed(name);
    if (!a) return;
    for (const g of this.groups.values()) g.delete(a.name.toLowerCase());
    this.accounts.delete(a.name.toLowerCase());
  }

  #view(a: MemAccount): ManagedAccount {
    const groups = [...this.groups.entries()].filter(([, m]) => m.has(a.name.toLowerCase())).map(([g]) => g);
    return { name: a.name, marker: a.marker, enabled: a.enabled, groups, expiresAt: a.expiresAt };
  }

  async get(name: string): Promise<ManagedAccount | null> {
    await this.#wait('get');
    this.#enter('get', name);
    const a = this.accounts.get(name.toLowerCase());
    return a ? this.#view(a) : null;
  }

  async listManaged(): Promise<ManagedAccount[]> {
    await this.#wait('listManaged');
    this.#enter('listManaged', '');
    return [...this.accounts.values()].filter((a) => a.marker.startsWith(MARKER_PREFIX) && !this.hiddenFromList.has(a.name.toLowerCase())).map((a) => this.#view(a));
  }

  async findExisting(name: string): Promise<ExistingAccount | null> {
    await this.#wait('findExisting');
    this.#enter('findExisting', name);
    this.#validate(name);
    const a = this.accounts.get(name.toLowerCase());
    if (!a) return null;
    return { name: a.name, enabled: a.enabled, protectedReason: a.protectedReason ?? null, groups: this.#view(a).groups };
  }

  async isMember(name: string, group: string): Promise<boolean> {
    await this.#wait('isMember');
    this.#enter('isMember', name);
    this.#validate(name);
    return this.#group(group).has(name.toLowerCase());
  }

  async addMember(name: string, group: string): Promise<void> {
    await this.#wait('addMember');
    this.#enter('addMember', name);
    this.#validate(name);
    const g = this.#group(group);
    const a = this.accounts.get(name.toLowerCase());
    if (!a) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT, { name });
    if (a.protectedReason) throw new JitgateError(StoreErrors.JIT_ERR_STORE_PROTECTED_ACCOUNT, { name, reason: a.protectedReason });
    g.add(a.name.toLowerCase());
  }

  async removeMember(name: string, group: string): Promise<void> {
    await this.#wait('removeMember');
    this.#enter('removeMember', name);
    this.#validate(name);
    this.#group(group).delete(name.toLowerCase());
  }

  async check(): Promise<void> {}
  async close(): Promise<void> {}
}
