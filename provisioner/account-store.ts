/**
 * The narrow interface every account backend implements (LDAP/AD, WinRM,
 * Linux over SSH, and the in-memory store used by logic tests). The JIT
 * engine only ever talks to this interface; only store adapters import
 * ldapts / ssh2 / http clients.
 *
 * Contract (checked by provisioner/account-store.contract.ts against every store):
 * - Names handed to a store were already validated by the engine for that
 *   store's `nameRules`; stores still escape every value they send
 *   (LDAP DN/filter, shell, PowerShell) and reject what they cannot escape.
 * - `create` fails with JIT_ERR_STORE_ACCOUNT_EXISTS when the name is taken
 *   (by anyone); it never modifies an existing account.
 * - Every mutating call other than `create` refuses (JIT_ERR_STORE_NOT_MANAGED)
 *   an account whose ownership marker does not start with `jitgate:`.
 * - `delete`, `removeFromGroup`, `addToGroup`, `disable`, `enable` are
 *   idempotent: repeating them is safe; deleting a missing account succeeds.
 * - Passwords are never logged, returned, or put into error details.
 * - Elevation (`findExisting`, `isMember`, `addMember`, `removeMember`) works
 *   on accounts jitgate did not create and so carries no marker check; what
 *   guards them instead: `addMember` refuses a protected account
 *   (JIT_ERR_STORE_PROTECTED_ACCOUNT) in the same operation that adds, and
 *   the engine removes only memberships its database records as added by
 *   jitgate (an LDAP `member` value has nowhere to hold a marker).
 */

export type StoreKind = 'ldap' | 'winrm' | 'ssh' | 'memory';

/** Prefix of every ownership marker written by jitgate. */
export const MARKER_PREFIX = 'jitgate:';

export interface NameRules {
  /** Longest account name the backend accepts (AD sAMAccountName / Windows local: 20). */
  readonly maxLength: number;
}

export interface CreateAccountSpec {
  /** Account name, e.g. `alice_k3x9q2`; already validated against `nameRules`. */
  readonly name: string;
  /** Initial password (secret). */
  readonly password: string;
  /** Ownership marker, `jitgate:<installation>:<account-id>`; written where the backend keeps it (AD description, Windows description, Linux GECOS + marker group). */
  readonly marker: string;
  /** Fail-safe expiry written to the account itself (AD accountExpires, useradd -e, -AccountExpires). */
  readonly expiresAt: Date;
  /** Human readable name shown in the directory. */
  readonly displayName?: string;
  /** Container/OU override (LDAP DN of the OU); stores ignore it where meaningless. */
  readonly container?: string;
  /**
   * Configured groups to join as part of creating the account, in the same
   * backend operation (only passed to stores with `groupsOnCreate`; e.g.
   * `useradd -G`). Saves a round trip per group on the session start path.
   */
  readonly groups?: readonly string[];
}

export interface ManagedAccount {
  readonly name: string;
  /** Where the backend keeps the account when that is more than its name (the LDAP DN); absent elsewhere. */
  readonly location?: string;
  /** The ownership marker read back from the backend ('' when none). */
  readonly marker: string;
  readonly enabled: boolean;
  /** Groups the account is a direct member of, by the name the store was configured with. */
  readonly groups: readonly string[];
  readonly expiresAt: Date | null;
}

/** An account that exists independently of jitgate, read for elevation. */
export interface ExistingAccount {
  /** The account's name as the store knows it (AD: sAMAccountName, even when looked up by UPN). */
  readonly name: string;
  /** Where the backend keeps it (the LDAP DN); absent elsewhere. */
  readonly location?: string;
  readonly enabled: boolean;
  /**
   * Why jitgate must never elevate it (AD `adminCount=1`, the built-in
   * Administrator RID 500, root / uid 0, a member of a configured protected
   * group), in words; null when it may be elevated.
   */
  readonly protectedReason: string | null;
  /** Configured groups it is a direct member of. */
  readonly groups: readonly string[];
}

/** What `create` reports back: where the account was made (the LDAP DN), recorded so teardown and the reconciler find it there. */
export interface CreatedAccount {
  readonly location: string | null;
}

