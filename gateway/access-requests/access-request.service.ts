import { randomUUID } from 'node:crypto';
import type { AuditLog } from '../../core/audit.js';
import type { Database, Queryable } from '../../core/db/database.js';
import type { Computer } from '../../core/domain.js';
import { CoreErrors, JitgateError } from '../../core/errors.js';
import type { Logger } from '../../core/logging.js';
import { jitSettingsSchema } from '../../provisioner/jit-settings.js';
import { toComputer } from '../../provisioner/jit-repository.js';
import { canConnect, isAdminOf, isUuid, readScope } from '../access-policy.js';
import type { Principal, Role } from '../auth/principal.js';
import { approvalPolicyOf, isApprover, statusText, tally, type ApprovalPolicy, type Candidate, type Decision, type RequestState } from './approval-rules.js';
import { AccessRequestErrors } from './errors.js';
import { personHasGrant } from '../teams/team-grants.js';
import type { AccessRequestNotifier, NoticeKind, Recipient } from './notifier.js';

/**
 * Access requests with approval (docs/access-requests.md): a person asks for
 * a window on a computer with a reason; approvers of the computer's
 * organization approve or deny, each confirming with a second factor; the
 * window lets the requester start sessions (gateway/access-policy.ts reads it
 * at every session start); revoking ends the window and the live sessions.
 * Every step is audited. Decisions run in a transaction holding the request
 * row, so two approvers answering at once are counted once each and a
 * revocation never races an approval into an open window.
 */

/** What the approver proves at the moment of deciding. */
export interface StepUpProof {
  /** A fresh TOTP code (or a recovery code). */
  code?: string | undefined;
  /** A WebAuthn assertion, for people with a passkey (hook for the passkey sign-in; null from checks that do not know passkeys). */
  passkey?: unknown;
}

/** Confirms a signed-in person's second factor for one action; returns the factor used or null (refused; failures count towards the lockout). */
export interface SecondFactorCheck {
  confirm(personId: string, proof: StepUpProof, purpose: string): Promise<string | null>;
}

/** End the live sessions of `personId` on `computerId`, wherever they run; returns the ended session ids. */
export type EndComputerSessions = (computerId: string, personId: string, by: string) => Promise<string[]>;

export interface AccessRequestServiceDeps {
  db: Database;
  audit: AuditLog;
  secondFactor: SecondFactorCheck;
  endSessions: EndComputerSessions;
  notifier?: AccessRequestNotifier | undefined;
  /** Base of links in notifications (`<publicUrl>/requests/<id>`); absent: a path. */
  publicUrl?: string | undefined;
  /** How long a request waits for its approvals before it expires; default 60. */
  pendingMinutes?: number;
  log: Logger;
  now?: () => Date;
}

export interface NewRequest {
  computerId: string;
  reason: string;
  minutes: number;
  ticket?: string | null | undefined;
}

export interface RequestView {
  id: string;
  organizationId: string;
  computerId: string | null;
  computerName: string;
  requester: string;
  reason: string;
  ticket: string | null;
  minutes: number;
  state: RequestState;
  breakGlass: boolean;
  required: number;
  approvals: number;
  status: string;
  decisions: { approver: string; decision: 'approve' | 'deny'; factor: string; comment: string | null; at: string }[];
  sessions: string[];
  createdAt: string;
  pendingUntil: string;
  windowStartsAt: string | null;
  windowEndsAt: string | null;
  endedAt: string | null;
  endedBy: string | null;
  grantedAt: string | null;
  mine: boolean;
  mayDecide: boolean;
  mayRevoke: boolean;
  mayCancel: boolean;
  mayGrant: boolean;
}

export interface RequestableComputer {
  id: string;
  name: string;
  organizationId: string;
  protocols: string[];
  maxSessionMinutes: number;
  requireApproval: boolean;
  /** Not shared with the person: requesting is the only way in. */
  unshared: boolean;
  breakGlass: boolean;
  approvalsRequired: number;
}

type ReqRow = {
  id: string;
  organization_id: string;
  computer_id: string | null;
  computer_name: string;
  requester_id: string;
  requester_login: string;
  reason: string;
  ticket: string | null;
  minutes: number;
  required_approvals: number;
  break_glass: boolean;
  state: RequestState;
  created_at: Date | string;
  pending_until: Date | string;
  decided_at: Date | string | null;
  window_starts_at: Date | string | null;
  window_ends_at: Date | string | null;
  ended_at: Date | string | null;
  ended_by: string | null;
  granted_at: Date | string | null;
};

