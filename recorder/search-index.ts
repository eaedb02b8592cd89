import type { Database, Queryable } from '../core/db/database.js';
import { JitgateError } from '../core/errors.js';
import type { Logger } from '../core/logging.js';
import { RecorderErrors } from './errors.js';
import type { RecordingStore } from './recording.store.js';
import { isUuid, parseRelPath } from './recording.store.js';
import { extractAsciicast, extractGuacRecording, extractStreamRecord, type Extracted, type IndexedLine } from './search-extract.js';

/** Rows per INSERT (one statement of parallel arrays, `unnest`): bounded memory and statement size. */
const BATCH = 2000;
/** A recording larger than this is indexed from its first bytes only (logged). */
export const MAX_INDEX_BYTES = 256 * 1024 * 1024;

export interface IndexResult {
  recordingId: string;
  lines: number;
  masked: number;
  bytes: number;
  /** Why nothing was indexed (`never started`), when nothing was. */
  skipped?: string;
}

/** Lines of one recording's bytes, by its format. */
export function extractRecording(ext: 'cast' | 'jsr' | 'guac', bytes: Buffer): Extracted {
  if (ext === 'cast') return extractAsciicast(bytes.toString('utf8'));
  if (ext === 'jsr') return extractStreamRecord(bytes);
  return extractGuacRecording(bytes);
}

/**
 * Replace a recording's lines in the search index (migration 18) in one
 * transaction: re-indexing the same recording gives the same rows, never
 * duplicates. Used by the job and by the bench, which writes generated lines
 * without files.
 */
export async function replaceIndexedLines(tx: Queryable, rec: { recordingId: string; sessionId: string }, ex: Extracted, bytes: number): Promise<void> {
  await tx.query('DELETE FROM search_lines WHERE recording_id = $1', [rec.recordingId]);
  for (let i = 0; i < ex.lines.length; i += BATCH) {
    const part: IndexedLine[] = ex.lines.slice(i, i + BATCH);
    await tx.query(
      `INSERT INTO search_lines (recording_id, session_id, seq, at_ms, kind, text, masked)
       SELECT $1, $2, s.seq, s.at_ms, s.kind, s.text, s.masked
         FROM unnest($3::int[], $4::int[], $5::text[], $6::text[], $7::boolean[]) AS s(seq, at_ms, kind, text, masked)`,
      [
        rec.recordingId, rec.sessionId, part.map((_, k) => i + k), part.map((l) => l.atMs), part.map((l) => l.kind),
        part.map((l) => (l.masked ? '' : stripNul(l.text))), part.map((l) => l.masked === true),
      ],
    );
  }
  await tx.query(
    `INSERT INTO search_indexed (recording_id, lines, bytes, masked, indexed_at) VALUES ($1, $2, $3, $4, now())
     ON CONFLICT (recording_id) DO UPDATE SET lines = EXCLUDED.lines, bytes = EXCLUDED.bytes, masked = EXCLUDED.masked, indexed_at = now()`,
    [rec.recordingId, ex.lines.length, bytes, ex.masked],
  );
}

// PostgreSQL text cannot hold NUL.
function stripNul(s: string): string {
  return s.includes('\0') ? s.replaceAll('\0', '') : s;
}

/**
 * Indexes sealed recordings for search. Runs in the search-index job
 * (provisioner/search-index.jobs.ts), never while a session is live: the
 * recorder only asks for it after sealing (`RecorderDeps.onSealed`).
 */
export class SearchIndexer {
  readonly #db: Database;
  readonly #store: RecordingStore;
  readonly #log: Logger;

  constructor(deps: { db: Database; store: RecordingStore; log: Logger }) {
    this.#db = deps.db;
    this.#store = deps.store;
    this.#log = deps.log.child({ component: 'search-index' });
  }

  async index(recordingId: string): Promise<IndexResult> {
    if (!isUuid(recordingId)) return { recordingId, lines: 0, masked: 0, bytes: 0, skipped: 'not a recording id' };
    const rows = await this.#db.query<{ session_id: string; path: string; ended_at: Date | null; never_started: boolean }>(
      'SELECT session_id, path, ended_at, never_started FROM recordings WHERE id = $1',
      [recordingId],
    );
    const row = rows[0];
    if (!row) return { recordingId, lines: 0, masked: 0, bytes: 0, skipped: 'no such recording (deleted)' };
    if (row.ended_at === null) throw new JitgateError(RecorderErrors.JIT_ERR_SEARCH_NOT_SEALED, { recordingId });
    const rec = { recordingId, sessionId: row.session_id };
    if (row.never_started) {
      await this.#db.transaction((tx) => replaceIndexedLines(tx, rec, { lines: [], masked: 0 }, 0));
      return { recordingId, lines: 0, masked: 0, bytes: 0, skipped: 'never started' };
    }
    const { ext } = parseRelPath(row.path);
    const bytes = await this.#read(row.path, recordingId);
    const ex = extractRecording(ext, bytes);
    await this.#db.transaction((tx) => replaceIndexedLines(tx, rec, ex, bytes.length));
    this.#log.info({ recordingId, sessionId: row.session_id, lines: ex.lines.length, masked: ex.masked, bytes: bytes.length }, 'recording indexed');
    return { recordingId, lines: ex.lines.length, masked: ex.masked, bytes: bytes.length };
  }

  async #read(relPath: string, recordingId: string): Promise<Buffer> {
    const file = await this.#store.openRead(relPath);
    if (!file) throw new JitgateError(RecorderErrors.JIT_ERR_SEARCH_FILE_ELSEWHERE, { recordingId });
    const parts: Buffer[] = [];
    let n = 0;
    for await (const chunk of file.stream as AsyncIterable<Buffer>) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      parts.push(b.subarray(0, Math.max(0, MAX_INDEX_BYTES - n)));
      n += b.length;
      if (n >= MAX_INDEX_BYTES) {
        this.#log.warn({ recordingId, maxBytes: MAX_INDEX_BYTES }, 'recording indexed from its first bytes only');
        (file.stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
        break;
      }
    }
    return Buffer.concat(parts);
  }
}
