import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { AuditLog } from '../../core/audit.js';
import type { Database, Queryable } from '../../core/db/database.js';
import { CoreErrors, JitgateError } from '../../core/errors.js';
import type { Logger } from '../../core/logging.js';
import type { SecretBox } from '../../core/secret-box.js';
import type { Config } from '../../config/schema.js';
import { canManagePerson } from '../access-policy.js';
import { syncTeams } from '../teams/team-grants.js';
import type { FrontDoorIdentity } from '../contracts.js';
import type { EndLiveSessions, LiveSessionMatch } from '../sessions/end-live-sessions.js';
import { AuthErrors } from './errors.js';
import type { MappingResult } from './claim-mapping.js';
import { checkPasswordPolicy, hashPassword, verifyPassword, warmUpPasswordHashing } from './password.js';
import { createPerson, normalizeLogin, sha256hex, LOGIN_PATTERN } from './people.js';
import type { Principal, Role } from './principal.js';
import { parsePublicKeyLine, fingerprintOf } from './ssh-key.js';
import { stepUpSatisfied } from './step-up.js';
import {
  RECOVERY_CODE_COUNT,
  hashRecoveryCode,
  isRecoveryCodeShape,
  isTotpCodeShape,
  matchRecoveryCode,
  newRecoveryCode,
  newRecoveryCodeSet,
  newTotpSecret,
  qrDataUrl,
  totpUri,
  verifyTotp,
} from './totp.js';

export type AuthConfig = Config['auth'];

export interface IdentityDeps {
  db: Database;
  box: SecretBox;
  audit: AuditLog;
  log: Logger;
  cfg: AuthConfig;
  /** Clock (tests move it to check lockout expiry and TOTP steps). */
  now?: () => Date;
  /**
   * End live terminal/RDP sessions on every gateway (gateway/sessions):
   * signing out or revoking a sign-in ends what it opened, a password change
   * the person's others. Absent (worker-only tools) → nothing to end.
   */
  endLiveSessions?: EndLiveSessions;
}

/** Where the request came from (audited, shown in the session list). */
export interface ClientInfo {
  ip: string;
  userAgent: string;
}

export type SignInNext = 'totp' | 'totp-enrollment' | 'passkey' | 'passkey-enrollment' | 'done';
/** What a half-done sign-in still needs (GET /auth/me `pending`, docs/auth.md). */
export type PendingStep = Exclude<SignInNext, 'done'>;

/** Second factors proved by jitgate itself: they make a sign-in fresh for step-up (step_up_at). */
const STEP_UP_FACTORS = new Set(['totp', 'recovery-code', 'totp-enrollment', 'passkey', 'passkey-enrollment']);

/**
 * A person the identity provider (OIDC or LDAP) vouched for, with what the
 * mapping rules made of them. The provider's word is checked before this:
 * the ID token's signature, issuer, audience, nonce (oidc.service.ts) or the
 * directory bind as the person (ldap-sign-in.ts).
 */
export interface ExternalSignIn {
  /** Configured provider name (audited, stored on the sign-in). */
  provider: string;
  /** With `subject`, the only link to a person (never the e-mail). */
  issuer: string;
  subject: string;
  /** Wanted login for a new person (preferred_username, sAMAccountName); made unique. */
  loginHint: string;
  displayName: string;
  email: string | null;
  mapping: MappingResult;
  /** The provider asserted a second factor (amr mfa/otp/hwk): no jitgate TOTP. */
  mfaDone: boolean;
  /** OIDC session id (`sid`), for back-channel logout. */
  idpSid: string | null;
  /** The person's groups at this sign-in: team memberships follow them (gateway/teams/team-policy.ts planTeamSync). */
  groups?: readonly string[];
}

/** Minutes a passkey or code confirmation lets the person make new recovery codes (My account). */
export const RECOVERY_CONFIRM_MINUTES = 5;

/** Minutes a half-done sign-in (password accepted, second factor pending) stays usable. */
export const PENDING_SIGN_IN_MINUTES = 10;

interface PersonRow {
  id: string;
  login: string;
  display_name: string;
  role: Role;
  organization_id: string | null;
  password_hash: string | null;
  totp_secret_enc: string | null;
  totp_enabled: boolean;
  totp_last_step: string | number | null;
  recovery_codes: string[] | string;
  failed_logins: number;
  locked_until: Date | string | null;
  disabled: boolean;
  must_change_password: boolean;
}

interface SessionRow {
  id: string;
  person_id: string;
  stage: 'password' | 'done';
  pending_totp_enc: string | null;
  created_at: Date | string;
  last_seen_at: Date | string;
  expires_at: Date | string;
}

/** A live sign-in session looked up from its cookie token. */
export interface AuthSession {
  id: string;
  stage: 'password' | 'done';
  person: PersonView;
  hasPendingEnrollment: boolean;
  /** The person has at least one passkey (migration 15). */
  hasPasskey: boolean;
  /** Their organization requires a passkey to complete a sign-in (organizations.require_passkeys). */
  passkeyRequired: boolean;
  /** Half-done: what is still needed (null when done). */
  pending: PendingStep | null;
  lastSeenAt: Date;
  /** The derived CSRF token for this session. */
  csrfToken: string;
}

/** What may leave the service about a person (no hashes, no secrets). */
export interface PersonView {
  id: string;
  login: string;
  displayName: string;
  role: Role;
  organizationId: string | null;
  totpEnabled: boolean;
  /** An admin set the password: every API call but POST /me/password is refused until it is changed. */
  mustChangePassword: boolean;
}

export interface AuthSessionListItem {
  id: string;
  personId: string;
  login: string;
  stage: 'password' | 'done';
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
  ip: string | null;
  userAgent: string | null;
}

export interface SshKeyView {
  id: string;
  label: string;
  fingerprint: string;
  algorithm: string;
  createdAt: string;
}

const PERSON_COLS =
  'p.id, p.login, p.display_name, p.role, p.organization_id, p.password_hash, p.totp_secret_enc, p.totp_enabled, p.totp_last_step, p.recovery_codes, p.failed_logins, p.locked_until, p.disabled, p.must_change_password';

const toDate = (v: Date | string): Date => (v instanceof Date ? v : new Date(v));
const iso = (v: Date | string): string => toDate(v).toISOString();

/** SHA-256 of the cookie token: what the database keeps. */
export function tokenHash(token: string): string {
  return sha256hex(`session:${token}`);
}

/**
 * The CSRF token of a session, derived from its cookie token with a
 * different label, so neither the database nor the CSRF token reveals the
 * cookie. A cross-site page cannot read it (SameSite=Strict, no CORS).
 */
