/**
 * AccountStore for Windows local accounts, managed through WinRM.
 *
 * Every operation runs the constant script of provisioner/winrm/scripts.ts
 * with its parameters as base64 JSON on stdin. Names are checked against
 * Windows' rules here, before anything is sent. The ownership marker lives
 * in the account's Description; the script refuses unmarked accounts and
 * so does this adapter (defence in depth).
 */
import type { Logger } from 'pino';
import { JitgateError, isJitgateError } from '../../core/errors.js';
import {
  MARKER_PREFIX,
  type AccountStore,
  type CreateAccountSpec,
  type ExistingAccount,
  type ManagedAccount,
  type NameRules,
} from '../account-store.js';
import { StoreErrors } from '../errors.js';
import { WinRmErrors } from '../winrm/errors.js';
import {
  ACCOUNT_SCRIPT_ARGS,
  POWERSHELL,
  decodeScriptOutput,
  encodeScriptInput,
  type ScriptAccount,
  type ScriptInput,
  type ScriptOp,
} from '../winrm/scripts.js';
import { BasicAuth, NtlmAuth, WsmanTransport, type AuthScheme } from '../winrm/transport.js';
import { WsmanClient } from '../winrm/wsman-client.js';

export interface WinRmStoreOptions {
  /** `http://host:5985/wsman` (NTLM, sealed) or `https://host:5986/wsman`. */
  endpoint: string;
  auth: 'ntlm' | 'basic';
  username: string;
  password: string;
  /** NTLM domain (or the computer name for a local service account). */
  domain?: string;
  /** PEM CA bundle for HTTPS endpoints. */
  caCert?: string;
  /** Configured group name → Windows group name or SID (e.g. `admins: 'S-1-5-32-544'`). */
  groups: Record<string, string>;
  logger: Logger;
  /** Per HTTP request; default 30 s. */
  timeoutMs?: number;
  /** Test seam: replaces the transport's auth scheme (e.g. Kerberos later). */
  authScheme?: AuthScheme;
  /**
   * Accept an `http://` endpoint. NTLM sealing hides the messages, but over
   * plain HTTP no server is authenticated and the NTLM exchange can be
   * relayed. Default false: `http://` is refused at construction.
   */
  allowInsecureTransport?: boolean;
  /** Windows group names or SIDs whose members jitgate never elevates (built-in accounts, RID below 1000, are refused anyway). */
  protectedGroups?: string[];
}

