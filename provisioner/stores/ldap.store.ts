/**
 * AccountStore for Active Directory (and Samba AD) over LDAP.
 *
 * - Transport: LDAPS, or LDAP + StartTLS, always verifying the server against
 *   the configured CA. The bind password is not sent over plain `ldap://`
 *   unless the store says `allowInsecureTransport` (refused before connecting,
 *   JIT_ERR_STORE_INSECURE), and account passwords never are: AD only accepts
 *   `unicodePwd` over an encrypted connection anyway ([MS-ADTS] 3.1.1.3.1.5.2).
 * - One bound connection for the service account is kept and reused; if it
 *   was lost it is re-established (bind again) once per operation.
 * - Accounts are found by sAMAccountName anywhere under `baseDn`, created in
 *   `accountsContainer` (or the spec's container; `create` reports the DN),
 *   listed by their marker anywhere under `baseDn` (so an account made in a
 *   computer's own container is seen too), and every mutation except
 *   `create` first proves the account carries a `jitgate:` marker in
 *   `description`.
 */
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Attribute, Change, Client, Control, type Entry } from 'ldapts';
import type { Logger } from 'pino';
import { CoreErrors, JitgateError } from '../../core/errors.js';
import {
  MARKER_PREFIX,
  type AccountStore,
  type CreateAccountSpec,
  type CreatedAccount,
  type ExistingAccount,
  type ManagedAccount,
  type NameRules,
} from '../account-store.js';
import { StoreErrors } from '../errors.js';
import { assertValidSamAccountName, escapeDnValue, escapeFilterValue, SAM_MAX_LENGTH } from './ldap-escape.js';
import { LdapResult, ldapResultCode, mapLdapError, type ErrorContext } from './ldap-errors.js';

export interface LdapStoreOptions {
  /** `ldaps://host:636`, or `ldap://host:389` together with `startTls: true`. */
  readonly url: string;
  /** Upgrade an `ldap://` connection with StartTLS (RFC 4511 section 4.14). */
  readonly startTls?: boolean;
  /** PEM of the CA(s) the directory's certificate must chain to. */
  readonly caCert: string | Buffer;
  /** Service account DN (needs create/delete users in the container, write `member` of the groups). */
  readonly bindDn: string;
  readonly bindPassword: string;
  /** Domain naming context, e.g. `DC=corp,DC=example`. Accounts are looked up below it. */
  readonly baseDn: string;
  /** DN of the OU where accounts are created and where `listManaged` looks. */
  readonly accountsContainer: string;
  /** Configured group name → group DN. */
  readonly groups: Readonly<Record<string, string>>;
  /** UPN suffix (`name@<suffix>`); default: the DNS name of `baseDn`. */
  readonly upnSuffix?: string;
  readonly logger: Logger;
  /** Connect and per-operation timeout; default 10 s. */
  readonly timeoutMs?: number;
  /** NetBIOS domain name (`CORP`), carried by the credentials of this store's accounts (RDP to domain-joined computers). */
  readonly domain?: string;
  /**
   * Accept a simple bind over plain `ldap://` without StartTLS (the bind
   * password travels in clear). Default false: such a store refuses to bind.
   */
  readonly allowInsecureTransport?: boolean;
  /**
   * DNs of groups whose members (directly or nested) jitgate never elevates,
   * on top of what AD marks itself (`adminCount=1`, the built-in
   * Administrator RID 500).
   */
  readonly protectedGroups?: readonly string[];
}

/** userAccountControl flags ([MS-ADTS] 2.2.16). */
const UAC_ACCOUNTDISABLE = 0x2;
const UAC_NORMAL_ACCOUNT = 0x200;

/**
 * AD's displayName holds at most 256 characters (rangeUpper 256, [MS-ADA1]
 * Display-Name); a longer value fails the whole add with LDAP 21.
 */
export const DISPLAY_NAME_MAX = 256;

/** `value` cut to DISPLAY_NAME_MAX UTF-16 units (AD counts those) at a code point boundary, ending in `…` when cut. */
export function boundDisplayName(value: string): string {
  if (value.length <= DISPLAY_NAME_MAX) return value;
  let out = '';
  for (const ch of value) {
    if (out.length + ch.length > DISPLAY_NAME_MAX - 1) break;
    out += ch;
  }
  return `${out}…`;
}

