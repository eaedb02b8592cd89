import type { AuditLog } from '../../core/audit.js';
import type { Database } from '../../core/db/database.js';
import type { Computer } from '../../core/domain.js';
import type { Logger } from '../../core/logging.js';
import { toComputer } from '../../provisioner/jit-repository.js';
import type { Principal, Role } from '../auth/principal.js';
import type { LiveSessionInfo, ModerationStatus, PresenceEvent, SessionGate, SessionModeration } from '../contracts.js';
import { openWindowFor } from './access-window.js';
import { approvalPolicyOf, isApprover } from './approval-rules.js';
import { ModerationGate } from './moderation-gate.js';
import type { AccessRequestNotifier, Recipient } from './notifier.js';

/**
 * Four-eyes sessions (docs/access-requests.md "Four-eyes sessions"). A
 * computer whose policy has `requireModerator` connects a session (SSH or
 * RDP) only while a moderator watches it live: a person of the computer's
 * organization who approves its access requests (`approverRoles`,
 * `approverLogins`; never the person themself, never someone disabled or of
 * another organization), checked against the database when they join. The
 * rule itself is moderation-gate.ts; this module wires it to the people
 * table, the audit trail (`session.moderation`) and the recording's
 * metadata (`recordings.metadata.moderation`, migration 21).
 */

/** The moderation part of `computers.policy` (gateway/api/computer-policy.ts), defaults applied. */
export interface ModerationPolicy {
  required: boolean;
  graceSeconds: number;
  waitMinutes: number;
}

export function moderationPolicyOf(policy: unknown): ModerationPolicy {
  const p = (policy && typeof policy === 'object' ? policy : {}) as Record<string, unknown>;
  const int = (v: unknown, dflt: number, min: number, max: number): number => (typeof v === 'number' && Number.isInteger(v) ? Math.min(max, Math.max(min, v)) : dflt);
  return { required: p.requireModerator === true, graceSeconds: int(p.moderatorGraceSeconds, 60, 5, 3600), waitMinutes: int(p.moderatorWaitMinutes, 15, 1, 240) };
}

export interface SessionModerationDeps {
  db: Database;
  audit: AuditLog;
  log: Logger;
  /** Tests shorten the wait for the first moderator below the policy's whole minutes. */
  waitMsOverride?: number;
  /** Tells the computer's moderators (email, webhooks) that a session waits for one; absent → they see it in Live sessions only. */
  notifier?: AccessRequestNotifier | undefined;
  /** `server.publicUrl`, for the link in the notice. */
  publicUrl?: string | undefined;
}

type PersonRow = { id: string; login: string; role: Role; organization_id: string | null; disabled: boolean };
type NoticeRow = PersonRow & { display_name: string; email: string | null };

export class SessionModerationService implements SessionModeration {
  readonly #d: SessionModerationDeps;
  readonly #log: Logger;

  constructor(d: SessionModerationDeps) {
    this.#d = d;
    this.#log = d.log.child({ component: 'moderation' });
  }

