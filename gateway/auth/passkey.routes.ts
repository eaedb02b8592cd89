import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CoreErrors, JitgateError } from '../../core/errors.js';
import type { AuthConfig, AuthSession, ClientInfo, IdentityService } from './identity.service.js';
import { webauthnTarget, type PasskeyService, type WebAuthnTarget } from './passkey.service.js';

export interface PasskeyRouteDeps {
  identity: IdentityService;
  passkeys: PasskeyService;
  cfg: AuthConfig;
  publicUrl: string | undefined;
  limit: (key: string) => void;
  clientOf: (req: FastifyRequest) => ClientInfo;
  setSessionCookie: (req: FastifyRequest, reply: FastifyReply, token: string) => void;
  /** The request's sign-in, any stage (auth.plugin.ts). */
  sessionOf: (req: FastifyRequest) => AuthSession | null;
}

/**
 * Passkey routes (docs/api.md, Identity; docs/auth.md, Passkeys): passwordless
 * sign-in and second factor, enrollment and management under /me, step-up.
 * Every change is cookie-authenticated with the CSRF header, as all others
 * (auth.plugin.ts), except the passwordless sign-in, which has no session yet.
 */
export function passkeyRoutes(d: PasskeyRouteDeps) {
  const tags = ['identity'];
  const target = (req: FastifyRequest): WebAuthnTarget =>
    webauthnTarget(d.cfg.webauthn, d.publicUrl, { origin: `${req.protocol}://${req.host}`, hostname: req.hostname });
  const need = (req: FastifyRequest): AuthSession => {
    const s = d.sessionOf(req);
    if (!s) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    return s;
  };
  const done = (req: FastifyRequest): AuthSession => {
    const s = need(req);
    if (s.stage !== 'done') throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    return s;
  };
  const responseBody = (extra: Record<string, object> = {}, required: string[] = []) => ({
    type: 'object',
    properties: { response: { type: 'object' }, ...extra },
    required: ['response', ...required],
    additionalProperties: false,
  });
  const name = { type: 'string', minLength: 1, maxLength: 64 };

  return async (api: FastifyInstance): Promise<void> => {
    api.post('/auth/passkey/options', { schema: { tags, description: 'Options for navigator.credentials.get(): passwordless, or the second factor of a half-done sign-in.' } }, async (req) => {
      d.limit(`passkey-options:${req.ip}`);
      const s = d.sessionOf(req);
      return d.passkeys.assertionOptions(target(req), s && s.stage === 'password' ? s : null, 'sign-in');
    });

    api.post('/auth/passkey', { schema: { tags, description: 'Sign in with a passkey (the browser\'s assertion); completes a half-done sign-in or starts a new one.', body: responseBody() } }, async (req, reply) => {
      d.limit(`passkey:${req.ip}`);
      const s = d.sessionOf(req);
      const r = await d.passkeys.signIn((req.body as { response: AuthenticationResponseJSON }).response, target(req), s && s.stage === 'password' ? s : null, d.clientOf(req));
      if (r.token) d.setSessionCookie(req, reply, r.token);
      return { next: r.next };
    });

    api.get('/me/passkeys', { schema: { tags, description: 'Your passkeys (names, when added and last used; no key material).' } }, async (req) => d.passkeys.list(done(req).person.id));

    api.post('/me/passkeys/options', { schema: { tags, description: 'Options for navigator.credentials.create(): a new passkey (also on a half-done sign-in that must enroll one).' } }, async (req) => {
      const s = need(req);
      d.limit(`passkey-enroll:${req.ip}:${s.person.id}`);
      return d.passkeys.registrationOptions(s, target(req));
    });

    api.post('/me/passkeys', { schema: { tags, description: 'Store a new passkey from the browser\'s attestation; completes a half-done sign-in that needed it.', body: responseBody({ name }, ['name']) } }, async (req, reply) => {
      const s = need(req);
      d.limit(`passkey-enroll:${req.ip}:${s.person.id}`);
      const b = req.body as { name: string; response: RegistrationResponseJSON };
      const r = await d.passkeys.register(s, b.name, b.response, target(req), d.clientOf(req));
      return reply.status(201).send({ ...r.passkey, next: r.next, recoveryCodes: r.recoveryCodes });
    });

    api.get('/me/recovery-codes', { schema: { tags, description: 'How many unused recovery codes you have (`{remaining}`).' } }, async (req) => ({
      remaining: await d.identity.recoveryCodesLeft(done(req).person.id),
    }));

    api.post(
      '/me/recovery-codes',
      { schema: { tags, description: 'New recovery codes (shown once; the old ones stop working). Needs a passkey or code confirmation (POST /auth/step-up) within the last 5 minutes, else 403 JIT_ERR_AUTH_CONFIRMATION_REQUIRED.' } },
      async (req) => {
        const s = done(req);
        d.limit(`recovery-codes:${req.ip}:${s.person.id}`);
        return { recoveryCodes: await d.identity.regenerateRecoveryCodes(s, d.clientOf(req)) };
      },
    );

    api.patch<{ Params: { id: string } }>(
      '/me/passkeys/:id',
      { schema: { tags, description: 'Rename one of your passkeys.', body: { type: 'object', properties: { name }, required: ['name'], additionalProperties: false } } },
      async (req) => {
        const p = req.principal;
        if (!p) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
        return d.passkeys.rename(p, req.params.id, (req.body as { name: string }).name);
      },
    );

    api.delete<{ Params: { id: string } }>('/me/passkeys/:id', { schema: { tags, description: 'Revoke one of your passkeys: it signs in no more.' } }, async (req, reply) => {
      const p = req.principal;
      if (!p) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
      await d.passkeys.revoke(p, req.params.id);
      return reply.status(204).send();
    });

    api.post('/auth/step-up/options', { schema: { tags, description: 'Options for a step-up confirmation with one of your passkeys.' } }, async (req) => {
      const s = done(req);
      d.limit(`step-up:${req.ip}:${s.person.id}`);
      return d.passkeys.assertionOptions(target(req), s, 'step-up');
    });

    api.post(
      '/auth/step-up',
      {
        schema: {
          tags,
          description: 'Confirm it is you now (a passkey assertion, or a TOTP/recovery code where passkeys are not required), for computers that require a fresh confirmation.',
          body: { type: 'object', properties: { response: { type: 'object' }, code: { type: 'string', minLength: 1, maxLength: 32 } }, additionalProperties: false },
        },
      },
      async (req, reply) => {
        const s = done(req);
        d.limit(`step-up:${req.ip}:${s.person.id}`);
        const b = req.body as { response?: AuthenticationResponseJSON; code?: string };
        if (b.response) await d.passkeys.stepUp(s, b.response, target(req), d.clientOf(req));
        else if (b.code) await d.identity.stepUpWithCode(s, b.code, d.clientOf(req));
        else throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'a passkey response or a code is required' });
        return reply.status(204).send();
      },
    );
  };
}