/** FILETIME epoch (1601-01-01) to Unix epoch in 100-ns intervals. */
const FILETIME_UNIX_OFFSET = 116_444_736_000_000_000n;
/** accountExpires values meaning "never" ([MS-ADA1] Account-Expires). */
const NEVER_EXPIRES = new Set(['0', '9223372036854775807']);

const ACCOUNT_ATTRIBUTES = ['sAMAccountName', 'description', 'userAccountControl', 'memberOf', 'accountExpires'];
const EXISTING_ATTRIBUTES = ['sAMAccountName', 'userAccountControl', 'memberOf', 'adminCount', 'objectSid', 'accountExpires'];
/** LDAP_MATCHING_RULE_IN_CHAIN ([MS-ADTS] 3.1.1.3.4.4.3): membership through nested groups too. */
const IN_CHAIN = '1.2.840.113556.1.4.1941';
/** LDAP_SERVER_LINK_TTL_OID ([MS-ADTS] 3.1.1.3.4.1.35): a search returns link values with their remaining time-to-live. */
export const LINK_TTL_CONTROL = '1.2.840.113556.1.4.2309';
/** RDN of the Privileged Access Management optional feature ([MS-ADTS] 3.1.1.9.2), listed in `msDS-EnabledFeature` of the Partitions container once enabled. */
const PAM_FEATURE_RDN = 'cn=privileged access management feature';
/** The built-in Administrator's relative identifier ([MS-DTYP] 2.4.2.4). */
const RID_ADMINISTRATOR = 500;
/** A UPN handed to findExisting: a plain local part and a DNS suffix. */
const UPN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$/;

/**
 * A `member` value that the domain controller removes by itself after
 * `seconds` ([MS-ADTS] 3.1.1.3.1.2.4 "TTL" extended DN syntax): `<TTL=n,DN>`.
 */
export function ttlMemberValue(dn: string, seconds: number): string {
  if (!Number.isInteger(seconds) || seconds < 1) throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `a membership time-to-live must be a whole number of seconds above 0, not ${seconds}` });
  return `<TTL=${seconds},${dn}>`;
}

/** Seconds left in a value the link-TTL control returns (`<TTL=n,DN>`), with the DN; null for a value without TTL. */
export function parseTtlMemberValue(value: string): { seconds: number; dn: string } | null {
  const m = /^<TTL=(\d+),(.*)>$/s.exec(value);
  return m ? { seconds: Number(m[1]), dn: m[2]! } : null;
}

/** The RID of a binary objectSid (its last sub-authority, little-endian; [MS-DTYP] 2.4.2.2). */
export function ridOfSid(sid: Buffer): number | null {
  if (sid.length < 12 || sid.length !== 8 + 4 * sid[1]!) return null;
  return sid.readUInt32LE(sid.length - 4);
}

/** Date → AD FILETIME (100-ns intervals since 1601-01-01 UTC) as a decimal string. */
export function toFileTime(date: Date): string {
  return (BigInt(date.getTime()) * 10_000n + FILETIME_UNIX_OFFSET).toString();
}

/** AD FILETIME string → Date; null for "never". */
export function fromFileTime(value: string): Date | null {
  if (NEVER_EXPIRES.has(value) || !/^\d+$/.test(value)) return null;
  return new Date(Number((BigInt(value) - FILETIME_UNIX_OFFSET) / 10_000n));
}

/** `unicodePwd` value: the password in double quotes, UTF-16LE ([MS-ADTS] 3.1.1.3.1.5.2). */
function encodeUnicodePwd(password: string): Buffer {
  return Buffer.from(`"${password}"`, 'utf16le');
}

/** Canonical form for comparing DNs: lower case, no blanks around `,` and `=`. */
function normalizeDn(dn: string): string {
  return dn
    .split(/(?<!\\),/)
    .map((rdn) => rdn.split(/(?<!\\)=/).map((p) => p.trim()).join('='))
    .join(',')
    .toLowerCase();
}

function upnSuffixFromBaseDn(baseDn: string): string {
  return baseDn
    .split(/(?<!\\),/)
    .map((rdn) => rdn.trim())
    .filter((rdn) => /^dc=/i.test(rdn))
    .map((rdn) => rdn.slice(3))
    .join('.')
    .toLowerCase();
}

function first(entry: Entry, attr: string): string | undefined {
  const v = entry[attr];
  const one = Array.isArray(v) ? v[0] : v;
  if (one === undefined) return undefined;
  return Buffer.isBuffer(one) ? one.toString('utf8') : String(one);
}

