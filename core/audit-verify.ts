import {
  AUDIT_ALGS,
  AUDIT_GENESIS,
  KEYED_ALG,
  checkpointSignatureValid,
  linkFor,
  sameHex,
  type AuditAlg,
  type CheckpointInFile,
  type LinkedFields,
} from './audit-chain.js';

/**
 * Walks the audit chain once, in seq order, and says in words what is
 * wrong: an edited event (its link does not match), a deleted or inserted
 * event (seq gap, previous link broken), unkeyed rows where the chain is
 * keyed (rewritten by someone without the key), and, against the signed
 * checkpoints kept outside the database, newest events deleted (the table
 * ends before the latest checkpoint) or a chain rebuilt from its start (the
 * row at a checkpoint's seq has another link). Pure logic: the rows and the
 * checkpoints are handed in.
 */

export type AuditProblemKind =
  | 'gap'
  | 'link'
  | 'edited'
  | 'downgrade'
  | 'unknown-alg'
  | 'no-key'
  | 'wrong-key'
  | 'truncated'
  | 'checkpoint-mismatch'
  | 'checkpoint-signature'
  | 'checkpoint-malformed'
  | 'checkpoint-missing';

export interface AuditProblem {
  kind: AuditProblemKind;
  /** The event concerned, when there is one. */
  seq: number | null;
  message: string;
}

export interface AuditVerifyReport {
  ok: boolean;
  /** Events read. */
  count: number;
  /** Highest seq in the table (0: empty). */
  head: number;
  /** First HMAC-keyed event (null: none). */
  keyedFrom: number | null;
  checkpoints: { read: number; valid: number; latestSeq: number | null };
  problems: AuditProblem[];
  /** The first problem's event and words (the shape callers used before checkpoints). */
  brokenAt?: number;
  reason?: string;
}

export interface VerifiableEvent extends LinkedFields {
  alg: string;
  prevHash: string;
  hash: string;
}

export interface VerifyInput {
  events: AsyncIterable<VerifiableEvent>;
  key: Buffer | undefined;
  /** Signed checkpoints read from files; when absent, no truncation check is possible. */
  checkpoints?: { items: CheckpointInFile[]; malformed: { source: string; line: number }[]; missing: string[] };
  /** First keyed seq as the database's settings say (`audit.keyed_from`). */
  keyedFromSetting?: number | null;
  /** Check only what follows this already trusted event (the checkpointer's last checkpoint); default: from the start. */
  start?: { seq: number; link: string };
}

/** Per kind, this many problems are listed one by one; the rest are counted. */
const LIST_PER_KIND = 20;

