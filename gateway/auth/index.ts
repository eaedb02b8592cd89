import type { FastifyInstance } from 'fastify';
import type { FrontDoorIdentity } from '../contracts.js';
import { authPlugin, type AuthPluginDeps } from './auth.plugin.js';
import { IdentityService } from './identity.service.js';
import { ensureBootstrap } from './people.js';
import { hashPassword } from './password.js';
import { LdapSignIn } from './ldap-sign-in.js';
import { OidcSignIn, type OidcDeps } from './oidc.service.js';
import type { IdentityProvidersConfig } from '../../config/schema.js';

export { authPlugin, requirePrincipal, requireRole, checkCsrfQuery, authSessionOf, SESSION_COOKIE, CSRF_HEADER } from './auth.plugin.js';
export { IdentityService } from './identity.service.js';
export { createPerson, ensureBootstrap } from './people.js';
export { hashPassword, checkPasswordPolicy } from './password.js';
export { AuthErrors } from './errors.js';
export { OidcSignIn } from './oidc.service.js';
export { LdapSignIn } from './ldap-sign-in.js';
export { stepUpCheck } from './step-up.js';

export interface Auth {
  /** Root plugin for buildServer({ rootPlugins: [auth.plugin] }). */
  plugin: (app: FastifyInstance) => Promise<void>;
  /** For the SSH front door (same lockout and TOTP replay state as the web). */
  frontDoor: FrontDoorIdentity;
  identity: IdentityService;
  /** `/setup#<token>` to print after `<publicUrl>` when no global admin exists yet, else null. */
  bootstrapPath: () => Promise<string | null>;
  /** For apiRoutes deps (gateway/api): end a person's sign-in sessions. */
  revokeAuthSessions: (personId: string) => Promise<void>;
  /** For apiRoutes deps (gateway/api): argon2id, the format sign-in verifies. */
  hashPassword: (password: string) => Promise<string>;
}

/**
 * Wiring for main.ts: one IdentityService shared by the HTTP plugin and the
 * SSH front door. deps: { db, box, audit, log, cfg: config.auth }.
 */
export function createAuth(
  deps: AuthPluginDeps & { identityProviders?: IdentityProvidersConfig; publicUrl?: string | undefined; oidcFetch?: OidcDeps['fetch'] },
): Auth {
  const identity = deps.identity ?? new IdentityService(deps);
  const ip = deps.identityProviders;
  const oidc = ip && ip.oidc.length > 0
    ? new OidcSignIn({ providers: ip.oidc, identity, box: deps.box, log: deps.log, publicUrl: deps.publicUrl, ...(deps.now ? { now: deps.now } : {}), ...(deps.oidcFetch ? { fetch: deps.oidcFetch } : {}) })
    : null;
  const ldap = (ip?.ldap ?? []).map((c) => new LdapSignIn(c, deps.log));
  return {
    plugin: authPlugin({ ...deps, identity, oidc, ldap }),
    frontDoor: identity,
    identity,
    bootstrapPath: () => ensureBootstrap(deps.db, deps.now ? { now: deps.now } : {}),
    revokeAuthSessions: async (personId) => {
      await identity.revokePersonSessions(personId);
    },
    hashPassword,
  };
}
