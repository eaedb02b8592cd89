import { keyedLink, legacyLink, sameHex } from '../core/audit-chain.js';
import { auditEventFromRow, type AuditEvent, type AuditRow } from '../core/audit.js';
import type { Queryable } from '../core/db/database.js';
import {
  auditPartName, jsonPart, manifestPartName, recordingPartName, sealBundle,
  type EvidenceAuditEvent, type EvidenceBundle, type EvidenceManifestEntry, type EvidenceStatement, type LinkCheck,
} from './evidence.js';
import type { EvidenceSigner } from './evidence-key.js';
import { entryFromRow, macMatches, type ManifestEntry } from './manifest.js';
import { parseRelPath, type RecordingStore } from './recording.store.js';
import { checkRecording, type RecordingRow } from './verify.js';

export interface EvidenceExportDeps {
  db: Queryable;
  store: RecordingStore;
  /** The manifest HMAC key (recorder/signing-key.ts). */
  recordingKey: Buffer;
  /** The audit chain HMAC key (core/audit-key.ts); without it keyed links are listed as `no-key`. */
  auditKey?: Buffer | undefined;
  signer: EvidenceSigner;
}

type SessionRow = {
  id: string; person_login: string; computer_name: string; account_name: string | null; protocol: string; organization_id: string | null;
  state: string; created_at: Date | string | null; started_at: Date | string | null; ended_at: Date | string | null; legal_hold: boolean;
};

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

/**
 * The audit events of a session: those carrying its id (requested, started,
 * account created / group added / removed / deleted, ended, watched,
 * terminated...) and those of the access requests whose window it ran in
 * (requested, decided, approved...), which carry the request id instead.
 */
export async function sessionAuditEvents(db: Queryable, sessionId: string): Promise<AuditEvent[]> {
  const rows = await db.query<AuditRow>(
    `SELECT * FROM audit_events WHERE session_id = $1
       OR (type LIKE 'access\\_request.%' AND data->>'requestId' IN (SELECT request_id::text FROM access_request_sessions WHERE session_id = $1))
     ORDER BY seq ASC`,
    [sessionId],
  );
  return rows.map(auditEventFromRow);
}

/**
 * Collect one session's evidence and sign it (docs/evidence.md). Null when
 * there is no such session. The caller authorizes and audits.
 */
