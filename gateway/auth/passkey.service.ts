import { randomUUID } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransportFuture,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { AuditLog } from '../../core/audit.js';
import type { Database, Queryable } from '../../core/db/database.js';
import { CoreErrors, JitgateError, isJitgateError } from '../../core/errors.js';
import type { Logger } from '../../core/logging.js';
import { AuthErrors } from './errors.js';
import type { AuthConfig, AuthSession, ClientInfo, IdentityService, SignInNext } from './identity.service.js';
import type { Principal } from './principal.js';

/** Minutes a WebAuthn challenge may be answered. */
export const CHALLENGE_MINUTES = 5;
/** What the browser waits for the person (ms), passed in the options. */
const CEREMONY_TIMEOUT_MS = 120_000;
const MAX_PASSKEYS = 20;

/** The relying party passkeys are bound to (WebAuthn Level 3 section 5.1.2 `rp.id`, 13.4.9 origin check). */
export interface WebAuthnTarget {
  rpId: string;
  /** Origins a response may come from (clientDataJSON.origin). */
  origins: string[];
  rpName: string;
}

/**
 * The relying party for a request: `auth.webauthn.rpId`/`origins` when set,
 * else `server.publicUrl`'s host name and origin, else the request's own
 * (host name and scheme as fastify sees them behind `server.trustProxy`).
 * A passkey answers only for the RP ID it was made for, and the browser
 * writes the page's real origin into what the authenticator signs, so a
 * look-alike site cannot replay a response (section 13.4.9).
 */
export function webauthnTarget(cfg: AuthConfig['webauthn'], publicUrl: string | undefined, request: { origin: string; hostname: string }): WebAuthnTarget {
  const pub = publicUrl ? new URL(publicUrl) : null;
  return {
    rpId: cfg?.rpId ?? pub?.hostname ?? request.hostname,
    origins: cfg?.origins ?? (pub ? [pub.origin] : [request.origin]),
    rpName: cfg?.rpName ?? 'jitgate',
  };
}

export type ChallengePurpose = 'register' | 'sign-in' | 'second-factor' | 'step-up';

/** A passkey as the person sees it (no key material). */
export interface PasskeyView {
  id: string;
  name: string;
  transports: string[];
  /** multiDevice: a synced passkey (phone, password manager); singleDevice: bound to one authenticator. */
  deviceType: string;
  backedUp: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}

interface PasskeyRow {
  id: string;
  person_id: string;
  credential_id: string;
  public_key: string;
  counter: string | number;
  transports: string[] | string;
  name: string;
  device_type: string;
  backed_up: boolean;
  created_at: Date | string;
  last_used_at: Date | string | null;
}

const iso = (v: Date | string): string => (v instanceof Date ? v : new Date(v)).toISOString();
const transportsOf = (r: PasskeyRow): AuthenticatorTransportFuture[] => {
  const v = typeof r.transports === 'string' ? (JSON.parse(r.transports) as unknown) : r.transports;
  return Array.isArray(v) ? (v.filter((x) => typeof x === 'string') as AuthenticatorTransportFuture[]) : [];
};
const view = (r: PasskeyRow): PasskeyView => ({
  id: r.id,
  name: r.name,
  transports: transportsOf(r),
  deviceType: r.device_type,
  backedUp: r.backed_up,
  createdAt: iso(r.created_at),
  lastUsedAt: r.last_used_at === null ? null : iso(r.last_used_at),
});

export function cleanPasskeyName(name: string): string {
  const n = name.replace(/[\p{Cc}\p{Cf}]/gu, '').trim().slice(0, 64);
  if (!n) throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'a passkey name is required' });
  return n;
}

/** The library's refusal (wrong origin, RP ID, challenge, signature, counter) as our code; its text goes to the reason only. */
function refused(err: unknown): JitgateError {
  if (isJitgateError(err)) return err;
  const reason = err instanceof Error ? err.message.slice(0, 200) : 'verification failed';
  return new JitgateError(AuthErrors.JIT_ERR_AUTH_PASSKEY_INVALID, { reason });
}

