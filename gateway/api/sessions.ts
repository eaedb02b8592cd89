import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { canExtendSession, canSeeSession, canTerminateSession, isUuid, readScope } from '../access-policy.js';
import type { LiveSessionInfo } from '../contracts.js';
import type { ApiDeps } from './deps.js';
import { ensure, iso, notFound, parseBody, parseQuery, principalOf } from './http.js';

const query = z.strictObject({
  state: z.enum(['live', 'all']).default('live'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

type SessionRow = {
  id: string; person_id: string | null; person_login: string; computer_name: string; protocol: string; account_name: string | null;
  state: string; organization_id: string | null; created_at: Date | string; started_at: Date | string | null; ended_at: Date | string | null; end_reason: string | null;
  lease_expires_at: Date | string;
};
const COLS = 'id, person_id, person_login, computer_name, protocol, account_name, state, organization_id, created_at, started_at, ended_at, end_reason, lease_expires_at';

export function sessionRoutes(deps: ApiDeps) {
  const { db, audit, liveSessions } = deps;
  const ref = (r: SessionRow) => ({ personId: r.person_id, organizationId: r.organization_id });

  return async (app: FastifyInstance): Promise<void> => {
    app.get('/sessions', async (req) => {
      const p = principalOf(req);
      const q = parseQuery(query, req.query);
      const live = await liveSessions.list();
      const liveById = new Map<string, LiveSessionInfo>(live.map((l) => [l.sessionId, l]));
      let rows: SessionRow[];
      if (q.state === 'live') {
        const ids = [...liveById.keys()].filter(isUuid);
        rows = ids.length ? await db.query<SessionRow>(`SELECT ${COLS} FROM sessions WHERE id = ANY($1::uuid[])`, [ids]) : [];
      } else {
        const scope = readScope(p);
        rows =
          scope.kind === 'all' && p.role !== 'technician'
            ? await db.query<SessionRow>(`SELECT ${COLS} FROM sessions ORDER BY created_at DESC LIMIT $1`, [q.limit])
            : scope.kind === 'org' && p.role !== 'technician'
              ? await db.query<SessionRow>(`SELECT ${COLS} FROM sessions WHERE organization_id = $1 OR person_id = $2 ORDER BY created_at DESC LIMIT $3`, [scope.organizationId, p.personId, q.limit])
              : await db.query<SessionRow>(`SELECT ${COLS} FROM sessions WHERE person_id = $1 ORDER BY created_at DESC LIMIT $2`, [p.personId, q.limit]);
      }
      return rows
        .filter((r) => canSeeSession(p, ref(r)))
        .slice(0, q.limit)
        .map((r) => {
          const l = liveById.get(r.id);
          return {
            sessionId: r.id, personLogin: r.person_login, computerName: r.computer_name, protocol: r.protocol, account: l?.account ?? r.account_name,
            state: r.state, live: Boolean(l), gateway: l?.gateway ?? null, startedAt: l?.startedAt ?? iso(r.started_at ?? r.created_at),
            endedAt: iso(r.ended_at), endReason: r.end_reason, canTerminate: Boolean(l) && canTerminateSession(p, ref(r)),
            leaseExpiresAt: iso(r.lease_expires_at), canExtend: r.state === 'active' && canExtendSession(p, ref(r)),
          };
        });
    });

    app.post<{ Params: { id: string } }>('/sessions/:id/terminate', async (req) => {
      const p = principalOf(req);
      if (!isUuid(req.params.id)) throw notFound('session');
      const rows = await db.query<SessionRow>(`SELECT ${COLS} FROM sessions WHERE id = $1`, [req.params.id]);
      const s = rows[0];
      if (!s || !canSeeSession(p, ref(s))) throw notFound('session');
      ensure(canTerminateSession(p, ref(s)), 'terminate this session');
      const terminated = await liveSessions.terminate(s.id, p.login);
      // A gateway that held the connection closed it, tore the session down and audited it;
      // otherwise (its gateway died, or nothing was connected yet) end it here.
      if (!terminated) {
        const live = ['pending', 'provisioning', 'active', 'ending'].includes(s.state);
        if (live && deps.endSession) await deps.endSession(s.id, `terminated by ${p.login}`);
        await audit.record({
          type: 'session.terminated', actor: p.login, outcome: live ? 'success' : 'failure', sessionId: s.id, computer: s.computer_name,
          account: s.account_name, data: { person: s.person_login, organizationId: s.organization_id, held: false, state: s.state },
        });
      }
      return { terminated };
    });

    const extendBody = z.strictObject({ minutes: z.number().int().min(1).max(24 * 60) });
    app.post<{ Params: { id: string } }>('/sessions/:id/extend', async (req) => {
      const p = principalOf(req);
      if (!isUuid(req.params.id)) throw notFound('session');
      const rows = await db.query<SessionRow>(`SELECT ${COLS} FROM sessions WHERE id = $1`, [req.params.id]);
      const s = rows[0];
      if (!s || !canSeeSession(p, ref(s))) throw notFound('session');
      ensure(canExtendSession(p, ref(s)), 'extend this session');
      const { minutes } = parseBody(extendBody, req.body);
      const r = await deps.extendSession(s.id, minutes, p.login);
      return { sessionId: s.id, leaseExpiresAt: r.leaseExpiresAt.toISOString() };
    });
  };
}
