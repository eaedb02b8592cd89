import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Database } from '../../core/db/database.js';
import { canReadAudit, readScope } from '../access-policy.js';
import type { Principal } from '../auth/principal.js';
import { csvEvent, csvHeader, jsonLine, type ExportedEvent } from './audit-export.js';
import type { ApiDeps } from './deps.js';
import { ensure, iso, json, parseQuery, principalOf } from './http.js';

const filters = {
  person: z.string().min(1).optional(),
  computer: z.string().min(1).optional(),
  account: z.string().min(1).optional(),
  type: z.string().min(1).optional(),
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
};
const listQuery = z.strictObject({
  ...filters,
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** Cursor: only events with a smaller seq (the `next` of the previous page). */
  before: z.coerce.number().int().min(1).optional(),
});
const exportQuery = z.strictObject({ ...filters, format: z.enum(['csv', 'jsonl']).default('csv') });
type Filters = z.output<typeof listQuery>;

type AuditRow = {
  seq: string | number; at: Date | string; type: string; actor: string; session_id: string | null; computer: string | null; account: string | null;
  outcome: string; data: unknown; prev_hash: string; hash: string;
};
const toEvent = (r: AuditRow): ExportedEvent => ({
  seq: Number(r.seq), at: iso(r.at)!, type: r.type, actor: r.actor, outcome: r.outcome, sessionId: r.session_id, computer: r.computer,
  account: r.account, data: json(r.data), prevHash: r.prev_hash, hash: r.hash,
});

/**
 * Organization scoping of audit events: an event belongs to organization O
 * when its session ran on O's computer (sessions.organization_id, kept after
 * the computer is deleted), when it says so (`data.organizationId`, written
 * by the administration API and access checks), or when its actor is one of
 * O's people (global admins excepted: their actions span organizations).
 */
function where(p: Principal, f: Partial<Filters>, params: unknown[]): string {
  const w: string[] = [];
  const add = (sql: string, v: unknown) => {
    params.push(v);
    w.push(sql.replace('?', `$${params.length}`));
  };
  const scope = readScope(p);
  if (scope.kind === 'org') {
    const o = scope.organizationId;
    params.push(o, o, o);
    const [a, b, c] = [params.length - 2, params.length - 1, params.length];
    w.push(`(EXISTS (SELECT 1 FROM sessions s WHERE s.id = e.session_id AND s.organization_id = $${a}::uuid)
        OR e.data->>'organizationId' = $${b}::text
        OR EXISTS (SELECT 1 FROM people pp WHERE pp.login = e.actor AND pp.organization_id = $${c}::uuid AND pp.role <> 'global_admin'))`);
  } else if (scope.kind === 'none') w.push('false');
  if (f.person) add('e.actor = ?', f.person);
  if (f.computer) add('e.computer = ?', f.computer);
  if (f.account) add('e.account = ?', f.account);
  if (f.type) add('e.type = ?', f.type);
  if (f.from) add('e.at >= ?', new Date(f.from));
  if (f.to) add('e.at < ?', new Date(f.to));
  if (f.before !== undefined) add('e.seq < ?', f.before);
  return w.length ? `WHERE ${w.join(' AND ')}` : '';
}

async function page(db: Database, p: Principal, f: Partial<Filters>, limit: number): Promise<ExportedEvent[]> {
  const params: unknown[] = [];
  const sql = `SELECT e.* FROM audit_events e ${where(p, f, params)} ORDER BY e.seq DESC LIMIT $${params.length + 1}`;
  params.push(limit);
  return (await db.query<AuditRow>(sql, params)).map(toEvent);
}

export function auditRoutes(deps: ApiDeps) {
  const { db } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/audit', async (req) => {
      const p = principalOf(req);
      ensure(canReadAudit(p), 'read the audit trail');
      const q = parseQuery(listQuery, req.query);
      const events = await page(db, p, q, q.limit);
      return events.length === q.limit ? { events, next: events.at(-1)!.seq } : { events };
    });

    app.get('/audit/export', async (req, reply) => {
      const p = principalOf(req);
      ensure(canReadAudit(p), 'export the audit trail');
      const q = parseQuery(exportQuery, req.query);
      // Newest first, in pages, streamed: memory stays flat whatever the size.
      async function* lines(): AsyncGenerator<string> {
        if (q.format === 'csv') yield csvHeader();
        let before: number | undefined;
        for (;;) {
          const batch = await page(db, p, { ...q, before }, 1000);
          for (const e of batch) yield q.format === 'csv' ? csvEvent(e) : jsonLine(e);
          if (batch.length < 1000) return;
          before = batch.at(-1)!.seq;
        }
      }
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      reply
        .header('content-type', q.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
        .header('content-disposition', `attachment; filename="jitgate-audit-${stamp}.${q.format}"`)
        .header('cache-control', 'no-store');
      return reply.send(Readable.from(lines()));
    });
  };
}
