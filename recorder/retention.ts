import type { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import type { Logger } from '../core/logging.js';
import type { RecordingStore } from './recording.store.js';

/**
 * Retention (issue 19, docs/evidence.md "Retention"): recordings of an
 * organization's sessions older than its `recording_retention_days` are
 * deleted, except those of sessions under legal hold. Each deletion is
 * decided again under the session's row lock (a legal hold set while the
 * sweep ran wins), listed in `recording_purges` (so `recordings verify` knows
 * the manifest entry's row was removed on purpose) and audited
 * `recording.deleted` in the same transaction; the file goes after the
 * commit. Rows of other tables that hang off a recording (the search index)
 * go with its row.
 */
export interface RetentionDeps {
  db: Database;
  store: RecordingStore;
  audit: AuditLog;
  log: Logger;
  /** Candidates looked at per sweep (the next sweep takes the rest). */
  batch?: number;
}

export interface RetentionResult {
  deleted: number;
  /** Old enough to go, but their session is under legal hold. */
  held: number;
  /** Per-recording failures; the sweep goes on and reports them all. */
  failures: { recordingId: string; error: string }[];
}

type Candidate = { id: string; session_id: string; path: string; manifest_seq: string | number | null; sha256: string | null; computer_name: string; account_name: string | null; organization_id: string; days: number };

const ACTOR = 'system:retention';

const EXPIRED = `FROM recordings r JOIN sessions s ON s.id = r.session_id JOIN organizations o ON o.id = s.organization_id
  WHERE o.recording_retention_days IS NOT NULL AND r.ended_at IS NOT NULL
    AND r.started_at < now() - make_interval(days => o.recording_retention_days)`;

export async function runRetention(d: RetentionDeps): Promise<RetentionResult> {
  const log = d.log.child({ component: 'retention' });
  const candidates = await d.db.query<Candidate>(
    `SELECT r.id, r.session_id, r.path, r.manifest_seq, r.sha256, s.computer_name, s.account_name, s.organization_id, o.recording_retention_days AS days
     ${EXPIRED} AND NOT s.legal_hold ORDER BY r.started_at LIMIT $1`,
    [d.batch ?? 500],
  );
  const result: RetentionResult = { deleted: 0, held: 0, failures: [] };
  for (const c of candidates) {
    try {
      const gone = await d.db.transaction(async (tx) => {
        // Re-read under the lock the legal-hold toggle takes (its UPDATE): a hold set since the listing keeps the recording.
        const [s] = await tx.query<{ legal_hold: boolean }>('SELECT legal_hold FROM sessions WHERE id = $1 FOR UPDATE', [c.session_id]);
        if (!s || s.legal_hold) return false;
        const del = await tx.query<{ id: string }>('DELETE FROM recordings WHERE id = $1 RETURNING id', [c.id]);
        if (!del[0]) return false;
        await tx.query('INSERT INTO recording_purges (recording_id, session_id, manifest_seq, sha256, reason) VALUES ($1,$2,$3,$4,$5)', [
          c.id, c.session_id, c.manifest_seq, c.sha256, `retention ${c.days} days`,
        ]);
        await d.audit.record(
          {
            type: 'recording.deleted', actor: ACTOR, outcome: 'success', sessionId: c.session_id, computer: c.computer_name, account: c.account_name,
            data: { recordingId: c.id, organizationId: c.organization_id, retentionDays: c.days, sha256: c.sha256, manifestSeq: c.manifest_seq === null ? null : Number(c.manifest_seq) },
          },
          tx,
        );
        return true;
      });
      if (!gone) continue;
      await d.store.remove(c.path);
      result.deleted++;
    } catch (err) {
      result.failures.push({ recordingId: c.id, error: err instanceof Error ? err.message : String(err) });
    }
  }
  const [held] = await d.db.query<{ n: string | number }>(`SELECT count(*) AS n ${EXPIRED} AND s.legal_hold`);
  result.held = Number(held?.n ?? 0);
  if (result.deleted || result.failures.length) log.info({ deleted: result.deleted, held: result.held, failures: result.failures }, 'retention sweep');
  return result;
}
