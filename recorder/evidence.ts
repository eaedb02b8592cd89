import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { canonical, keyedLink, legacyLink, type AuditAlg, type LinkedFields } from '../core/audit-chain.js';
import { JitgateError } from '../core/errors.js';
import { RecorderErrors } from './errors.js';
import { ed25519Valid, evidenceFingerprint, type EvidenceSigner } from './evidence-key.js';
import { macMatches, NEVER_STARTED } from './manifest.js';

/**
 * The evidence bundle of one session (docs/evidence.md): one JSON file with
 * its parts (recording files, manifest entries, audit events) base64-encoded,
 * a statement listing the SHA-256 of every part and what the installation
 * checked when it exported them, and an Ed25519 signature over the statement.
 * Pure functions: building from collected data, and verifying offline with
 * nothing but the bundle (optionally the installation's HMAC keys and the
 * published fingerprint).
 */
export const EVIDENCE_FORMAT = 'jitgate-evidence/v1';
/** Prefix of the signed bytes, so a signature made for something else never verifies here. */
const SIGNED_PREFIX = `${EVIDENCE_FORMAT}\n`;

/** An audit event as a part: every field its chain link covers (`at` as ISO 8601), and the links. */
export interface EvidenceAuditEvent extends Omit<LinkedFields, 'at'> {
  at: string;
  prevHash: string;
  hash: string;
  alg: AuditAlg;
}

/** A manifest entry as a part (recorder/manifest.ts). */
export interface EvidenceManifestEntry {
  seq: number;
  recordingId: string;
  sha256: string;
  sizeBytes: number;
  at: string;
  prevMac: string;
  mac: string;
}

/** What the installation found when it checked a link with its key at export time. */
export type LinkCheck = 'verified' | 'broken' | 'unkeyed' | 'no-key';

export interface EvidenceStatement {
  format: typeof EVIDENCE_FORMAT;
  exportedAt: string;
  exportedBy: string;
  session: {
    id: string; person: string; computer: string; account: string | null; protocol: string; organizationId: string | null;
    state: string; createdAt: string | null; startedAt: string | null; endedAt: string | null; legalHold: boolean;
  };
  /** Every part of the bundle with its SHA-256 and size. */
  parts: { name: string; sha256: string; size: number }[];
  recordings: { id: string; kind: string; file: string | null; manifestEntry: string | null; status: string }[];
  /** Each event's successor in the chain at export time (null: it was the head): its previous-link must equal the event's link. */
  auditEvents: { seq: number; part: string; link: LinkCheck; successor: { seq: number; prevHash: string } | null }[];
  manifestEntries: { seq: number; part: string; mac: Exclude<LinkCheck, 'unkeyed'>; successor: { seq: number; prevMac: string } | null }[];
  /** The heads of both chains when the bundle was made (compare with later checkpoints). */
  heads: { audit: { seq: number; hash: string } | null; manifest: { seq: number; mac: string } | null };
}

export interface EvidenceBundle {
  format: typeof EVIDENCE_FORMAT;
  statement: EvidenceStatement;
  signature: { alg: 'ed25519'; publicKey: string; fingerprint: string; value: string };
  /** Part name → base64 of its bytes. */
  parts: Record<string, string>;
}

export function sha256Hex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export const auditPartName = (seq: number) => `audit/${seq}.json`;
export const manifestPartName = (seq: number) => `manifest/${seq}.json`;
export const recordingPartName = (recordingId: string, ext: string) => `recordings/${recordingId}.${ext}`;

/** A JSON part's bytes: canonical JSON (sorted keys), so the same event always hashes the same. */
export function jsonPart(v: unknown): Buffer {
  return Buffer.from(canonical(v) + '\n', 'utf8');
}

function signedBytes(s: EvidenceStatement): Buffer {
  return Buffer.from(SIGNED_PREFIX + canonical(s), 'utf8');
}