  gateFor(s: { sessionId: string; computer: Computer; personId: string; personLogin: string; protocol: string }, end: (reason: string) => void): SessionGate | null {
    const m = moderationPolicyOf(s.computer.policy);
    if (!m.required) return null;
    // Each step is written after the one before it (audit chain order = what happened).
    let writes: Promise<void> = Promise.resolve();
    const gate: ModerationGate = new ModerationGate({
      graceMs: m.graceSeconds * 1000,
      waitMs: this.#d.waitMsOverride ?? m.waitMinutes * 60_000,
      isModerator: (personId) => this.isModerator(personId, s.computer.id, s.personId),
      end,
      onEvent: (e, status) => {
        writes = writes.then(() => this.#record(s, e, status, gate.log())).catch((err: unknown) => this.#log.error({ err, sessionId: s.sessionId }, 'moderation step not recorded'));
        if (e.event === 'waiting') writes = writes.then(() => this.#notifyModerators(s, m.waitMinutes)).catch((err: unknown) => this.#log.error({ err, sessionId: s.sessionId }, 'moderators not notified'));
      },
    });
    return gate;
  }

  /** Email and webhooks to the computer's moderators: a session waits for one (each channel's outcome audited). */
  async #notifyModerators(s: { sessionId: string; computer: Computer; personId: string; personLogin: string }, waitMinutes: number): Promise<void> {
    const notifier = this.#d.notifier;
    if (!notifier) return;
    const c = s.computer;
    const people = await this.#d.db.query<NoticeRow>('SELECT id, login, display_name, email, role, organization_id, disabled FROM people WHERE organization_id = $1', [c.organizationId]);
    const policy = approvalPolicyOf(c.policy);
    const moderators = people.filter((r) => isApprover({ id: r.id, login: r.login, role: r.role, organizationId: r.organization_id, disabled: r.disabled }, c.organizationId, policy, s.personId));
    const recipients: Recipient[] = moderators.map((r) => ({ login: r.login, displayName: r.display_name, email: r.email }));
    const org = await this.#d.db.query<{ name: string }>('SELECT name FROM organizations WHERE id = $1', [c.organizationId]);
    const path = `/live/${s.sessionId}/watch`;
    const results = await notifier.notify({
      kind: 'moderator_needed', requestId: s.sessionId, organizationId: c.organizationId, organization: org[0]?.name ?? c.organizationId, computer: c.name,
      requester: s.personLogin, reason: 'four-eyes session', ticket: null, minutes: waitMinutes, approvals: 0, required: 1,
      link: this.#d.publicUrl ? `${this.#d.publicUrl.replace(/\/$/, '')}${path}` : path, recipients,
    });
    for (const res of results) {
      await this.#d.audit.record({
        type: 'access_request.notified', actor: 'system:notifier', outcome: res.ok ? 'success' : 'failure', sessionId: s.sessionId, computer: c.name,
        data: { kind: 'moderator_needed', channel: res.channel, target: res.target, recipients: res.recipients ?? null, ...(res.error ? { error: res.error.slice(0, 200) } : {}) },
      });
    }
  }

  /**
   * Whether `personId` moderates sessions of `sessionPersonId` on the computer:
   * an approver of the computer's organization under its policy as it is now.
   */
  async isModerator(personId: string, computerId: string, sessionPersonId: string): Promise<boolean> {
    const c = await this.#computer(computerId);
    if (!c || !moderationPolicyOf(c.policy).required) return false;
    const rows = await this.#d.db.query<PersonRow>('SELECT id, login, role, organization_id, disabled FROM people WHERE id = $1', [personId]);
    const r = rows[0];
    if (!r) return false;
    return isApprover({ id: r.id, login: r.login, role: r.role, organizationId: r.organization_id, disabled: r.disabled }, c.organizationId, approvalPolicyOf(c.policy), sessionPersonId);
  }

  /** Whether `p` may moderate (watch, and terminate from the watch) this session. */
  async mayModerate(p: Principal, sessionId: string): Promise<boolean> {
    const rows = await this.#d.db.query<{ computer_id: string | null; person_id: string | null }>('SELECT computer_id, person_id FROM sessions WHERE id = $1', [sessionId]);
    const r = rows[0];
    if (!r?.computer_id || !r.person_id) return false;
    return this.isModerator(p.personId, r.computer_id, r.person_id);
  }

  /** Live sessions `p` may moderate (GET /moderation/sessions). */
  async moderatable(p: Principal, live: readonly LiveSessionInfo[]): Promise<(LiveSessionInfo & { computerId: string })[]> {
    if (live.length === 0) return [];
    const rows = await this.#d.db.query<{ id: string; computer_id: string | null; person_id: string | null }>(
      'SELECT id, computer_id, person_id FROM sessions WHERE id = ANY($1::uuid[])',
      [live.map((l) => l.sessionId)],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    const out: (LiveSessionInfo & { computerId: string })[] = [];
    for (const l of live) {
      const r = byId.get(l.sessionId);
      if (!r?.computer_id || !r.person_id) continue;
      if (await this.isModerator(p.personId, r.computer_id, r.person_id)) out.push({ ...l, computerId: r.computer_id });
    }
    return out;
  }

  async windowMetadata(s: { computerId: string; personId: string }): Promise<Record<string, unknown>> {
    const w = await openWindowFor(this.#d.db, s.computerId, s.personId);
    if (!w) return {};
    return { accessRequestId: w.requestId, ...(w.breakGlass ? { breakGlass: true } : {}) };
  }

  async #computer(id: string): Promise<Computer | null> {
    const rows = await this.#d.db.query('SELECT * FROM computers WHERE id = $1', [id]);
    return rows[0] ? toComputer(rows[0]) : null;
  }

  async #record(s: { sessionId: string; computer: Computer; personLogin: string; protocol: string }, e: PresenceEvent, status: ModerationStatus, log: readonly PresenceEvent[]): Promise<void> {
    await this.#d.db.transaction(async (tx) => {
      // The whole presence log so far: a recording that starts later is indexed with it (recordingMetadata), later steps replace it here.
      await tx.query(
        `UPDATE recordings SET metadata = metadata || jsonb_build_object('moderated', true, 'moderation', $2::jsonb) WHERE session_id = $1`,
        [s.sessionId, JSON.stringify(log)],
      );
      await this.#d.audit.record(
        {
          type: 'session.moderation', actor: e.by ?? 'system:moderation', outcome: e.event === 'ended' ? 'failure' : 'success', sessionId: s.sessionId, computer: s.computer.name,
          data: { event: e.event, person: s.personLogin, protocol: s.protocol, moderators: status.moderators, ...(e.graceEndsAt ? { graceEndsAt: e.graceEndsAt } : {}), ...(e.reason ? { reason: e.reason } : {}) },
        },
        tx,
      );
    });
  }
}