/** How a membership is added. */
export interface MembershipOptions {
  /** When the directory should drop the membership by itself (lease end + grace), where it can. */
  readonly until?: Date;
}

export interface AccountStore {
  readonly kind: StoreKind;
  readonly nameRules: NameRules;
  /** NetBIOS domain / realm that credentials of this store's accounts carry (RDP to domain-joined Windows); absent for local accounts. */
  readonly domain?: string;
  /** UPN suffix of this store's accounts (`name@suffix`; directory stores only): RDP logs in with the UPN when no `domain` is set. */
  readonly upnSuffix?: string;
  /** `create` honours `spec.groups` (joins them atomically with the creation); absent means false. */
  readonly groupsOnCreate?: boolean;

  /** Create an enabled account; JIT_ERR_STORE_ACCOUNT_EXISTS on collision. */
  create(spec: CreateAccountSpec): Promise<CreatedAccount | void>;
  /**
   * Add a direct membership; succeeds when already a member. `until`: the
   * directory may remove the membership by itself at that time (AD with
   * Privileged Access Management: a `member` value with a TTL; re-adding
   * moves it); stores without such a feature ignore it.
   */
  addToGroup(name: string, group: string, opts?: MembershipOptions): Promise<void>;
  /** Remove a direct membership; succeeds when not a member or account missing. */
  removeFromGroup(name: string, group: string): Promise<void>;
  /** Disable logon; succeeds when already disabled. */
  disable(name: string): Promise<void>;
  /** Enable logon and move the fail-safe expiry to `expiresAt`. */
  enable(name: string, expiresAt: Date): Promise<void>;
  /** Reset the password (administrative reset, no old password). */
  setPassword(name: string, password: string): Promise<void>;
  /** Update the ownership marker (the account must already carry a jitgate marker). */
  setMarker(name: string, marker: string): Promise<void>;
  /**
   * End every logon session of the account and stop its processes on the
   * computer this store manages (Windows: log off RDP/console sessions and
   * stop processes; Linux: kill the user's processes), so a disconnected
   * session keeps no admin token past its lease. Succeeds when there is
   * nothing to end or the account does not exist. Stores without a computer
   * of their own (LDAP) leave it out; the engine then asks the computer's
   * local store, when it has one.
   */
  logOff?(name: string): Promise<void>;
  /** Delete the account (and its home/profile where the backend has one); succeeds when missing. */
  delete(name: string): Promise<void>;
  /**
   * Read one account, managed or not; null only on a positive "no such
   * account" from the backend (the reconciler forgets a row only on that
   * answer). Searches everywhere the store may have created accounts.
   */
  get(name: string): Promise<ManagedAccount | null>;
  /**
   * Read an existing account for elevation, managed or not (AD also by UPN,
   * `name@suffix`); null only on a positive "no such account".
   */
  findExisting(name: string): Promise<ExistingAccount | null>;
  /** Whether the account is a direct member of the configured group now; false when the account is missing. */
  isMember(name: string, group: string): Promise<boolean>;
  /**
   * Add an existing account to a configured group (elevation). Refuses a
   * missing account (JIT_ERR_STORE_NO_SUCH_ACCOUNT) and a protected one
   * (JIT_ERR_STORE_PROTECTED_ACCOUNT); succeeds when already a member.
   */
  addMember(name: string, group: string, opts?: MembershipOptions): Promise<void>;
  /**
   * Whether the directory removes memberships by itself at `until`
   * (AD: the Privileged Access Management optional feature is enabled in
   * the forest). Absent: never.
   */
  timeBoundMembership?(): Promise<boolean>;
  /**
   * Remove an existing account from a configured group; succeeds when not a
   * member or the account is missing. Not refused for protected accounts:
   * an account may become protected while elevated (AD's SDProp sets
   * adminCount on members of protected groups), and taking rights back is
   * always the safe direction. The caller decides whether jitgate added it.
   */
  removeMember(name: string, group: string): Promise<void>;
  /** Every account whose marker starts with `jitgate:`, wherever the store may have created it (every allowed container). */
  listManaged(): Promise<ManagedAccount[]>;
  /** Reach the backend and verify the service identity works (for `jitgate check`). */
  check(): Promise<void>;
  close(): Promise<void>;
}
