import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Queryable } from '../core/db/database.js';

/**
 * The signed recording manifest (table `recording_manifest`, migration 3).
 * Entry n's MAC = HMAC-SHA256(key, "jitgate-recording-manifest/v1" ‖ seq ‖
 * recording id ‖ sha256 ‖ size ‖ at ‖ prev_mac), newline-separated, where
 * prev_mac is entry n−1's MAC (64 zeros for entry 1). Editing an entry breaks
 * its MAC; deleting or reordering entries breaks the next entry's prev_mac or
 * the seq sequence; without the key neither can be forged.
 */
export const MANIFEST_GENESIS = '0'.repeat(64);
/**
 * Signed in place of a SHA-256 (size 0) for a recording that never started:
 * guacd refused the connection, or the file could not be created, so the
 * session never ran. Not hex, so no file's hash can equal it.
 */
export const NEVER_STARTED = 'never-started';
/** pg_advisory_xact_lock id serialising appends (see core/audit.ts for the others). */
export const MANIFEST_LOCK = 73_461_003;

export interface ManifestEntry {
  seq: number;
  recordingId: string;
  sha256: string;
  sizeBytes: number;
  prevMac: string;
  mac: string;
  at: Date;
}

export function manifestMac(key: Buffer, e: Omit<ManifestEntry, 'mac'>): string {
  const body = ['jitgate-recording-manifest/v1', String(e.seq), e.recordingId, e.sha256, String(e.sizeBytes), e.at.toISOString(), e.prevMac].join('\n');
  return createHmac('sha256', key).update(body).digest('hex');
}

export function macMatches(key: Buffer, e: ManifestEntry): boolean {
  const want = Buffer.from(manifestMac(key, e), 'hex');
  const have = Buffer.from(e.mac, 'hex');
  return have.length === want.length && timingSafeEqual(have, want);
}

type Row = { seq: string | number; recording_id: string; sha256: string; size_bytes: string | number; prev_mac: string; mac: string; at: Date | string };

export function entryFromRow(r: Row): ManifestEntry {
  return {
    seq: Number(r.seq),
    recordingId: r.recording_id,
    sha256: r.sha256,
    sizeBytes: Number(r.size_bytes),
    prevMac: r.prev_mac,
    mac: r.mac,
    at: r.at instanceof Date ? r.at : new Date(r.at),
  };
}

/** Append one entry inside the caller's transaction; serialised across processes by an advisory lock. */
export async function appendManifest(tx: Queryable, key: Buffer, e: { recordingId: string; sha256: string; sizeBytes: number }): Promise<ManifestEntry> {
  await tx.query('SELECT pg_advisory_xact_lock($1)', [MANIFEST_LOCK]);
  const last = await tx.query<{ seq: string | number; mac: string }>('SELECT seq, mac FROM recording_manifest ORDER BY seq DESC LIMIT 1');
  const seq = Number(last[0]?.seq ?? 0) + 1;
  const prevMac = last[0]?.mac ?? MANIFEST_GENESIS;
  // millisecond precision: what PostgreSQL stores round-trips exactly
  const at = new Date(Math.floor(Date.now()));
  const entry = { seq, recordingId: e.recordingId, sha256: e.sha256, sizeBytes: e.sizeBytes, prevMac, at };
  const mac = manifestMac(key, entry);
  await tx.query('INSERT INTO recording_manifest (seq, recording_id, sha256, size_bytes, prev_mac, mac, at) VALUES ($1,$2,$3,$4,$5,$6,$7)', [
    seq,
    e.recordingId,
    e.sha256,
    e.sizeBytes,
    prevMac,
    mac,
    at,
  ]);
  return { ...entry, mac };
}

export async function loadManifest(q: Queryable): Promise<ManifestEntry[]> {
  const rows = await q.query<Row>('SELECT seq, recording_id, sha256, size_bytes, prev_mac, mac, at FROM recording_manifest ORDER BY seq ASC');
  return rows.map(entryFromRow);
}