/** Windows local account names: at most 20 characters (SAM), none of `"/\[]:;|=,+*?<>@`, no control characters, not ending in a period. */
const FORBIDDEN = /["/\\[\]:;|=,+*?<>@]/;
const CONTROL = { test: (s: string): boolean => [...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f) };

export function checkWindowsName(name: string): void {
  const bad = (reason: string): never => {
    throw new JitgateError(StoreErrors.JIT_ERR_STORE_INVALID_NAME, { what: 'account', reason });
  };
  if (name.length === 0) bad('empty');
  if (name.length > 20) bad('longer than 20 characters');
  if (FORBIDDEN.test(name)) bad('contains one of "/\\[]:;|=,+*?<>@');
  if (CONTROL.test(name)) bad('contains a control character');
  if (name.endsWith('.')) bad('ends with a period');
  // Beyond Windows' own rules: jitgate only ever generates [A-Za-z0-9._-] names, and
  // anything else (spaces, quotes, $, backticks, non-ASCII) is refused rather than escaped.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) bad('only letters, digits, ".", "_" and "-" are accepted');
}

export class WinRmStore implements AccountStore {
  readonly kind = 'winrm' as const;
  readonly nameRules: NameRules = { maxLength: 20 };
  private readonly log: Logger;
  private readonly client: WsmanClient;
  private readonly storeLabel: string;
  /** Configured group name → Windows group; a Map, so `constructor` or `__proto__` are not groups. */
  private readonly groups: ReadonlyMap<string, string>;

  constructor(private readonly opts: WinRmStoreOptions) {
    const url = new URL(opts.endpoint);
    this.storeLabel = `winrm:${url.host}`;
    this.log = opts.logger.child({ component: 'winrm-store', endpoint: `${url.protocol}//${url.host}` });
    if (opts.auth === 'basic' && url.protocol !== 'https:') {
      throw new JitgateError(StoreErrors.JIT_ERR_STORE_INSECURE, { operation: 'send Basic credentials' });
    }
    if (url.protocol !== 'https:' && opts.allowInsecureTransport !== true) {
      throw new JitgateError(StoreErrors.JIT_ERR_STORE_INSECURE, { operation: 'use WinRM over http:// (no server authentication; NTLM relayable): use https://, or set allowInsecureTransport to accept' });
    }
    if (url.protocol !== 'https:') this.log.warn('winrm store over http:// (allowInsecureTransport)');
    for (const [k, g] of Object.entries(opts.groups)) {
      if (!g || CONTROL.test(g)) throw new JitgateError(StoreErrors.JIT_ERR_STORE_INVALID_NAME, { what: 'group', reason: `group ${k} is empty or has control characters` });
    }
    this.groups = new Map(Object.entries(opts.groups));
    const auth =
      opts.authScheme ??
      (opts.auth === 'basic'
        ? new BasicAuth(opts.username, opts.password)
        : new NtlmAuth({ username: opts.username, password: opts.password, domain: opts.domain, logger: this.log }));
    let transport: WsmanTransport;
    try {
      transport = new WsmanTransport({
        endpoint: opts.endpoint,
        auth,
        caCert: opts.caCert,
        timeoutMs: opts.timeoutMs ?? 30_000,
        logger: this.log,
      });
    } catch (err) {
      if (isJitgateError(err, WinRmErrors.JIT_ERR_WINRM_INSECURE)) {
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_INSECURE, { operation: `use ${auth.name} authentication` }, { cause: err });
      }
      throw err;
    }
    this.client = new WsmanClient({ transport, logger: this.log });
  }

  private groupTarget(group: string): string {
    const target = this.groups.get(group);
    if (target === undefined) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP, { group });
    return target;
  }

  /** Run the script; returns its success payload or throws the mapped StoreError. */
  private async exec(op: ScriptOp, params: Omit<ScriptInput, 'v' | 'op' | 'markerPrefix' | 'groups'>, subject: string) {
    const input: ScriptInput = { v: 1, op, markerPrefix: MARKER_PREFIX, groups: Object.fromEntries(this.groups), ...params };
    let res;
    try {
      res = await this.client.run(POWERSHELL, ACCOUNT_SCRIPT_ARGS, encodeScriptInput(input));
    } catch (err) {
      throw this.translateTransport(err);
    }
    const out = decodeScriptOutput(res.stdout);
    if (!out) {
      // Never echo stdout (it could hold anything); stderr is PowerShell's own error text.
      throw new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, {
        store: this.storeLabel,
        reason: `script exit ${res.exitCode}: ${res.stderr.slice(0, 300) || 'no result'}`,
      });
    }
    if (out.ok) return out;
    const detail = out.detail ?? '';
    this.log.info({ op, account: subject, error: out.error }, 'winrm script refused the operation');
    switch (out.error) {
      case 'exists':
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_ACCOUNT_EXISTS, { name: subject });
      case 'not_managed':
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_NOT_MANAGED, { name: subject });
      case 'no_such_account':
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT, { name: subject });
      case 'no_such_group':
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP, { group: params.group ?? '' });
      case 'password_policy':
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_PASSWORD_POLICY, { reason: 'rejected by the local password policy' });
      case 'invalid_name':
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_INVALID_NAME, { what: 'account', reason: 'rejected by Windows' });
      case 'protected':
        // The script's own words (a fixed set of phrases); anything else is not echoed.
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_PROTECTED_ACCOUNT, { name: subject, reason: /^[A-Za-z0-9 ()-]{1,80}$/.test(detail) ? detail : 'protected' });
      case 'access_denied':
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_UNWILLING, { reason: 'access denied' });
      default:
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: this.storeLabel, reason: `${out.error}: ${detail.slice(0, 300)}` });
    }
  }

  private translateTransport(err: unknown): JitgateError {
    if (!(err instanceof JitgateError)) {
      return new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: this.storeLabel, reason: String(err) }, { cause: err });
    }
    switch (err.code) {
      case WinRmErrors.JIT_ERR_WINRM_AUTH.code:
        return new JitgateError(StoreErrors.JIT_ERR_STORE_AUTH, { store: this.storeLabel, reason: err.message }, { cause: err });
      case WinRmErrors.JIT_ERR_WINRM_TRANSPORT.code:
      case WinRmErrors.JIT_ERR_WINRM_TIMEOUT.code:
        return new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: this.storeLabel, reason: err.message }, { cause: err });
      case WinRmErrors.JIT_ERR_WINRM_INSECURE.code:
        return new JitgateError(StoreErrors.JIT_ERR_STORE_INSECURE, { operation: 'talk to WinRM' }, { cause: err });
      default:
        return new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: this.storeLabel, reason: err.message }, { cause: err });
    }
  }

  private toManaged(a: ScriptAccount): ManagedAccount {
    return {
      name: a.name,
      marker: a.description.startsWith(MARKER_PREFIX) ? a.description : '',
      enabled: a.enabled,
      groups: a.groups,
      expiresAt: a.expiresMs === null ? null : new Date(a.expiresMs),
    };
  }

  private requireMarker(marker: string): void {
    if (!marker.startsWith(MARKER_PREFIX) || CONTROL.test(marker) || marker.length > 48) {
      // Windows limits a local account description to 48 characters.
      throw new JitgateError(StoreErrors.JIT_ERR_STORE_UNWILLING, { reason: 'the marker must start with jitgate:, fit in 48 characters, and have no control characters' });
    }
  }

  async create(spec: CreateAccountSpec): Promise<void> {
    checkWindowsName(spec.name);
    this.requireMarker(spec.marker);
    const log = this.log.child({ account: spec.name });
    try {
      await this.exec('create', { name: spec.name, password: spec.password, marker: spec.marker, expiresMs: spec.expiresAt.getTime() }, spec.name);
      log.info('windows account created');
    } catch (err) {
      if (isJitgateError(err) && err.code !== StoreErrors.JIT_ERR_STORE_UNREACHABLE.code && err.code !== StoreErrors.JIT_ERR_STORE_FAILED.code) throw err;
      // The outcome is unknown (e.g. the connection dropped while the script ran):
      // remove the account only if it carries this very marker, which proves we made it.
      await this.compensateCreate(spec, log);
      throw err;
    }
  }

  private async compensateCreate(spec: CreateAccountSpec, log: Logger): Promise<void> {
    try {
      const acct = await this.get(spec.name);
      if (acct && acct.marker === spec.marker) {
        await this.exec('delete', { name: spec.name }, spec.name);
        log.warn('removed a half-created windows account after a failed create');
      }
    } catch (err) {
      log.warn({ err: isJitgateError(err) ? err.toJSON() : String(err) }, 'could not verify a failed create; the sweep will find it by its marker');
    }
  }

  async addToGroup(name: string, group: string): Promise<void> {
    checkWindowsName(name);
    await this.exec('addToGroup', { name, group: this.groupTarget(group) }, name);
  }

  async removeFromGroup(name: string, group: string): Promise<void> {
    checkWindowsName(name);
    await this.exec('removeFromGroup', { name, group: this.groupTarget(group) }, name);
  }

  async disable(name: string): Promise<void> {
    checkWindowsName(name);
    await this.exec('disable', { name }, name);
  }

  async enable(name: string, expiresAt: Date): Promise<void> {
    checkWindowsName(name);
    await this.exec('enable', { name, expiresMs: expiresAt.getTime() }, name);
  }

  async setPassword(name: string, password: string): Promise<void> {
    checkWindowsName(name);
    await this.exec('setPassword', { name, password }, name);
  }

  async setMarker(name: string, marker: string): Promise<void> {
    checkWindowsName(name);
    this.requireMarker(marker);
    await this.exec('setMarker', { name, marker }, name);
  }

  /**
   * Log off every session of `name` on this computer (disconnected ones
   * too) and stop its processes. A local account must carry the marker; a
   * name with no local account is taken as a domain account seen here
   * (never a built-in one: the script refuses RIDs below 1000).
   */
  async logOff(name: string): Promise<void> {
    checkWindowsName(name);
    const out = await this.exec('logOff', { name }, name);
    const ended = out.loggedOff ?? { sessions: 0, processes: 0 };
    if (ended.sessions > 0 || ended.processes > 0) this.log.info({ account: name, ...ended }, 'windows account logged off');
  }

  async delete(name: string): Promise<void> {
    checkWindowsName(name);
    await this.exec('delete', { name }, name);
  }

  async get(name: string): Promise<ManagedAccount | null> {
    checkWindowsName(name);
    const out = await this.exec('get', { name }, name);
    return out.account ? this.toManaged(out.account) : null;
  }

  async listManaged(): Promise<ManagedAccount[]> {
    const out = await this.exec('list', {}, '*');
    return (out.accounts ?? []).map((a) => this.toManaged(a)).filter((a) => a.marker.startsWith(MARKER_PREFIX));
  }

  async findExisting(name: string): Promise<ExistingAccount | null> {
    checkWindowsName(name);
    const out = await this.exec('findExisting', { name, protectedGroups: this.opts.protectedGroups ?? [] }, name);
    const e = out.existing;
    if (!e) return null;
    // Past its AccountExpires Windows refuses the logon: as good as disabled for elevation (like AD's accountExpires).
    const expired = typeof e.expiresMs === 'number' && e.expiresMs <= Date.now();
    return { name: e.name, enabled: e.enabled && !expired, groups: e.groups, protectedReason: e.protected && /^[A-Za-z0-9 ()-]{1,80}$/.test(e.protected) ? e.protected : e.protected ? 'protected' : null };
  }

  async isMember(name: string, group: string): Promise<boolean> {
    checkWindowsName(name);
    const out = await this.exec('isMember', { name, group: this.groupTarget(group) }, name);
    return out.member === true;
  }

  async addMember(name: string, group: string): Promise<void> {
    checkWindowsName(name);
    await this.exec('addMember', { name, group: this.groupTarget(group), protectedGroups: this.opts.protectedGroups ?? [] }, name);
    this.log.info({ account: name, group }, 'windows existing account added to group (elevation)');
  }

  async removeMember(name: string, group: string): Promise<void> {
    checkWindowsName(name);
    await this.exec('removeMember', { name, group: this.groupTarget(group) }, name);
    this.log.info({ account: name, group }, 'windows existing account removed from group (elevation)');
  }

  async check(): Promise<void> {
    await this.exec('check', {}, '-');
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
