import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { JitgateError, isJitgateError } from '../../core/errors.js';
import { mapExternalIdentity } from './claim-mapping.js';
import { AuthErrors } from './errors.js';
import type { ClientInfo, IdentityService, SignInNext } from './identity.service.js';
import type { LdapSignIn } from './ldap-sign-in.js';
import { OIDC_PENDING_MINUTES, type OidcSignIn } from './oidc.service.js';

export const OIDC_COOKIE = 'jitgate_oidc';

export interface SsoRouteDeps {
  identity: IdentityService;
  oidc: OidcSignIn | null;
  ldap: readonly LdapSignIn[];
  limit: (key: string) => void;
  clientOf: (req: FastifyRequest) => ClientInfo;
  setSessionCookie: (req: FastifyRequest, reply: FastifyReply, token: string) => void;
  secure: (req: FastifyRequest) => boolean;
}

function html(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Sign-in through identity providers (docs/api.md, Identity): the public
 * provider list, OIDC start/callback/back-channel logout, LDAP sign-in.
 */
export function ssoRoutes(d: SsoRouteDeps) {
  const tags = ['identity'];
  const ldapByName = new Map(d.ldap.map((l) => [l.cfg.name, l]));
  return async (api: FastifyInstance): Promise<void> => {
    // Back-channel logout tokens arrive form-encoded (OIDC Back-Channel Logout 1.0 section 2.5); only in this scope.
    api.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 32_768 }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    });

    api.get('/auth/providers', { schema: { tags, description: 'Identity providers people may sign in with (names only).' } }, async () => [
      ...(d.oidc?.list() ?? []),
      ...d.ldap.map((l) => ({ name: l.cfg.name, displayName: l.cfg.displayName, type: 'ldap' as const })),
    ]);

    const base = (req: FastifyRequest) => `${req.protocol}://${req.host}`;
    const cookieOpts = (req: FastifyRequest) => ({
      path: '/api/v1/auth/oidc/',
      httpOnly: true,
      // Lax, not Strict: the callback is a top-level navigation coming from the provider's site.
      sameSite: 'lax' as const,
      secure: d.secure(req),
    });

    api.get<{ Params: { provider: string }; Querystring: { next?: string } }>(
      '/auth/oidc/:provider/start',
      { schema: { tags, description: 'Redirect to the identity provider (authorization code + PKCE).' } },
      async (req, reply) => {
        if (!d.oidc) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_UNKNOWN_PROVIDER, { provider: req.params.provider.slice(0, 40) });
        d.limit(`oidc-start:${req.ip}`);
        const r = await d.oidc.start(req.params.provider, base(req), req.query.next ?? '/');
        reply.setCookie(OIDC_COOKIE, r.sealed, { ...cookieOpts(req), maxAge: OIDC_PENDING_MINUTES * 60 });
        return reply.redirect(r.url, 302);
      },
    );

    // logLevel warn: the query carries the authorization code.
    api.get<{ Params: { provider: string } }>(
      '/auth/oidc/:provider/callback',
      { logLevel: 'warn', schema: { tags, description: 'Where the identity provider sends the browser back.' } },
      async (req, reply) => {
        reply.clearCookie(OIDC_COOKIE, cookieOpts(req));
        const search = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
        try {
          if (!d.oidc) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_UNKNOWN_PROVIDER, { provider: req.params.provider.slice(0, 40) });
          d.limit(`oidc-callback:${req.ip}`);
          const r = await d.oidc.callback(req.params.provider, base(req), search, req.cookies[OIDC_COOKIE], d.clientOf(req));
          d.setSessionCookie(req, reply, r.token);
          const to = r.next === 'done' ? r.returnTo : `/sign-in?next=${encodeURIComponent(r.returnTo)}`;
          // A page, not a redirect: the SameSite=Strict session cookie is not sent on a redirect chain that began on the provider's site.
          return reply
            .type('text/html; charset=utf-8')
            .header('cache-control', 'no-store')
            .send(`<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${html(to)}"><title>Signed in</title><a href="${html(to)}">Continue</a>`);
        } catch (err) {
          const code = isJitgateError(err) ? err.code : 'JIT_ERR_AUTH_SSO_FAILED';
          if (!isJitgateError(err)) req.log.error({ err }, 'OIDC callback failed');
          return reply.redirect(`/sign-in?error=${encodeURIComponent(code)}`, 303);
        }
      },
    );

    api.post<{ Params: { provider: string } }>(
      '/auth/oidc/:provider/backchannel-logout',
      { schema: { tags, description: 'OIDC Back-Channel Logout 1.0: the provider ends sign-ins (logout_token, form-encoded).' } },
      async (req, reply) => {
        reply.header('cache-control', 'no-store');
        if (!d.oidc) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_UNKNOWN_PROVIDER, { provider: req.params.provider.slice(0, 40) });
        const b = req.body as Record<string, unknown> | undefined;
        const t = b?.['logout_token'];
        if (typeof t !== 'string') throw new JitgateError(AuthErrors.JIT_ERR_AUTH_LOGOUT_TOKEN_INVALID, { reason: 'logout_token missing' });
        await d.oidc.backchannelLogout(req.params.provider, t);
        return reply.status(200).send();
      },
    );

    api.post<{ Params: { provider: string } }>(
      '/auth/ldap/:provider/sign-in',
      {
        schema: {
          tags,
          description: 'First factor against an LDAP/AD directory: the directory checks the password; TOTP follows.',
          body: { type: 'object', properties: { login: { type: 'string', minLength: 1, maxLength: 320 }, password: { type: 'string', minLength: 0, maxLength: 1024 } }, required: ['login', 'password'], additionalProperties: false },
        },
      },
      async (req, reply) => {
        const l = ldapByName.get(req.params.provider);
        if (!l) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_SSO_UNKNOWN_PROVIDER, { provider: req.params.provider.slice(0, 40) });
        const { login, password } = req.body as { login: string; password: string };
        d.limit(`sign-in:${req.ip}:ldap:${login.trim().toLowerCase()}`);
        const client = d.clientOf(req);
        let who;
        try {
          who = await l.authenticate(login, password);
        } catch (err) {
          if (isJitgateError(err, AuthErrors.JIT_ERR_AUTH_INVALID_CREDENTIALS)) await d.identity.auditDirectoryFailure(l.cfg.name, login, client);
          throw err;
        }
        const r: { token: string; next: SignInNext } = await d.identity.signInExternal(
          {
            provider: l.cfg.name,
            issuer: `ldap:${l.cfg.name}`,
            subject: who.subject,
            loginHint: who.login,
            displayName: who.displayName,
            email: who.email,
            mapping: mapExternalIdentity(l.cfg, { groups: who.groups, verifiedEmail: null, claims: {} }),
            // The directory proves a password only: jitgate's TOTP always follows.
            mfaDone: false,
            idpSid: null,
            groups: who.groups,
          },
          client,
        );
        d.setSessionCookie(req, reply, r.token);
        return { next: r.next };
      },
    );
  };
}