export async function exportEvidence(d: EvidenceExportDeps, sessionId: string, exportedBy: string, now = new Date()): Promise<EvidenceBundle | null> {
  const [session] = await d.db.query<SessionRow>(
    'SELECT id, person_login, computer_name, account_name, protocol, organization_id, state, created_at, started_at, ended_at, legal_hold FROM sessions WHERE id = $1',
    [sessionId],
  );
  if (!session) return null;
  const parts = new Map<string, Buffer>();

  // Recordings, their signed manifest entries and each entry's successor in the chain.
  const recordings = await d.db.query<RecordingRow & { [k: string]: unknown }>('SELECT * FROM recordings WHERE session_id = $1 ORDER BY started_at, id', [sessionId]);
  const seqs = recordings.filter((r) => r.manifest_seq !== null).map((r) => Number(r.manifest_seq));
  const entries = new Map<number, ManifestEntry>();
  const manifestSucc = new Map<number, { seq: number; prevMac: string }>();
  if (seqs.length) {
    const rows = await d.db.query<Parameters<typeof entryFromRow>[0]>('SELECT * FROM recording_manifest WHERE seq = ANY($1::bigint[])', [seqs]);
    for (const r of rows) entries.set(Number(r.seq), entryFromRow(r));
    const next = await d.db.query<{ seq: string | number; prev_mac: string }>('SELECT seq, prev_mac FROM recording_manifest WHERE seq = ANY($1::bigint[])', [seqs.map((s) => s + 1)]);
    for (const n of next) manifestSucc.set(Number(n.seq) - 1, { seq: Number(n.seq), prevMac: n.prev_mac });
  }
  const recordingViews: EvidenceStatement['recordings'] = [];
  const manifestViews: EvidenceStatement['manifestEntries'] = [];
  for (const r of recordings) {
    const entry = r.manifest_seq === null ? undefined : entries.get(Number(r.manifest_seq));
    const check = await checkRecording(r, entry, d.recordingKey, (p) => d.store.hash(p));
    let file: string | null = null;
    if (check.status !== 'never-started' && check.status !== 'missing-file') {
      const bytes = await readAll(d.store, r.path);
      if (bytes) {
        file = recordingPartName(r.id, parseRelPath(r.path).ext);
        parts.set(file, bytes);
      }
    }
    let manifestEntry: string | null = null;
    if (entry) {
      manifestEntry = manifestPartName(entry.seq);
      const view: EvidenceManifestEntry = { seq: entry.seq, recordingId: entry.recordingId, sha256: entry.sha256, sizeBytes: entry.sizeBytes, at: entry.at.toISOString(), prevMac: entry.prevMac, mac: entry.mac };
      parts.set(manifestEntry, jsonPart(view));
      manifestViews.push({ seq: entry.seq, part: manifestEntry, mac: macMatches(d.recordingKey, entry) ? 'verified' : 'broken', successor: manifestSucc.get(entry.seq) ?? null });
    }
    recordingViews.push({ id: r.id, kind: r.kind, file, manifestEntry, status: check.status });
  }

  // Audit events, each link checked with the key and tied to its successor.
  const events = await sessionAuditEvents(d.db, sessionId);
  const auditSucc = new Map<number, { seq: number; prevHash: string }>();
  if (events.length) {
    const next = await d.db.query<{ seq: string | number; prev_hash: string }>('SELECT seq, prev_hash FROM audit_events WHERE seq = ANY($1::bigint[])', [events.map((e) => e.seq + 1)]);
    for (const n of next) auditSucc.set(Number(n.seq) - 1, { seq: Number(n.seq), prevHash: n.prev_hash });
  }
  const auditViews: EvidenceStatement['auditEvents'] = [];
  for (const e of events) {
    const part = auditPartName(e.seq);
    const view: EvidenceAuditEvent = {
      seq: e.seq, at: e.at.toISOString(), type: e.type, actor: e.actor, outcome: e.outcome, sessionId: e.sessionId, computer: e.computer, account: e.account,
      data: e.data, prevHash: e.prevHash, hash: e.hash, alg: e.alg,
    };
    parts.set(part, jsonPart(view));
    auditViews.push({ seq: e.seq, part, link: linkCheck(e, d.auditKey), successor: auditSucc.get(e.seq) ?? null });
  }

  const [auditHead] = await d.db.query<{ seq: string | number; hash: string }>('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
  const [manifestHead] = await d.db.query<{ seq: string | number; mac: string }>('SELECT seq, mac FROM recording_manifest ORDER BY seq DESC LIMIT 1');
  return sealBundle(
    {
      exportedAt: now.toISOString(),
      exportedBy,
      session: {
        id: session.id, person: session.person_login, computer: session.computer_name, account: session.account_name, protocol: session.protocol,
        organizationId: session.organization_id, state: session.state, createdAt: iso(session.created_at), startedAt: iso(session.started_at), endedAt: iso(session.ended_at),
        legalHold: session.legal_hold,
      },
      recordings: recordingViews,
      auditEvents: auditViews,
      manifestEntries: manifestViews,
      heads: {
        audit: auditHead ? { seq: Number(auditHead.seq), hash: auditHead.hash } : null,
        manifest: manifestHead ? { seq: Number(manifestHead.seq), mac: manifestHead.mac } : null,
      },
    },
    parts,
    d.signer,
  );
}

function linkCheck(e: AuditEvent, key: Buffer | undefined): LinkCheck {
  if (e.alg === 'sha256') return sameHex(legacyLink(e.prevHash, e), e.hash) ? 'unkeyed' : 'broken';
  if (!key) return 'no-key';
  return sameHex(keyedLink(key, e.prevHash, e), e.hash) ? 'verified' : 'broken';
}

async function readAll(store: RecordingStore, relPath: string): Promise<Buffer | null> {
  const opened = await store.openRead(relPath);
  if (!opened) return null;
  const chunks: Buffer[] = [];
  for await (const c of opened.stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

/** What the API serves (gateway/api/deps.ts `EvidenceSource`): export, and the public key and fingerprint the installation publishes. */
export function evidenceSource(d: EvidenceExportDeps): { export(sessionId: string, exportedBy: string): Promise<EvidenceBundle | null>; publicKey: string; fingerprint: string } {
  return { export: (id, by) => exportEvidence(d, id, by), publicKey: d.signer.publicKey.toString('base64'), fingerprint: d.signer.fingerprint };
}