function all(entry: Entry, attr: string): string[] {
  const v = entry[attr];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
}

interface AccountEntry {
  readonly dn: string;
  readonly account: ManagedAccount;
  readonly uac: number;
}

export class LdapAccountStore implements AccountStore {
  readonly kind = 'ldap' as const;
  readonly nameRules: NameRules = { maxLength: SAM_MAX_LENGTH };
  readonly domain?: string;
  /** The suffix of the `userPrincipalName` set on every account created here. */
  readonly upnSuffix: string;

  readonly #opts: LdapStoreOptions;
  readonly #log: Logger;
  readonly #secure: boolean;
  readonly #upnSuffix: string;
  readonly #timeoutMs: number;
  /** Normalized group DN → configured name. */
  readonly #groupNamesByDn: Map<string, string>;
  #client: Client | null = null;
  #connecting: Promise<Client> | null = null;
  /** Whether the forest has Privileged Access Management enabled, once asked (it cannot be turned off again). */
  #pam: boolean | null = null;
  #closed = false;

  constructor(opts: LdapStoreOptions) {
    const url = new URL(opts.url);
    if (url.protocol !== 'ldaps:' && url.protocol !== 'ldap:') {
      throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'ldap store url must be ldaps:// or ldap://' });
    }
    if (url.protocol === 'ldaps:' && opts.startTls === true) {
      throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'startTls cannot be combined with an ldaps:// url' });
    }
    this.#opts = opts;
    this.#secure = url.protocol === 'ldaps:' || opts.startTls === true;
    this.#upnSuffix = opts.upnSuffix ?? upnSuffixFromBaseDn(opts.baseDn);
    this.upnSuffix = this.#upnSuffix;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.#groupNamesByDn = new Map(Object.entries(opts.groups).map(([name, dn]) => [normalizeDn(dn), name]));
    this.#log = opts.logger.child({ component: 'ldap-store', store: opts.url });
    if (opts.domain !== undefined) this.domain = opts.domain;
    if (!this.#secure) {
      if (opts.allowInsecureTransport === true) this.#log.warn('ldap store binds without TLS (allowInsecureTransport); password operations will be refused');
      else this.#log.warn('ldap store configured without TLS and without allowInsecureTransport; it will refuse to bind');
    }
  }

  // --- connection ---------------------------------------------------------

  #tlsOptions(): ConnectionOptions {
    const host = new URL(this.#opts.url).hostname.replace(/^\[|\]$/g, '');
    // Node checks the certificate against `servername` or `host`; SNI must not be an IP (RFC 6066 section 3).
    return { ca: [this.#opts.caCert], host, ...(isIP(host) === 0 ? { servername: host } : {}), minVersion: 'TLSv1.2' };
  }

  async #connect(): Promise<Client> {
    if (!this.#secure && this.#opts.allowInsecureTransport !== true) {
      // Before any socket is opened: the bind password must not cross the network in clear.
      throw new JitgateError(StoreErrors.JIT_ERR_STORE_INSECURE, { operation: 'send the bind password (ldap:// without StartTLS; set allowInsecureTransport to accept)' });
    }
    const ldaps = new URL(this.#opts.url).protocol === 'ldaps:';
    const client = new Client({
      url: this.#opts.url,
      timeout: this.#timeoutMs,
      connectTimeout: this.#timeoutMs,
      // TLS options only where TLS happens: ldaps:// here, StartTLS below.
      ...(ldaps ? { tlsOptions: this.#tlsOptions() } : {}),
    });
    const started = performance.now();
    try {
      if (this.#opts.startTls === true) await client.startTLS(this.#tlsOptions());
      await client.bind(this.#opts.bindDn, this.#opts.bindPassword);
    } catch (err) {
      await client.unbind().catch(() => undefined);
      throw mapLdapError(err, { store: this.#opts.url, operation: 'bind', timeoutMs: this.#timeoutMs, elapsedMs: performance.now() - started });
    }
    return client;
  }

  async #getClient(): Promise<Client> {
    if (this.#closed) {
      throw new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.#opts.url, reason: 'store closed' });
    }
    if (this.#client?.isConnected === true) return this.#client;
    if (this.#client) {
      // ldapts would silently reconnect unbound (and without StartTLS); start over instead.
      const stale = this.#client;
      this.#client = null;
      await stale.unbind().catch(() => undefined);
    }
    this.#connecting ??= this.#connect()
      .then((c) => {
        this.#client = c;
        return c;
      })
      .finally(() => {
        this.#connecting = null;
      });
    return this.#connecting;
  }

  /**
   * Run `fn` on the bound service connection. A transport failure drops the
   * connection and, when `retry` (the operation is safe to repeat), runs `fn`
   * once more on a fresh bind; otherwise it surfaces as UNREACHABLE.
   */
  async #run<T>(ctx: ErrorContext, fn: (c: Client) => Promise<T>, retry = true): Promise<T> {
    const client = await this.#getClient();
    let started = performance.now();
    const timed = (): ErrorContext => ({ ...ctx, timeoutMs: this.#timeoutMs, elapsedMs: performance.now() - started });
    try {
      return await fn(client);
    } catch (err) {
      if (ldapResultCode(err) !== undefined || err instanceof JitgateError) throw mapLdapError(err, ctx);
      const lost = mapLdapError(err, timed());
      this.#log.warn({ operation: ctx.operation, err: lost.toJSON() }, 'ldap connection lost');
      this.#dropClient(client);
      if (!retry) throw lost;
    }
    const again = await this.#getClient();
    started = performance.now();
    try {
      return await fn(again);
    } catch (err) {
      if (ldapResultCode(err) === undefined && !(err instanceof JitgateError)) this.#dropClient(again);
      throw mapLdapError(err, timed());
    }
  }

  #dropClient(client: Client): void {
    if (this.#client === client) this.#client = null;
    void client.unbind().catch(() => undefined);
  }

  #requireSecure(operation: string): void {
    if (!this.#secure) throw new JitgateError(StoreErrors.JIT_ERR_STORE_INSECURE, { operation });
  }

  #groupDn(group: string): string {
    const dn = Object.hasOwn(this.#opts.groups, group) ? this.#opts.groups[group] : undefined;
    if (dn === undefined) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP, { group });
    return dn;
  }

  // --- reads ----------------------------------------------------------------

  #toAccount(entry: Entry): AccountEntry {
    const uac = Number(first(entry, 'userAccountControl') ?? '0');
    const groups = all(entry, 'memberOf')
      .map((dn) => this.#groupNamesByDn.get(normalizeDn(dn)))
      .filter((g): g is string => g !== undefined);
    const expires = first(entry, 'accountExpires');
    return {
      dn: entry.dn,
      uac,
      account: {
        name: first(entry, 'sAMAccountName') ?? '',
        location: entry.dn,
        marker: first(entry, 'description') ?? '',
        enabled: (uac & UAC_ACCOUNTDISABLE) === 0,
        groups,
        expiresAt: expires === undefined ? null : fromFileTime(expires),
      },
    };
  }

  async #find(client: Client, name: string): Promise<AccountEntry | null> {
    const filter = `(&(objectCategory=person)(objectClass=user)(sAMAccountName=${escapeFilterValue(name)}))`;
    const { searchEntries } = await this.#searchBase(client, { scope: 'sub', filter, attributes: ACCOUNT_ATTRIBUTES });
    const entry = searchEntries[0];
    return entry === undefined ? null : this.#toAccount(entry);
  }

  /** A search below `baseDn`; a missing base (LDAP 32) is a configuration failure, never "no such account". */
  async #searchBase(client: Client, options: Parameters<Client['search']>[1]): ReturnType<Client['search']> {
    try {
      return await client.search(this.#opts.baseDn, options);
    } catch (err) {
      if (ldapResultCode(err) !== LdapResult.noSuchObject) throw err;
      throw new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: this.#opts.url, reason: `baseDn ${this.#opts.baseDn} does not exist (LDAP 32)` }, { cause: err });
    }
  }

  /** The account, after proving jitgate created it; null when missing. */
  async #findManaged(client: Client, name: string): Promise<AccountEntry | null> {
    const found = await this.#find(client, name);
    if (found && !found.account.marker.startsWith(MARKER_PREFIX)) {
      throw new JitgateError(StoreErrors.JIT_ERR_STORE_NOT_MANAGED, { name });
    }
    return found;
  }

  async #requireManaged(client: Client, name: string): Promise<AccountEntry> {
    const found = await this.#findManaged(client, name);
    if (!found) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT, { name });
    return found;
  }

  /**
   * Null only when the directory answered the search with no entry: the
   * reconciler forgets an account on that answer alone. Every other outcome
   * (unreachable, timed out, refused, a missing baseDn) throws.
   */
  async get(name: string): Promise<ManagedAccount | null> {
    assertValidSamAccountName(name);
    return this.#run({ store: this.#opts.url, operation: 'get', name }, async (c) => (await this.#find(c, name))?.account ?? null);
  }

  async listManaged(): Promise<ManagedAccount[]> {
    // The trailing `*` is a deliberate substring wildcard; the value before it is escaped (RFC 4515).
    const filter = `(&(objectCategory=person)(objectClass=user)(description=${escapeFilterValue(MARKER_PREFIX)}*))`;
    return this.#run({ store: this.#opts.url, operation: 'listManaged' }, async (c) => {
      const out: ManagedAccount[] = [];
      // The whole baseDn, not only accountsContainer: a computer's own
      // container (spec.container) may hold accounts too, and an account
      // the sweep cannot see keeps its groups (issue 12, item 3).
      const pages = c.searchPaginated(this.#opts.baseDn, {
        scope: 'sub',
        filter,
        attributes: ACCOUNT_ATTRIBUTES,
        paged: { pageSize: 500 },
      });
      for await (const page of pages) {
        for (const entry of page.searchEntries) {
          const { account } = this.#toAccount(entry);
          // Defence in depth: the server evaluated the filter; check the prefix case-sensitively here.
          if (account.marker.startsWith(MARKER_PREFIX)) out.push(account);
        }
      }
      return out;
    });
  }

  // --- elevation: existing accounts ---------------------------------------------

  /** Why an existing account must never be elevated, in words; null when it may be. */
  async #protection(c: Client, entry: Entry): Promise<string | null> {
    if (first(entry, 'adminCount') === '1') return 'adminCount=1: a member, now or once, of a protected AD group';
    const sid = entry.objectSid;
    const raw = Array.isArray(sid) ? sid[0] : sid;
    if (Buffer.isBuffer(raw) && ridOfSid(raw) === RID_ADMINISTRATOR) return 'the built-in Administrator (RID 500)';
    const groups = this.#opts.protectedGroups ?? [];
    if (groups.length > 0) {
      const any = groups.map((dn) => `(memberOf:${IN_CHAIN}:=${escapeFilterValue(dn)})`).join('');
      const filter = `(&(objectCategory=person)(objectClass=user)(sAMAccountName=${escapeFilterValue(first(entry, 'sAMAccountName') ?? '')})(|${any}))`;
      const { searchEntries } = await this.#searchBase(c, { scope: 'sub', filter, attributes: ['dn'] });
      if (searchEntries.length > 0) return 'a member of a protected group';
    }
    return null;
  }

  async #findExisting(c: Client, name: string): Promise<Entry | null> {
    const byUpn = name.includes('@');
    if (byUpn) {
      if (!UPN.test(name)) throw new JitgateError(StoreErrors.JIT_ERR_STORE_INVALID_NAME, { what: 'account', reason: 'not a user principal name (name@dns.suffix)' });
    } else assertValidSamAccountName(name);
    const filter = `(&(objectCategory=person)(objectClass=user)(${byUpn ? 'userPrincipalName' : 'sAMAccountName'}=${escapeFilterValue(name)}))`;
    const { searchEntries } = await this.#searchBase(c, { scope: 'sub', filter, attributes: EXISTING_ATTRIBUTES, explicitBufferAttributes: ['objectSid'] });
    return searchEntries[0] ?? null;
  }

  async findExisting(name: string): Promise<ExistingAccount | null> {
    return this.#run({ store: this.#opts.url, operation: 'findExisting', name }, async (c) => {
      const entry = await this.#findExisting(c, name);
      if (!entry) return null;
      const { account } = this.#toAccount(entry);
      // An account past its accountExpires cannot log on: as good as disabled for elevation.
      const expired = account.expiresAt !== null && account.expiresAt.getTime() <= Date.now();
      return { name: account.name, location: entry.dn, enabled: account.enabled && !expired, protectedReason: await this.#protection(c, entry), groups: account.groups };
    });
  }

  async isMember(name: string, group: string): Promise<boolean> {
    assertValidSamAccountName(name);
    this.#groupDn(group);
    return this.#run({ store: this.#opts.url, operation: 'isMember', name, group }, async (c) => {
      const entry = await this.#findExisting(c, name);
      return entry !== null && this.#toAccount(entry).account.groups.includes(group);
    });
  }

  async addMember(name: string, group: string, opts: { until?: Date } = {}): Promise<void> {
    assertValidSamAccountName(name);
    const groupDn = this.#groupDn(group);
    await this.#run({ store: this.#opts.url, operation: 'addMember', name, group }, async (c) => {
      const entry = await this.#findExisting(c, name);
      if (!entry) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT, { name });
      // Checked again in the operation that adds: the engine's earlier read may be stale.
      const reason = await this.#protection(c, entry);
      if (reason) throw new JitgateError(StoreErrors.JIT_ERR_STORE_PROTECTED_ACCOUNT, { name, reason });
      await this.#addMemberValue(c, groupDn, entry.dn, opts.until);
    });
    this.#log.info({ account: name, group }, 'ldap existing account added to group (elevation)');
  }

  async removeMember(name: string, group: string): Promise<void> {
    assertValidSamAccountName(name);
    const groupDn = this.#groupDn(group);
    await this.#run({ store: this.#opts.url, operation: 'removeMember', name, group }, async (c) => {
      const entry = await this.#findExisting(c, name);
      if (!entry) return;
      try {
        await c.modify(groupDn, new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [entry.dn] }) }));
      } catch (err) {
        const code = ldapResultCode(err);
        if (code === LdapResult.noSuchAttribute || code === LdapResult.unwillingToPerform) return;
        throw err;
      }
    });
    this.#log.info({ account: name, group }, 'ldap existing account removed from group (elevation)');
  }

  // --- mutations --------------------------------------------------------------

  async create(spec: CreateAccountSpec): Promise<CreatedAccount> {
    assertValidSamAccountName(spec.name);
    if (!spec.marker.startsWith(MARKER_PREFIX)) {
      throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `marker must start with ${MARKER_PREFIX}` });
    }
    this.#requireSecure('set a password');
    const container = spec.container ?? this.#opts.accountsContainer;
    const dn = `CN=${escapeDnValue(spec.name)},${container}`;
    const upn = `${spec.name}@${this.#upnSuffix}`;
    const ctx = { store: this.#opts.url, operation: 'create', name: spec.name };
    // Samba and AD accept unicodePwd in the add itself over TLS, so the account
    // never exists enabled without its password; userAccountControl 512 there
    // too (a password-less enabled add would be refused with 53 / 19).
    const attributes = [
      new Attribute({ type: 'objectClass', values: ['top', 'person', 'organizationalPerson', 'user'] }),
      new Attribute({ type: 'cn', values: [spec.name] }),
      new Attribute({ type: 'sAMAccountName', values: [spec.name] }),
      new Attribute({ type: 'userPrincipalName', values: [upn] }),
      new Attribute({ type: 'description', values: [spec.marker] }),
      new Attribute({ type: 'displayName', values: [boundDisplayName(spec.displayName ?? spec.name)] }),
      new Attribute({ type: 'userAccountControl', values: [String(UAC_NORMAL_ACCOUNT)] }),
      new Attribute({ type: 'accountExpires', values: [toFileTime(spec.expiresAt)] }),
      new Attribute({ type: 'unicodePwd', values: [encodeUnicodePwd(spec.password)] }),
    ];
    await this.#run(
      ctx,
      async (c) => {
        // Clear answer for the common case; the directory still enforces uniqueness on add.
        if (await this.#nameOrUpnTaken(c, spec.name, upn)) {
          throw new JitgateError(StoreErrors.JIT_ERR_STORE_ACCOUNT_EXISTS, { name: spec.name });
        }
        try {
          await c.add(dn, attributes);
        } catch (err) {
          // 19 is both "password policy" and "duplicate UPN/sAMAccountName"; tell them apart by state.
          if (ldapResultCode(err) === LdapResult.constraintViolation && (await this.#nameOrUpnTaken(c, spec.name, upn))) {
            throw new JitgateError(StoreErrors.JIT_ERR_STORE_ACCOUNT_EXISTS, { name: spec.name }, { cause: err });
          }
          throw err;
        }
      },
      // Not repeated after a lost connection: the add may have been applied.
      false,
    );
    this.#log.info({ account: spec.name, dn }, 'ldap account created');
    return { location: dn };
  }

  async #nameOrUpnTaken(c: Client, name: string, upn: string): Promise<boolean> {
    const filter = `(|(sAMAccountName=${escapeFilterValue(name)})(userPrincipalName=${escapeFilterValue(upn)}))`;
    const { searchEntries } = await this.#searchBase(c, { scope: 'sub', filter, attributes: ['dn'] });
    return searchEntries.length > 0;
  }

  async addToGroup(name: string, group: string, opts: { until?: Date } = {}): Promise<void> {
    assertValidSamAccountName(name);
    const groupDn = this.#groupDn(group);
    await this.#run({ store: this.#opts.url, operation: 'addToGroup', name, group }, async (c) => {
      const acct = await this.#requireManaged(c, name);
      await this.#addMemberValue(c, groupDn, acct.dn, opts.until);
    });
    this.#log.info({ account: name, group }, 'ldap group membership added');
  }

  async removeFromGroup(name: string, group: string): Promise<void> {
    assertValidSamAccountName(name);
    const groupDn = this.#groupDn(group);
    await this.#run({ store: this.#opts.url, operation: 'removeFromGroup', name, group }, async (c) => {
      const acct = await this.#findManaged(c, name);
      if (!acct) return;
      try {
        await c.modify(groupDn, new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [acct.dn] }) }));
      } catch (err) {
        const code = ldapResultCode(err);
        // Not a member: 16 noSuchAttribute (Samba), 53 unwillingToPerform (Windows AD).
        if (code === LdapResult.noSuchAttribute || code === LdapResult.unwillingToPerform) return;
        throw err;
      }
    });
    this.#log.info({ account: name, group }, 'ldap group membership removed');
  }

  async disable(name: string): Promise<void> {
    assertValidSamAccountName(name);
    await this.#run({ store: this.#opts.url, operation: 'disable', name }, async (c) => {
      const acct = await this.#requireManaged(c, name);
      if ((acct.uac & UAC_ACCOUNTDISABLE) !== 0) return;
      await c.modify(acct.dn, this.#replace('userAccountControl', String(acct.uac | UAC_ACCOUNTDISABLE)));
    });
    this.#log.info({ account: name }, 'ldap account disabled');
  }

  async enable(name: string, expiresAt: Date): Promise<void> {
    assertValidSamAccountName(name);
    await this.#run({ store: this.#opts.url, operation: 'enable', name }, async (c) => {
      const acct = await this.#requireManaged(c, name);
      await c.modify(acct.dn, [
        this.#replace('accountExpires', toFileTime(expiresAt)),
        this.#replace('userAccountControl', String(acct.uac & ~UAC_ACCOUNTDISABLE)),
      ]);
    });
    this.#log.info({ account: name, expiresAt: expiresAt.toISOString() }, 'ldap account enabled');
  }

  async setPassword(name: string, password: string): Promise<void> {
    assertValidSamAccountName(name);
    this.#requireSecure('set a password');
    await this.#run({ store: this.#opts.url, operation: 'setPassword', name }, async (c) => {
      const acct = await this.#requireManaged(c, name);
      // Administrative reset: a single replace of unicodePwd ([MS-ADTS] 3.1.1.3.1.5.2).
      await c.modify(acct.dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'unicodePwd', values: [encodeUnicodePwd(password)] }) }));
    });
    this.#log.info({ account: name }, 'ldap account password reset');
  }

  async setMarker(name: string, marker: string): Promise<void> {
    assertValidSamAccountName(name);
    if (!marker.startsWith(MARKER_PREFIX)) {
      throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `marker must start with ${MARKER_PREFIX}` });
    }
    await this.#run({ store: this.#opts.url, operation: 'setMarker', name }, async (c) => {
      const acct = await this.#requireManaged(c, name);
      await c.modify(acct.dn, this.#replace('description', marker));
    });
    this.#log.info({ account: name, marker }, 'ldap account marker updated');
  }

  async delete(name: string): Promise<void> {
    assertValidSamAccountName(name);
    let deleted = false;
    await this.#run({ store: this.#opts.url, operation: 'delete', name }, async (c) => {
      const acct = await this.#findManaged(c, name);
      if (!acct) return;
      try {
        await c.del(acct.dn);
        deleted = true;
      } catch (err) {
        if (ldapResultCode(err) === LdapResult.noSuchObject) return;
        throw err;
      }
    });
    if (deleted) this.#log.info({ account: name }, 'ldap account deleted');
  }

  #replace(type: string, value: string): Change {
    return new Change({ operation: 'replace', modification: new Attribute({ type, values: [value] }) });
  }

  // --- lifecycle ----------------------------------------------------------------

  // --- time-bound membership (Privileged Access Management) ---------------------

  /**
   * Whether the forest has the Privileged Access Management optional feature
   * enabled: its DN is in `msDS-EnabledFeature` of
   * `CN=Partitions,<configurationNamingContext>`. Samba has no such feature
   * (false). Asked once per store; an enabled feature cannot be disabled.
   */
  async timeBoundMembership(): Promise<boolean> {
    if (this.#pam !== null) return this.#pam;
    return this.#run({ store: this.#opts.url, operation: 'timeBoundMembership' }, (c) => this.#pamOn(c));
  }

  /**
   * Add `dn` to the group. With `until` and PAM enabled, the value carries a
   * time-to-live (`<TTL=seconds,DN>`) so the domain controller removes the
   * membership by itself even if jitgate is gone; re-adding an existing
   * member with a TTL sets the new TTL. Read back with the link-TTL control:
   * a membership that came back without a TTL fails the add (it would
   * outlive every jitgate process). Without PAM: a plain value, as before.
   */
  async #addMemberValue(c: Client, groupDn: string, dn: string, until: Date | undefined): Promise<void> {
    const seconds = until === undefined ? null : Math.max(1, Math.ceil((until.getTime() - Date.now()) / 1000));
    const timed = seconds !== null && (await this.#pamOn(c));
    const value = timed ? ttlMemberValue(dn, seconds) : dn;
    try {
      await c.modify(groupDn, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [value] }) }));
    } catch (err) {
      const code = ldapResultCode(err);
      // Already a member: 20 attributeOrValueExists (68 on some AD versions).
      if (code !== LdapResult.attributeOrValueExists && code !== LdapResult.entryAlreadyExists) throw err;
      if (!timed) return;
    }
    if (!timed) return;
    const left = await this.#memberTtl(c, groupDn, dn);
    if (left === null) {
      throw new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: this.#opts.url, reason: `the membership of ${dn} in ${groupDn} came back without a time-to-live` });
    }
    this.#log.info({ group: groupDn, ttlSeconds: left }, 'ldap membership added with a time-to-live (PAM)');
  }

  /** #pam on the connection at hand (inside #run), asked once. */
  async #pamOn(c: Client): Promise<boolean> {
    if (this.#pam !== null) return this.#pam;
    const root = await c.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['configurationNamingContext'] });
    const config = root.searchEntries[0] ? first(root.searchEntries[0], 'configurationNamingContext') : undefined;
    if (!config) return (this.#pam = false);
    const { searchEntries } = await c.search(`CN=Partitions,${config}`, { scope: 'base', filter: '(objectClass=*)', attributes: ['msDS-EnabledFeature'] });
    this.#pam = searchEntries.some((e) => all(e, 'msDS-EnabledFeature').some((v) => normalizeDn(v).startsWith(`${PAM_FEATURE_RDN},`)));
    return this.#pam;
  }

  /** Seconds left on `dn`'s membership of the group, read with the link-TTL control; null when it has none (or is not a member). */
  async #memberTtl(c: Client, groupDn: string, dn: string): Promise<number | null> {
    const { searchEntries } = await c.search(groupDn, { scope: 'base', filter: '(objectClass=*)', attributes: ['member'] }, new Control(LINK_TTL_CONTROL, { critical: true }));
    const want = normalizeDn(dn);
    for (const v of searchEntries[0] ? all(searchEntries[0], 'member') : []) {
      const t = parseTtlMemberValue(v);
      if (t && normalizeDn(t.dn) === want) return t.seconds;
    }
    return null;
  }

  async check(): Promise<void> {
    await this.#run({ store: this.#opts.url, operation: 'check' }, async (c) => {
      await c.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['defaultNamingContext'] });
      for (const [what, dn] of [['baseDn', this.#opts.baseDn], ['accountsContainer', this.#opts.accountsContainer], ...Object.entries(this.#opts.groups).map(([g, dn]) => [`group ${g}`, dn])] as const) {
        try {
          await c.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes: ['dn'] });
        } catch (err) {
          if (ldapResultCode(err) !== LdapResult.noSuchObject) throw err;
          throw new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: this.#opts.url, reason: `${what} does not exist` }, { cause: err });
        }
      }
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const pending = this.#connecting;
    const client = this.#client ?? (pending ? await pending.catch(() => null) : null);
    this.#client = null;
    if (client) await client.unbind().catch(() => undefined);
  }
}
