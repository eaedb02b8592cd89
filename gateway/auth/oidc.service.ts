import type { JsonWebKey } from 'node:crypto';
import * as oidc from 'openid-client';
import { JitgateError } from '../../core/errors.js';
import type { Logger } from '../../core/logging.js';
import type { SecretBox } from '../../core/secret-box.js';
import type { OidcProviderConfig } from '../../config/schema.js';
import { groupsFromClaim, mapExternalIdentity, providerAssertedMfa } from './claim-mapping.js';
import { AuthErrors } from './errors.js';
import type { ClientInfo, IdentityService, SignInNext } from './identity.service.js';
import { LogoutTokenError, verifyLogoutToken } from './logout-token.js';

/** How long a started sign-in waits for the provider's answer. */
export const OIDC_PENDING_MINUTES = 10;
const JWKS_TTL_MS = 10 * 60_000;

/** What the browser carries between start and callback, sealed with the installation's key (never readable by it). */
export interface PendingOidc {
  provider: string;
  state: string;
  nonce: string;
  verifier: string;
  /** ms since the epoch, by the service clock */
  at: number;
  returnTo: string;
}

const PENDING_AAD = 'oidc-pending';

export function sealPending(box: SecretBox, p: PendingOidc): string {
  return box.encrypt(JSON.stringify(p), PENDING_AAD);
}

export function openPending(box: SecretBox, sealed: string): PendingOidc | null {
  try {
    const v = JSON.parse(box.decrypt(sealed, PENDING_AAD)) as PendingOidc;
    return typeof v.state === 'string' && typeof v.nonce === 'string' && typeof v.verifier === 'string' ? v : null;
  } catch {
    return null;
  }
}

/** Only a path on this site (no `//host`, no scheme): the return address must not become an open redirect. */
export function safeReturnTo(v: unknown): string {
  return typeof v === 'string' && v.startsWith('/') && !v.startsWith('//') && !v.startsWith('/\\') && v.length < 512 ? v : '/';
}

export interface OidcDeps {
  providers: readonly OidcProviderConfig[];
  identity: IdentityService;
  box: SecretBox;
  log: Logger;
  /** `server.publicUrl`: base of the redirect URI when a provider names none. */
  publicUrl?: string | undefined;
  now?: () => Date;
  /** Tests only: replaces fetch for every request to the provider (openid-client customFetch). */
  fetch?: oidc.CustomFetch;
}

interface Discovered {
  server: oidc.ServerMetadata;
  jwks?: { at: number; keys: readonly JsonWebKey[] };
}

/**
 * OIDC sign-in (authorization code + PKCE S256, state, nonce) with
 * openid-client, and back-channel logout. The provider's answer decides
 * who the person is (iss + sub), their role and organization (claim
 * mapping); IdentityService creates, updates or deprovisions them.
 */
export class OidcSignIn {
  readonly #providers: Map<string, OidcProviderConfig>;
  readonly #deps: OidcDeps;
  readonly #log: Logger;
  readonly #discovered = new Map<string, Promise<Discovered>>();
  /** Logout token ids seen (replay, section 2.6 step 10), per process, bounded. */
  readonly #seenJti = new Map<string, number>();

  constructor(deps: OidcDeps) {
    this.#deps = deps;
    this.#providers = new Map(deps.providers.map((p) => [p.name, p]));
    this.#log = deps.log.child({ component: 'oidc' });
  }

