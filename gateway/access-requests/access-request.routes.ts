import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseBody, principalOf } from '../api/http.js';
import type { AccessRequestService } from './access-request.service.js';

const proof = {
  /** A fresh code from the authenticator app (or a recovery code). */
  code: z.string().trim().min(6).max(32).optional(),
  /** A WebAuthn assertion where a passkey is enrolled (checked by the wired SecondFactorCheck). */
  passkey: z.unknown().optional(),
};

const newRequest = z.strictObject({
  computerId: z.uuid('a computer id'),
  reason: z.string().trim().min(3, 'say why, in a few words').max(1000, 'at most 1000 characters'),
  minutes: z.number({ error: 'a number of minutes' }).int('whole minutes').min(1, 'at least 1 minute').max(24 * 60, 'at most 1440 minutes'),
  ticket: z.string().trim().max(200, 'at most 200 characters').regex(/^[\w .:#/-]*$/, 'letters, digits and . : # / - only').optional().nullable(),
});

const decision = z.strictObject({ ...proof, comment: z.string().trim().max(500).optional().nullable() });

/**
 * Access requests (docs/access-requests.md "API"), mounted under /api/v1.
 * Every rule lives in AccessRequestService; routes parse, call, answer.
 */
export function accessRequestRoutes(service: AccessRequestService): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    const tags = ['access-requests'];
    app.get('/access-requests/computers', { schema: { tags, description: 'Computers the signed-in person may request (needing approval, or not shared where the organization allows asking).' } }, async (req) =>
      service.requestable(principalOf(req)),
    );
    app.get('/access-requests', { schema: { tags, description: 'Requests the signed-in person may see: their own, those they approve, their organization\'s (admins, auditors).' } }, async (req) =>
      service.list(principalOf(req)),
    );
    app.get('/access-requests/:id', { schema: { tags, description: 'One request with its decisions, status and the sessions it was used for.' } }, async (req) =>
      service.get(principalOf(req), (req.params as { id: string }).id),
    );
    app.post('/access-requests', { schema: { tags, description: 'Ask for a window on a computer (reason, minutes up to the computer\'s longest session, optional ticket).' } }, async (req, reply) => {
      const p = principalOf(req);
      const body = parseBody(newRequest, req.body);
      return reply.status(201).send(await service.create(p, body));
    });
    app.post('/access-requests/break-glass', { schema: { tags, description: 'Open a window without approval where the computer allows break-glass; needs a reason and the second factor; alerts every approver.' } }, async (req, reply) => {
      const p = principalOf(req);
      const { code, passkey, ...rest } = parseBody(newRequest.extend(proof), req.body);
      return reply.status(201).send(await service.breakGlass(p, rest, { code, passkey }));
    });
    for (const d of ['approve', 'deny'] as const) {
      app.post(`/access-requests/:id/${d}`, { schema: { tags, description: `${d === 'approve' ? 'Approve' : 'Deny'} with a fresh second factor (never the requester; one answer per approver).` } }, async (req) => {
        const p = principalOf(req);
        const b = parseBody(decision, req.body);
        return service.decide(p, (req.params as { id: string }).id, d, { code: b.code, passkey: b.passkey }, b.comment);
      });
    }
    app.post('/access-requests/:id/revoke', { schema: { tags, description: 'Close an approved window now and end the requester\'s live sessions on the computer.' } }, async (req) => {
      const p = principalOf(req);
      const b = parseBody(z.strictObject({ reason: z.string().trim().max(500).optional().nullable() }), req.body);
      return service.revoke(p, (req.params as { id: string }).id, b.reason);
    });
    app.post('/access-requests/:id/cancel', { schema: { tags, description: 'The requester withdraws a pending request.' } }, async (req) =>
      service.cancel(principalOf(req), (req.params as { id: string }).id),
    );
    app.post('/access-requests/:id/grant', { schema: { tags, description: 'Admins: turn an approved request into a standing grant (share the computer with the requester).' } }, async (req) =>
      service.grant(principalOf(req), (req.params as { id: string }).id),
    );
    app.get('/organizations/:id/access-request-settings', { schema: { tags, description: 'Whether technicians of the organization may ask for computers not shared with them.' } }, async (req) =>
      service.settings(principalOf(req), (req.params as { id: string }).id),
    );
    app.put('/organizations/:id/access-request-settings', { schema: { tags, description: 'Admins of the organization: allow or forbid asking for computers not shared.' } }, async (req) => {
      const p = principalOf(req);
      const b = parseBody(z.strictObject({ unsharedRequests: z.boolean() }), req.body);
      return service.setSettings(p, (req.params as { id: string }).id, b.unsharedRequests);
    });
  };
}