/** Sign `statement` (whose `parts` must list `parts`) into a bundle. */
export function sealBundle(statement: Omit<EvidenceStatement, 'parts' | 'format'>, parts: Map<string, Buffer>, signer: EvidenceSigner): EvidenceBundle {
  const s: EvidenceStatement = {
    format: EVIDENCE_FORMAT,
    ...statement,
    parts: [...parts].map(([name, b]) => ({ name, sha256: sha256Hex(b), size: b.length })),
  };
  return {
    format: EVIDENCE_FORMAT,
    statement: s,
    signature: { alg: 'ed25519', publicKey: signer.publicKey.toString('base64'), fingerprint: signer.fingerprint, value: signer.sign(signedBytes(s)).toString('base64') },
    parts: Object.fromEntries([...parts].map(([name, b]) => [name, b.toString('base64')])),
  };
}

/** Which part of the bundle a finding is about: verify names exactly what changed. */
export type EvidenceSubject = 'signature' | 'statement' | 'recording' | 'manifest-entry' | 'audit-event';

export interface EvidenceProblem {
  subject: EvidenceSubject;
  /** The part's name (`recordings/<id>.cast`, `manifest/12.json`, `audit/345.json`), when there is one. */
  part?: string;
  detail: string;
}

export interface EvidenceVerifyOptions {
  /** The fingerprint the installation publishes; a bundle signed by another key fails. */
  fingerprint?: string;
  /** The installation's audit HMAC key: recompute each event's link too. */
  auditKey?: Buffer;
  /** The installation's manifest HMAC key: recompute each entry's MAC too. */
  recordingKey?: Buffer;
}

export interface EvidenceReport {
  ok: boolean;
  sessionId: string | null;
  fingerprint: string | null;
  /** Whether the signer matched a fingerprint given by the verifier (false: none given, or another). */
  pinned: boolean;
  counts: { recordings: number; manifestEntries: number; auditEvents: number };
  problems: EvidenceProblem[];
}

/** Parse a bundle file's text; throws JIT_ERR_EVIDENCE_BUNDLE when it is not one. */
export function parseBundle(text: string): EvidenceBundle {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new JitgateError(RecorderErrors.JIT_ERR_EVIDENCE_BUNDLE, { reason: 'not JSON' });
  }
  const b = v as Partial<EvidenceBundle> | null;
  if (!b || typeof b !== 'object' || b.format !== EVIDENCE_FORMAT) throw new JitgateError(RecorderErrors.JIT_ERR_EVIDENCE_BUNDLE, { reason: `format is not ${EVIDENCE_FORMAT}` });
  const s = b.statement as Partial<EvidenceStatement> | undefined;
  if (!s || typeof s !== 'object' || !Array.isArray(s.parts) || !Array.isArray(s.recordings) || !Array.isArray(s.auditEvents) || !Array.isArray(s.manifestEntries) || !s.session) {
    throw new JitgateError(RecorderErrors.JIT_ERR_EVIDENCE_BUNDLE, { reason: 'statement is missing or incomplete' });
  }
  if (!b.signature || typeof b.signature !== 'object' || !b.parts || typeof b.parts !== 'object') {
    throw new JitgateError(RecorderErrors.JIT_ERR_EVIDENCE_BUNDLE, { reason: 'signature or parts missing' });
  }
  return b as EvidenceBundle;
}

function subjectOf(name: string): EvidenceSubject {
  if (name.startsWith('recordings/')) return 'recording';
  if (name.startsWith('manifest/')) return 'manifest-entry';
  if (name.startsWith('audit/')) return 'audit-event';
  return 'statement';
}