export function csrfTokenFor(token: string): string {
  return createHash('sha256').update(`csrf:${token}`).digest('base64url');
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function personView(p: PersonRow): PersonView {
  return {
    id: p.id, login: p.login, displayName: p.display_name, role: p.role, organizationId: p.organization_id, totpEnabled: p.totp_enabled,
    mustChangePassword: Boolean(p.must_change_password),
  };
}

function recoveryHashes(p: PersonRow): string[] {
  const v = typeof p.recovery_codes === 'string' ? (JSON.parse(p.recovery_codes) as unknown) : p.recovery_codes;
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/**
 * What a half-done sign-in needs next (docs/auth.md, Passkeys). Where the
 * organization requires passkeys: a passkey when the person has one
 * (a recovery code still lets them enroll a new one); otherwise their TOTP
 * first, then enrolling a passkey. Elsewhere: TOTP when enrolled, else a
 * passkey when they have one (or a recovery code, then enrolling a new
 * passkey), else enrolling TOTP (or a passkey).
 */
export function pendingStep(x: { totpEnabled: boolean; hasPasskey: boolean; passkeyRequired: boolean; secondFactorPassed: boolean }): PendingStep {
  // Passed without completing: where passkeys are required, or a passkey-only person's recovery code (a lost passkey).
  if (x.secondFactorPassed) return 'passkey-enrollment';
  if (x.passkeyRequired) {
    if (x.hasPasskey) return 'passkey';
    return x.totpEnabled ? 'totp' : 'passkey-enrollment';
  }
  if (x.totpEnabled) return 'totp';
  return x.hasPasskey ? 'passkey' : 'totp-enrollment';
}

/** Audit actor for an attempted login: the login itself only when it looks like one (never a mistyped password). */
function actorFor(login: string): string {
  return LOGIN_PATTERN.test(login) ? login : 'anonymous';
}

/**
 * Identity and sign-in: passwords (argon2id), TOTP with replay protection,
 * recovery codes, lockout, sign-in sessions, bootstrap and SSH keys. The
 * HTTP plugin (auth.plugin.ts) and the SSH front door both go through it, so
 * failures count towards the same lockout.
 */
export class IdentityService implements FrontDoorIdentity {
  readonly #db: Database;
  readonly #box: SecretBox;
  readonly #audit: AuditLog;
  readonly #log: Logger;
  readonly cfg: AuthConfig;
  readonly now: () => Date;
  readonly #endLive: EndLiveSessions | undefined;

  constructor(deps: IdentityDeps) {
    this.#db = deps.db;
    this.#box = deps.box;
    this.#audit = deps.audit;
    this.#log = deps.log.child({ component: 'auth' });
    this.cfg = deps.cfg;
    this.now = deps.now ?? (() => new Date());
    this.#endLive = deps.endLiveSessions;
    void warmUpPasswordHashing();
  }

  /**
   * After the sign-in rows are revoked (committed): end the live sessions they
   * opened. A failure here (Redis down) is logged and re-thrown, so the caller
   * sees the request fail rather than believe the sessions ended.
   */
  async #endLiveSessions(match: LiveSessionMatch, by: string): Promise<void> {
    if (!this.#endLive) return;
    try {
      const ended = await this.#endLive(match, by);
      if (ended.length > 0) this.#log.info({ personId: match.personId, sessions: ended, by }, 'live sessions ended with their sign-in');
    } catch (err) {
      this.#log.error({ err, personId: match.personId }, 'ending live sessions failed');
      throw err;
    }
  }

  // ---- people ---------------------------------------------------------

  async #personByLogin(login: string, q: Queryable = this.#db): Promise<PersonRow | null> {
    const rows = await q.query<PersonRow & Record<string, unknown>>(`SELECT ${PERSON_COLS} FROM people p WHERE p.login = $1`, [login]);
    return rows[0] ?? null;
  }

  async #personById(id: string, q: Queryable = this.#db, forUpdate = false): Promise<PersonRow | null> {
    const rows = await q.query<PersonRow & Record<string, unknown>>(`SELECT ${PERSON_COLS} FROM people p WHERE p.id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [id]);
    return rows[0] ?? null;
  }

  #lockedUntil(p: PersonRow): Date | null {
    if (!p.locked_until) return null;
    const until = toDate(p.locked_until);
    return until.getTime() > this.now().getTime() ? until : null;
  }

  #throwIfLocked(p: PersonRow): void {
    const until = this.#lockedUntil(p);
    if (until) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_LOCKED, { until: until.toISOString() });
  }

  /**
   * Count a failed password or code. Locks the person after
   * `maxFailedSignIns` failures (the counter restarts then). Returns the lock
   * end when this failure locked them.
   */
  async #recordFailure(p: PersonRow, factor: 'password' | 'totp' | 'recovery-code', client: ClientInfo | null, via: string): Promise<Date | null> {
    const now = this.now();
    const lockedUntil = await this.#db.transaction(async (tx) => {
      const rows = await tx.query<{ failed_logins: number }>('UPDATE people SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins', [p.id]);
      const count = Number(rows[0]?.failed_logins ?? 0);
      await this.#audit.record(
        { type: 'auth.sign_in_failed', actor: p.login, outcome: 'failure', data: { factor, via, ip: client?.ip ?? null, failures: count } },
        tx,
      );
      if (count < this.cfg.maxFailedSignIns) return null;
      const until = new Date(now.getTime() + this.cfg.lockoutMinutes * 60_000);
      await tx.query('UPDATE people SET failed_logins = 0, locked_until = $2 WHERE id = $1', [p.id, until]);
      await this.#audit.record(
        { type: 'auth.locked', actor: p.login, outcome: 'denied', data: { until: until.toISOString(), failures: count, via, ip: client?.ip ?? null } },
        tx,
      );
      return until;
    });
    if (lockedUntil) this.#log.warn({ personId: p.id, until: lockedUntil.toISOString() }, 'person locked after failed sign-ins');
    return lockedUntil;
  }

  async #failed(p: PersonRow, factor: 'password' | 'totp' | 'recovery-code', client: ClientInfo | null, via: string): Promise<never> {
    const until = await this.#recordFailure(p, factor, client, via);
    if (until) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_LOCKED, { until: until.toISOString() });
    throw new JitgateError(factor === 'password' ? AuthErrors.JIT_ERR_AUTH_INVALID_CREDENTIALS : AuthErrors.JIT_ERR_AUTH_INVALID_CODE);
  }

  /**
   * Check a 6-digit TOTP code or a recovery code. Accepts each TOTP step
   * once (atomically, so two gateways cannot both accept one code) and each
   * recovery code once. No side effect on failure (the caller counts it).
   */
  async #checkSecondFactor(p: PersonRow, code: string): Promise<'totp' | 'recovery-code' | null> {
    const c = code.trim();
    if (isTotpCodeShape(c)) {
      if (!p.totp_enabled || !p.totp_secret_enc) return null;
      const secret = this.#box.decrypt(p.totp_secret_enc, `totp:${p.id}`);
      const last = p.totp_last_step === null ? null : Number(p.totp_last_step);
      const step = await verifyTotp(secret, c, last, this.now());
      if (step === null) return null;
      const ok = await this.#db.query(
        'UPDATE people SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2) RETURNING id',
        [p.id, step],
      );
      return ok.length === 1 ? 'totp' : null;
    }
    if (isRecoveryCodeShape(c)) {
      const used = await this.#db.transaction(async (tx) => {
        const fresh = await this.#personById(p.id, tx, true);
        if (!fresh) return false;
        const hashes = recoveryHashes(fresh);
        const i = matchRecoveryCode(hashes, c);
        if (i < 0) return false;
        hashes.splice(i, 1);
        await tx.query('UPDATE people SET recovery_codes = $2::jsonb WHERE id = $1', [p.id, JSON.stringify(hashes)]);
        await this.#audit.record({ type: 'auth.recovery_code_used', actor: p.login, outcome: 'success', data: { remaining: hashes.length } }, tx);
        return true;
      });
      return used ? 'recovery-code' : null;
    }
    return null;
  }

  async #succeeded(personId: string): Promise<void> {
    await this.#db.query('UPDATE people SET failed_logins = 0, locked_until = NULL WHERE id = $1', [personId]);
  }

  // ---- sign-in sessions -----------------------------------------------

  async #newSession(personId: string, client: ClientInfo, q: Queryable = this.#db, idp: { provider: string; sid: string | null } | null = null): Promise<{ token: string; id: string }> {
    const token = randomBytes(32).toString('base64url');
    const id = randomUUID();
    const now = this.now();
    await q.query(
      "INSERT INTO auth_sessions (id, person_id, token_hash, stage, created_at, last_seen_at, expires_at, ip, user_agent, idp, idp_sid) VALUES ($1,$2,$3,'password',$4,$4,$5,$6,$7,$8,$9)",
      [id, personId, tokenHash(token), now, new Date(now.getTime() + PENDING_SIGN_IN_MINUTES * 60_000), client.ip, client.userAgent.slice(0, 256), idp?.provider ?? null, idp?.sid ?? null],
    );
    return { token, id };
  }

  async #completeSession(sessionId: string, p: PersonRow, client: ClientInfo, factor: string, q: Queryable = this.#db): Promise<void> {
    const now = this.now();
    const rows = await q.query<{ idp: string | null }>(
      "UPDATE auth_sessions SET stage = 'done', pending_totp_enc = NULL, last_seen_at = $2, expires_at = $3, step_up_at = $4 WHERE id = $1 RETURNING idp",
      [sessionId, now, new Date(now.getTime() + this.cfg.sessionHours * 3_600_000), STEP_UP_FACTORS.has(factor) ? now : null],
    );
    const provider = rows[0]?.idp ?? 'local';
    await this.#audit.record({ type: 'auth.signed_in', actor: p.login, outcome: 'success', data: { via: 'web', provider, factor, ip: client.ip, authSession: sessionId } }, q);
  }

  /**
   * The live session for a cookie token (any stage), or null: unknown,
   * revoked, expired, idle too long, half-done for too long, or its person
   * disabled. Refreshes last-seen at most every 30 s.
   */
  async session(token: string): Promise<AuthSession | null> {
    if (token.length < 16 || token.length > 128) return null;
    const rows = await this.#db.query<SessionRow & PersonRow & { session_id: string; second_factor_passed: boolean; require_passkeys: boolean; has_passkey: boolean } & Record<string, unknown>>(
      `SELECT s.id AS session_id, s.stage, s.pending_totp_enc, s.created_at, s.last_seen_at, s.expires_at, s.second_factor_passed, ${PERSON_COLS},
              coalesce(o.require_passkeys, false) AS require_passkeys, EXISTS (SELECT 1 FROM passkeys k WHERE k.person_id = p.id) AS has_passkey
         FROM auth_sessions s JOIN people p ON p.id = s.person_id LEFT JOIN organizations o ON o.id = p.organization_id
        WHERE s.token_hash = $1 AND s.revoked_at IS NULL`,
      [tokenHash(token)],
    );
    const r = rows[0];
    if (!r || r.disabled) return null;
    const now = this.now().getTime();
    const lastSeen = toDate(r.last_seen_at);
    if (toDate(r.expires_at).getTime() <= now) return null;
    if (r.stage === 'done' && lastSeen.getTime() + this.cfg.idleMinutes * 60_000 <= now) return null;
    if (now - lastSeen.getTime() > 30_000) {
      await this.#db.query('UPDATE auth_sessions SET last_seen_at = $2 WHERE id = $1', [r.session_id, new Date(now)]);
    }
    return {
      id: r.session_id,
      stage: r.stage,
      person: personView(r),
      hasPendingEnrollment: r.pending_totp_enc !== null,
      hasPasskey: Boolean(r.has_passkey),
      passkeyRequired: Boolean(r.require_passkeys),
      pending: r.stage === 'done' ? null : pendingStep({ totpEnabled: r.totp_enabled, hasPasskey: Boolean(r.has_passkey), passkeyRequired: Boolean(r.require_passkeys), secondFactorPassed: Boolean(r.second_factor_passed) }),
      lastSeenAt: lastSeen,
      csrfToken: csrfTokenFor(token),
    };
  }

  static principalOf(s: AuthSession): Principal | null {
    if (s.stage !== 'done') return null;
    const p = s.person;
    return { personId: p.id, login: p.login, displayName: p.displayName, role: p.role, organizationId: p.organizationId, authSessionId: s.id };
  }

  static pendingOf(s: AuthSession | null): PendingStep | null {
    if (!s || s.stage === 'done') return null;
    return s.pending;
  }

  /** First factor. Returns the new session's cookie token and what comes next. */
  async signInPassword(loginInput: string, password: string, client: ClientInfo): Promise<{ token: string; next: SignInNext }> {
    const login = normalizeLogin(loginInput).slice(0, 128);
    const p = await this.#personByLogin(login);
    if (!p) {
      await verifyPassword(null, password);
      await this.#audit.record({ type: 'auth.sign_in_failed', actor: actorFor(login), outcome: 'failure', data: { factor: 'password', via: 'web', ip: client.ip, knownLogin: false } });
      throw new JitgateError(AuthErrors.JIT_ERR_AUTH_INVALID_CREDENTIALS);
    }
    if (this.#lockedUntil(p)) {
      await this.#audit.record({ type: 'auth.sign_in_failed', actor: p.login, outcome: 'denied', data: { factor: 'password', via: 'web', ip: client.ip, locked: true } });
      this.#throwIfLocked(p);
    }
    const ok = await verifyPassword(p.password_hash, password);
    if (!ok || p.disabled) return this.#failed(p, 'password', client, 'web');
    // After the password check, so the organization's policy is told only to whoever knows the password.
    if (!(await this.#localPasswordAllowed(p.id))) {
      await this.#audit.record({ type: 'auth.sign_in_failed', actor: p.login, outcome: 'denied', data: { factor: 'password', via: 'web', ip: client.ip, reason: 'local-password-forbidden' } });
      throw new JitgateError(AuthErrors.JIT_ERR_AUTH_LOCAL_PASSWORD_FORBIDDEN);
    }
    // The failure counter is reset only when both factors succeed: a known
    // password must not buy unlimited TOTP guesses.
    const { token } = await this.#newSession(p.id, client);
    return { token, next: pendingStep({ totpEnabled: p.totp_enabled, ...(await this.#passkeyState(p.id)), secondFactorPassed: false }) };
  }

  /** Whether the person's organization requires passkeys, and whether they have one (migration 15). */
  async #passkeyState(personId: string, q: Queryable = this.#db): Promise<{ passkeyRequired: boolean; hasPasskey: boolean }> {
    const rows = await q.query<{ required: boolean | null; has: boolean }>(
      'SELECT o.require_passkeys AS required, EXISTS (SELECT 1 FROM passkeys k WHERE k.person_id = p.id) AS has FROM people p LEFT JOIN organizations o ON o.id = p.organization_id WHERE p.id = $1',
      [personId],
    );
    return { passkeyRequired: rows[0]?.required === true, hasPasskey: Boolean(rows[0]?.has) };
  }

  /**
   * Whether the person may sign in with a jitgate password: always, unless
   * their organization forbids local passwords and they are not a
   * break-glass admin (people.break_glass, set explicitly).
   */
  async #localPasswordAllowed(personId: string): Promise<boolean> {
    const rows = await this.#db.query<{ break_glass: boolean; allowed: boolean | null }>(
      'SELECT p.break_glass, o.local_passwords_allowed AS allowed FROM people p LEFT JOIN organizations o ON o.id = p.organization_id WHERE p.id = $1',
      [personId],
    );
    const r = rows[0];
    return !r || r.break_glass || r.allowed !== false;
  }

  /** A free login from the provider's hint: LOGIN_PATTERN, then `-2`, `-3`… when taken. */
  async #freeLogin(hint: string, q: Queryable): Promise<string> {
    let base = normalizeLogin(hint.split('@')[0] ?? '').replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z]+/, '').slice(0, 28);
    if (!LOGIN_PATTERN.test(base)) base = 'user';
    for (let i = 1; i < 1000; i++) {
      const login = i === 1 ? base : `${base}-${i}`;
      if ((await q.query('SELECT 1 FROM people WHERE login = $1', [login])).length === 0) return login;
    }
    throw new JitgateError(CoreErrors.JIT_ERR_CONFLICT, { reason: `no free login for ${base}` });
  }

  /**
   * Sign in a person the identity provider vouched for. Linked by (issuer,
   * subject) only; created just in time at their first sign-in; their role
   * and organization follow the provider's claims at every sign-in; when the
   * claims no longer map, they are disabled and everything they had open
   * ends (deprovisioning). MFA: done when the provider asserted it,
   * otherwise jitgate's TOTP follows as for passwords (docs/auth.md).
   */
  async signInExternal(x: ExternalSignIn, client: ClientInfo): Promise<{ token: string; next: SignInNext }> {
    const actor = 'system:auth';
    const refused = (reason: string) => new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_NOT_MAPPED, { provider: x.provider, reason });
    const r = await this.#db.transaction(async (tx) => {
      const linked = await tx.query<{ person_id: string }>('SELECT person_id FROM person_identities WHERE issuer = $1 AND subject = $2 FOR UPDATE', [x.issuer, x.subject]);
      const existing = linked[0] ? await this.#personById(linked[0].person_id, tx, true) : null;
      if (!x.mapping.ok) {
        if (existing && !existing.disabled) {
          await tx.query('UPDATE people SET disabled = true WHERE id = $1', [existing.id]);
          await tx.query("UPDATE auth_sessions SET revoked_at = $2, revoked_by = 'deprovisioned' WHERE person_id = $1 AND revoked_at IS NULL", [existing.id, this.now()]);
          await this.#audit.record({ type: 'auth.deprovisioned', actor, outcome: 'success', data: { person: existing.login, provider: x.provider, reason: x.mapping.reason, ip: client.ip } }, tx);
          return { deprovisioned: existing, error: refused(x.mapping.reason) } as const;
        }
        await this.#audit.record({ type: 'auth.sign_in_failed', actor: existing?.login ?? 'anonymous', outcome: 'denied', data: { factor: 'idp', via: 'web', provider: x.provider, reason: x.mapping.reason, ip: client.ip } }, tx);
        return { error: refused(x.mapping.reason) } as const;
      }
      let orgId: string | null = null;
      if (x.mapping.organizationName !== null) {
        const orgs = await tx.query<{ id: string }>('SELECT id FROM organizations WHERE name = $1', [x.mapping.organizationName]);
        if (!orgs[0]) {
          await this.#audit.record({ type: 'auth.sign_in_failed', actor: existing?.login ?? 'anonymous', outcome: 'denied', data: { factor: 'idp', via: 'web', provider: x.provider, reason: 'unknown-organization', organization: x.mapping.organizationName, ip: client.ip } }, tx);
          return { error: refused(`no organization named ${x.mapping.organizationName}`) } as const;
        }
        orgId = orgs[0].id;
      }
      let person: PersonRow;
      let changed = false;
      if (existing) {
        if (existing.disabled) {
          await this.#audit.record({ type: 'auth.sign_in_failed', actor: existing.login, outcome: 'denied', data: { factor: 'idp', via: 'web', provider: x.provider, reason: 'disabled', ip: client.ip } }, tx);
          return { error: new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_DISABLED) } as const;
        }
        changed = existing.role !== x.mapping.role || existing.organization_id !== orgId;
        if (changed) {
          // As when an admin changes role or organization (gateway/api/people.ts): grants and every open sign-in end.
          await tx.query('UPDATE people SET role = $2, organization_id = $3 WHERE id = $1', [existing.id, x.mapping.role, orgId]);
          await tx.query('DELETE FROM grants WHERE person_id = $1', [existing.id]);
          await tx.query("UPDATE auth_sessions SET revoked_at = $2, revoked_by = 'provider-claims' WHERE person_id = $1 AND revoked_at IS NULL", [existing.id, this.now()]);
          await this.#audit.record({ type: 'auth.person_updated', actor, outcome: 'success', data: { person: existing.login, provider: x.provider, from: `${existing.role}@${existing.organization_id ?? '-'}`, role: x.mapping.role, organizationId: orgId } }, tx);
        }
        person = { ...existing, role: x.mapping.role, organization_id: orgId };
      } else {
        const login = await this.#freeLogin(x.loginHint, tx);
        const created = await createPerson(tx, { login, displayName: x.displayName || login, role: x.mapping.role, organizationId: orgId, email: x.email, password: null });
        await tx.query('INSERT INTO person_identities (issuer, subject, person_id, provider, created_at) VALUES ($1,$2,$3,$4,$5)', [x.issuer, x.subject, created.id, x.provider, this.now()]);
        await this.#audit.record({ type: 'auth.person_provisioned', actor, outcome: 'success', data: { person: created.login, provider: x.provider, role: x.mapping.role, organizationId: orgId, ip: client.ip } }, tx);
        person = (await this.#personById(created.id, tx))!;
      }
      await tx.query('UPDATE person_identities SET last_sign_in_at = $3 WHERE issuer = $1 AND subject = $2', [x.issuer, x.subject, this.now()]);
      if (x.groups) {
        const t = await syncTeams(tx, { id: person.id, role: person.role, organizationId: person.organization_id }, x.groups);
        if (t.joined.length || t.left.length) {
          await this.#audit.record({ type: 'auth.person_updated', actor, outcome: 'success', data: { person: person.login, provider: x.provider, action: 'teams.synced', joined: t.joined, left: t.left, organizationId: person.organization_id } }, tx);
        }
      }
      const session = await this.#newSession(person.id, client, tx, { provider: x.provider, sid: x.idpSid });
      // The provider's MFA is not a passkey: where the organization requires one, it only lets the person enroll one.
      const pk = await this.#passkeyState(person.id, tx);
      const done = x.mfaDone && !pk.passkeyRequired;
      if (done) await this.#completeSession(session.id, person, client, 'idp-mfa', tx);
      else if (x.mfaDone) await tx.query('UPDATE auth_sessions SET second_factor_passed = true WHERE id = $1', [session.id]);
      const next: SignInNext = done ? 'done' : pendingStep({ totpEnabled: person.totp_enabled, ...pk, secondFactorPassed: x.mfaDone });
      return { person, session, changed, next } as const;
    });
    if ('error' in r) {
      if ('deprovisioned' in r && r.deprovisioned) {
        this.#log.warn({ personId: r.deprovisioned.id, provider: x.provider }, 'person deprovisioned: the identity provider no longer maps them');
        await this.#endLiveSessions({ personId: r.deprovisioned.id, login: r.deprovisioned.login }, actor);
      }
      throw r.error;
    }
    if (r.changed) await this.#endLiveSessions({ personId: r.person.id, login: r.person.login, exceptAuthSessionId: r.session.id }, actor);
    return { token: r.session.token, next: r.next };
  }

  /** A directory refused the typed login/password (counted by the directory's own lockout, audited here). */
  async auditDirectoryFailure(provider: string, login: string, client: ClientInfo): Promise<void> {
    await this.#audit.record({ type: 'auth.sign_in_failed', actor: actorFor(normalizeLogin(login)), outcome: 'failure', data: { factor: 'password', via: 'web', provider, ip: client.ip } });
  }

  /**
   * Back-channel logout (OIDC Back-Channel Logout 1.0 section 2.7): end the
   * sign-ins of `provider` with this `sid`, or, with only `sub`, every
   * sign-in through that provider of the person linked to (issuer, sub),
   * and the live sessions they opened. Returns how many sign-ins ended.
   */
  async endProviderSessions(provider: string, issuer: string, ref: { sid?: string | undefined; sub?: string | undefined }): Promise<number> {
    const rows = await this.#db.transaction(async (tx) => {
      const params: unknown[] = [provider, this.now()];
      const cond: string[] = [];
      if (ref.sid !== undefined) {
        params.push(ref.sid);
        cond.push(`s.idp_sid = $${params.length}`);
      }
      if (ref.sub !== undefined) {
        params.push(issuer, ref.sub);
        cond.push(`s.person_id = (SELECT person_id FROM person_identities WHERE issuer = $${params.length - 1} AND subject = $${params.length})`);
      }
      if (cond.length === 0) return [];
      const ended = await tx.query<{ id: string; person_id: string; login: string }>(
        `UPDATE auth_sessions s SET revoked_at = $2, revoked_by = 'backchannel-logout' FROM people p
          WHERE p.id = s.person_id AND s.idp = $1 AND s.revoked_at IS NULL AND ${cond.join(' AND ')}
          RETURNING s.id, s.person_id, p.login`,
        params,
      );
      await this.#audit.record({ type: 'auth.backchannel_logout', actor: `system:${provider}`, outcome: 'success', data: { provider, sid: ref.sid ?? null, people: [...new Set(ended.map((e) => e.login))], sessions: ended.length } }, tx);
      return ended;
    });
    const byPerson = new Map<string, { login: string; ids: string[] }>();
    for (const e of rows) {
      const v = byPerson.get(e.person_id) ?? { login: e.login, ids: [] };
      v.ids.push(e.id);
      byPerson.set(e.person_id, v);
    }
    for (const [personId, v] of byPerson) await this.#endLiveSessions({ personId, login: v.login, authSessionIds: v.ids }, `system:${provider}`);
    return rows.length;
  }

  /**
   * Second factor on a session in stage 'password' (TOTP or a recovery code).
   * Where the organization requires passkeys it does not complete the
   * sign-in: it lets the person enroll a passkey (TOTP only while they have
   * none; a recovery code also when they lost theirs).
   */
  async signInSecondFactor(s: AuthSession, code: string, client: ClientInfo): Promise<SignInNext> {
    // TOTP people: a TOTP or recovery code. Passkey-only people: a recovery code (their passkey is lost), never twice per sign-in.
    if (s.stage !== 'password' || (s.pending !== 'totp' && s.pending !== 'passkey') || (!s.person.totpEnabled && !s.hasPasskey)) {
      throw new JitgateError(AuthErrors.JIT_ERR_AUTH_WRONG_STEP, { expected: IdentityService.pendingOf(s) ?? 'none' });
    }
    if (s.passkeyRequired && s.hasPasskey && isTotpCodeShape(code.trim())) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_PASSKEY_REQUIRED);
    const p = await this.#personById(s.person.id);
    if (!p || p.disabled) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    this.#throwIfLocked(p);
    const factor = await this.#checkSecondFactor(p, code);
    if (!factor) return this.#failed(p, isRecoveryCodeShape(code) && !isTotpCodeShape(code.trim()) ? 'recovery-code' : 'totp', client, 'web');
    await this.#succeeded(p.id);
    // A recovery code stands in for a lost passkey only to enroll a new one (docs/auth.md, Recovery codes for passkey-only people).
    if (s.passkeyRequired || !p.totp_enabled) {
      await this.#db.query('UPDATE auth_sessions SET second_factor_passed = true WHERE id = $1', [s.id]);
      return 'passkey-enrollment';
    }
    await this.#completeSession(s.id, p, client, factor);
    return 'done';
  }

  // ---- recovery codes of passkey-only people ------------------------------

  /**
   * A new set of recovery codes for the person, replacing any earlier one
   * (audited with why: `first-passkey` or `regenerated`). The codes leave
   * here once; only their hashes are stored.
   */
  async issueRecoveryCodes(personId: string, login: string, reason: 'first-passkey' | 'regenerated', client: ClientInfo, q: Queryable = this.#db): Promise<string[]> {
    const { codes, hashes } = newRecoveryCodeSet();
    await q.query('UPDATE people SET recovery_codes = $2::jsonb WHERE id = $1', [personId, JSON.stringify(hashes)]);
    await this.#audit.record({ type: 'auth.recovery_codes_issued', actor: login, outcome: 'success', data: { reason, count: codes.length, ip: client.ip } }, q);
    return codes;
  }

  /** How many unused recovery codes the person has (My account shows it). */
  async recoveryCodesLeft(personId: string): Promise<number> {
    const p = await this.#personById(personId);
    return p ? recoveryHashes(p).length : 0;
  }

  /**
   * Regenerate one's recovery codes under My account: only within
   * RECOVERY_CONFIRM_MINUTES of a fresh passkey or code confirmation on this
   * sign-in (its step_up_at, read now), so an unattended browser cannot mint
   * codes; the old codes stop working.
   */
  async regenerateRecoveryCodes(s: AuthSession, client: ClientInfo): Promise<string[]> {
    if (s.stage !== 'done') throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    if (!s.person.totpEnabled && !s.hasPasskey) throw new JitgateError(CoreErrors.JIT_ERR_CONFLICT, { reason: 'recovery codes stand in for a passkey or an authenticator app: add one first' });
    return this.#db.transaction(async (tx) => {
      const rows = await tx.query<{ step_up_at: Date | string | null }>('SELECT step_up_at FROM auth_sessions WHERE id = $1 AND revoked_at IS NULL FOR UPDATE', [s.id]);
      const at = rows[0]?.step_up_at ?? null;
      if (!stepUpSatisfied(RECOVERY_CONFIRM_MINUTES, at === null ? null : toDate(at), this.now())) {
        throw new JitgateError(AuthErrors.JIT_ERR_AUTH_CONFIRMATION_REQUIRED, { minutes: RECOVERY_CONFIRM_MINUTES, action: 'making new recovery codes' });
      }
      return this.issueRecoveryCodes(s.person.id, s.person.login, 'regenerated', client, tx);
    });
  }

  // ---- passkeys (gateway/auth/passkey.service.ts verifies; these complete) ----

  /** Complete a half-done sign-in whose second factor was just proved (a passkey, or its enrollment). */
  async completeSignIn(sessionId: string, personId: string, client: ClientInfo, factor: 'passkey' | 'passkey-enrollment', q: Queryable = this.#db): Promise<void> {
    const p = await this.#personById(personId, q);
    if (!p || p.disabled) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    this.#throwIfLocked(p);
    await q.query('UPDATE people SET failed_logins = 0, locked_until = NULL WHERE id = $1', [personId]);
    await this.#completeSession(sessionId, p, client, factor, q);
  }

  /**
   * Passwordless sign-in with a verified, user-verifying passkey: both
   * factors at once (something held, and a PIN or biometrics on it). A
   * disabled or locked person is refused as with a password.
   */
  async passkeySignIn(personId: string, client: ClientInfo): Promise<string> {
    const p = await this.#personById(personId);
    if (!p || p.disabled) {
      await this.#audit.record({ type: 'auth.sign_in_failed', actor: p?.login ?? 'anonymous', outcome: 'denied', data: { factor: 'passkey', via: 'web', ip: client.ip, reason: 'disabled' } });
      throw new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_DISABLED);
    }
    this.#throwIfLocked(p);
    return this.#db.transaction(async (tx) => {
      const s = await this.#newSession(p.id, client, tx);
      await tx.query('UPDATE people SET failed_logins = 0, locked_until = NULL WHERE id = $1', [p.id]);
      await this.#completeSession(s.id, p, client, 'passkey', tx);
      return s.token;
    });
  }

  /** A fresh second factor on a complete sign-in (step-up before connecting), audited. */
  async recordStepUp(s: AuthSession, client: ClientInfo, factor: string): Promise<void> {
    await this.#db.transaction(async (tx) => {
      await tx.query('UPDATE auth_sessions SET step_up_at = $2 WHERE id = $1', [s.id, this.now()]);
      await this.#audit.record({ type: 'auth.step_up', actor: s.person.login, outcome: 'success', data: { factor, ip: client.ip, authSession: s.id } }, tx);
    });
  }

  /** Step-up with a TOTP or recovery code (the passkey path is in PasskeyService). Failures count towards the lockout. */
  async stepUpWithCode(s: AuthSession, code: string, client: ClientInfo): Promise<void> {
    if (s.stage !== 'done') throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    // Where passkeys are required, a code is no step-up either (a recovery code helps at sign-in, to enroll a new passkey).
    if (s.passkeyRequired) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_PASSKEY_REQUIRED);
    const p = await this.#personById(s.person.id);
    if (!p || p.disabled) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    this.#throwIfLocked(p);
    const factor = await this.#checkSecondFactor(p, code);
    if (!factor) return this.#failed(p, isTotpCodeShape(code.trim()) ? 'totp' : 'recovery-code', client, 'step-up');
    await this.#succeeded(p.id);
    await this.recordStepUp(s, client, factor);
  }

  /** Start (or restart) TOTP enrollment: a fresh secret kept on the session until confirmed. */
  async startEnrollment(s: AuthSession): Promise<{ otpauthUri: string; qrDataUrl: string; secret: string }> {
    if (s.stage === 'password' && s.person.totpEnabled) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_WRONG_STEP, { expected: 'totp' });
    const secret = newTotpSecret();
    await this.#db.query('UPDATE auth_sessions SET pending_totp_enc = $2 WHERE id = $1', [s.id, this.#box.encrypt(secret, `totp-pending:${s.id}`)]);
    const otpauthUri = totpUri(this.cfg.totpIssuer, s.person.login, secret);
    return { otpauthUri, qrDataUrl: await qrDataUrl(otpauthUri), secret };
  }

  /** Confirm enrollment with a first code: stores the secret, issues 10 recovery codes, completes the sign-in. */
  async confirmEnrollment(s: AuthSession, code: string, client: ClientInfo): Promise<{ recoveryCodes: string[] }> {
    if (s.stage === 'password' && s.person.totpEnabled) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_WRONG_STEP, { expected: 'totp' });
    const rows = await this.#db.query<{ pending_totp_enc: string | null }>('SELECT pending_totp_enc FROM auth_sessions WHERE id = $1', [s.id]);
    const pending = rows[0]?.pending_totp_enc;
    if (!pending) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_WRONG_STEP, { expected: 'POST /auth/totp/enrollment first' });
    const p = await this.#personById(s.person.id);
    if (!p || p.disabled) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    this.#throwIfLocked(p);
    const secret = this.#box.decrypt(pending, `totp-pending:${s.id}`);
    const step = await verifyTotp(secret, code.trim(), null, this.now());
    if (step === null) return this.#failed(p, 'totp', client, 'web');
    const recoveryCodes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    await this.#db.transaction(async (tx) => {
      await tx.query(
        'UPDATE people SET totp_secret_enc = $2, totp_enabled = true, totp_last_step = $3, recovery_codes = $4::jsonb, failed_logins = 0, locked_until = NULL WHERE id = $1',
        [p.id, this.#box.encrypt(secret, `totp:${p.id}`), step, JSON.stringify(recoveryCodes.map(hashRecoveryCode))],
      );
      await tx.query('UPDATE auth_sessions SET pending_totp_enc = NULL WHERE id = $1', [s.id]);
      await this.#audit.record({ type: 'auth.totp_enrolled', actor: p.login, outcome: 'success', data: { reenrolled: p.totp_enabled, ip: client.ip } }, tx);
      if (s.stage === 'password' && s.passkeyRequired) await tx.query('UPDATE auth_sessions SET second_factor_passed = true WHERE id = $1', [s.id]);
      else if (s.stage === 'password') await this.#completeSession(s.id, p, client, 'totp-enrollment', tx);
    });
    return { recoveryCodes };
  }

  async signOut(s: AuthSession): Promise<void> {
    await this.#db.transaction(async (tx) => {
      await tx.query("UPDATE auth_sessions SET revoked_at = $2, revoked_by = 'sign-out' WHERE id = $1 AND revoked_at IS NULL", [s.id, this.now()]);
      await this.#audit.record({ type: 'auth.signed_out', actor: s.person.login, outcome: 'success', data: { authSession: s.id } }, tx);
    });
    await this.#endLiveSessions({ personId: s.person.id, login: s.person.login, authSessionIds: [s.id] }, s.person.login);
  }

  /** Active sign-in sessions the admin may see: all for global admins, their organization's for org admins. */
  async listSessions(admin: Principal): Promise<AuthSessionListItem[]> {
    const now = this.now();
    const idleCut = new Date(now.getTime() - this.cfg.idleMinutes * 60_000);
    const params: unknown[] = [now, idleCut];
    let scope = '';
    if (admin.role !== 'global_admin') {
      // Org admins: their organization's people, never a global admin (who may have a home organization).
      params.push(admin.organizationId);
      scope = " AND p.organization_id = $3 AND p.role <> 'global_admin'";
    }
    const rows = await this.#db.query<{
      id: string; person_id: string; login: string; stage: 'password' | 'done';
      created_at: Date | string; last_seen_at: Date | string; expires_at: Date | string; ip: string | null; user_agent: string | null;
    }>(
      `SELECT s.id, s.person_id, p.login, s.stage, s.created_at, s.last_seen_at, s.expires_at, s.ip, s.user_agent
         FROM auth_sessions s JOIN people p ON p.id = s.person_id
        WHERE s.revoked_at IS NULL AND s.expires_at > $1 AND (s.stage = 'password' OR s.last_seen_at > $2)${scope}
        ORDER BY s.last_seen_at DESC LIMIT 1000`,
      params,
    );
    return rows.map((r) => ({
      id: r.id, personId: r.person_id, login: r.login, stage: r.stage,
      createdAt: iso(r.created_at), lastSeenAt: iso(r.last_seen_at), expiresAt: iso(r.expires_at), ip: r.ip, userAgent: r.user_agent,
    }));
  }

  /** Revoke a sign-in session (admins of its person's scope, or its own person). */
  async revokeSession(actor: Principal, id: string): Promise<void> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'sign-in session' });
    const rows = await this.#db.query<{ person_id: string; login: string; role: Role; organization_id: string | null }>(
      'SELECT s.person_id, p.login, p.role, p.organization_id FROM auth_sessions s JOIN people p ON p.id = s.person_id WHERE s.id = $1 AND s.revoked_at IS NULL',
      [id],
    );
    const r = rows[0];
    // The same rule as managing the person (gateway/access-policy.ts): an org
    // admin reaches their organization's people only, never a global admin.
    const allowed = r && (r.person_id === actor.personId || canManagePerson(actor, { id: r.person_id, role: r.role, organizationId: r.organization_id }));
    if (!r || !allowed) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'sign-in session' });
    await this.#db.transaction(async (tx) => {
      await tx.query('UPDATE auth_sessions SET revoked_at = $2, revoked_by = $3 WHERE id = $1 AND revoked_at IS NULL', [id, this.now(), actor.login]);
      await this.#audit.record({ type: 'auth.session_revoked', actor: actor.login, outcome: 'success', data: { authSession: id, person: r.login } }, tx);
    });
    await this.#endLiveSessions({ personId: r.person_id, login: r.login, authSessionIds: [id] }, actor.login);
  }

  /**
   * End every sign-in session of a person (after an admin disables,
   * deletes, re-roles them or resets their MFA). Returns how many ended.
   */
  async revokePersonSessions(personId: string, by = 'admin'): Promise<number> {
    return this.#db.transaction(async (tx) => {
      const rows = await tx.query<{ id: string }>(
        'UPDATE auth_sessions SET revoked_at = $2, revoked_by = $3 WHERE person_id = $1 AND revoked_at IS NULL RETURNING id',
        [personId, this.now(), by],
      );
      if (rows.length > 0) {
        await this.#audit.record({ type: 'auth.session_revoked', actor: `system:auth`, outcome: 'success', data: { person: personId, sessions: rows.length, by } }, tx);
      }
      return rows.length;
    });
  }

  /**
   * Change one's own password. Every other sign-in of the person ends, and
   * every live session not opened under the sign-in making the change (other
   * browsers, the SSH front door): whoever knew the old password loses what
   * it bought, the person keeps the tab they are using.
   */
  async changePassword(actor: Principal, current: string, next: string, client: ClientInfo): Promise<void> {
    const p = await this.#personById(actor.personId);
    if (!p) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    this.#throwIfLocked(p);
    if (!(await verifyPassword(p.password_hash, current))) return this.#failed(p, 'password', client, 'password-change');
    checkPasswordPolicy(next, p.login);
    // An admin-set password must really be replaced (must_change_password, migration 16).
    if (p.must_change_password && next === current) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_WEAK_PASSWORD, { reason: 'must differ from the password an administrator set' });
    const hash = await hashPassword(next);
    await this.#db.transaction(async (tx) => {
      await tx.query('UPDATE people SET password_hash = $2, password_changed_at = $3, must_change_password = false WHERE id = $1', [p.id, hash, this.now()]);
      await tx.query("UPDATE auth_sessions SET revoked_at = $3, revoked_by = 'password-change' WHERE person_id = $1 AND id <> $2 AND revoked_at IS NULL", [
        p.id,
        actor.authSessionId,
        this.now(),
      ]);
      await this.#audit.record({ type: 'auth.password_changed', actor: p.login, outcome: 'success', data: { ip: client.ip } }, tx);
    });
    await this.#endLiveSessions({ personId: p.id, login: p.login, exceptAuthSessionId: actor.authSessionId }, p.login);
  }

  /**
   * A half-done sign-in (second factor or its enrollment next) for a person
   * who proved themselves another way: an invitation link just used
   * (gateway/auth/invitations.ts), inside the transaction that used it.
   */
  async openSignIn(personId: string, client: ClientInfo, q: Queryable = this.#db): Promise<{ token: string }> {
    const s = await this.#newSession(personId, client, q);
    return { token: s.token };
  }

  // ---- bootstrap --------------------------------------------------------

  async bootstrapValid(token: string): Promise<boolean> {
    if (token.length < 16 || token.length > 128) return false;
    const rows = await this.#db.query(
      "SELECT 1 FROM bootstrap_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND NOT EXISTS (SELECT 1 FROM people WHERE role = 'global_admin' AND NOT disabled)",
      [sha256hex(token), this.now()],
    );
    return rows.length === 1;
  }

  /** Consume a setup token: create the first global admin and a half-done sign-in (TOTP enrollment next). */
  async bootstrap(token: string, input: { login: string; displayName: string; password: string }, client: ClientInfo): Promise<{ token: string }> {
    const invalid = () => new JitgateError(AuthErrors.JIT_ERR_AUTH_BOOTSTRAP_INVALID);
    if (token.length < 16 || token.length > 128) throw invalid();
    // Validate before consuming, so a weak password does not burn the link.
    checkPasswordPolicy(input.password, normalizeLogin(input.login));
    return this.#db.transaction(async (tx) => {
      // Serialise concurrent bootstraps (two browsers, two gateways).
      await tx.query('SELECT pg_advisory_xact_lock($1)', [73_461_010]);
      const admins = await tx.query("SELECT 1 FROM people WHERE role = 'global_admin' AND NOT disabled LIMIT 1");
      if (admins.length > 0) throw invalid();
      const used = await tx.query('UPDATE bootstrap_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING token_hash', [
        sha256hex(token),
        this.now(),
      ]);
      if (used.length !== 1) throw invalid();
      const person = await createPerson(tx, { login: input.login, displayName: input.displayName, role: 'global_admin', organizationId: null, password: input.password });
      await this.#audit.record({ type: 'auth.bootstrap', actor: person.login, outcome: 'success', data: { ip: client.ip } }, tx);
      const s = await this.#newSession(person.id, client, tx);
      return { token: s.token };
    });
  }

  // ---- SSH keys ---------------------------------------------------------

  async listSshKeys(personId: string): Promise<SshKeyView[]> {
    const rows = await this.#db.query<{ id: string; label: string; fingerprint: string; public_key: string; created_at: Date | string }>(
      'SELECT id, label, fingerprint, public_key, created_at FROM ssh_keys WHERE person_id = $1 ORDER BY created_at, id',
      [personId],
    );
    return rows.map((r) => ({ id: r.id, label: r.label, fingerprint: r.fingerprint, algorithm: r.public_key.split(' ')[0] ?? '', createdAt: iso(r.created_at) }));
  }

  async addSshKey(actor: Principal, publicKey: string, label: string): Promise<SshKeyView> {
    const k = parsePublicKeyLine(publicKey);
    const cleanLabel = (label || k.comment).trim().slice(0, 100);
    const dup = await this.#db.query('SELECT 1 FROM ssh_keys WHERE fingerprint = $1', [k.fingerprint]);
    if (dup.length > 0) throw new JitgateError(CoreErrors.JIT_ERR_CONFLICT, { reason: `key ${k.fingerprint} is already registered` });
    const id = randomUUID();
    const createdAt = this.now();
    await this.#db.transaction(async (tx) => {
      try {
        await tx.query('INSERT INTO ssh_keys (id, person_id, public_key, fingerprint, label, created_at) VALUES ($1,$2,$3,$4,$5,$6)', [
          id, actor.personId, k.publicKey, k.fingerprint, cleanLabel, createdAt,
        ]);
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw new JitgateError(CoreErrors.JIT_ERR_CONFLICT, { reason: `key ${k.fingerprint} is already registered` });
        throw err;
      }
      await this.#audit.record({ type: 'auth.ssh_key_added', actor: actor.login, outcome: 'success', data: { fingerprint: k.fingerprint, algorithm: k.algorithm, label: cleanLabel } }, tx);
    });
    return { id, label: cleanLabel, fingerprint: k.fingerprint, algorithm: k.algorithm, createdAt: createdAt.toISOString() };
  }

  async removeSshKey(actor: Principal, id: string): Promise<void> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'ssh key' });
    await this.#db.transaction(async (tx) => {
      const rows = await tx.query<{ fingerprint: string }>('DELETE FROM ssh_keys WHERE id = $1 AND person_id = $2 RETURNING fingerprint', [id, actor.personId]);
      if (rows.length === 0) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'ssh key' });
      await this.#audit.record({ type: 'auth.ssh_key_removed', actor: actor.login, outcome: 'success', data: { fingerprint: rows[0]!.fingerprint } }, tx);
    });
  }

  // ---- SSH front door (FrontDoorIdentity) -------------------------------

  /**
   * The person owning this public key blob, if `login` is theirs, they are
   * enabled, not locked, and have TOTP enrolled (the front door always asks
   * for the second factor). `authSessionId` is `ssh:<random>`; the front door
   * may replace it with its connection id.
   */
  async personByPublicKey(login: string, _algo: string, keyData: Buffer): Promise<Principal | null> {
    const rows = await this.#db.query<PersonRow & Record<string, unknown>>(
      `SELECT ${PERSON_COLS} FROM people p JOIN ssh_keys k ON k.person_id = p.id WHERE p.login = $1 AND k.fingerprint = $2`,
      [normalizeLogin(login), fingerprintOf(keyData)],
    );
    const p = rows[0];
    if (!p || p.disabled || this.#lockedUntil(p) || !p.totp_enabled || p.must_change_password) return null;
    return { personId: p.id, login: p.login, displayName: p.display_name, role: p.role, organizationId: p.organization_id, authSessionId: `ssh:${randomUUID()}` };
  }

  /** When this key is `login`'s and that person is locked out, until when (FrontDoorIdentity.keyOwnerLockedUntil). */
  async keyOwnerLockedUntil(login: string, _algo: string, keyData: Buffer): Promise<Date | null> {
    const rows = await this.#db.query<PersonRow & Record<string, unknown>>(
      `SELECT ${PERSON_COLS} FROM people p JOIN ssh_keys k ON k.person_id = p.id WHERE p.login = $1 AND k.fingerprint = $2`,
      [normalizeLogin(login), fingerprintOf(keyData)],
    );
    const p = rows[0];
    return p && !p.disabled ? this.#lockedUntil(p) : null;
  }

  /**
   * Step-up for a sensitive action of someone already signed in (approving an
   * access request, break-glass): a fresh TOTP code (each time step once, as at
   * sign-in) or a recovery code. Failures count towards the same lockout; the
   * caller audits the action with the factor returned. null: refused.
   */
  async confirmSecondFactor(personId: string, code: string, purpose: string): Promise<'totp' | 'recovery-code' | null> {
    const p = await this.#personById(personId);
    if (!p || p.disabled || this.#lockedUntil(p)) return null;
    const factor = await this.#checkSecondFactor(p, code);
    if (!factor) {
      await this.#recordFailure(p, isTotpCodeShape(code.trim()) ? 'totp' : 'recovery-code', null, purpose);
      return null;
    }
    await this.#succeeded(p.id);
    return factor;
  }

  /** TOTP or recovery code for the SSH front door; failures count towards the same lockout as the web. */
  async verifySecondFactor(personId: string, code: string): Promise<boolean> {
    const p = await this.#personById(personId);
    if (!p || p.disabled || this.#lockedUntil(p)) return false;
    const factor = await this.#checkSecondFactor(p, code);
    if (!factor) {
      await this.#recordFailure(p, isTotpCodeShape(code.trim()) ? 'totp' : 'recovery-code', null, 'ssh');
      return false;
    }
    await this.#succeeded(p.id);
    await this.#audit.record({ type: 'auth.signed_in', actor: p.login, outcome: 'success', data: { via: 'ssh', factor } });
    return true;
  }
}
