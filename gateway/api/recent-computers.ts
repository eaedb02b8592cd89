import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { toComputer } from '../../provisioner/jit-repository.js';
import { canSeeComputer } from '../access-policy.js';
import { grantsOf } from '../teams/team-grants.js';
import type { ApiDeps } from './deps.js';
import { iso, parseQuery, principalOf } from './http.js';

const query = z.strictObject({ limit: z.coerce.number().int().min(1).max(50).default(8) });

/**
 * `GET /computers/recent`: the computers the signed-in person connected to
 * last, newest first, read from their own sessions (the technician's home
 * page). Only computers they may still see are listed: a grant that ended
 * takes the computer off the list.
 */
export function recentComputerRoutes(deps: ApiDeps) {
  const { db } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/computers/recent', async (req) => {
      const p = principalOf(req);
      const q = parseQuery(query, req.query);
      const rows = await db.query<{ computer_id: string; protocol: string; last_at: Date | string; sessions: number }>(
        `SELECT computer_id, (array_agg(protocol ORDER BY created_at DESC))[1] AS protocol, max(created_at) AS last_at, count(*)::int AS sessions
           FROM sessions WHERE person_id = $1 AND computer_id IS NOT NULL GROUP BY computer_id ORDER BY max(created_at) DESC LIMIT $2`,
        [p.personId, q.limit],
      );
      if (!rows.length) return [];
      const computers = new Map((await db.query('SELECT * FROM computers WHERE id = ANY($1::uuid[])', [rows.map((r) => r.computer_id)])).map((r) => [String(r.id), toComputer(r)]));
      const granted = await grantsOf(db, p);
      const out = [];
      for (const r of rows) {
        const c = computers.get(r.computer_id);
        if (!c) continue;
        if (!canSeeComputer(p, c, granted(c))) continue;
        out.push({ computerId: c.id, name: c.name, protocol: r.protocol, lastConnectedAt: iso(r.last_at), sessions: Number(r.sessions) });
      }
      return out;
    });
  };
}