function jsonOf<T>(b: Buffer | undefined): T | undefined {
  if (!b) return undefined;
  try {
    return JSON.parse(b.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

/**
 * Check a bundle offline. Every check runs even after one fails, so a bundle
 * edited in several places lists each: the signature over the statement; each
 * part against the SHA-256 the statement lists; each recording against its
 * manifest entry; each audit event and manifest entry against its successor
 * link and the installation's checks at export; with the HMAC keys, each
 * link recomputed.
 */
export function verifyBundle(b: EvidenceBundle, opts: EvidenceVerifyOptions = {}): EvidenceReport {
  const problems: EvidenceProblem[] = [];
  const s = b.statement;
  const add = (subject: EvidenceSubject, detail: string, part?: string) => problems.push({ subject, detail, ...(part ? { part } : {}) });

  // 1. The signature over the statement, and whose key made it.
  const pub = Buffer.from(String(b.signature.publicKey ?? ''), 'base64');
  const fingerprint = pub.length === 32 ? evidenceFingerprint(pub) : null;
  if (b.signature.alg !== 'ed25519') add('signature', `unknown signature algorithm ${String(b.signature.alg)}`);
  else if (!ed25519Valid(pub, signedBytes(s), Buffer.from(String(b.signature.value ?? ''), 'base64'))) {
    add('signature', 'does not verify over the statement: the statement or the signature was changed');
  }
  if (fingerprint && b.signature.fingerprint !== fingerprint) add('signature', `names fingerprint ${b.signature.fingerprint} but its public key is ${fingerprint}`);
  const pinned = opts.fingerprint !== undefined && fingerprint === opts.fingerprint;
  if (opts.fingerprint !== undefined && !pinned) add('signature', `signed by ${fingerprint ?? 'an unreadable key'}, not by the published key ${opts.fingerprint}`);

  // 2. Each part against the digest the statement lists.
  const bytes = new Map<string, Buffer>();
  const listed = new Set<string>();
  // Parts that fail their digest are named once, there; checks derived from them are skipped.
  const changed = new Set<string>();
  for (const p of s.parts) {
    listed.add(p.name);
    const enc = b.parts[p.name];
    if (enc === undefined) {
      add(subjectOf(p.name), 'is missing from the bundle', p.name);
      continue;
    }
    const buf = Buffer.from(enc, 'base64');
    bytes.set(p.name, buf);
    const got = sha256Hex(buf);
    if (got !== p.sha256 || buf.length !== p.size) changed.add(p.name);
    if (got !== p.sha256 || buf.length !== p.size) add(subjectOf(p.name), `changed: ${buf.length} bytes with sha256 ${got}; signed ${p.size} bytes with ${p.sha256}`, p.name);
  }
  for (const name of Object.keys(b.parts)) if (!listed.has(name)) add(subjectOf(name), 'is in the bundle but not in the signed statement (added)', name);

  // 3. Manifest entries: the installation's MAC check, the successor link, the key if given.
  const entries = new Map<string, EvidenceManifestEntry>();
  for (const m of s.manifestEntries) {
    const e = jsonOf<EvidenceManifestEntry>(bytes.get(m.part));
    if (!e || changed.has(m.part)) continue;
    entries.set(m.part, e);
    if (e.seq !== m.seq) add('manifest-entry', `says entry ${e.seq}, the statement lists entry ${m.seq}`, m.part);
    if (m.mac === 'broken') add('manifest-entry', `entry ${m.seq}'s MAC did not verify when exported`, m.part);
    if (m.successor && m.successor.prevMac !== e.mac) add('manifest-entry', `entry ${m.seq}'s MAC is not the previous-MAC of entry ${m.successor.seq}: not the entry in the chain`, m.part);
    if (opts.recordingKey && !macMatches(opts.recordingKey, { ...e, at: new Date(e.at) })) add('manifest-entry', `entry ${m.seq}'s MAC does not match with the given recording key`, m.part);
  }

  // 4. Recordings against their manifest entries.
  for (const r of s.recordings) {
    const entry = r.manifestEntry ? entries.get(r.manifestEntry) : undefined;
    if (r.status !== 'ok' && r.status !== 'never-started') add('recording', `was ${r.status} when exported`, r.file ?? undefined);
    if (entry && entry.recordingId !== r.id) add('manifest-entry', `belongs to recording ${entry.recordingId}, not ${r.id}`, r.manifestEntry ?? undefined);
    if (!r.file) {
      if (entry && !(entry.sha256 === NEVER_STARTED && entry.sizeBytes === 0)) add('recording', `recording ${r.id} has no file but its manifest entry signs one`, r.manifestEntry ?? undefined);
      continue;
    }
    const file = bytes.get(r.file);
    if (!file || !entry || changed.has(r.file)) continue;
    const got = sha256Hex(file);
    if (got !== entry.sha256 || file.length !== entry.sizeBytes) add('recording', `bytes changed: ${file.length} bytes with sha256 ${got}; manifest entry ${entry.seq} signs ${entry.sizeBytes} bytes with ${entry.sha256}`, r.file);
  }

  // 5. Audit events: the session's, in chain order, each linked to its successor.
  const events: EvidenceAuditEvent[] = [];
  for (const a of s.auditEvents) {
    const e = jsonOf<EvidenceAuditEvent>(bytes.get(a.part));
    if (!e || changed.has(a.part)) continue;
    events.push(e);
    if (e.seq !== a.seq) add('audit-event', `says event ${e.seq}, the statement lists event ${a.seq}`, a.part);
    if (a.link === 'broken') add('audit-event', `event ${a.seq}'s link did not verify when exported`, a.part);
    if (a.successor && a.successor.prevHash !== e.hash) add('audit-event', `event ${a.seq}'s link is not the previous-link of event ${a.successor.seq}: not the event in the chain`, a.part);
    if (opts.auditKey || e.alg === 'sha256') {
      const fields = { ...e, at: new Date(e.at) };
      const want = e.alg === 'sha256' ? legacyLink(e.prevHash, fields) : keyedLink(opts.auditKey!, e.prevHash, fields);
      if (want !== e.hash) add('audit-event', `event ${a.seq}'s link does not match its content${e.alg === 'sha256' ? '' : ' with the given audit key'}`, a.part);
    }
  }
  for (let i = 1; i < events.length; i++) {
    const [prev, cur] = [events[i - 1]!, events[i]!];
    if (cur.seq === prev.seq + 1 && cur.prevHash !== prev.hash) add('audit-event', `event ${cur.seq}'s previous-link is not event ${prev.seq}'s link`, auditPartName(cur.seq));
  }

  return {
    ok: problems.length === 0,
    sessionId: typeof s.session?.id === 'string' ? s.session.id : null,
    fingerprint,
    pinned,
    counts: { recordings: s.recordings.length, manifestEntries: s.manifestEntries.length, auditEvents: s.auditEvents.length },
    problems,
  };
}

const SUBJECT_WORDS: Record<EvidenceSubject, string> = {
  signature: 'signature',
  statement: 'statement',
  recording: 'recording bytes',
  'manifest-entry': 'manifest entry',
  'audit-event': 'audit event',
};

/** What `jitgate evidence verify` prints: one line per problem naming the part, then a summary. */
export function formatEvidenceReport(r: EvidenceReport): string {
  const lines = r.problems.map((p) => `${SUBJECT_WORDS[p.subject]}${p.part ? ` ${p.part}` : ''}: ${p.detail}`);
  const c = r.counts;
  lines.push(
    `session ${r.sessionId ?? '?'}: ${c.recordings} recording(s), ${c.manifestEntries} manifest entr${c.manifestEntries === 1 ? 'y' : 'ies'}, ${c.auditEvents} audit event(s); ` +
      `${r.ok ? 'INTACT' : `${r.problems.length} problem(s): TAMPERED`}`,
  );
  lines.push(
    r.pinned
      ? `signed by ${r.fingerprint} (matches the fingerprint given)`
      : `signed by ${r.fingerprint ?? '?'}; compare with the fingerprint the installation publishes (jitgate evidence key), or pass --fingerprint`,
  );
  return lines.join('\n') + '\n';
}

/** An HMAC key file as the installation keeps it (base64 text of 32 bytes, or the raw 32 bytes), read without creating anything. */
export function readHmacKey(path: string): Buffer {
  const raw = readFileSync(path);
  const key = raw.length === 32 ? raw : Buffer.from(raw.toString('utf8').trim(), 'base64');
  if (key.length !== 32) throw new JitgateError(RecorderErrors.JIT_ERR_EVIDENCE_KEY, { reason: `${path} is not a 32-byte key (base64 or raw)` });
  return key;
}