type PersonRow = { id: string; login: string; display_name: string; email: string | null; role: Role; organization_id: string | null; disabled: boolean };

type Relation = { approver: boolean; admin: boolean; reader: boolean; mine: boolean };

const iso = (v: Date | string | null): string | null => (v === null ? null : new Date(v).toISOString());
const toCandidate = (r: PersonRow): Candidate => ({ id: r.id, login: r.login, role: r.role, organizationId: r.organization_id, disabled: r.disabled });

function stateError(state: string, reason: string): JitgateError {
  return new JitgateError(AccessRequestErrors.JIT_ERR_ACCESS_REQUEST_STATE, { state, reason });
}

function notFound(): JitgateError {
  return new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'access request' });
}

export class AccessRequestService {
  readonly #d: AccessRequestServiceDeps;
  readonly #pendingNotices = new Set<Promise<void>>();
  readonly #log: Logger;

  constructor(deps: AccessRequestServiceDeps) {
    this.#d = deps;
    this.#log = deps.log.child({ component: 'access-requests' });
  }

  #now(): Date {
    return this.#d.now?.() ?? new Date();
  }

  /** Notifications still being sent (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#pendingNotices.size > 0) await Promise.all([...this.#pendingNotices]);
  }

  // ---- reading ----------------------------------------------------------

  async #computer(id: string, q: Queryable = this.#d.db): Promise<Computer | null> {
    if (!isUuid(id)) return null;
    const rows = await q.query('SELECT * FROM computers WHERE id = $1', [id]);
    return rows[0] ? toComputer(rows[0]) : null;
  }

  async #hasGrant(computerId: string, personId: string): Promise<boolean> {
    return personHasGrant(this.#d.db, computerId, personId);
  }

  async #orgAllowsUnshared(organizationId: string): Promise<boolean> {
    const rows = await this.#d.db.query<{ unshared_requests: boolean }>('SELECT unshared_requests FROM organizations WHERE id = $1', [organizationId]);
    return rows[0]?.unshared_requests === true;
  }

  async #orgName(organizationId: string): Promise<string> {
    const rows = await this.#d.db.query<{ name: string }>('SELECT name FROM organizations WHERE id = $1', [organizationId]);
    return rows[0]?.name ?? organizationId;
  }

  async #people(organizationId: string): Promise<PersonRow[]> {
    return this.#d.db.query<PersonRow>('SELECT id, login, display_name, email, role, organization_id, disabled FROM people WHERE organization_id = $1', [organizationId]);
  }

  async #approversOf(organizationId: string, policy: ApprovalPolicy, requesterId: string): Promise<PersonRow[]> {
    return (await this.#people(organizationId)).filter((p) => isApprover(toCandidate(p), organizationId, policy, requesterId));
  }

  async #personRow(id: string): Promise<PersonRow | null> {
    const rows = await this.#d.db.query<PersonRow>('SELECT id, login, display_name, email, role, organization_id, disabled FROM people WHERE id = $1', [id]);
    return rows[0] ?? null;
  }

  /**
   * How `p` may ask for `c`: 'request' (needs approval, or not shared and
   * the organization allows asking), 'none' (may connect without asking), or
   * null (may not even see it: answered as not found).
   */
  async #requestability(p: Principal, c: Computer): Promise<{ unshared: boolean; policy: ApprovalPolicy } | 'none' | null> {
    const policy = approvalPolicyOf(c.policy);
    if (!canConnect(p, c, true)) return null;
    const shared = !c.restricted || p.role !== 'technician' || (await this.#hasGrant(c.id, p.personId));
    if (!shared && !(await this.#orgAllowsUnshared(c.organizationId))) return null;
    if (shared && !policy.requireApproval) return 'none';
    return { unshared: !shared, policy };
  }

  /** Computers `p` may ask for (needing approval, or not shared where the organization allows asking). */
  async requestable(p: Principal): Promise<RequestableComputer[]> {
    const s = readScope(p);
    if (s.kind === 'none' || p.role === 'auditor') return [];
    const rows = s.kind === 'all' ? await this.#d.db.query('SELECT * FROM computers ORDER BY name') : await this.#d.db.query('SELECT * FROM computers WHERE organization_id = $1 ORDER BY name', [s.organizationId]);
    const out: RequestableComputer[] = [];
    for (const c of rows.map(toComputer)) {
      const r = await this.#requestability(p, c);
      if (r === null || r === 'none') continue;
      const jit = jitSettingsSchema.safeParse(c.jit);
      out.push({
        id: c.id, name: c.name, organizationId: c.organizationId, protocols: c.protocols,
        maxSessionMinutes: jit.success ? jit.data.maxSessionMinutes : 60,
        requireApproval: r.policy.requireApproval, unshared: r.unshared, breakGlass: r.policy.breakGlass, approvalsRequired: r.policy.approvalsRequired,
      });
    }
    return out;
  }

  async #decisions(ids: string[]): Promise<Map<string, RequestView['decisions']>> {
    const out = new Map<string, RequestView['decisions']>();
    if (ids.length === 0) return out;
    const rows = await this.#d.db.query<{ request_id: string; approver_login: string; decision: 'approve' | 'deny'; factor: string; comment: string | null; at: Date | string }>(
      'SELECT request_id, approver_login, decision, factor, comment, at FROM access_request_decisions WHERE request_id = ANY($1::uuid[]) ORDER BY at',
      [ids],
    );
    for (const r of rows) {
      const list = out.get(r.request_id) ?? [];
      list.push({ approver: r.approver_login, decision: r.decision, factor: r.factor, comment: r.comment, at: iso(r.at)! });
      out.set(r.request_id, list);
    }
    return out;
  }

  async #sessions(ids: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (ids.length === 0) return out;
    const rows = await this.#d.db.query<{ request_id: string; session_id: string }>(
      'SELECT request_id, session_id FROM access_request_sessions WHERE request_id = ANY($1::uuid[]) ORDER BY at',
      [ids],
    );
    for (const r of rows) out.set(r.request_id, [...(out.get(r.request_id) ?? []), r.session_id]);
    return out;
  }

  /** Who `p` is to this request: null when they may not see it at all. */
  #relation(p: Principal, r: ReqRow, policy: ApprovalPolicy, self: PersonRow | null): Relation | null {
    const mine = r.requester_id === p.personId;
    const admin = isAdminOf(p, r.organization_id);
    const approver = self !== null && isApprover(toCandidate(self), r.organization_id, policy, r.requester_id);
    const s = readScope(p);
    const reader = p.role === 'auditor' && (s.kind === 'all' || (s.kind === 'org' && s.organizationId === r.organization_id));
    if (!mine && !admin && !approver && !reader) return null;
    return { approver, admin, reader, mine };
  }

  async #views(p: Principal, rows: ReqRow[]): Promise<RequestView[]> {
    const self = await this.#personRow(p.personId);
    const policies = new Map<string, ApprovalPolicy>();
    for (const r of rows) {
      if (!r.computer_id || policies.has(r.computer_id)) continue;
      const c = await this.#computer(r.computer_id);
      if (c) policies.set(r.computer_id, approvalPolicyOf(c.policy));
    }
    const visible: { r: ReqRow; rel: Relation }[] = [];
    for (const r of rows) {
      const rel = this.#relation(p, r, (r.computer_id && policies.get(r.computer_id)) || approvalPolicyOf({}), self);
      if (rel) visible.push({ r, rel });
    }
    const ids = visible.map((v) => v.r.id);
    const [decisions, sessions] = await Promise.all([this.#decisions(ids), this.#sessions(ids)]);
    const now = this.#now();
    return visible.map(({ r, rel }) => {
      const ds = decisions.get(r.id) ?? [];
      const approvals = new Set(ds.filter((d) => d.decision === 'approve').map((d) => d.approver)).size;
      const decided = ds.some((d) => d.approver === p.login);
      const windowEnd = r.window_ends_at ? new Date(r.window_ends_at) : null;
      return {
        id: r.id, organizationId: r.organization_id, computerId: r.computer_id, computerName: r.computer_name, requester: r.requester_login,
        reason: r.reason, ticket: r.ticket, minutes: Number(r.minutes), state: r.state, breakGlass: r.break_glass,
        required: Number(r.required_approvals), approvals,
        status: r.break_glass && r.state === 'approved' ? `break-glass: ${statusText(r.state, approvals, Number(r.required_approvals), windowEnd, now)}` : statusText(r.state, approvals, Number(r.required_approvals), windowEnd, now),
        decisions: ds, sessions: sessions.get(r.id) ?? [],
        createdAt: iso(r.created_at)!, pendingUntil: iso(r.pending_until)!, windowStartsAt: iso(r.window_starts_at), windowEndsAt: iso(r.window_ends_at),
        endedAt: iso(r.ended_at), endedBy: r.ended_by, grantedAt: iso(r.granted_at),
        mine: rel.mine,
        mayDecide: r.state === 'pending' && rel.approver && !decided,
        mayRevoke: r.state === 'approved' && (rel.admin || rel.approver || rel.mine),
        mayCancel: r.state === 'pending' && rel.mine,
        mayGrant: rel.admin && r.window_starts_at !== null && r.granted_at === null && r.computer_id !== null && (r.state === 'approved' || r.state === 'expired'),
      };
    });
  }

  /** The requests `p` may see (their own, those they approve, their organization's for admins and auditors), newest first. */
  async list(p: Principal): Promise<RequestView[]> {
    const s = readScope(p);
    const rows =
      s.kind === 'all'
        ? await this.#d.db.query<ReqRow>('SELECT * FROM access_requests ORDER BY created_at DESC LIMIT 200')
        : s.kind === 'org'
          ? await this.#d.db.query<ReqRow>('SELECT * FROM access_requests WHERE organization_id = $1 OR requester_id = $2 ORDER BY created_at DESC LIMIT 200', [s.organizationId, p.personId])
          : await this.#d.db.query<ReqRow>('SELECT * FROM access_requests WHERE requester_id = $1 ORDER BY created_at DESC LIMIT 200', [p.personId]);
    return this.#views(p, rows);
  }

  async get(p: Principal, id: string): Promise<RequestView> {
    if (!isUuid(id)) throw notFound();
    const rows = await this.#d.db.query<ReqRow>('SELECT * FROM access_requests WHERE id = $1', [id]);
    const [v] = await this.#views(p, rows);
    if (!v) throw notFound();
    return v;
  }

  // ---- asking -----------------------------------------------------------

  async #checkNew(p: Principal, input: NewRequest): Promise<{ c: Computer; policy: ApprovalPolicy; unshared: boolean; minutes: number }> {
    const c = await this.#computer(input.computerId);
    const r = c ? await this.#requestability(p, c) : null;
    if (!c || r === null) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'computer' });
    if (r === 'none') throw new JitgateError(AccessRequestErrors.JIT_ERR_ACCESS_REQUEST_NOT_REQUESTABLE, { computer: c.name, reason: 'it needs no approval; connect directly' });
    const jit = jitSettingsSchema.safeParse(c.jit);
    const max = jit.success ? jit.data.maxSessionMinutes : 60;
    if (input.minutes > max) throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `minutes: at most ${max} (the computer's longest session)` });
    const open = await this.#d.db.query<{ state: string }>(
      "SELECT state FROM access_requests WHERE computer_id = $1 AND requester_id = $2 AND (state = 'pending' OR (state = 'approved' AND window_ends_at > $3))",
      [c.id, p.personId, this.#now()],
    );
    if (open[0]) throw stateError(open[0].state, 'you already have an open request for this computer');
    return { c, policy: r.policy, unshared: r.unshared, minutes: input.minutes };
  }

  /** Ask for a window on a computer; approvers are told at once. */
  async create(p: Principal, input: NewRequest): Promise<RequestView> {
    const { c, policy, unshared, minutes } = await this.#checkNew(p, input);
    const approvers = await this.#approversOf(c.organizationId, policy, p.personId);
    if (approvers.length < policy.approvalsRequired) {
      throw new JitgateError(AccessRequestErrors.JIT_ERR_ACCESS_REQUEST_NO_APPROVERS, { computer: c.name, needed: policy.approvalsRequired, available: approvers.length });
    }
    const id = randomUUID();
    const now = this.#now();
    const pendingUntil = new Date(now.getTime() + (this.#d.pendingMinutes ?? 60) * 60_000);
    await this.#d.db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO access_requests (id, organization_id, computer_id, computer_name, requester_id, requester_login, reason, ticket, minutes, required_approvals, state, created_at, pending_until)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,'pending',$11,$12)`,
        [id, c.organizationId, c.id, c.name, p.personId, p.login, input.reason, input.ticket || null, minutes, policy.approvalsRequired, now, pendingUntil],
      );
      await this.#d.audit.record(
        {
          type: 'access_request.requested', actor: p.login, outcome: 'success', computer: c.name,
          data: { requestId: id, organizationId: c.organizationId, reason: input.reason, ticket: input.ticket || null, minutes, required: policy.approvalsRequired, unshared, approvers: approvers.map((a) => a.login) },
        },
        tx,
      );
    });
    this.#notify('requested', id, approvers);
    return this.get(p, id);
  }

  /**
   * Break-glass: open a window at once without approval, where the
   * computer's policy allows it. Demands a reason and the requester's second
   * factor; every approver is alerted at once; flagged in the audit and in
   * the request for good.
   */
  async breakGlass(p: Principal, input: NewRequest, proof: StepUpProof): Promise<RequestView> {
    const { c, policy, unshared, minutes } = await this.#checkNew(p, input);
    if (!policy.breakGlass) throw new JitgateError(AccessRequestErrors.JIT_ERR_ACCESS_REQUEST_NOT_REQUESTABLE, { computer: c.name, reason: 'break-glass is not enabled for it' });
    const factor = await this.#d.secondFactor.confirm(p.personId, proof, 'break-glass');
    if (!factor) throw new JitgateError(AccessRequestErrors.JIT_ERR_ACCESS_REQUEST_MFA);
    const approvers = await this.#approversOf(c.organizationId, policy, p.personId);
    const id = randomUUID();
    const now = this.#now();
    await this.#d.db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO access_requests (id, organization_id, computer_id, computer_name, requester_id, requester_login, reason, ticket, minutes, required_approvals, break_glass, state, created_at, pending_until, decided_at, window_starts_at, window_ends_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,true,'approved',$11,$11,$11,$11,$12)`,
        [id, c.organizationId, c.id, c.name, p.personId, p.login, input.reason, input.ticket || null, minutes, policy.approvalsRequired, now, new Date(now.getTime() + minutes * 60_000)],
      );
      await this.#d.audit.record(
        {
          type: 'access_request.break_glass', actor: p.login, outcome: 'success', computer: c.name,
          data: { requestId: id, organizationId: c.organizationId, reason: input.reason, ticket: input.ticket || null, minutes, factor, unshared, breakGlass: true, alerted: approvers.map((a) => a.login) },
        },
        tx,
      );
    });
    this.#notify('break_glass', id, approvers);
    return this.get(p, id);
  }

  // ---- deciding -----------------------------------------------------------

  async #lock(tx: Queryable, id: string): Promise<ReqRow | null> {
    const rows = await tx.query<ReqRow>('SELECT * FROM access_requests WHERE id = $1 FOR UPDATE', [id]);
    return rows[0] ?? null;
  }

  /** An approver's answer, confirmed with their second factor. One deny denies; N approvals open the window. */
  async decide(p: Principal, id: string, decision: 'approve' | 'deny', proof: StepUpProof, comment?: string | null): Promise<RequestView> {
    const before = await this.get(p, id);
    if (!before.mayDecide) {
      if (before.state !== 'pending') throw stateError(before.state, 'only a pending request is approved or denied');
      throw new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: before.mine ? 'approve your own request' : 'decide on this request' });
    }
    // The second factor first, outside the row lock (it writes its own rows and counts failures).
    const factor = await this.#d.secondFactor.confirm(p.personId, proof, 'access-request');
    if (!factor) {
      await this.#d.audit.record({ type: 'access_request.decided', actor: p.login, outcome: 'failure', computer: before.computerName, data: { requestId: id, decision, reason: 'second factor refused' } });
      throw new JitgateError(AccessRequestErrors.JIT_ERR_ACCESS_REQUEST_MFA);
    }
    const now = this.#now();
    const result = await this.#d.db.transaction(async (tx) => {
      const r = await this.#lock(tx, id);
      if (!r) throw notFound();
      if (r.state !== 'pending') throw stateError(r.state, 'only a pending request is approved or denied');
      if (new Date(r.pending_until).getTime() <= now.getTime()) throw stateError('expired', 'it waited too long for approval; ask again');
      // Eligibility again, under the lock, from the computer's policy as it is now.
      const c = r.computer_id ? await this.#computer(r.computer_id, tx) : null;
      const self = await tx.query<PersonRow>('SELECT id, login, display_name, email, role, organization_id, disabled FROM people WHERE id = $1', [p.personId]);
      if (!c || !self[0] || !isApprover(toCandidate(self[0]), r.organization_id, approvalPolicyOf(c.policy), r.requester_id)) {
        throw new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: 'decide on this request' });
      }
      const ins = await tx.query(
        'INSERT INTO access_request_decisions (request_id, approver_id, approver_login, decision, factor, comment, at) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING RETURNING 1',
        [id, p.personId, p.login, decision, factor, comment || null, now],
      );
      if (ins.length === 0) throw stateError('pending', 'you already answered it');
      const ds = await tx.query<{ approver_login: string; decision: Decision['decision'] }>('SELECT approver_login, decision FROM access_request_decisions WHERE request_id = $1', [id]);
      const t = tally(ds.map((d) => ({ approverLogin: d.approver_login, decision: d.decision })), Number(r.required_approvals));
      await this.#d.audit.record(
        { type: 'access_request.decided', actor: p.login, outcome: 'success', computer: r.computer_name, data: { requestId: id, decision, factor, comment: comment || null, requester: r.requester_login, approvals: t.approvals, required: Number(r.required_approvals) } },
        tx,
      );
      if (t.state === 'approved') {
        const ends = new Date(now.getTime() + Number(r.minutes) * 60_000);
        await tx.query("UPDATE access_requests SET state = 'approved', decided_at = $2, window_starts_at = $2, window_ends_at = $3 WHERE id = $1", [id, now, ends]);
        await this.#d.audit.record(
          { type: 'access_request.approved', actor: p.login, outcome: 'success', computer: r.computer_name, data: { requestId: id, requester: r.requester_login, approvers: ds.filter((d) => d.decision === 'approve').map((d) => d.approver_login), windowEndsAt: ends.toISOString() } },
          tx,
        );
      } else if (t.state === 'denied') {
        await tx.query("UPDATE access_requests SET state = 'denied', decided_at = $2, ended_at = $2, ended_by = $3 WHERE id = $1", [id, now, p.login]);
        await this.#d.audit.record({ type: 'access_request.denied', actor: p.login, outcome: 'denied', computer: r.computer_name, data: { requestId: id, requester: r.requester_login, comment: comment || null } }, tx);
      }
      return t.state;
    });
    if (result !== 'pending') this.#notify(result, id, []);
    return this.get(p, id);
  }

  /** End an approved window now (admins, approvers, the requester); the requester's live sessions on the computer end with it. */
  async revoke(p: Principal, id: string, reason?: string | null): Promise<RequestView> {
    const before = await this.get(p, id);
    if (!before.mayRevoke) {
      if (before.state !== 'approved') throw stateError(before.state, 'only an approved window is revoked');
      throw new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: 'revoke this request' });
    }
    const now = this.#now();
    const row = await this.#d.db.transaction(async (tx) => {
      const r = await this.#lock(tx, id);
      if (!r) throw notFound();
      if (r.state !== 'approved') throw stateError(r.state, 'only an approved window is revoked');
      await tx.query("UPDATE access_requests SET state = 'revoked', ended_at = $2, ended_by = $3 WHERE id = $1", [id, now, p.login]);
      return r;
    });
    // After the commit: a session starting now already sees the window closed; end those running.
    let ended: string[] = [];
    let endError: string | null = null;
    if (row.computer_id) {
      try {
        ended = await this.#d.endSessions(row.computer_id, row.requester_id, p.login);
      } catch (err) {
        endError = err instanceof Error ? err.message : String(err);
        this.#log.error({ err, requestId: id }, 'ending live sessions of a revoked request failed');
      }
    }
    await this.#d.audit.record({
      type: 'access_request.revoked', actor: p.login, outcome: endError ? 'failure' : 'success', computer: row.computer_name,
      data: { requestId: id, requester: row.requester_login, reason: reason || null, endedSessions: ended, breakGlass: row.break_glass, ...(endError ? { error: endError } : {}) },
    });
    this.#notify('revoked', id, []);
    if (endError) throw new JitgateError(AccessRequestErrors.JIT_ERR_ACCESS_REQUEST_SESSIONS_NOT_ENDED, { reason: endError });
    return this.get(p, id);
  }

  /** The requester withdraws a pending request. */
  async cancel(p: Principal, id: string): Promise<RequestView> {
    const before = await this.get(p, id);
    if (!before.mine) throw new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: 'cancel another person\'s request' });
    const now = this.#now();
    await this.#d.db.transaction(async (tx) => {
      const r = await this.#lock(tx, id);
      if (!r) throw notFound();
      if (r.state !== 'pending') throw stateError(r.state, 'only a pending request is cancelled');
      await tx.query("UPDATE access_requests SET state = 'cancelled', ended_at = $2, ended_by = $3 WHERE id = $1", [id, now, p.login]);
      await this.#d.audit.record({ type: 'access_request.cancelled', actor: p.login, outcome: 'success', computer: r.computer_name, data: { requestId: id } }, tx);
    });
    return this.get(p, id);
  }

  /** An admin turns an approved request into a standing grant (the computer is shared with the requester from now on). */
  async grant(p: Principal, id: string): Promise<RequestView> {
    const before = await this.get(p, id);
    if (!before.mayGrant) {
      if (!isAdminOf(p, before.organizationId)) throw new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: 'turn requests into grants' });
      throw stateError(before.state, before.grantedAt ? 'it is already a standing grant' : 'only an approved request becomes a standing grant');
    }
    const now = this.#now();
    await this.#d.db.transaction(async (tx) => {
      const r = await this.#lock(tx, id);
      if (!r || !r.computer_id) throw notFound();
      await tx.query('INSERT INTO grants (computer_id, person_id) VALUES ($1,$2) ON CONFLICT DO NOTHING', [r.computer_id, r.requester_id]);
      await tx.query('UPDATE access_requests SET granted_at = $2 WHERE id = $1', [id, now]);
      await this.#d.audit.record({ type: 'access_request.granted', actor: p.login, outcome: 'success', computer: r.computer_name, data: { requestId: id, person: r.requester_login } }, tx);
    });
    return this.get(p, id);
  }

  // ---- organization setting ------------------------------------------------

  async settings(p: Principal, organizationId: string): Promise<{ organizationId: string; unsharedRequests: boolean }> {
    const s = readScope(p);
    if (!isUuid(organizationId) || !(s.kind === 'all' || (s.kind === 'org' && s.organizationId === organizationId))) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'organization' });
    const rows = await this.#d.db.query<{ unshared_requests: boolean }>('SELECT unshared_requests FROM organizations WHERE id = $1', [organizationId]);
    if (!rows[0]) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'organization' });
    return { organizationId, unsharedRequests: rows[0].unshared_requests };
  }

  /** Admins of the organization: whether technicians may ask for computers not shared with them. */
  async setSettings(p: Principal, organizationId: string, unsharedRequests: boolean): Promise<{ organizationId: string; unsharedRequests: boolean }> {
    const before = await this.settings(p, organizationId);
    if (!isAdminOf(p, organizationId)) throw new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: 'change access request settings' });
    if (before.unsharedRequests !== unsharedRequests) {
      await this.#d.db.transaction(async (tx) => {
        await tx.query('UPDATE organizations SET unshared_requests = $2 WHERE id = $1', [organizationId, unsharedRequests]);
        await this.#d.audit.record({ type: 'access_request.settings_changed', actor: p.login, outcome: 'success', data: { organizationId, unsharedRequests } }, tx);
      });
    }
    return { organizationId, unsharedRequests };
  }

  // ---- time ------------------------------------------------------------------

  /**
   * Expire what ran out (pending past its wait, windows past their end) and
   * record which sessions ran inside which window. Safe on several gateways at
   * once: each row changes state once (UPDATE … RETURNING), each session is
   * linked once (primary key), and the audit is written in the same
   * transaction.
   */
  async sweep(): Promise<{ expired: number; linked: number }> {
    const now = this.#now();
    let expired = 0;
    let linked = 0;
    await this.#d.db.transaction(async (tx) => {
      const rows = await tx.query<{ id: string; computer_name: string; requester_login: string; state: string; was: string }>(
        `UPDATE access_requests SET state = 'expired', ended_at = $1, ended_by = 'system:expiry'
          WHERE (state = 'pending' AND pending_until <= $1) OR (state = 'approved' AND window_ends_at <= $1)
          RETURNING id, computer_name, requester_login, state, CASE WHEN window_starts_at IS NULL THEN 'pending' ELSE 'window' END AS was`,
        [now],
      );
      for (const r of rows) {
        await this.#d.audit.record(
          { type: 'access_request.expired', actor: 'system:access-requests', outcome: 'success', computer: r.computer_name, data: { requestId: r.id, requester: r.requester_login, phase: r.was } },
          tx,
        );
      }
      expired = rows.length;
    });
    await this.#d.db.transaction(async (tx) => {
      const rows = await tx.query<{ request_id: string; session_id: string; protocol: string; computer_name: string; person_login: string; break_glass: boolean }>(
        `SELECT r.id AS request_id, s.id AS session_id, s.protocol, r.computer_name, s.person_login, r.break_glass
           FROM access_requests r
           JOIN sessions s ON s.computer_id = r.computer_id AND s.person_id = r.requester_id
                          AND s.created_at >= r.window_starts_at AND s.created_at < coalesce(r.ended_at, r.window_ends_at)
          WHERE r.window_starts_at IS NOT NULL AND (r.state = 'approved' OR r.ended_at > $1::timestamptz - interval '1 day')
            AND NOT EXISTS (SELECT 1 FROM access_request_sessions x WHERE x.session_id = s.id)`,
        [now],
      );
      for (const r of rows) {
        const ins = await tx.query('INSERT INTO access_request_sessions (request_id, session_id, at) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING RETURNING 1', [r.request_id, r.session_id, now]);
        if (ins.length === 0) continue;
        linked++;
        await this.#d.audit.record(
          { type: 'access_request.used', actor: r.person_login, outcome: 'success', sessionId: r.session_id, computer: r.computer_name, data: { requestId: r.request_id, protocol: r.protocol, breakGlass: r.break_glass } },
          tx,
        );
      }
    });
    return { expired, linked };
  }

  // ---- notifications -----------------------------------------------------------

  /** Tell approvers (email, webhooks) after the commit; each channel's outcome is audited. Never fails the request. */
  #notify(kind: NoticeKind, id: string, approvers: PersonRow[]): void {
    const notifier = this.#d.notifier;
    if (!notifier) return;
    const job = (async () => {
      const rows = await this.#d.db.query<ReqRow>('SELECT * FROM access_requests WHERE id = $1', [id]);
      const r = rows[0];
      if (!r) return;
      const ds = await this.#decisions([id]);
      const approvals = new Set((ds.get(id) ?? []).filter((d) => d.decision === 'approve').map((d) => d.approver)).size;
      const path = `/requests/${id}`;
      const recipients: Recipient[] = approvers.map((a) => ({ login: a.login, displayName: a.display_name, email: a.email }));
      const results = await notifier.notify({
        kind, requestId: id, organizationId: r.organization_id, organization: await this.#orgName(r.organization_id), computer: r.computer_name,
        requester: r.requester_login, reason: r.reason, ticket: r.ticket, minutes: Number(r.minutes), approvals, required: Number(r.required_approvals),
        link: this.#d.publicUrl ? `${this.#d.publicUrl.replace(/\/$/, '')}${path}` : path, recipients,
      });
      for (const res of results) {
        await this.#d.audit.record({
          type: 'access_request.notified', actor: 'system:notifier', outcome: res.ok ? 'success' : 'failure', computer: r.computer_name,
          data: { requestId: id, kind, channel: res.channel, target: res.target, recipients: res.recipients ?? null, ...(res.error ? { error: res.error.slice(0, 200) } : {}) },
        });
      }
    })().catch((err: unknown) => this.#log.error({ err, requestId: id }, 'access request notification failed'));
    this.#pendingNotices.add(job);
    void job.finally(() => this.#pendingNotices.delete(job));
  }
}
