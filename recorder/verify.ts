import type { Queryable } from '../core/db/database.js';
import { FsRecordingStore } from './fs-recording.store.js';
import { loadManifest, macMatches, MANIFEST_GENESIS, NEVER_STARTED, type ManifestEntry } from './manifest.js';
import { parseRelPath, type RecordingStore } from './recording.store.js';

/**
 * Per recording: `ok`; `file-mismatch` (the file's SHA-256 or size differs
 * from its signed entry: the file was edited); `missing-file`;
 * `manifest-broken` (no valid signed entry for it, or the row disagrees with
 * the entry: a row or entry was edited or deleted, or the key is wrong);
 * `unsigned` (closed but never signed); `in-progress` (still being written,
 * or its writer died: not counted as a problem); `never-started` (its session
 * never ran, e.g. guacd refused the connection; signed as such, no file: not
 * a problem).
 */
export type RecordingStatus = 'ok' | 'file-mismatch' | 'missing-file' | 'manifest-broken' | 'unsigned' | 'in-progress' | 'never-started';

/** What the replay API shows. */
export type RecordingIntegrity = 'ok' | 'mismatch' | 'unsigned' | 'missing';

export function integrityOf(status: RecordingStatus): RecordingIntegrity {
  switch (status) {
    case 'ok':
    case 'never-started':
      return 'ok';
    case 'file-mismatch':
    case 'manifest-broken':
      return 'mismatch';
    case 'missing-file':
      return 'missing';
    case 'unsigned':
    case 'in-progress':
      return 'unsigned';
  }
}

export interface RecordingRow {
  id: string;
  session_id: string;
  kind: string;
  path: string;
  size_bytes: string | number | null;
  sha256: string | null;
  manifest_seq: string | number | null;
  started_at: Date | string;
  ended_at: Date | string | null;
  /** Migration 10; absent on rows read before it. */
  never_started?: boolean | null;
}

export interface RecordingCheck {
  recordingId: string;
  sessionId: string;
  kind: string;
  status: RecordingStatus;
  detail?: string;
}

/** How a check hashes a file (the store's `hash`, or a cached one). */
export type FileHasher = (relPath: string) => Promise<{ sha256: string; size: number } | null>;

/** Check one recording against its manifest entry (`undefined`: none found) and its file. */
export async function checkRecording(row: RecordingRow, entry: ManifestEntry | undefined, key: Buffer, hash: FileHasher): Promise<RecordingCheck> {
  const base = { recordingId: row.id, sessionId: row.session_id, kind: row.kind };
  if (row.manifest_seq === null || row.manifest_seq === undefined) {
    return row.ended_at === null ? { ...base, status: 'in-progress' } : { ...base, status: 'unsigned', detail: 'closed without a manifest entry' };
  }
  const seq = Number(row.manifest_seq);
  if (!entry) return { ...base, status: 'manifest-broken', detail: `manifest entry ${seq} is missing` };
  if (entry.recordingId !== row.id) return { ...base, status: 'manifest-broken', detail: `manifest entry ${seq} belongs to another recording` };
  if (!macMatches(key, entry)) return { ...base, status: 'manifest-broken', detail: `manifest entry ${seq} has a bad signature (edited, or wrong key)` };
  // Never started: only the signed marker makes it so (a row flag alone is no proof), and there must be no file.
  const signedNeverStarted = entry.sha256 === NEVER_STARTED && entry.sizeBytes === 0;
  if (row.never_started === true || signedNeverStarted) {
    if (!(row.never_started === true && signedNeverStarted && row.sha256 === null)) {
      return { ...base, status: 'manifest-broken', detail: `recording row and manifest entry ${seq} disagree on whether it ever started (row edited)` };
    }
    if (!pathNamesRow(row)) return { ...base, status: 'manifest-broken', detail: 'recording row has a path jitgate did not generate for it (row edited)' };
    if (await hash(row.path)) return { ...base, status: 'file-mismatch', detail: 'a file exists for a recording signed as never started' };
    return { ...base, status: 'never-started' };
  }
  if (row.sha256 !== entry.sha256 || Number(row.size_bytes) !== entry.sizeBytes) {
    return { ...base, status: 'manifest-broken', detail: 'recording row disagrees with its signed manifest entry (row edited)' };
  }
  if (!pathNamesRow(row)) {
    return { ...base, status: 'manifest-broken', detail: 'recording row has a path jitgate did not generate for it (row edited)' };
  }
  const h = await hash(row.path);
  if (!h) return { ...base, status: 'missing-file' };
  if (h.size !== entry.sizeBytes || h.sha256 !== entry.sha256) {
    return { ...base, status: 'file-mismatch', detail: `file is ${h.size} bytes with sha256 ${h.sha256}; signed ${entry.sizeBytes} bytes with ${entry.sha256}` };
  }
  return { ...base, status: 'ok' };
}

/** The path names its own session and recording: a row pointed at another file is caught here. */
function pathNamesRow(row: RecordingRow): boolean {
  try {
    const named = parseRelPath(row.path);
    return named.recordingId === row.id && named.sessionId === row.session_id;
  } catch {
    return false;
  }
}

