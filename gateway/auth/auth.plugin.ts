import cookie from '@fastify/cookie';
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { CoreErrors, JitgateError } from '../../core/errors.js';
import { AuthErrors } from './errors.js';
import { IdentityService, safeEqual, type AuthSession, type ClientInfo, type IdentityDeps } from './identity.service.js';
import type { Principal, Role } from './principal.js';
import { RateLimiter } from './rate-limit.js';
import { proxyTrust, type ProxyTrust } from '../trusted-proxies.js';
import type { LdapSignIn } from './ldap-sign-in.js';
import type { OidcSignIn } from './oidc.service.js';
import { ssoRoutes } from './sso.routes.js';
import { passkeyRoutes } from './passkey.routes.js';
import { PasskeyService } from './passkey.service.js';
import { Invitations } from './invitations.js';

export const SESSION_COOKIE = 'jitgate_session';
export const CSRF_HEADER = 'x-csrf-token';

/** The sign-in session behind a request (any stage), kept off the request type. */
const sessions = new WeakMap<FastifyRequest, AuthSession>();

/** The request's sign-in session, including half-done ones (TOTP pending). */
export function authSessionOf(req: FastifyRequest): AuthSession | null {
  return sessions.get(req) ?? null;
}

/** preHandler: 401 JIT_ERR_AUTH_REQUIRED unless both factors are done. */
export const requirePrincipal: preHandlerAsyncHookHandler = async (req) => {
  if (!req.principal) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
};

/** preHandler: 401 when not signed in, 403 JIT_ERR_FORBIDDEN unless the person has one of `roles`. */
export function requireRole(...roles: Role[]): preHandlerAsyncHookHandler {
  return async (req) => {
    if (!req.principal) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    if (!roles.includes(req.principal.role)) {
      throw new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: `${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]}` });
    }
  };
}

function csrfQuery(req: FastifyRequest): string | undefined {
  const q = req.query as Record<string, unknown> | undefined;
  const v = q?.['csrf'];
  return typeof v === 'string' ? v : undefined;
}

/**
 * For websocket routes (upgrades are GETs, which the plugin does not check):
 * true when the request is not cookie-authenticated, or when its `csrf`
 * query parameter matches the session's CSRF token. Every websocket route
 * must refuse the upgrade when this is false.
 */
export function checkCsrfQuery(req: FastifyRequest): boolean {
  const s = sessions.get(req);
  if (!s) return true;
  const q = csrfQuery(req);
  return q !== undefined && safeEqual(q, s.csrfToken);
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\]|::1)$/i;

/**
 * `auto`: Secure unless the browser provably reached jitgate over plain http
 * on a loopback host name. `req.protocol` is https when jitgate serves TLS or
 * a trusted proxy (server.trustProxy) says X-Forwarded-Proto: https; a
 * request from a trusted proxy that does not say which scheme it received is
 * taken as https (proxies front TLS; their Host is often the upstream's
 * 127.0.0.1, which must not strip Secure).
 */
export function cookieSecure(mode: 'auto' | 'always' | 'never', req: FastifyRequest, trust: ProxyTrust = () => false): boolean {
  if (mode !== 'auto') return mode === 'always';
  if (req.protocol === 'https') return true;
  if (trust(req.socket.remoteAddress) && req.headers['x-forwarded-proto'] === undefined) return true;
  return !LOOPBACK.test(req.hostname);
}

