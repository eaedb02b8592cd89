import { describe, expect, it } from 'vitest';
import { approvalPolicyOf, isApprover, statusText, tally, type Candidate } from './approval-rules.js';

const org = 'org-a';
const person = (over: Partial<Candidate>): Candidate => ({ id: 'p1', login: 'alice', role: 'org_admin', organizationId: org, ...over });

describe('approval rules', () => {
  it('reads a policy without approval settings as: no approval, org admins approve, 1 approval, no break-glass', () => {
    expect(approvalPolicyOf({})).toEqual({ requireApproval: false, approverRoles: ['org_admin'], approverLogins: [], approvalsRequired: 1, breakGlass: false });
    expect(approvalPolicyOf({ requireApproval: 'yes', approvalsRequired: 99, approverRoles: ['global_admin', 'technician'] })).toMatchObject({
      requireApproval: false, approvalsRequired: 10, approverRoles: ['technician'],
    });
  });

  it('approvers: by role or by name, of the organization only, never the requester, never disabled, never an outside global admin', () => {
    const pol = approvalPolicyOf({ requireApproval: true, approverRoles: ['org_admin'], approverLogins: ['Bob'] });
    expect(isApprover(person({}), org, pol, 'req')).toBe(true);
    expect(isApprover(person({ role: 'technician', login: 'bob' }), org, pol, 'req')).toBe(true);
    expect(isApprover(person({ role: 'technician', login: 'carol' }), org, pol, 'req')).toBe(false);
    expect(isApprover(person({ id: 'req' }), org, pol, 'req')).toBe(false);
    expect(isApprover(person({ organizationId: 'org-b' }), org, pol, 'req')).toBe(false);
    expect(isApprover(person({ disabled: true }), org, pol, 'req')).toBe(false);
    expect(isApprover(person({ role: 'global_admin', organizationId: null }), org, pol, 'req')).toBe(false);
  });

  it('tally: N distinct approvals approve, one deny denies, the same approver counts once', () => {
    expect(tally([], 2)).toEqual({ state: 'pending', approvals: 0 });
    expect(tally([{ approverLogin: 'a', decision: 'approve' }, { approverLogin: 'a', decision: 'approve' }], 2)).toEqual({ state: 'pending', approvals: 1 });
    expect(tally([{ approverLogin: 'a', decision: 'approve' }, { approverLogin: 'b', decision: 'approve' }], 2)).toEqual({ state: 'approved', approvals: 2 });
    expect(tally([{ approverLogin: 'a', decision: 'approve' }, { approverLogin: 'b', decision: 'deny' }], 1).state).toBe('denied');
  });

  it('status text for the requester', () => {
    const now = new Date('2026-01-01T10:00:00Z');
    expect(statusText('pending', 1, 2, null, now)).toBe('waiting for 1 of 2 approvals');
    expect(statusText('pending', 0, 1, null, now)).toBe('waiting for 1 of 1 approval');
    expect(statusText('approved', 2, 2, new Date('2026-01-01T10:29:10Z'), now)).toBe('approved: sessions may start for 30 more minutes');
    expect(statusText('denied', 0, 1, null, now)).toBe('denied');
  });
});
