import type { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import type { Computer, Protocol } from '../core/domain.js';
import { CoreErrors, JitgateError } from '../core/errors.js';
import { toComputer } from '../provisioner/jit-repository.js';
import type { Principal, Role } from './auth/principal.js';
import type { AccessChecker } from './contracts.js';
import { openWindowFor } from './access-requests/access-window.js';
import { approvalPolicyOf } from './access-requests/approval-rules.js';
import { AccessRequestErrors } from './access-requests/errors.js';
import { personHasGrant } from './teams/team-grants.js';

/**
 * Who may see and do what. Pure functions over (principal, resource), so
 * every rule is tested in milliseconds; routes load the resource, then ask.
 *
 * Rules (docs/api.md, "Authorization"):
 * - global_admin: everything. A global auditor (auditor without an
 *   organization) reads everything an auditor reads, in every organization.
 * - org_admin: everything inside their organization; never global admins,
 *   never another organization, never a role above their own.
 * - technician: sees computers of their organization (restricted ones only
 *   with a grant), opens sessions on them, sees and ends their own sessions
 *   and their own sessions' recordings; no audit, no administration.
 * - auditor: read-only on computers, people, live sessions, recordings and
 *   audit of their organization; never opens or terminates a session.
 */

/** What the rules need of a computer. */
export interface ComputerRef {
  organizationId: string;
  restricted: boolean;
}

/** What the rules need of a person (as a target of administration). */
export interface PersonRef {
  id: string;
  role: Role;
  organizationId: string | null;
}

/** A session or a recording: whose it is and which organization's computer it ran on (null when the computer was deleted). */
export interface SessionRef {
  personId: string | null;
  organizationId: string | null;
}

export type Scope = { kind: 'all' } | { kind: 'org'; organizationId: string } | { kind: 'none' };

const RANK: Record<Role, number> = { global_admin: 3, org_admin: 2, technician: 1, auditor: 1 };

/** The organizations whose data the principal reads (computers, people, sessions, audit). */
export function readScope(p: Principal): Scope {
  if (p.role === 'global_admin') return { kind: 'all' };
  if (p.organizationId === null) return p.role === 'auditor' ? { kind: 'all' } : { kind: 'none' };
  return { kind: 'org', organizationId: p.organizationId };
}

function inScope(p: Principal, organizationId: string | null): boolean {
  const s = readScope(p);
  return s.kind === 'all' || (s.kind === 'org' && organizationId !== null && s.organizationId === organizationId);
}

export function isAdminOf(p: Principal, organizationId: string | null): boolean {
  return p.role === 'global_admin' || (p.role === 'org_admin' && organizationId !== null && p.organizationId === organizationId);
}

export function isAdmin(p: Principal): boolean {
  return p.role === 'global_admin' || p.role === 'org_admin';
}

// ---- teams (gateway/teams) ----
/** Create, rename, delete teams of `organizationId`, change members, grants and synced groups. */
export function canManageTeams(p: Principal, organizationId: string): boolean {
  return isAdminOf(p, organizationId);
}

/** Read the teams (members, grants) of `organizationId`: its admins and auditors, global admins and global auditors. */
export function canSeeTeams(p: Principal, organizationId: string): boolean {
  if (p.role === 'technician') return false;
  const s = readScope(p);
  return s.kind === 'all' || (s.kind === 'org' && s.organizationId === organizationId);
}

// ---- organizations ----
export function canSeeOrganization(p: Principal, organizationId: string): boolean {
  return inScope(p, organizationId);
}
export function canWriteOrganizations(p: Principal): boolean {
  return p.role === 'global_admin';
}

// ---- people ----
export function canSeePerson(p: Principal, target: PersonRef): boolean {
  if (target.id === p.personId) return true;
  if (p.role === 'global_admin') return true;
  if (p.role === 'technician') return false;
  // Org admins and auditors see the people of their organization, global admins excepted.
  if (target.role === 'global_admin') return false;
  return inScope(p, target.organizationId);
}

/** Edit, disable, delete, reset MFA of `target` (as it is now). */
export function canManagePerson(p: Principal, target: PersonRef): boolean {
  if (p.role === 'global_admin') return true;
  if (p.role !== 'org_admin') return false;
  return target.role !== 'global_admin' && target.organizationId !== null && target.organizationId === p.organizationId;
}

/** Whether `p` may give someone `role` in `organizationId` (create, or change role/organization). */
export function canAssignRole(p: Principal, role: Role, organizationId: string | null): boolean {
  if (RANK[role] > RANK[p.role]) return false;
  if (p.role === 'global_admin') return true;
  if (p.role !== 'org_admin') return false;
  return organizationId !== null && organizationId === p.organizationId;
}

/** Shape rules independent of who asks: only admins and auditors may be global. */
export function roleNeedsOrganization(role: Role): boolean {
  return role === 'technician' || role === 'org_admin';
}

// ---- computers ----
export function canSeeComputer(p: Principal, c: ComputerRef, granted: boolean): boolean {
  if (!inScope(p, c.organizationId)) return false;
  if (p.role === 'technician') return !c.restricted || granted;
  return true;
}

/** Create (in `c.organizationId`), edit, delete, share/unshare. */
export function canEditComputer(p: Principal, c: Pick<ComputerRef, 'organizationId'>): boolean {
  return isAdminOf(p, c.organizationId);
}

/** Open sessions: global admins; admins of its organization; its organization's technicians unless restricted (then a grant). */
export function canConnect(p: Principal, c: ComputerRef, granted: boolean): boolean {
  if (p.role === 'auditor') return false;
  if (isAdminOf(p, c.organizationId)) return true;
  return p.role === 'technician' && p.organizationId === c.organizationId && (!c.restricted || granted);
}

// ---- live sessions, recordings ----
export function canSeeSession(p: Principal, s: SessionRef): boolean {
  if (s.personId !== null && s.personId === p.personId) return true;
  if (p.role === 'technician') return false;
  return inScope(p, s.organizationId);
}

export function canTerminateSession(p: Principal, s: SessionRef): boolean {
  if (p.role === 'auditor') return false;
  if (s.personId !== null && s.personId === p.personId) return true;
  return isAdminOf(p, s.organizationId);
}

/** Extending a session's lease: whoever may terminate it (its person, admins of its organization). */
export function canExtendSession(p: Principal, s: SessionRef): boolean {
  return canTerminateSession(p, s);
}

/** Recordings: admins and auditors of the computer's organization; technicians only their own sessions'. */
export function canSeeRecording(p: Principal, r: SessionRef): boolean {
  return canSeeSession(p, r);
}

// ---- audit, stores, inventory ----
export function canReadAudit(p: Principal): boolean {
  return (p.role === 'global_admin' || p.role === 'org_admin' || p.role === 'auditor') && readScope(p).kind !== 'none';
}
export function canListStores(p: Principal): boolean {
  return isAdmin(p);
}
export function canTestStores(p: Principal): boolean {
  return p.role === 'global_admin';
}
export function canUseInventory(p: Principal): boolean {
  return p.role === 'global_admin';
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isUuid(s: string): boolean {
  return UUID.test(s);
}

/**
 * Database-backed AccessChecker for the session openers (web terminal, RDP,
 * SSH front door). A computer the person may not connect to, may not see or
 * that does not exist all answer the same 403 "you do not have access to
 * <ref>" (no existence oracle across organizations), audited as
 * access.denied; only a global admin, who could see it anyway, gets 404.
 */
export class AccessService implements AccessChecker {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditLog,
  ) {}

  /** A person × computer grant, or a team × label grant covering the computer (gateway/teams/team-policy.ts). */
  async hasGrant(computerId: string, personId: string): Promise<boolean> {
    return personHasGrant(this.db, computerId, personId);
  }

  /** Computers matching `ref` (id, name or organization/name; names in any case) that `principal` may see. */
  async resolveVisible(principal: Principal, ref: string): Promise<Computer[]> {
    const slash = ref.indexOf('/');
    const rows = isUuid(ref)
      ? await this.db.query('SELECT * FROM computers WHERE id = $1', [ref])
      : slash > 0
        ? await this.db.query('SELECT c.* FROM computers c JOIN organizations o ON o.id = c.organization_id WHERE o.name = $1 AND lower(c.name) = lower($2)', [ref.slice(0, slash), ref.slice(slash + 1)])
        : // Computer names compare without case, like logins (unique per organization in lower case, migration 9).
          await this.db.query('SELECT * FROM computers WHERE lower(name) = lower($1)', [ref]);
    const out: Computer[] = [];
    for (const c of rows.map(toComputer)) {
      // A computer not shared with a technician is theirs while an approved access request's window is open (docs/access-requests.md).
      const granted = c.restricted && principal.role === 'technician' ? (await this.hasGrant(c.id, principal.personId)) || (await openWindowFor(this.db, c.id, principal.personId)) !== null : false;
      if (canSeeComputer(principal, c, granted)) out.push(c);
    }
    return out;
  }

  async computerForConnect(principal: Principal, ref: string, protocol: Protocol): Promise<Computer> {
    const visible = await this.resolveVisible(principal, ref);
    if (visible.length > 1) {
      throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `several computers are named ${ref}; use organization/name` });
    }
    const c = visible[0];
    if (!c) {
      if (principal.role === 'global_admin') throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: `computer ${ref}` });
      return this.deny(principal, ref, protocol, 'not-visible');
    }
    // Read now, not from a list made earlier: a revocation committed a moment ago closes the window.
    const window = await openWindowFor(this.db, c.id, principal.personId);
    const granted = c.restricted ? (await this.hasGrant(c.id, principal.personId)) || window !== null : false;
    if (!canConnect(principal, c, granted)) return this.deny(principal, c.name, protocol, c.restricted && principal.role === 'technician' ? 'restricted' : 'role', c.organizationId);
    if (approvalPolicyOf(c.policy).requireApproval && !window) {
      await this.audit.record({
        type: 'access.denied', actor: principal.login, outcome: 'denied', computer: c.name,
        data: { protocol, reason: 'approval-required', organizationId: c.organizationId },
      });
      throw new JitgateError(AccessRequestErrors.JIT_ERR_APPROVAL_REQUIRED, { computer: c.name });
    }
    if (!c.protocols.includes(protocol)) {
      throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `${c.name} does not accept ${protocol} sessions` });
    }
    return c;
  }

  private async deny(p: Principal, computer: string, protocol: Protocol, why: string, organizationId?: string): Promise<never> {
    await this.audit.record({
      type: 'access.denied',
      actor: p.login,
      outcome: 'denied',
      computer,
      data: { protocol, reason: why, message: `you do not have access to ${computer}`, ...(organizationId ? { organizationId } : {}) },
    });
    throw new JitgateError(CoreErrors.JIT_ERR_ACCESS_DENIED, { computer });
  }
}
