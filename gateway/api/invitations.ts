import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { INVITATION_MAX_TTL_HOURS, Invitations } from '../auth/invitations.js';
import { ROLES, type Role } from '../auth/principal.js';
import type { ApiDeps } from './deps.js';
import { parseBody, principalOf } from './http.js';

const createBody = z.strictObject({
  login: z.string().trim().toLowerCase().regex(/^[a-z][a-z0-9._-]{0,31}$/, 'a letter, then up to 31 letters, digits, ".", "_" or "-"'),
  displayName: z.string().trim().max(200).default(''),
  email: z.email().max(320).nullable().default(null),
  role: z.enum(ROLES as [Role, ...Role[]]),
  organizationId: z.uuid().nullable(),
  ttlHours: z.number().int().min(1).max(INVITATION_MAX_TTL_HOURS).optional(),
});

/**
 * Invitations, the admin side (docs/api.md, docs/auth.md "Invitations"):
 * create (the link is in this one answer only), list, withdraw. The
 * invitee's side (check, use) is public and lives with sign-in (gateway/auth).
 */
export function invitationRoutes(deps: ApiDeps) {
  const invitations = new Invitations({ db: deps.db, audit: deps.audit });
  return async (app: FastifyInstance): Promise<void> => {
    app.post('/invitations', async (req, reply) => {
      const p = principalOf(req);
      const b = parseBody(createBody, req.body);
      const r = await invitations.create(p, { ...b, displayName: b.displayName || b.login, ...(b.ttlHours !== undefined ? { ttlHours: b.ttlHours } : {}) });
      // The link leaves jitgate once, here; only its hash is stored.
      return reply.status(201).header('cache-control', 'no-store').send({ ...r.invitation, path: r.path });
    });

    app.get('/invitations', async (req) => invitations.list(principalOf(req)));

    app.delete<{ Params: { id: string } }>('/invitations/:id', async (req, reply) => {
      await invitations.revoke(principalOf(req), req.params.id);
      return reply.status(204).send();
    });
  };
}
