import type { Role } from '../auth/principal.js';

/**
 * The approval rules as pure functions (tested in milliseconds in
 * approval-rules.test.ts); access-request.service.ts does the I/O around them.
 */

export type ApproverRole = 'org_admin' | 'technician' | 'auditor';

/** What a computer's policy says about approval, with the defaults applied. */
export interface ApprovalPolicy {
  requireApproval: boolean;
  approverRoles: ApproverRole[];
  approverLogins: string[];
  approvalsRequired: number;
  breakGlass: boolean;
}

/** The approval part of `computers.policy` (gateway/api/computer-policy.ts); absent or malformed fields read as the strict defaults. */
export function approvalPolicyOf(policy: unknown): ApprovalPolicy {
  const p = (policy && typeof policy === 'object' ? policy : {}) as Record<string, unknown>;
  const roles = Array.isArray(p.approverRoles) ? p.approverRoles.filter((r): r is ApproverRole => r === 'org_admin' || r === 'technician' || r === 'auditor') : ['org_admin' as const];
  const logins = Array.isArray(p.approverLogins) ? p.approverLogins.filter((l): l is string => typeof l === 'string').map((l) => l.toLowerCase()) : [];
  const n = typeof p.approvalsRequired === 'number' && Number.isInteger(p.approvalsRequired) ? Math.min(10, Math.max(1, p.approvalsRequired)) : 1;
  return { requireApproval: p.requireApproval === true, approverRoles: roles, approverLogins: logins, approvalsRequired: n, breakGlass: p.breakGlass === true };
}

export interface Candidate {
  id: string;
  login: string;
  role: Role;
  organizationId: string | null;
  disabled?: boolean;
}

/**
 * Whether `person` approves requests for a computer of `organizationId`:
 * a person of that organization (never a global admin from outside it),
 * by role or by name, never the requester, never a disabled person.
 */
export function isApprover(person: Candidate, organizationId: string, policy: ApprovalPolicy, requesterId: string): boolean {
  if (person.id === requesterId || person.disabled) return false;
  if (person.organizationId !== organizationId) return false;
  if (person.role === 'global_admin') return false;
  return (policy.approverRoles as string[]).includes(person.role) || policy.approverLogins.includes(person.login.toLowerCase());
}

export type RequestState = 'pending' | 'approved' | 'denied' | 'expired' | 'revoked' | 'cancelled';

export interface Decision {
  approverLogin: string;
  decision: 'approve' | 'deny';
}

/**
 * A pending request after its decisions: one deny denies (a security team's
 * veto), N distinct approvals approve, otherwise it keeps waiting.
 */
export function tally(decisions: readonly Decision[], required: number): { state: 'pending' | 'approved' | 'denied'; approvals: number } {
  const approvers = new Set(decisions.filter((d) => d.decision === 'approve').map((d) => d.approverLogin));
  if (decisions.some((d) => d.decision === 'deny')) return { state: 'denied', approvals: approvers.size };
  return { state: approvers.size >= required ? 'approved' : 'pending', approvals: approvers.size };
}

/** "waiting for 1 of 2 approvals" as the requester sees it. */
export function statusText(state: RequestState, approvals: number, required: number, windowEndsAt: Date | null, now: Date): string {
  switch (state) {
    case 'pending': {
      const missing = required - approvals;
      return `waiting for ${missing} of ${required} approval${required === 1 ? '' : 's'}`;
    }
    case 'approved': {
      if (!windowEndsAt) return 'approved';
      const mins = Math.max(0, Math.ceil((windowEndsAt.getTime() - now.getTime()) / 60_000));
      return `approved: sessions may start for ${mins} more minute${mins === 1 ? '' : 's'}`;
    }
    default:
      return state;
  }
}
