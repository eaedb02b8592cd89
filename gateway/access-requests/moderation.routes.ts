import type { FastifyInstance } from 'fastify';
import { principalOf } from '../api/http.js';
import type { LiveSessions } from '../contracts.js';
import type { SessionModerationService } from './moderation.js';

/**
 * `GET /api/v1/moderation/sessions`: the live sessions the signed-in person
 * may moderate (docs/access-requests.md "Four-eyes sessions"), technicians
 * who approve included; each is joined through the usual watch
 * (`/sessions/:id/watch` for SSH, `/rdp/watch?session=` for RDP).
 */
export function moderationRoutes(service: SessionModerationService, live: Pick<LiveSessions, 'list'>): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    app.get('/moderation/sessions', { schema: { tags: ['access-requests'], description: 'Live sessions on computers that require a moderator, where the signed-in person is one of their moderators.' } }, async (req) => {
      const p = principalOf(req);
      const rows = await service.moderatable(p, await live.list());
      return rows.map((l) => ({ sessionId: l.sessionId, personLogin: l.personLogin, computerName: l.computerName, computerId: l.computerId, protocol: l.protocol, startedAt: l.startedAt }));
    });
  };
}
