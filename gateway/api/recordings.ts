import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { canSeeRecording, isUuid, readScope } from '../access-policy.js';
import type { Principal } from '../auth/principal.js';
import type { ApiDeps } from './deps.js';
import { iso, notFound, parseQuery, principalOf } from './http.js';

const query = z.strictObject({
  computer: z.string().min(1).optional(),
  person: z.string().min(1).optional(),
  /** Only this session's recordings (the audit trail links a session's events to its replay). */
  session: z.uuid().optional(),
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  /** Cursor: the id of the last recording of the previous page. */
  before: z.uuid().optional(),
});

type RecRow = {
  id: string; session_id: string; kind: string; path: string; size_bytes: string | number | null; sha256: string | null; started_at: Date | string; ended_at: Date | string | null;
  never_started: boolean;
  /** Break-glass and moderation flags (migration 21). */
  metadata: Record<string, unknown> | string | null;
  person_id: string | null; person_login: string; computer_name: string; account_name: string | null; organization_id: string | null;
  end_reason: string | null;
};
const SELECT = `SELECT r.id, r.session_id, r.kind, r.path, r.size_bytes, r.sha256, r.started_at, r.ended_at, r.never_started, r.metadata,
  s.person_id, s.person_login, s.computer_name, s.account_name, s.organization_id, s.end_reason
  FROM recordings r JOIN sessions s ON s.id = r.session_id`;

/**
 * WHERE clauses limiting rows to what `p` may see (same rules as canSeeRecording),
 * on a query where `s` is the `sessions` row; also used by search (gateway/api/search.ts).
 */
export function scopeSql(p: Principal, params: unknown[]): string {
  const scope = readScope(p);
  if (scope.kind === 'all' && p.role !== 'technician') return 'true';
  params.push(p.personId);
  const own = `s.person_id = $${params.length}`;
  if (p.role === 'technician' || scope.kind !== 'org') return own;
  params.push(scope.organizationId);
  return `(${own} OR s.organization_id = $${params.length})`;
}

/**
 * `recording` (open, or its writer died), `recorded` (closed with a file),
 * `never_started` (its session never ran, e.g. guacd refused the connection:
 * no file, nothing to replay; signed as such, so `integrity` still tells
 * whether the row was edited).
 */
export type RecordingState = 'recording' | 'recorded' | 'never_started';

function stateOf(r: RecRow): RecordingState {
  if (r.never_started) return 'never_started';
  return r.ended_at === null ? 'recording' : 'recorded';
}

export function recordingRoutes(deps: Pick<ApiDeps, 'db' | 'audit' | 'recordingFiles'>) {
  const { db, audit, recordingFiles } = deps;
  const integrityOf = async (r: RecRow) => (recordingFiles.integrity ? await recordingFiles.integrity(r.id) : null) ?? (r.sha256 ? 'unsigned' : 'missing');
  const view = async (r: RecRow) => ({
    id: r.id, sessionId: r.session_id, kind: r.kind, personLogin: r.person_login, computerName: r.computer_name, account: r.account_name,
    startedAt: iso(r.started_at), endedAt: iso(r.ended_at), state: stateOf(r),
    sizeBytes: r.size_bytes === null || r.never_started ? null : Number(r.size_bytes), sha256: r.sha256,
    metadata: typeof r.metadata === 'string' ? (JSON.parse(r.metadata) as Record<string, unknown>) : (r.metadata ?? {}),
    integrity: await integrityOf(r),
    // why the session ended, as the gateway or the provisioner wrote it ("terminated by ada", "lease expired", "its gateway is gone")
    endReason: r.end_reason,
  });

  async function load(p: Principal, id: string): Promise<RecRow> {
    if (!isUuid(id)) throw notFound('recording');
    const rows = await db.query<RecRow>(`${SELECT} WHERE r.id = $1`, [id]);
    const r = rows[0];
    if (!r || !canSeeRecording(p, { personId: r.person_id, organizationId: r.organization_id })) throw notFound('recording');
    return r;
  }

  return async (app: FastifyInstance): Promise<void> => {
    app.get('/recordings', async (req) => {
      const p = principalOf(req);
      const q = parseQuery(query, req.query);
      const params: unknown[] = [];
      const where = [scopeSql(p, params)];
      const add = (sql: string, v: unknown) => {
        params.push(v);
        where.push(sql.replace('?', `$${params.length}`));
      };
      if (q.computer) add('s.computer_name = ?', q.computer);
      if (q.person) add('s.person_login = ?', q.person);
      if (q.session) add('r.session_id = ?', q.session);
      if (q.from) add('r.started_at >= ?', new Date(q.from));
      if (q.to) add('r.started_at < ?', new Date(q.to));
      if (q.before) {
        const cur = await db.query<{ started_at: Date | string }>('SELECT started_at FROM recordings WHERE id = $1', [q.before]);
        if (!cur[0]) throw notFound('recording');
        params.push(cur[0].started_at, q.before);
        where.push(`(r.started_at, r.id) < ($${params.length - 1}, $${params.length})`);
      }
      params.push(q.limit);
      const rows = await db.query<RecRow>(`${SELECT} WHERE ${where.join(' AND ')} ORDER BY r.started_at DESC, r.id DESC LIMIT $${params.length}`, params);
      const recordings = await Promise.all(rows.map(view));
      const last = rows.length === q.limit ? rows.at(-1) : undefined;
      return last ? { recordings, next: last.id } : { recordings };
    });

    app.get<{ Params: { id: string } }>('/recordings/:id', async (req) => view(await load(principalOf(req), req.params.id)));

    app.get<{ Params: { id: string } }>('/recordings/:id/file', async (req, reply) => {
      const p = principalOf(req);
      const r = await load(p, req.params.id);
      const file = await recordingFiles.open(r.id);
      if (!file) throw notFound('recording file');
      // ?download=1: the web app's Download button (a copy leaves jitgate: audited as such, issue 19); else a replay.
      const download = (req.query as { download?: unknown } | undefined)?.download === '1';
      await audit.record({
        type: download ? 'recording.downloaded' : 'recording.viewed', actor: p.login, outcome: 'success', sessionId: r.session_id, computer: r.computer_name, account: r.account_name,
        data: { recordingId: r.id, integrity: file.integrity, organizationId: r.organization_id },
      });
      // The stored file's own extension (recorder/: .cast asciicast, .jsr stream record, .guac guacd).
      const ext = /\.(cast|jsr|guac)$/.exec(r.path)?.[1] ?? 'bin';
      reply
        .header('content-type', file.contentType)
        .header('content-length', String(file.size))
        .header('content-disposition', `attachment; filename="${r.id}.${ext}"`)
        .header('x-jitgate-integrity', file.integrity)
        .header('cache-control', 'no-store');
      return reply.send(file.stream);
    });
  };
}
