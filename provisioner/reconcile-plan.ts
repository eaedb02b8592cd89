import type { JitAccountRecord } from '../core/domain.js';
import { MARKER_PREFIX, type ManagedAccount } from './account-store.js';

/**
 * `jitgate:<installation>:<account id as 22 base64url chars>` — what jitgate
 * writes on every account it creates. Compact because a Windows local
 * account's description holds at most 48 characters.
 */
export function makeMarker(installationId: string, accountId: string): string {
  const id = Buffer.from(accountId.replace(/-/g, ''), 'hex').toString('base64url');
  return `${MARKER_PREFIX}${installationId}:${id}`;
}

export function parseMarker(marker: string): { installationId: string; accountId: string } | null {
  const m = /^jitgate:([a-z0-9]{4,16}):([A-Za-z0-9_-]{22})$/.exec(marker);
  if (!m) return null;
  const h = Buffer.from(m[2]!, 'base64url').toString('hex');
  return { installationId: m[1]!, accountId: `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}` };
}

export type ReconcileAction =
  | { kind: 'delete'; name: string; accountId: string | null; reason: string }
  | { kind: 'remove-group'; name: string; accountId: string; group: string; reason: string }
  | { kind: 'disable'; name: string; accountId: string; reason: string }
  | { kind: 'forget'; name: string; accountId: string; reason: string };

export interface ReconcileInput {
  installationId: string;
  /** What the store holds with a jitgate marker. */
  storeAccounts: readonly ManagedAccount[];
  /** Our rows for this store (not deleted). */
  rows: readonly JitAccountRecord[];
  /** Account ids with a live, unexpired lease. */
  liveAccountIds: ReadonlySet<string>;
}

/**
 * Decide, without any I/O, what the reconciler must do so that no JIT
 * account or membership outlives its lease:
 * - an account marked by us with no row (or a row we consider gone) → delete;
 * - an account whose row is active/creating but has no live lease → delete
 *   it, or (kept accounts) remove its memberships and disable it;
 * - an idle kept account that is enabled or still in a group → fix it;
 * - a row whose account no longer exists and has no live lease → forget it.
 * Accounts marked by another jitgate installation are never touched.
 */
export function planReconcile(input: ReconcileInput): ReconcileAction[] {
  const actions: ReconcileAction[] = [];
  const byId = new Map(input.rows.map((r) => [r.id, r]));
  const seen = new Set<string>();
  for (const acct of input.storeAccounts) {
    const parsed = parseMarker(acct.marker);
    if (!parsed || parsed.installationId !== input.installationId) continue;
    const row = byId.get(parsed.accountId);
    seen.add(parsed.accountId);
    if (!row || row.name.toLowerCase() !== acct.name.toLowerCase() || row.state === 'failed') {
      actions.push({ kind: 'delete', name: acct.name, accountId: row?.id ?? null, reason: row ? `row is ${row.state}` : 'no record of this account' });
      continue;
    }
    const live = input.liveAccountIds.has(row.id);
    if (live) continue;
    if (row.state === 'creating' || row.state === 'active') {
      if (!row.keep) {
        actions.push({ kind: 'delete', name: acct.name, accountId: row.id, reason: 'lease ended' });
        continue;
      }
      for (const group of acct.groups) actions.push({ kind: 'remove-group', name: acct.name, accountId: row.id, group, reason: 'lease ended' });
      actions.push({ kind: 'disable', name: acct.name, accountId: row.id, reason: 'lease ended' });
      continue;
    }
    if (row.state === 'idle') {
      for (const group of acct.groups) actions.push({ kind: 'remove-group', name: acct.name, accountId: row.id, group, reason: 'idle account still in a group' });
      if (acct.enabled) actions.push({ kind: 'disable', name: acct.name, accountId: row.id, reason: 'idle account enabled' });
    }
  }
  for (const row of input.rows) {
    if (seen.has(row.id) || input.liveAccountIds.has(row.id)) continue;
    if (row.state === 'creating' || row.state === 'active' || row.state === 'idle' || row.state === 'failed') {
      actions.push({ kind: 'forget', name: row.name, accountId: row.id, reason: 'account no longer in the store' });
    }
  }
  return actions;
}

/** Why the reconciler may act on an account now, or null when it may not. */
export interface OverInput {
  /** The account's row, re-read at the moment of acting. */
  createdAt: Date;
  /** Every session that ever used the account (any state), re-read at the moment of acting. */
  sessions: readonly { state: string; leaseExpiresAt: Date }[];
  /** When this sweep began, on the database's clock (rows are stamped with it). */
  sweepStartedAt: Date;
  now: Date;
  leaseGraceMs: number;
  /** A row no session links to yet is in the middle of being provisioned for this long. */
  provisioningTimeoutMs: number;
}

/**
 * The reconciler acts on an account only when its use is provably over:
 * - it was not created after this sweep began (a sweep never judges what it
 *   could not have seen when it listed the stores);
 * - every session that used it has ended or failed, or its lease and grace
 *   have passed;
 * - a row no session links to yet is older than the provisioning timeout
 *   (the engine links a row to its session right after inserting it, before
 *   the account exists in any store).
 * Pure: the service re-reads its inputs under the lock it acts under.
 */
export function provablyOver(i: OverInput): boolean {
  if (i.createdAt.getTime() >= i.sweepStartedAt.getTime()) return false;
  if (i.sessions.length === 0) return i.now.getTime() - i.createdAt.getTime() > i.provisioningTimeoutMs;
  return i.sessions.every((s) => s.state === 'ended' || s.state === 'failed' || s.leaseExpiresAt.getTime() + i.leaseGraceMs <= i.now.getTime());
}