export async function verifyAuditChain(input: VerifyInput): Promise<AuditVerifyReport> {
  const problems: AuditProblem[] = [];
  const perKind = new Map<AuditProblemKind, number>();
  const problem = (kind: AuditProblemKind, seq: number | null, message: string) => {
    const n = (perKind.get(kind) ?? 0) + 1;
    perKind.set(kind, n);
    if (n <= LIST_PER_KIND) problems.push({ kind, seq, message });
  };

  // Checkpoints: only those whose signature holds count; the others are reported.
  const valid: CheckpointInFile[] = [];
  const cps = input.checkpoints;
  for (const m of cps?.malformed ?? []) problem('checkpoint-malformed', null, `${m.source} line ${m.line} looks like a checkpoint but cannot be read`);
  for (const c of cps?.items ?? []) {
    if (!input.key) continue;
    if (checkpointSignatureValid(input.key, c.checkpoint)) valid.push(c);
    else
      problem(
        'checkpoint-signature',
        c.checkpoint.seq,
        `checkpoint for event ${c.checkpoint.seq} (${c.source} line ${c.line}) has an invalid signature: forged, edited, or signed with another key`,
      );
  }
  const bySeq = new Map<number, CheckpointInFile[]>();
  for (const c of valid) bySeq.set(c.checkpoint.seq, [...(bySeq.get(c.checkpoint.seq) ?? []), c]);
  const latest = valid.reduce<CheckpointInFile | null>((a, c) => (a && a.checkpoint.seq >= c.checkpoint.seq ? a : c), null);
  // The earliest "keyed from" anyone vouched for: unkeyed rows at or after it are a downgrade.
  const claims = [input.keyedFromSetting ?? null, ...valid.map((c) => c.checkpoint.keyedFrom)].filter((x): x is number => x !== null);
  const keyedFromClaim = claims.length ? Math.min(...claims) : null;

  let prev = input.start?.link ?? AUDIT_GENESIS;
  let expectSeq = (input.start?.seq ?? 0) + 1;
  let count = 0;
  let head = input.start?.seq ?? 0;
  let keyedFrom: number | null = null;
  let keyedRows = 0;
  let keyedFailed = 0;
  let noKeyReported = false;
  for await (const e of input.events) {
    count++;
    head = e.seq;
    if (e.seq !== expectSeq) {
      const what = e.seq > expectSeq ? (e.seq - expectSeq === 1 ? `event ${expectSeq} is missing` : `events ${expectSeq}–${e.seq - 1} are missing`) : `event ${e.seq} is out of order`;
      problem('gap', e.seq, `${what} (deleted); the chain resumes at event ${e.seq}`);
    } else if (!sameHex(e.prevHash, prev)) {
      problem('link', e.seq, `event ${e.seq} does not follow event ${e.seq - 1}: its previous link differs (an event was deleted, inserted or rewritten before it)`);
    }
    // Whatever broke before, check this row against the link it claims to follow.
    const base = e.seq === expectSeq ? prev : e.prevHash;
    const label = `event ${e.seq} (${e.type} by ${e.actor} at ${e.at.toISOString()})`;
    if (!(AUDIT_ALGS as readonly string[]).includes(e.alg)) {
      problem('unknown-alg', e.seq, `${label} names an unknown link algorithm "${e.alg}"`);
    } else {
      const alg = e.alg as AuditAlg;
      if (alg === KEYED_ALG) {
        keyedRows++;
        keyedFrom ??= e.seq;
      } else if (keyedFrom !== null || (keyedFromClaim !== null && e.seq >= keyedFromClaim)) {
        problem('downgrade', e.seq, `${label} is unkeyed although the chain is HMAC-keyed from event ${keyedFrom ?? keyedFromClaim}: rewritten by someone without the key`);
      }
      const want = linkFor(alg, input.key, base, e);
      if (want === undefined) {
        if (!noKeyReported) problem('no-key', e.seq, `event ${e.seq} and later are HMAC-keyed but no audit key was given: they cannot be checked`);
        noKeyReported = true;
      } else if (!sameHex(want, e.hash)) {
        if (alg === KEYED_ALG) keyedFailed++;
        problem('edited', e.seq, `${label} does not match its ${alg === KEYED_ALG ? 'HMAC' : 'hash'}: edited`);
      }
    }
    for (const c of bySeq.get(e.seq) ?? []) {
      if (!sameHex(c.checkpoint.link, e.hash))
        problem(
          'checkpoint-mismatch',
          e.seq,
          `event ${e.seq} is not the event checkpoint ${c.source} line ${c.line} (taken ${c.checkpoint.at}) signed: the chain up to it was rewritten or replaced`,
        );
    }
    prev = e.hash;
    expectSeq = e.seq + 1;
  }

  if (keyedRows >= 2 && keyedFailed === keyedRows) {
    problem('wrong-key', null, 'every HMAC-keyed event fails: the audit key is not the one that wrote the chain (audit.signingKey or <dataDir>/audit.key), or the whole chain was rewritten');
  }
  if (latest && latest.checkpoint.seq > head) {
    const gone = head + 1 === latest.checkpoint.seq ? `event ${head + 1} was` : `events ${head + 1}–${latest.checkpoint.seq} were`;
    problem(
      'truncated',
      latest.checkpoint.seq,
      `the chain ends at event ${head}, but checkpoint ${latest.source} line ${latest.line} (taken ${latest.checkpoint.at}) shows event ${latest.checkpoint.seq} existed: ${gone} deleted`,
    );
  }
  if (cps && count > 0) {
    for (const file of cps.missing) problem('checkpoint-missing', null, `checkpoint file ${file} does not exist: deletion of the newest events cannot be ruled out`);
    if (cps.missing.length === 0 && valid.length === 0 && input.key && keyedFrom !== null) {
      problem('checkpoint-missing', null, 'no valid checkpoint found: deletion of the newest events cannot be ruled out');
    }
  }
  for (const [kind, n] of perKind) {
    if (n > LIST_PER_KIND) problems.push({ kind, seq: null, message: `… and ${n - LIST_PER_KIND} more of this kind (${kind})` });
  }

  const report: AuditVerifyReport = {
    ok: problems.length === 0,
    count,
    head,
    keyedFrom,
    checkpoints: { read: cps?.items.length ?? 0, valid: valid.length, latestSeq: latest?.checkpoint.seq ?? null },
    problems,
  };
  const first = problems[0];
  if (first) {
    report.brokenAt = first.seq ?? head;
    report.reason = first.message;
  }
  return report;
}

/** The report in words, one problem a line, for `jitgate audit verify`. */
export function formatAuditReport(r: AuditVerifyReport): string {
  const keyed = r.keyedFrom === null ? 'unkeyed' : r.keyedFrom === 1 ? 'HMAC-keyed' : `HMAC-keyed from event ${r.keyedFrom}`;
  const cps = r.checkpoints.read === 0 ? 'no checkpoints' : `${r.checkpoints.valid} of ${r.checkpoints.read} checkpoint(s) valid, latest at event ${r.checkpoints.latestSeq ?? '-'}`;
  const head = `${r.count} event(s), ${keyed}; ${cps}`;
  if (r.ok) return `audit trail intact: ${head}\n`;
  const lines = r.problems.map((p) => `  ${p.seq === null ? '' : `[event ${p.seq}] `}${p.message}`);
  return `audit trail BROKEN: ${r.problems.length} problem(s) in ${head}\n${lines.join('\n')}\n`;
}