export interface PasskeyDeps {
  db: Database;
  audit: AuditLog;
  log: Logger;
  identity: IdentityService;
}

/**
 * Passkeys (WebAuthn, discoverable credentials) through @simplewebauthn/server:
 * enrollment under My account (or as a half-done sign-in's second factor),
 * passwordless sign-in, second factor after a password, and step-up
 * confirmations before connecting. Challenges are one-time rows; the
 * signature counter only moves forward (a cloned authenticator shows up as a
 * counter that did not).
 */
export class PasskeyService {
  readonly #db: Database;
  readonly #audit: AuditLog;
  readonly #log: Logger;
  readonly #identity: IdentityService;

  constructor(deps: PasskeyDeps) {
    this.#db = deps.db;
    this.#audit = deps.audit;
    this.#log = deps.log.child({ component: 'passkeys' });
    this.#identity = deps.identity;
  }

  #now(): Date {
    return this.#identity.now();
  }

  async #saveChallenge(challenge: string, purpose: ChallengePurpose, authSessionId: string | null): Promise<void> {
    const now = this.#now();
    await this.#db.query('DELETE FROM webauthn_challenges WHERE expires_at < $1', [now]);
    await this.#db.query('INSERT INTO webauthn_challenges (challenge, purpose, auth_session_id, expires_at) VALUES ($1,$2,$3,$4)', [
      challenge, purpose, authSessionId, new Date(now.getTime() + CHALLENGE_MINUTES * 60_000),
    ]);
  }

  /** Consume a challenge once: true only for an unexpired one of this purpose issued to this sign-in (or to none). */
  async #consumeChallenge(challenge: string, purpose: ChallengePurpose, authSessionId: string | null): Promise<boolean> {
    const rows = await this.#db.query(
      'DELETE FROM webauthn_challenges WHERE challenge = $1 AND purpose = $2 AND auth_session_id IS NOT DISTINCT FROM $3 AND expires_at > $4 RETURNING challenge',
      [challenge, purpose, authSessionId, this.#now()],
    );
    return rows.length === 1;
  }

  async #rows(personId: string, q: Queryable = this.#db): Promise<PasskeyRow[]> {
    return q.query<PasskeyRow & Record<string, unknown>>('SELECT * FROM passkeys WHERE person_id = $1 ORDER BY created_at, id', [personId]);
  }

  // ---- enrollment -------------------------------------------------------

  /**
   * Whether this sign-in may enroll a passkey: a complete one always; a
   * half-done one when the passkey is the second factor it still lacks
   * (IdentityService.pendingOf: `passkey-enrollment`, or a person with no
   * second factor at all, as TOTP enrollment).
   */
  static mayEnroll(s: AuthSession): boolean {
    if (s.stage === 'done') return true;
    const next = s.pending;
    return next === 'passkey-enrollment' || (next === 'totp-enrollment' && !s.hasPasskey);
  }

  async registrationOptions(s: AuthSession, t: WebAuthnTarget): Promise<PublicKeyCredentialCreationOptionsJSON> {
    if (!PasskeyService.mayEnroll(s)) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_WRONG_STEP, { expected: s.pending ?? 'none' });
    const existing = await this.#rows(s.person.id);
    if (existing.length >= MAX_PASSKEYS) throw new JitgateError(CoreErrors.JIT_ERR_CONFLICT, { reason: `at most ${MAX_PASSKEYS} passkeys` });
    const options = await generateRegistrationOptions({
      rpName: t.rpName,
      rpID: t.rpId,
      userName: s.person.login,
      userDisplayName: s.person.displayName || s.person.login,
      // The user handle: the person's id (no personal data, section 14.6.1), returned at sign-in.
      userID: new TextEncoder().encode(s.person.id),
      timeout: CEREMONY_TIMEOUT_MS,
      attestationType: 'none',
      excludeCredentials: existing.map((r) => ({ id: r.credential_id, transports: transportsOf(r) })),
      // Discoverable (sign-in without a login) and user-verifying (PIN or biometrics: the passkey is both factors).
      authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    });
    await this.#saveChallenge(options.challenge, 'register', s.id);
    return options;
  }

  /**
   * Verify a new passkey and store it. On a half-done sign-in it is the
   * second factor: the sign-in completes. Returns the passkey, what comes
   * next, and the recovery codes (shown once) when this is the first passkey
   * of a person without TOTP.
   */
  async register(s: AuthSession, name: string, response: RegistrationResponseJSON, t: WebAuthnTarget, client: ClientInfo): Promise<{ passkey: PasskeyView; next: SignInNext; recoveryCodes: string[] | null }> {
    if (!PasskeyService.mayEnroll(s)) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_WRONG_STEP, { expected: s.pending ?? 'none' });
    const cleanName = cleanPasskeyName(name);
    let info;
    try {
      const v = await verifyRegistrationResponse({
        response,
        expectedChallenge: (c) => this.#consumeChallenge(c, 'register', s.id),
        expectedOrigin: t.origins,
        expectedRPID: t.rpId,
        requireUserVerification: true,
      });
      if (!v.verified) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_PASSKEY_INVALID, { reason: 'not verified' });
      info = v.registrationInfo;
    } catch (err) {
      await this.#audit.record({ type: 'auth.passkey_enrolled', actor: s.person.login, outcome: 'failure', data: { ip: client.ip, reason: refused(err).details.reason as string ?? null } });
      throw refused(err);
    }
    const id = randomUUID();
    const now = this.#now();
    const { row, recoveryCodes } = await this.#db.transaction(async (tx) => {
      // Locked first: two first enrollments at once must not both count zero passkeys.
      const [person] = await tx.query<{ totp_enabled: boolean }>('SELECT totp_enabled FROM people WHERE id = $1 FOR UPDATE', [s.person.id]);
      const first = (await tx.query('SELECT 1 FROM passkeys WHERE person_id = $1 LIMIT 1', [s.person.id])).length === 0;
      let r: PasskeyRow | undefined;
      try {
        [r] = await tx.query<PasskeyRow & Record<string, unknown>>(
          `INSERT INTO passkeys (id, person_id, credential_id, public_key, counter, transports, name, device_type, backed_up, created_at)
           VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7,$8,$9,$10) RETURNING *`,
          [
            id, s.person.id, info.credential.id, Buffer.from(info.credential.publicKey).toString('base64url'), info.credential.counter,
            JSON.stringify(info.credential.transports ?? response.response.transports ?? []), cleanName, info.credentialDeviceType, info.credentialBackedUp, now,
          ],
        );
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw new JitgateError(CoreErrors.JIT_ERR_CONFLICT, { reason: 'this passkey is already registered' });
        throw err;
      }
      await this.#audit.record(
        { type: 'auth.passkey_enrolled', actor: s.person.login, outcome: 'success', data: { passkey: id, name: cleanName, deviceType: info.credentialDeviceType, aaguid: info.aaguid, ip: client.ip } },
        tx,
      );
      // A passkey-only person's first passkey: recovery codes for when it is lost (TOTP people have theirs from TOTP enrollment).
      const codes = first && person && !person.totp_enabled ? await this.#identity.issueRecoveryCodes(s.person.id, s.person.login, 'first-passkey', client, tx) : null;
      if (s.stage === 'password') await this.#identity.completeSignIn(s.id, s.person.id, client, 'passkey-enrollment', tx);
      return { row: r!, recoveryCodes: codes };
    });
    this.#log.info({ personId: s.person.id, passkey: id }, 'passkey enrolled');
    return { passkey: view(row), next: 'done', recoveryCodes };
  }

  async list(personId: string): Promise<PasskeyView[]> {
    return (await this.#rows(personId)).map(view);
  }

  async rename(actor: Principal, id: string, name: string): Promise<PasskeyView> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'passkey' });
    const cleanName = cleanPasskeyName(name);
    return this.#db.transaction(async (tx) => {
      const rows = await tx.query<PasskeyRow & Record<string, unknown>>('UPDATE passkeys SET name = $3 WHERE id = $1 AND person_id = $2 RETURNING *', [id, actor.personId, cleanName]);
      if (!rows[0]) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'passkey' });
      await this.#audit.record({ type: 'auth.passkey_renamed', actor: actor.login, outcome: 'success', data: { passkey: id, name: cleanName } }, tx);
      return view(rows[0]);
    });
  }

  /** Revoke one of one's own passkeys: it no longer signs in, from the next ceremony on. */
  async revoke(actor: Principal, id: string): Promise<void> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'passkey' });
    await this.#db.transaction(async (tx) => {
      const rows = await tx.query<{ name: string }>('DELETE FROM passkeys WHERE id = $1 AND person_id = $2 RETURNING name', [id, actor.personId]);
      if (!rows[0]) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'passkey' });
      await this.#audit.record({ type: 'auth.passkey_revoked', actor: actor.login, outcome: 'success', data: { passkey: id, name: rows[0].name } }, tx);
    });
  }

  // ---- assertions ---------------------------------------------------------

  /**
   * Options for a passkey assertion. Without a sign-in: passwordless (the
   * browser offers every passkey it holds for the RP ID, including a phone's
   * through its QR code). With a half-done sign-in: that person's passkeys as
   * the second factor. With a complete one (`purpose` step-up): a fresh
   * confirmation before connecting.
   */
  async assertionOptions(t: WebAuthnTarget, s: AuthSession | null, purpose: 'sign-in' | 'step-up'): Promise<PublicKeyCredentialRequestOptionsJSON> {
    let p: ChallengePurpose = 'sign-in';
    let allow: PasskeyRow[] = [];
    if (purpose === 'step-up') {
      if (!s || s.stage !== 'done') throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
      p = 'step-up';
      allow = await this.#rows(s.person.id);
      if (allow.length === 0) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_WRONG_STEP, { expected: 'an authentication code (no passkey enrolled)' });
    } else if (s && s.stage === 'password') {
      p = 'second-factor';
      allow = await this.#rows(s.person.id);
    }
    const options = await generateAuthenticationOptions({
      rpID: t.rpId,
      timeout: CEREMONY_TIMEOUT_MS,
      userVerification: 'required',
      allowCredentials: allow.map((r) => ({ id: r.credential_id, transports: transportsOf(r) })),
    });
    await this.#saveChallenge(options.challenge, p, p === 'sign-in' ? null : s!.id);
    return options;
  }

  /**
   * Verify an assertion against the stored credential: challenge (one-time,
   * this purpose and sign-in), origin, RP ID, user verification, signature,
   * and a counter that moved forward. The counter is advanced atomically, so
   * two gateways cannot both accept one response.
   */
  async #verifyAssertion(response: AuthenticationResponseJSON, purpose: ChallengePurpose, authSessionId: string | null, t: WebAuthnTarget): Promise<PasskeyRow> {
    const id = typeof response?.id === 'string' ? response.id : '';
    const rows = id && id.length <= 1024 ? await this.#db.query<PasskeyRow & Record<string, unknown>>('SELECT * FROM passkeys WHERE credential_id = $1', [id]) : [];
    const row = rows[0];
    if (!row) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_PASSKEY_INVALID, { reason: 'unknown or revoked passkey' });
    const userHandle = response.response?.userHandle;
    if (userHandle && Buffer.from(userHandle, 'base64url').toString('utf8') !== row.person_id) {
      throw new JitgateError(AuthErrors.JIT_ERR_AUTH_PASSKEY_INVALID, { reason: 'user handle does not match the passkey' });
    }
    let v;
    try {
      v = await verifyAuthenticationResponse({
        response,
        expectedChallenge: (c) => this.#consumeChallenge(c, purpose, authSessionId),
        expectedOrigin: t.origins,
        expectedRPID: t.rpId,
        credential: { id: row.credential_id, publicKey: Buffer.from(row.public_key, 'base64url'), counter: Number(row.counter), transports: transportsOf(row) },
        requireUserVerification: true,
      });
    } catch (err) {
      throw refused(err);
    }
    if (!v.verified) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_PASSKEY_INVALID, { reason: 'not verified' });
    const next = v.authenticationInfo.newCounter;
    // Counter 0 forever is allowed (authenticators without a counter, section 6.1.1); otherwise it must grow.
    const moved = await this.#db.query(
      'UPDATE passkeys SET counter = $2, last_used_at = $3, backed_up = $4 WHERE id = $1 AND (counter < $2 OR (counter = 0 AND $2 = 0)) RETURNING id',
      [row.id, next, this.#now(), v.authenticationInfo.credentialBackedUp],
    );
    if (moved.length !== 1) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_PASSKEY_INVALID, { reason: 'signature counter did not move forward (cloned authenticator or replay)' });
    return row;
  }

  async #auditFailure(err: unknown, response: AuthenticationResponseJSON, via: string, client: ClientInfo): Promise<void> {
    const rows = typeof response?.id === 'string' && response.id.length <= 1024
      ? await this.#db.query<{ login: string }>('SELECT p.login FROM passkeys k JOIN people p ON p.id = k.person_id WHERE k.credential_id = $1', [response.id])
      : [];
    const reason = isJitgateError(err) ? String(err.details.reason ?? err.code) : 'error';
    await this.#audit.record({ type: 'auth.sign_in_failed', actor: rows[0]?.login ?? 'anonymous', outcome: 'failure', data: { factor: 'passkey', via, ip: client.ip, reason } });
  }

  /**
   * Sign in with a passkey: passwordless without a sign-in (a new, complete
   * one), or as the second factor of a half-done one (its own person's
   * passkeys only). Returns the new sign-in's cookie token, if any.
   */
  async signIn(response: AuthenticationResponseJSON, t: WebAuthnTarget, s: AuthSession | null, client: ClientInfo): Promise<{ token: string | null; next: SignInNext }> {
    const pending = s && s.stage === 'password' ? s : null;
    let row: PasskeyRow;
    try {
      row = await this.#verifyAssertion(response, pending ? 'second-factor' : 'sign-in', pending?.id ?? null, t);
      if (pending && row.person_id !== pending.person.id) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_PASSKEY_INVALID, { reason: 'not a passkey of the person signing in' });
    } catch (err) {
      await this.#auditFailure(err, response, 'web', client);
      throw err;
    }
    if (pending) {
      await this.#identity.completeSignIn(pending.id, row.person_id, client, 'passkey');
      return { token: null, next: 'done' };
    }
    const token = await this.#identity.passkeySignIn(row.person_id, client);
    return { token, next: 'done' };
  }

  /** Step-up with a passkey: the sign-in is confirmed fresh (step_up_at). */
  async stepUp(s: AuthSession, response: AuthenticationResponseJSON, t: WebAuthnTarget, client: ClientInfo): Promise<void> {
    if (s.stage !== 'done') throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    let row: PasskeyRow;
    try {
      row = await this.#verifyAssertion(response, 'step-up', s.id, t);
      if (row.person_id !== s.person.id) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_PASSKEY_INVALID, { reason: 'not your passkey' });
    } catch (err) {
      await this.#auditFailure(err, response, 'step-up', client);
      throw err;
    }
    await this.#identity.recordStepUp(s, client, 'passkey');
  }
}
