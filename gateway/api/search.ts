import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { canSeeSession, isUuid } from '../access-policy.js';
import type { ApiDeps } from './deps.js';
import { iso, notFound, parseQuery, principalOf } from './http.js';
import { scopeSql } from './recordings.js';

/**
 * Search across sessions (docs/api.md "Search") over the index the
 * search-index job fills after a recording is sealed (migration 18,
 * recorder/search-index.ts). Who sees what is the recordings' rule, applied
 * in SQL by the same `scopeSql`: technicians their own sessions, auditors and
 * organization admins their organization's, global admins all.
 */
const searchQuery = z.strictObject({
  /** Full text, web-search syntax: words (all must match), "a phrase", -excluded, or. */
  q: z.string().trim().min(1).max(200),
  person: z.string().min(1).optional(),
  computer: z.string().min(1).optional(),
  organization: z.uuid().optional(),
  account: z.string().min(1).optional(),
  protocol: z.enum(['ssh', 'rdp']).optional(),
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  offset: z.coerce.number().int().min(0).max(10_000).default(0),
});

/** Lines of context either side of a hit, looked for within WINDOW lines (typed and printed lines interleave). */
const CONTEXT = 2;
const WINDOW = 8;

/** Context is of the same kind: printed lines around a printed line, typed lines around a typed one. */
function sameStream(a: string, b: string): boolean {
  const family = (k: string) => (k === 'output' ? 'output' : k === 'input' ? 'input' : k === 'command' ? 'none' : 'op');
  return family(a) === family(b);
}

type HitRow = {
  recording_id: string; session_id: string; seq: number; at_ms: number; kind: string; text: string;
  person_login: string; computer_name: string; account_name: string | null; organization_id: string | null; protocol: string;
  recording_kind: string; recording_started_at: Date | string;
};

type LineRow = { recording_id: string; seq: number; at_ms: number; kind: string; text: string; masked: boolean };

