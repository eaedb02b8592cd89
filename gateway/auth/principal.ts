/**
 * Who is making a request: set by the auth plugin (gateway/auth) on every
 * request (`req.principal`, null when not signed in or when the second
 * factor is still missing) and by the SSH front door after public key +
 * TOTP. Everything that authorizes takes a Principal, never a raw login.
 */
export type Role = 'global_admin' | 'org_admin' | 'technician' | 'auditor';

export const ROLES: readonly Role[] = ['global_admin', 'org_admin', 'technician', 'auditor'];

export interface Principal {
  personId: string;
  login: string;
  displayName: string;
  role: Role;
  /** null only for global admins without a home organization. */
  organizationId: string | null;
  /** The web sign-in session (or `ssh:<connection id>` for the front door); revocable. */
  authSessionId: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Signed-in person (both factors done), or null. */
    principal: Principal | null;
  }
}
