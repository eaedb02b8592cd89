import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The links of the audit chain and the signed checkpoints that anchor its
 * head outside the database (docs/audit.md). Pure functions, no I/O.
 *
 * Link n = HMAC-SHA256(key, "jitgate-audit/v2\n" ‖ link n−1 ‖ "\n" ‖
 * canonical(event n)), with link 0 = 64 zeros. Rows written before the key
 * existed carry `alg = 'sha256'` and the unkeyed link SHA-256(link n−1 ‖ "\n"
 * ‖ canonical(event n)); they still verify, but once the chain has switched
 * to HMAC an unkeyed row is a downgrade (anyone who can write the database
 * can compute SHA-256, nobody without the key can compute the HMAC).
 */
export const AUDIT_GENESIS = '0'.repeat(64);

/** `sha256`: unkeyed rows from before migration 8; `hmac-sha256`: keyed. */
export const AUDIT_ALGS = ['sha256', 'hmac-sha256'] as const;
export type AuditAlg = (typeof AUDIT_ALGS)[number];
export const KEYED_ALG: AuditAlg = 'hmac-sha256';
export const LEGACY_ALG: AuditAlg = 'sha256';

/** What a link covers: everything of an event but its own links. */
export interface LinkedFields {
  seq: number;
  at: Date;
  type: string;
  actor: string;
  outcome: string;
  sessionId: string | null;
  computer: string | null;
  account: string | null;
  data: unknown;
}

/** JSON with object keys sorted, so a jsonb round trip (which reorders keys) gives the same text. */
export function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const keys = Object.keys(v as Record<string, unknown>).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

function body(e: LinkedFields): string {
  return canonical({
    seq: e.seq,
    at: e.at.toISOString(),
    type: e.type,
    actor: e.actor,
    outcome: e.outcome,
    sessionId: e.sessionId,
    computer: e.computer,
    account: e.account,
    data: e.data,
  });
}

/** The pre-migration-8 unkeyed link (kept to verify old rows; never written with a key configured). */
export function legacyLink(prev: string, e: LinkedFields): string {
  return createHash('sha256').update(prev).update('\n').update(body(e)).digest('hex');
}

export function keyedLink(key: Buffer, prev: string, e: LinkedFields): string {
  return createHmac('sha256', key).update('jitgate-audit/v2\n').update(prev).update('\n').update(body(e)).digest('hex');
}

/** The link `alg` gives, or undefined for a keyed row when there is no key to compute it. */
export function linkFor(alg: AuditAlg, key: Buffer | undefined, prev: string, e: LinkedFields): string | undefined {
  if (alg === LEGACY_ALG) return legacyLink(prev, e);
  return key ? keyedLink(key, prev, e) : undefined;
}

export function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/**
 * A signed statement "the chain held `count` events, event `seq` had link
 * `link`, as committed at `at`". Kept outside the database (a file, the
 * forwarded stream), it lets `audit verify` notice newest events deleted
 * and a chain rewritten from its start.
 */
export interface AuditCheckpoint {
  kind: 'audit.checkpoint';
  /** Format version of the signed text. */
  v: 1;
  seq: number;
  link: string;
  /** When the checkpoint was taken (ISO 8601). */
  at: string;
  /** Events in the chain up to and including `seq`. */
  count: number;
  /** First HMAC-keyed event known when signing (null: none yet). */
  keyedFrom: number | null;
  /** Who signed it (`<hostname>:<pid>`), for the operator reading the file. */
  by: string;
  /** HMAC-SHA256 over the fields above. */
  sig: string;
}

export type UnsignedCheckpoint = Omit<AuditCheckpoint, 'sig' | 'kind' | 'v'>;

function checkpointText(c: UnsignedCheckpoint): string {
  return ['jitgate-audit-checkpoint/v1', String(c.seq), c.link, c.at, String(c.count), c.keyedFrom === null ? '-' : String(c.keyedFrom), c.by].join('\n');
}

export function signCheckpoint(key: Buffer, c: UnsignedCheckpoint): AuditCheckpoint {
  return { kind: 'audit.checkpoint', v: 1, ...c, sig: createHmac('sha256', key).update(checkpointText(c)).digest('hex') };
}

export function checkpointSignatureValid(key: Buffer, c: AuditCheckpoint): boolean {
  return sameHex(c.sig, createHmac('sha256', key).update(checkpointText(c)).digest('hex'));
}

/** One line of the checkpoint file or of the forwarded stream. */
export function checkpointLine(c: AuditCheckpoint): string {
  return JSON.stringify(c);
}

const HEX64 = /^[0-9a-f]{64}$/;

/** A checkpoint from a parsed JSON line, or null when the line is something else (an event, junk). */
export function asCheckpoint(v: unknown): AuditCheckpoint | null {
  if (!v || typeof v !== 'object') return null;
  const c = v as Record<string, unknown>;
  if (c.kind !== 'audit.checkpoint' || c.v !== 1) return null;
  const int = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!int(c.seq) || !int(c.count) || !(c.keyedFrom === null || int(c.keyedFrom))) return null;
  if (typeof c.link !== 'string' || !HEX64.test(c.link) || typeof c.sig !== 'string' || !HEX64.test(c.sig)) return null;
  if (typeof c.at !== 'string' || typeof c.by !== 'string') return null;
  return { kind: 'audit.checkpoint', v: 1, seq: c.seq, link: c.link, at: c.at, count: c.count, keyedFrom: c.keyedFrom, by: c.by, sig: c.sig };
}

export interface CheckpointInFile {
  checkpoint: AuditCheckpoint;
  source: string;
  line: number;
}

/**
 * The checkpoints in a checkpoint file or a forwarded JSON-lines stream
 * (event lines and syslog prefixes are skipped: a line counts from its
 * first `{`). Lines that look like checkpoints but do not parse are
 * reported, so a damaged file is not silently ignored.
 */
export function parseCheckpoints(text: string, source: string): { checkpoints: CheckpointInFile[]; malformed: number[] } {
  const checkpoints: CheckpointInFile[] = [];
  const malformed: number[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    if (!raw.includes('audit.checkpoint')) return;
    // a last line without its newline is being appended right now (another process): not damage
    const unfinished = i === lines.length - 1;
    const start = raw.indexOf('{');
    let parsed: unknown;
    try {
      parsed = start >= 0 ? JSON.parse(raw.slice(start)) : undefined;
    } catch {
      parsed = undefined;
    }
    const c = asCheckpoint(parsed);
    if (c) checkpoints.push({ checkpoint: c, source, line: i + 1 });
    else if (parsed && typeof parsed === 'object' && (parsed as { type?: unknown }).type !== undefined) return; // an event that mentions the word
    else if (!unfinished) malformed.push(i + 1);
  });
  return { checkpoints, malformed };
}