/** req.ip: the socket peer, or the client a trusted proxy names (fastify trustProxy, gateway/server.ts). */
function clientOf(req: FastifyRequest): ClientInfo {
  const ua = req.headers['user-agent'];
  return { ip: req.ip, userAgent: typeof ua === 'string' ? ua : '' };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** What a person whose password an admin set may still call (migration 16, docs/auth.md): the rest answers JIT_ERR_AUTH_PASSWORD_CHANGE_REQUIRED. */
const BEFORE_PASSWORD_CHANGE = new Set(['GET /api/v1/auth/me', 'POST /api/v1/me/password', 'POST /api/v1/auth/sign-out', 'GET /api/v1/auth/providers']);

/** Whether a request is held back until the person changes an admin-set password: every API call but BEFORE_PASSWORD_CHANGE. */
export function heldForPasswordChange(method: string, url: string): boolean {
  const path = url.split('?')[0] ?? '';
  if (!path.startsWith('/api/')) return false;
  return !BEFORE_PASSWORD_CHANGE.has(`${method} ${path.replace(/\/+$/, '')}`);
}

export interface AuthPluginDeps extends IdentityDeps {
  /** Sign-in and code attempts per IP and login per minute (docs/api.md: 10). */
  attemptsPerMinute?: number;
  /** Use an existing service (shared with the SSH front door) instead of building one. */
  identity?: IdentityService;
  /** `server.trustProxy`, the same list buildServer gets (for the cookie's Secure flag). */
  trustProxy?: false | readonly string[];
  /** Sign-in through OIDC providers (identityProviders.oidc); absent → none. */
  oidc?: OidcSignIn | null;
  /** Sign-in against LDAP/AD directories (identityProviders.ldap). */
  ldap?: readonly LdapSignIn[];
  /** `server.publicUrl`: passkeys' RP ID and origin when auth.webauthn does not name them (passkey.service.ts). */
  publicUrl?: string | undefined;
}

/**
 * The auth root plugin: cookies, `req.principal` on every request, CSRF on
 * every cookie-authenticated change and websocket upgrade, and the identity
 * routes under /api/v1 (docs/api.md, section Identity).
 */
export function authPlugin(deps: AuthPluginDeps): (app: FastifyInstance) => Promise<void> {
  const identity = deps.identity ?? new IdentityService(deps);
  const perMinute = deps.attemptsPerMinute ?? 10;
  const limiter = new RateLimiter(perMinute, 60_000, () => identity.now().getTime());
  const cfg = deps.cfg;
  const trust = proxyTrust(deps.trustProxy);

  const limit = (key: string) => {
    const r = limiter.take(key);
    if (!r.ok) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_RATE_LIMITED, { seconds: r.retryAfterS });
  };

  const setSessionCookie = (req: FastifyRequest, reply: FastifyReply, token: string) => {
    reply.setCookie(SESSION_COOKIE, token, {
      path: '/',
      httpOnly: true,
      sameSite: 'strict',
      secure: cookieSecure(cfg.cookieSecure, req, trust),
      maxAge: cfg.sessionHours * 3600,
    });
  };
  const clearSessionCookie = (req: FastifyRequest, reply: FastifyReply) => {
    reply.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'strict', secure: cookieSecure(cfg.cookieSecure, req, trust) });
  };

  const needSession = (req: FastifyRequest): AuthSession => {
    const s = sessions.get(req);
    if (!s) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    return s;
  };
  const principal = (req: FastifyRequest): Principal => {
    if (!req.principal) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    return req.principal;
  };

  const body = (props: Record<string, object>, required: string[]) => ({
    type: 'object',
    properties: props,
    required,
    additionalProperties: false,
  });
  const str = (max: number, min = 1) => ({ type: 'string', minLength: min, maxLength: max });
  const tags = ['identity'];
  const invitations = new Invitations({ db: deps.db, audit: deps.audit, now: () => identity.now() });

  async function routes(api: FastifyInstance): Promise<void> {
    api.get('/auth/me', { schema: { tags, description: 'Who is signed in; never 401. `csrfToken` is "" without a session.' } }, async (req) => {
      const s = sessions.get(req) ?? null;
      return {
        person: s && s.stage === 'done' ? s.person : null,
        pending: IdentityService.pendingOf(s),
        csrfToken: s?.csrfToken ?? '',
      };
    });

    api.post(
      '/auth/sign-in',
      { schema: { tags, description: 'First factor: login and password.', body: body({ login: str(128), password: str(1024) }, ['login', 'password']) } },
      async (req, reply) => {
        const { login, password } = req.body as { login: string; password: string };
        limit(`sign-in:${req.ip}:${login.trim().toLowerCase()}`);
        const r = await identity.signInPassword(login, password, clientOf(req));
        setSessionCookie(req, reply, r.token);
        return { next: r.next };
      },
    );

    api.post(
      '/auth/totp',
      { schema: { tags, description: 'Second factor: a 6-digit code or a recovery code.', body: body({ code: str(32) }, ['code']) } },
      async (req) => {
        const s = needSession(req);
        limit(`totp:${req.ip}:${s.person.id}`);
        return { next: await identity.signInSecondFactor(s, (req.body as { code: string }).code, clientOf(req)) };
      },
    );

    api.post('/auth/totp/enrollment', { schema: { tags, description: 'A new TOTP secret (shown once) with its otpauth URI and QR code.' } }, async (req) => {
      const s = needSession(req);
      return identity.startEnrollment(s);
    });

    api.post(
      '/auth/totp/enrollment/confirm',
      { schema: { tags, description: 'Confirm enrollment with a first code; returns 10 one-time recovery codes (shown once).', body: body({ code: str(6, 6) }, ['code']) } },
      async (req) => {
        const s = needSession(req);
        limit(`totp:${req.ip}:${s.person.id}`);
        return identity.confirmEnrollment(s, (req.body as { code: string }).code, clientOf(req));
      },
    );

    api.post('/auth/sign-out', { schema: { tags, description: 'End this sign-in session and the terminal/RDP sessions it opened.' } }, async (req, reply) => {
      const s = sessions.get(req);
      if (s) await identity.signOut(s);
      clearSessionCookie(req, reply);
      return reply.status(204).send();
    });

    // logLevel warn: the token is in the URL, and the request log line carries the URL.
    api.get(
      '/auth/bootstrap/:token',
      { logLevel: 'warn', schema: { tags, description: 'Whether a first-run setup link is still valid.', params: { type: 'object', properties: { token: str(128) } } } },
      async (req) => ({ valid: await identity.bootstrapValid((req.params as { token: string }).token) }),
    );

    api.post(
      '/auth/bootstrap',
      {
        schema: {
          tags,
          description: 'Create the first global admin with a one-time setup token; TOTP enrollment follows.',
          body: body({ token: str(128), login: str(64), displayName: str(200, 0), password: str(1024) }, ['token', 'login', 'password']),
        },
      },
      async (req, reply) => {
        const b = req.body as { token: string; login: string; displayName?: string; password: string };
        limit(`bootstrap:${req.ip}`);
        const r = await identity.bootstrap(b.token, { login: b.login, displayName: b.displayName ?? b.login, password: b.password }, clientOf(req));
        setSessionCookie(req, reply, r.token);
        return { next: 'totp-enrollment' as const };
      },
    );

    // Invitation links (docs/auth.md "Invitations"): the token travels in the body, never in a URL a log line keeps.
    api.post(
      '/auth/invitation',
      { schema: { tags, description: 'What an invitation link invites as (login, role, organization, expiry); refused when unknown, used, expired or withdrawn.', body: body({ token: str(128) }, ['token']) } },
      async (req) => {
        limit(`invitation:${req.ip}`);
        return invitations.preview((req.body as { token: string }).token, clientOf(req));
      },
    );

    api.post(
      '/auth/invitation/accept',
      { schema: { tags, description: 'Use an invitation link once: creates the person with the password they chose; TOTP enrollment follows.', body: body({ token: str(128), password: str(1024) }, ['token', 'password']) } },
      async (req, reply) => {
        limit(`invitation:${req.ip}`);
        const b = req.body as { token: string; password: string };
        const r = await invitations.accept(b.token, b.password, clientOf(req), (personId, client, q) => identity.openSignIn(personId, client, q));
        setSessionCookie(req, reply, r.token);
        return { next: 'totp-enrollment' as const, login: r.login };
      },
    );

    api.post(
      '/me/password',
      { preHandler: requirePrincipal, schema: { tags, description: 'Change your password; your other sign-in sessions end, with every live session they (or the SSH front door) opened.', body: body({ current: str(1024), next: str(1024) }, ['current', 'next']) } },
      async (req, reply) => {
        const p = principal(req);
        limit(`password:${req.ip}:${p.personId}`);
        const b = req.body as { current: string; next: string };
        await identity.changePassword(p, b.current, b.next, clientOf(req));
        return reply.status(204).send();
      },
    );

    api.get('/me/ssh-keys', { preHandler: requirePrincipal, schema: { tags, description: 'Your SSH public keys (for the SSH front door).' } }, async (req) =>
      identity.listSshKeys(principal(req).personId),
    );

    api.post(
      '/me/ssh-keys',
      { preHandler: requirePrincipal, schema: { tags, description: 'Register an OpenSSH public key line.', body: body({ publicKey: str(16_384), label: str(100, 0) }, ['publicKey']) } },
      async (req, reply) => {
        const b = req.body as { publicKey: string; label?: string };
        return reply.status(201).send(await identity.addSshKey(principal(req), b.publicKey, b.label ?? ''));
      },
    );

    api.delete('/me/ssh-keys/:id', { preHandler: requirePrincipal, schema: { tags, description: 'Remove one of your SSH keys.' } }, async (req, reply) => {
      await identity.removeSshKey(principal(req), (req.params as { id: string }).id);
      return reply.status(204).send();
    });

    api.get('/auth-sessions', { preHandler: requireRole('global_admin', 'org_admin'), schema: { tags, description: 'Active sign-in sessions (org admins: their organization\'s people, never a global admin).' } }, async (req) => {
      const p = principal(req);
      const list = await identity.listSessions(p);
      return list.map((s) => ({ ...s, current: s.id === p.authSessionId }));
    });

    api.delete('/auth-sessions/:id', { preHandler: requirePrincipal, schema: { tags, description: 'Revoke a sign-in session and end the live sessions it opened (admins in scope; anyone for their own).' } }, async (req, reply) => {
      await identity.revokeSession(principal(req), (req.params as { id: string }).id);
      return reply.status(204).send();
    });
  }

  async function plugin(app: FastifyInstance): Promise<void> {
    if (!app.hasRequestDecorator('cookies')) await app.register(cookie);
    if (!app.hasRequestDecorator('principal')) app.decorateRequest('principal', null);

    app.addHook('onRequest', async (req) => {
      req.principal = null;
      const token = req.cookies[SESSION_COOKIE];
      if (!token) return;
      const s = await identity.session(token);
      if (!s) return;
      sessions.set(req, s);
      req.principal = IdentityService.principalOf(s);
      // CSRF (docs/api.md): every cookie-authenticated change carries the
      // header. Websocket upgrades are GETs: their routes call
      // checkCsrfQuery() and close with their own code (4003) when it fails.
      if (!SAFE_METHODS.has(req.method)) {
        const h = req.headers[CSRF_HEADER];
        if (typeof h !== 'string' || !safeEqual(h, s.csrfToken)) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_CSRF);
      }
      // An admin chose this password: nothing but changing it until it is changed (websocket upgrades included).
      if (req.principal && s.person.mustChangePassword && heldForPasswordChange(req.method, req.url)) {
        throw new JitgateError(AuthErrors.JIT_ERR_AUTH_PASSWORD_CHANGE_REQUIRED);
      }
    });

    await app.register(routes, { prefix: '/api/v1' });
    await app.register(
      ssoRoutes({
        identity,
        oidc: deps.oidc ?? null,
        ldap: deps.ldap ?? [],
        limit,
        clientOf,
        setSessionCookie,
        secure: (req) => cookieSecure(cfg.cookieSecure, req, trust),
      }),
      { prefix: '/api/v1' },
    );
    await app.register(
      passkeyRoutes({
        identity,
        passkeys: new PasskeyService({ db: deps.db, audit: deps.audit, log: deps.log, identity }),
        cfg,
        publicUrl: deps.publicUrl,
        limit,
        clientOf,
        setSessionCookie,
        sessionOf: authSessionOf,
      }),
      { prefix: '/api/v1' },
    );
  }

  return async (app) => {
    await app.register(fp(plugin, { name: 'jitgate-auth', fastify: '5.x' }));
  };
}