  #now(): Date {
    return this.#deps.now?.() ?? new Date();
  }

  /** Public list for the sign-in page: names only. */
  list(): { name: string; displayName: string; type: 'oidc' }[] {
    return [...this.#providers.values()].map((p) => ({ name: p.name, displayName: p.displayName, type: 'oidc' as const }));
  }

  #provider(name: string): OidcProviderConfig {
    const p = this.#providers.get(name);
    if (!p) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_UNKNOWN_PROVIDER, { provider: name.slice(0, 40) });
    return p;
  }

  redirectUri(p: OidcProviderConfig, requestBase: string): string {
    if (p.redirectUri) return p.redirectUri;
    const base = (this.#deps.publicUrl ?? requestBase).replace(/\/$/, '');
    return `${base}/api/v1/auth/oidc/${p.name}/callback`;
  }

  async #discover(p: OidcProviderConfig): Promise<Discovered> {
    let d = this.#discovered.get(p.name);
    if (!d) {
      d = (async () => {
        const c = await oidc.discovery(new URL(p.issuer), p.clientId, undefined, oidc.ClientSecretBasic(p.clientSecret.reveal()), {
          ...(p.issuer.startsWith('http:') ? { execute: [oidc.allowInsecureRequests] } : {}),
          ...(this.#deps.fetch ? { [oidc.customFetch]: this.#deps.fetch } : {}),
        });
        return { server: c.serverMetadata() };
      })();
      this.#discovered.set(p.name, d);
      // A provider down at first use must not stay "down" until restart.
      d.catch(() => this.#discovered.delete(p.name));
    }
    try {
      return await d;
    } catch (err) {
      this.#log.warn({ provider: p.name, err: { code: (err as { code?: string }).code } }, 'identity provider discovery failed');
      throw new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_UNAVAILABLE, { provider: p.name });
    }
  }

  /** A Configuration per request: cheap, and carries the service clock (tests move it) into openid-client's checks. */
  #config(p: OidcProviderConfig, d: Discovered): oidc.Configuration {
    // clockSkew is added to Date.now() by openid-client: the service clock minus the real one.
    const skew = Math.round((this.#now().getTime() - Date.now()) / 1000);
    const c = new oidc.Configuration(d.server, p.clientId, { [oidc.clockSkew]: skew }, oidc.ClientSecretBasic(p.clientSecret.reveal()));
    if (p.issuer.startsWith('http:')) oidc.allowInsecureRequests(c);
    if (this.#deps.fetch) c[oidc.customFetch] = this.#deps.fetch;
    return c;
  }

  /** Start: the provider's authorization URL and the sealed state for the browser's cookie. */
  async start(name: string, requestBase: string, returnTo: string): Promise<{ url: string; sealed: string }> {
    const p = this.#provider(name);
    const d = await this.#discover(p);
    const pending: PendingOidc = {
      provider: p.name,
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier: oidc.randomPKCECodeVerifier(),
      at: this.#now().getTime(),
      returnTo: safeReturnTo(returnTo),
    };
    const url = oidc.buildAuthorizationUrl(this.#config(p, d), {
      redirect_uri: this.redirectUri(p, requestBase),
      scope: p.scopes.join(' '),
      response_type: 'code',
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(pending.verifier),
      code_challenge_method: 'S256',
    });
    return { url: url.href, sealed: sealPending(this.#deps.box, pending) };
  }

  /**
   * The provider's redirect back: check state (against the browser's sealed
   * cookie), exchange the code with the PKCE verifier, check the ID token
   * (iss, aud, exp, iat, nonce: openid-client), read the claims (ID token,
   * then userinfo), map them and sign the person in.
   */
  async callback(name: string, requestBase: string, search: string, sealed: string | undefined, client: ClientInfo): Promise<{ token: string; next: SignInNext; returnTo: string }> {
    const p = this.#provider(name);
    const fail = (reason: string) => new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_FAILED, { provider: p.name, reason });
    const pending = sealed ? openPending(this.#deps.box, sealed) : null;
    if (!pending || pending.provider !== p.name) throw fail('no sign-in was started in this browser');
    if (this.#now().getTime() - pending.at > OIDC_PENDING_MINUTES * 60_000) throw fail('the sign-in took too long; start again');
    const d = await this.#discover(p);
    const config = this.#config(p, d);
    const current = new URL(this.redirectUri(p, requestBase));
    current.search = search;
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      // Library error codes (oauth4webapi), not messages: e.g. OAUTH_JWT_CLAIM_COMPARISON_FAILED with the claim.
      const e = err as { code?: string; error?: string; cause?: unknown };
      let claim: string | undefined;
      for (let c: unknown = e.cause, i = 0; c && typeof c === 'object' && i < 3; c = (c as { cause?: unknown }).cause, i++) {
        const v = (c as { claim?: unknown }).claim;
        if (typeof v === 'string') claim = v;
      }
      const reason = [e.code ?? e.error ?? 'rejected', claim].filter(Boolean).join(' ');
      this.#log.info({ provider: p.name, reason }, 'OIDC callback refused');
      throw fail(reason);
    }
    const idt = tokens.claims();
    if (!idt) throw fail('no ID token');
    let info: Record<string, unknown> = {};
    if (d.server.userinfo_endpoint) {
      try {
        info = { ...(await oidc.fetchUserInfo(config, tokens.access_token, idt.sub)) };
      } catch (err) {
        this.#log.warn({ provider: p.name, err: { code: (err as { code?: string }).code } }, 'userinfo failed; using the ID token claims only');
      }
    }
    // The ID token's own claims win over userinfo (it is the audience-bound, nonce-bound statement).
    const claims: Record<string, unknown> = { ...info, ...idt };
    const str = (k: string) => (typeof claims[k] === 'string' ? (claims[k] as string) : '');
    const email = str(p.claims.email) || null;
    const groups = groupsFromClaim(claims[p.claims.groups]);
    const mapping = mapExternalIdentity(p, {
      groups,
      verifiedEmail: email && claims['email_verified'] === true ? email : null,
      claims,
    });
    const r = await this.#deps.identity.signInExternal(
      {
        provider: p.name,
        issuer: idt.iss,
        subject: idt.sub,
        loginHint: str(p.claims.login) || email || 'user',
        displayName: str(p.claims.displayName),
        email,
        mapping,
        mfaDone: p.trustProviderMfa && providerAssertedMfa(idt.amr),
        idpSid: typeof idt['sid'] === 'string' ? idt['sid'] : null,
        groups,
      },
      client,
    );
    return { ...r, returnTo: pending.returnTo };
  }

  async #keys(p: OidcProviderConfig, refresh: boolean): Promise<readonly JsonWebKey[]> {
    const d = await this.#discover(p);
    const now = Date.now();
    if (!refresh && d.jwks && now - d.jwks.at < JWKS_TTL_MS) return d.jwks.keys;
    if (!d.server.jwks_uri) return [];
    const res = this.#deps.fetch
      ? await this.#deps.fetch(d.server.jwks_uri, { method: 'GET', headers: { accept: 'application/json' }, redirect: 'manual', body: undefined, signal: AbortSignal.timeout(10_000) })
      : await fetch(d.server.jwks_uri, { headers: { accept: 'application/json' }, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_UNAVAILABLE, { provider: p.name });
    const body = (await res.json()) as { keys?: unknown };
    const keys = Array.isArray(body.keys) ? (body.keys as JsonWebKey[]) : [];
    d.jwks = { at: now, keys };
    return keys;
  }

  /** Back-channel logout: verify the token, then end the sign-ins (and live sessions) it names. */
  async backchannelLogout(name: string, logoutToken: string): Promise<number> {
    const p = this.#provider(name);
    const d = await this.#discover(p);
    const now = Math.floor(this.#now().getTime() / 1000);
    let claims;
    try {
      claims = await verifyLogoutToken(logoutToken, { issuer: d.server.issuer, clientId: p.clientId, keys: (refresh) => this.#keys(p, refresh), now });
    } catch (err) {
      if (err instanceof LogoutTokenError) {
        this.#log.warn({ provider: p.name, reason: err.reason }, 'back-channel logout token refused');
        throw new JitgateError(AuthErrors.JIT_ERR_AUTH_LOGOUT_TOKEN_INVALID, { reason: err.reason });
      }
      throw err;
    }
    const key = `${p.name}:${claims.jti}`;
    if (this.#seenJti.has(key)) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_LOGOUT_TOKEN_INVALID, { reason: 'replayed jti' });
    this.#seenJti.set(key, now);
    if (this.#seenJti.size > 10_000) {
      for (const [k, at] of this.#seenJti) if (at < now - 3600) this.#seenJti.delete(k);
    }
    return this.#deps.identity.endProviderSessions(p.name, d.server.issuer, { sid: claims.sid, sub: claims.sub });
  }
}