export function searchRoutes(deps: Pick<ApiDeps, 'db'>) {
  const { db } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/search', async (req) => {
      const p = principalOf(req);
      const q = parseQuery(searchQuery, req.query);
      const params: unknown[] = [q.q];
      const where = ["l.tsv @@ websearch_to_tsquery('simple', $1)", "l.kind <> 'command'", scopeSql(p, params)];
      const add = (sql: string, v: unknown) => {
        params.push(v);
        where.push(sql.replaceAll('?', `$${params.length}`));
      };
      if (q.person) add('s.person_login = ?', q.person);
      if (q.computer) add('lower(s.computer_name) = lower(?)', q.computer);
      if (q.organization) add('s.organization_id = ?', q.organization);
      if (q.account) add('s.account_name = ?', q.account);
      if (q.protocol) add('s.protocol = ?', q.protocol);
      if (q.from) add('r.started_at >= ?', new Date(q.from));
      if (q.to) add('r.started_at < ?', new Date(q.to));
      params.push(q.limit + 1, q.offset);
      const rows = await db.query<HitRow>(
        `SELECT l.recording_id, l.session_id, l.seq, l.at_ms, l.kind, l.text,
                s.person_login, s.computer_name, s.account_name, s.organization_id, s.protocol,
                r.kind AS recording_kind, r.started_at AS recording_started_at
           FROM search_lines l JOIN sessions s ON s.id = l.session_id JOIN recordings r ON r.id = l.recording_id
          WHERE ${where.join(' AND ')}
          ORDER BY r.started_at DESC, l.recording_id, l.seq
          LIMIT $${params.length - 1} OFFSET $${params.length}`,
        params,
      );
      const more = rows.length > q.limit;
      const hits = rows.slice(0, q.limit);
      const context = await contextOf(hits);
      return {
        hits: hits.map((h) => {
          const around = (context.get(h.recording_id) ?? []).filter((l) => sameStream(l.kind, h.kind));
          const text = (ls: LineRow[]) => ls.map((l) => (l.masked ? '••••' : l.text));
          const startedAt = new Date(h.recording_started_at);
          return {
            sessionId: h.session_id, recordingId: h.recording_id, recordingKind: h.recording_kind,
            person: h.person_login, computer: h.computer_name, account: h.account_name, organizationId: h.organization_id, protocol: h.protocol,
            kind: h.kind, line: h.text, before: text(around.filter((l) => l.seq < h.seq).slice(-CONTEXT)), after: text(around.filter((l) => l.seq > h.seq).slice(0, CONTEXT)),
            atMs: h.at_ms, at: new Date(startedAt.getTime() + h.at_ms).toISOString(), recordingStartedAt: iso(startedAt),
          };
        }),
        ...(more ? { next: q.offset + q.limit } : {}),
      };
    });

    app.get<{ Params: { id: string } }>('/sessions/:id/timeline', async (req) => {
      const p = principalOf(req);
      const id = req.params.id;
      if (!isUuid(id)) throw notFound('session');
      const s = (await db.query<{ person_id: string | null; organization_id: string | null }>('SELECT person_id, organization_id FROM sessions WHERE id = $1', [id]))[0];
      if (!s || !canSeeSession(p, { personId: s.person_id, organizationId: s.organization_id })) throw notFound('session');
      const recs = await db.query<{ id: string; kind: string; started_at: Date | string; ended_at: Date | string | null; lines: number | null; has_input: boolean }>(
        `SELECT r.id, r.kind, r.started_at, r.ended_at, x.lines,
                EXISTS (SELECT 1 FROM search_lines i WHERE i.recording_id = r.id AND i.kind = 'input') AS has_input
           FROM recordings r LEFT JOIN search_indexed x ON x.recording_id = r.id
          WHERE r.session_id = $1 ORDER BY r.started_at`,
        [id],
      );
      // A terminal's entered lines: what was typed when input was recorded, else the commands printed after a prompt.
      const lines = await db.query<LineRow>(
        `SELECT l.recording_id, l.seq, l.at_ms, l.kind, l.text, l.masked
           FROM search_lines l JOIN recordings r ON r.id = l.recording_id
          WHERE l.session_id = $1 AND l.kind IN ('input', 'command', 'exec', 'sftp', 'keys', 'key', 'clipboard')
          ORDER BY r.started_at, l.seq`,
        [id],
      );
      const typed = new Set(recs.filter((r) => r.has_input).map((r) => r.id));
      return {
        recordings: recs.map((r) => ({ id: r.id, kind: r.kind, startedAt: iso(r.started_at), endedAt: iso(r.ended_at), indexed: r.lines !== null })),
        entries: lines
          .filter((l) => !(l.kind === 'command' && typed.has(l.recording_id)))
          .map((l) => ({ recordingId: l.recording_id, atMs: l.at_ms, kind: l.kind === 'command' ? 'input' : l.kind, text: l.text, masked: l.masked })),
      };
    });
  };

  /** The lines around each hit (same recording, WINDOW either side), by recording. */
  async function contextOf(hits: HitRow[]): Promise<Map<string, LineRow[]>> {
    const out = new Map<string, LineRow[]>();
    if (!hits.length) return out;
    const rows = await db.query<LineRow>(
      `SELECT DISTINCT l.recording_id, l.seq, l.at_ms, l.kind, l.text, l.masked
         FROM unnest($1::uuid[], $2::int[]) AS h(rid, seq)
         JOIN search_lines l ON l.recording_id = h.rid AND l.seq BETWEEN h.seq - $3 AND h.seq + $3
        ORDER BY l.recording_id, l.seq`,
      [hits.map((h) => h.recording_id), hits.map((h) => h.seq), WINDOW],
    );
    for (const r of rows) {
      const list = out.get(r.recording_id) ?? [];
      list.push(r);
      out.set(r.recording_id, list);
    }
    return out;
  }
}
