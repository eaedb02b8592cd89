/**
 * The one way the app talks to the gateway (docs/api.md): JSON in and out,
 * the CSRF token on every state-changing request, errors as ApiError with the
 * stable code and details (`details.fields` for per-field validation).
 */

export type Role = 'global_admin' | 'org_admin' | 'technician' | 'auditor';

export interface Person {
  id: string;
  login: string;
  displayName: string;
  role: Role;
  organizationId: string | null;
  totpEnabled: boolean;
  /** An admin set the password: the app shows only the change-password page until it is changed. */
  mustChangePassword?: boolean;
}

export interface Me {
  person: Person | null;
  /** What a half-done sign-in still needs (docs/auth.md). */
  pending: null | 'totp' | 'totp-enrollment' | 'passkey' | 'passkey-enrollment';
  csrfToken: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown>,
  ) {
    super(message);
  }

  /** Per-field messages (`details.fields: {path: message}`) from a 400. */
  get fields(): Record<string, string> {
    const f = this.details.fields;
    return f && typeof f === 'object' ? (f as Record<string, string>) : {};
  }
}

let csrfToken = '';

export function setCsrf(token: string): void {
  csrfToken = token;
}

export function csrf(): string {
  return csrfToken;
}

export const API = '/api/v1';

export async function api<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = csrfToken;
  let payload: string | undefined;
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res: Response;
  try {
    res = await fetch(API + path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, 'JIT_ERR_NETWORK', 'the gateway cannot be reached', {});
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: reported below
  }
  if (!res.ok) {
    const e = (json ?? {}) as { code?: string; message?: string; details?: Record<string, unknown> };
    throw new ApiError(res.status, e.code ?? `HTTP_${res.status}`, e.message ?? `request failed (${res.status})`, e.details ?? {});
  }
  return json as T;
}

export const get = <T>(path: string) => api<T>('GET', path);
export const post = <T>(path: string, body?: unknown) => api<T>('POST', path, body ?? {});
export const patch = <T>(path: string, body: unknown) => api<T>('PATCH', path, body);
export const put = <T>(path: string, body?: unknown) => api<T>('PUT', path, body ?? {});
export const del = <T>(path: string) => api<T>('DELETE', path);

/** Query string from the defined, non-empty values. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}

/** Same-origin websocket URL under /api/v1 with the CSRF token as `csrf` (browsers cannot set headers on upgrades). */
export function wsUrl(path: string, params: Record<string, string | number | undefined>): string {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}${API}${path}${qs({ ...params, csrf: csrfToken })}`;
}

export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

// ---- shapes from docs/api.md ----

export type Protocol = 'ssh' | 'rdp';
export type AccountType = 'domain' | 'local';

export interface JitSettings {
  enabled: boolean;
  /** create: a JIT account per session; elevate: the person's own account joins the admin groups for the lease. */
  mode?: 'create' | 'elevate';
  deleteOnCheckIn: boolean;
  reuseExistingAccount: boolean;
  adminGroups: string[];
  accountMode: 'named' | 'shared';
  accountType: 'domain' | 'local' | 'choose';
  maxSessionMinutes: number;
  container?: string;
}

export interface Computer {
  id: string;
  organizationId: string;
  name: string;
  address: string;
  protocols: Protocol[];
  sshPort: number;
  rdpPort: number;
  domainStore: string | null;
  localStore: string | null;
  jit: Partial<JitSettings> | null;
  policy: Record<string, unknown>;
  restricted: boolean;
  /** `{env: 'prod'}`: team grants select computers by them (docs/auth.md "Teams and labels"). */
  labels?: Record<string, string>;
  canConnect?: boolean;
  accountTypes?: AccountType[];
}

export interface Organization {
  id: string;
  name: string;
  sharedCode: string;
  /** Its people complete a sign-in with a passkey only. */
  requirePasskeys?: boolean;
}

export interface PersonRow {
  id: string;
  login: string;
  displayName: string;
  email?: string | null;
  role: Role;
  organizationId: string | null;
  totpEnabled: boolean;
  disabled: boolean;
  /** Locked after failed sign-ins until then (null/absent: not locked). */
  lockedUntil?: string | null;
  mustChangePassword?: boolean;
  locked: boolean;
}

export interface AccountStore {
  name: string;
  type: 'ldap' | 'ssh' | 'winrm';
  url?: string;
  /** Organizations (names) whose computers may use it; null: global admins only. An org admin is sent only their own stores. */
  organizations?: string[] | null;
  /** Group names configured on the store: the valid admin groups. */
  groups?: string[];
  /** LDAP: DNs a computer's container must equal or lie inside. */
  allowedContainers?: string[] | null;
}

export interface LiveSession {
  sessionId?: string;
  id?: string;
  personLogin: string;
  computerName: string;
  protocol: Protocol;
  account: string | null;
  accountName?: string | null;
  startedAt: string | null;
  state?: string;
  gateway?: string | null;
  canTerminate?: boolean;
  leaseExpiresAt?: string | null;
  canExtend?: boolean;
}

export interface Recording {
  id: string;
  sessionId: string;
  kind: string;
  personLogin: string;
  computerName: string;
  account: string | null;
  startedAt: string;
  endedAt: string | null;
  /** `never_started`: the session never ran (e.g. the computer refused the connection); no file to replay. */
  state: 'recording' | 'recorded' | 'never_started';
  /** null while recording, and for a recording that never started. */
  sizeBytes: number | null;
  sha256: string | null;
  integrity: 'ok' | 'mismatch' | 'unsigned' | 'missing';
  /** Why the session ended, as recorded ("terminated by ada", "lease expired", "its gateway is gone"); null while live. */
  endReason?: string | null;
}

export interface AuditEvent {
  seq: number;
  at: string;
  type: string;
  actor: string;
  outcome: string;
  sessionId: string | null;
  computer: string | null;
  account: string | null;
  data: Record<string, unknown>;
}

/** Responses that are a bare array or wrapped in an object ({items}, {computers}, …). */
export function listOf<T>(v: unknown, key?: string): T[] {
  if (Array.isArray(v)) return v as T[];
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (key && Array.isArray(o[key])) return o[key] as T[];
    for (const val of Object.values(o)) if (Array.isArray(val)) return val as T[];
  }
  return [];
}

/** A person's existing account on one store (GET /people/:id/accounts): what elevation raises. */
export interface PersonAccount {
  store: string;
  type: 'ldap' | 'ssh' | 'winrm';
  /** The admin's mapping; null → the store's rule applies. */
  accountName: string | null;
  defaultAccountName: string;
  effective: string;
  updatedAt: string | null;
}

/** A team of one organization (gateway/api/teams.ts). */
export interface Team {
  id: string;
  organizationId: string;
  name: string;
  description: string;
  syncGroups: string[];
  memberCount?: number;
  grantCount?: number;
  members?: { personId: string; login: string; displayName: string; role: Role; source: 'manual' | 'sync' }[];
  grants?: { id: string; selector: Record<string, string>; text: string }[];
}

/** A computer the person connected to lately (GET /computers/recent). */
export interface RecentComputer {
  computerId: string;
  name: string;
  protocol: Protocol;
  lastConnectedAt: string;
  sessions: number;
}