export interface ChainCheck {
  ok: boolean;
  entries: number;
  /** Problems with the manifest as a whole (first chain break, orphan entries). */
  problems: { seq: number; reason: string }[];
}

/** Walk the whole manifest: contiguous seq, each prev_mac = previous mac, each mac valid, each entry's recording row present. */
export function checkChain(entries: ManifestEntry[], key: Buffer, recordingIds: Set<string>): ChainCheck {
  const problems: ChainCheck['problems'] = [];
  let prev = MANIFEST_GENESIS;
  let expect = 1;
  let broken = false;
  for (const e of entries) {
    if (!broken) {
      if (e.seq !== expect) {
        problems.push({ seq: e.seq, reason: `sequence gap: expected entry ${expect} (entry deleted)` });
        broken = true;
      } else if (e.prevMac !== prev) {
        problems.push({ seq: e.seq, reason: 'previous-mac link broken (entry deleted, inserted or reordered)' });
        broken = true;
      } else if (!macMatches(key, e)) {
        problems.push({ seq: e.seq, reason: 'signature does not match (entry edited, or wrong key)' });
        broken = true;
      }
    }
    if (!recordingIds.has(e.recordingId)) problems.push({ seq: e.seq, reason: `recording ${e.recordingId} has no row (row deleted)` });
    prev = e.mac;
    expect = e.seq + 1;
  }
  return { ok: problems.length === 0, entries: entries.length, problems };
}

export interface VerifyDeps {
  db: Queryable;
  /** Recordings directory (`recordings.dir`), or a store. */
  dir?: string;
  store?: RecordingStore;
  signingKey: Buffer;
}

export interface VerifyReport {
  ok: boolean;
  recordings: RecordingCheck[];
  chain: ChainCheck;
  /** Number of recordings with a problem plus chain problems. */
  problems: number;
}

const PROBLEM: ReadonlySet<RecordingStatus> = new Set(['file-mismatch', 'missing-file', 'manifest-broken', 'unsigned']);

/**
 * `jitgate recordings verify [--json]`: every recording (or one) against the
 * signed manifest and its file, plus the manifest chain. Exit 1 when `!ok`.
 */
export async function verifyRecordings(deps: VerifyDeps, opts: { recordingId?: string } = {}): Promise<VerifyReport> {
  const store = deps.store ?? new FsRecordingStore(requireDir(deps.dir));
  const rows = opts.recordingId
    ? await deps.db.query<RecordingRow & { [k: string]: unknown }>('SELECT * FROM recordings WHERE id::text = $1', [opts.recordingId])
    : await deps.db.query<RecordingRow & { [k: string]: unknown }>('SELECT * FROM recordings ORDER BY started_at, id');
  const entries = await loadManifest(deps.db);
  const bySeq = new Map(entries.map((e) => [e.seq, e]));
  const recordings: RecordingCheck[] = [];
  for (const r of rows) recordings.push(await checkRecording(r, r.manifest_seq === null ? undefined : bySeq.get(Number(r.manifest_seq)), deps.signingKey, (p) => store.hash(p)));
  const allIds = opts.recordingId ? new Set((await deps.db.query<{ id: string }>('SELECT id FROM recordings')).map((r) => r.id)) : new Set(rows.map((r) => r.id));
  // Recordings retention deleted keep their manifest entries: not orphans (recorder/retention.ts; the deletion is audited).
  for (const r of await deps.db.query<{ recording_id: string }>('SELECT recording_id FROM recording_purges')) allIds.add(r.recording_id);
  const chain = checkChain(entries, deps.signingKey, allIds);
  const problems = recordings.filter((r) => PROBLEM.has(r.status)).length + chain.problems.length;
  return { ok: problems === 0, recordings, chain, problems };
}

function requireDir(dir: string | undefined): string {
  if (!dir) throw new Error('verifyRecordings needs dir or store');
  return dir;
}

/** Human-readable report: one line per recording with a problem (all with `verbose`), then the chain. */
export function formatVerifyReport(r: VerifyReport, opts: { verbose?: boolean } = {}): string {
  const lines: string[] = [];
  for (const c of r.recordings) {
    if (!opts.verbose && !PROBLEM.has(c.status)) continue;
    lines.push(`${c.status.padEnd(15)} ${c.recordingId} session ${c.sessionId} (${c.kind})${c.detail ? `: ${c.detail}` : ''}`);
  }
  for (const p of r.chain.problems) lines.push(`manifest        entry ${p.seq}: ${p.reason}`);
  const ok = r.recordings.filter((c) => c.status === 'ok').length;
  const live = r.recordings.filter((c) => c.status === 'in-progress').length;
  const never = r.recordings.filter((c) => c.status === 'never-started').length;
  lines.push(
    `${r.recordings.length} recording(s): ${ok} ok, ${live} in progress, ${never ? `${never} never started, ` : ''}${r.problems} problem(s); manifest ${r.chain.entries} entr${r.chain.entries === 1 ? 'y' : 'ies'} ${r.chain.ok ? 'intact' : 'BROKEN'}`,
  );
  return lines.join('\n') + '\n';
}
