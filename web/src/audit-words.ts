import type { AuditEvent } from './api.js';

/**
 * One audit event in words an auditor reads without the schema at hand
 * ("alice opened an SSH session on web01 as alice_k3x9q2"). The outcome is
 * shown in its own column, so the sentence says what was attempted; unknown
 * event types fall back to the type and the actor, never to nothing.
 */
export function describeAuditEvent(e: Pick<AuditEvent, 'type' | 'actor' | 'computer' | 'account' | 'data'>): string {
  const d = e.data ?? {};
  const str = (k: string): string | null => (typeof d[k] === 'string' && d[k] !== '' ? (d[k] as string) : null);
  const who = actorName(e.actor);
  const on = e.computer ? ` on ${e.computer}` : '';
  const as = e.account ? ` as ${e.account}` : '';
  const acct = e.account ?? 'an account';
  const proto = str('protocol')?.toUpperCase();
  switch (e.type) {
    case 'session.requested':
      return `${who} asked for ${proto ? `an ${proto}` : 'a'} session${on}`;
    case 'session.started':
      return str('mode') === 'elevate' ? `${who} was given admin rights${on}${as}` : `${who} opened ${proto ? `an ${proto}` : 'a'} session${on}${as}`;
    case 'session.ended':
      return `${who}'s session${on}${as} ended${str('reason') ? `: ${str('reason')}` : ''}`;
    case 'session.denied':
      return `${who} was refused a session${on}`;
    case 'session.failed':
      return `${who}'s session${on} could not start${str('code') ? ` (${str('code')})` : ''}`;
    case 'session.terminated':
      return `${who} terminated ${str('person') ? `${str('person')}'s` : 'a'} session${on}${as}`;
    case 'session.watch':
      return `${who} watched a live session${on}${as}`;
    case 'account.created':
      return `account ${acct} was created${on} for ${who}`;
    case 'account.reused':
      return `account ${acct} was reused${on} for ${who}`;
    case 'account.group_added':
      return `${acct} was added to ${str('group') ?? 'a group'}${on}`;
    case 'account.group_removed':
      return `${acct} was removed from ${str('group') ?? 'a group'}${on}`;
    case 'account.disabled':
      return `account ${acct} was disabled${on}`;
    case 'account.enabled':
      return `account ${acct} was enabled${on}`;
    case 'account.password_rotated':
      return `the password of ${acct} was changed${on}`;
    case 'account.password_revealed':
      return `${who} was shown the password of ${acct}${on}`;
    case 'account.deleted':
      return `account ${acct} was deleted${on}${str('reason') ? ` (${str('reason')})` : ''}`;
    case 'account.rolled_back':
      return `a half-made account ${acct} was removed again${on}`;
    case 'account.logged_off':
      return `${acct} was logged off${on}${str('reason') ? ` (${str('reason')})` : ''}`;
    case 'reconcile.forgotten':
      return `the clean-up forgot ${acct}${on}: it is no longer in the store`;
    case 'auth.passkey_enrolled':
      return `${who} added a passkey`;
    case 'auth.invitation_created':
      return `${who} invited someone to jitgate`;
    case 'auth.invitation_used':
      return `${who} joined jitgate with an invitation`;
    case 'lease.expired':
      return `the lease of ${acct}${on} ran out`;
    case 'reconcile.removed':
      return `the clean-up removed ${acct}${on}${str('reason') ? ` (${str('reason')})` : ''}`;
    case 'reconcile.completed':
      return 'the clean-up of leftover accounts ran';
    case 'auth.signed_in':
      return `${who} signed in`;
    case 'auth.sign_in_failed':
      return `${who} failed to sign in${str('reason') ? ` (${str('reason')})` : ''}`;
    case 'auth.signed_out':
      return `${who} signed out`;
    case 'auth.locked':
      return `${who} was locked out after too many failed sign-ins`;
    case 'auth.totp_enrolled':
      return `${who} set up an authenticator app`;
    case 'auth.recovery_code_used':
      return `${who} signed in with a recovery code`;
    case 'auth.recovery_codes_issued':
      return `${who} got new recovery codes`;
    case 'auth.password_changed':
      return `${who} changed their password`;
    case 'auth.session_revoked':
      return `sign-ins of ${str('person') ?? who} were ended`;
    case 'auth.bootstrap':
      return `${who} set up jitgate as its first administrator`;
    case 'auth.ssh_key_added':
      return `${who} added an SSH key`;
    case 'auth.ssh_key_removed':
      return `${who} removed an SSH key`;
    case 'access.denied':
      return `${who} was denied access${on}`;
    case 'recording.started':
      return `recording started${on}${as}`;
    case 'recording.completed':
      return `recording finished${on}${as}`;
    case 'recording.viewed':
      return d.live === true ? `${who} watched a live session${on}${as}` : `${who} replayed a recording${on}${as}`;
    case 'recording.verified':
      return `${who} checked the integrity of recordings`;
    case 'recording.downloaded':
      return `${who} downloaded a recording${on}${as}`;
    case 'recording.evidence_exported':
      return `${who} exported the evidence of a session${on}${as}`;
    case 'recording.deleted':
      return `${who} deleted a recording${on}${as} (retention)`;
    case 'session.legal_hold':
      return d.hold === true ? `${who} put a session${on} under legal hold` : `${who} lifted the legal hold of a session${on}`;
    case 'session.moderation':
      return moderationWords(who, str('event'), str('person'), on, str('reason'));
    case 'admin.changed':
      return adminWords(who, str('action'), d, e.computer);
    default:
      return `${who}: ${e.type}${on}${as}`;
  }
}

/** Four-eyes sessions: the moderator's coming and going, and what it did to the session. */
function moderationWords(who: string, event: string | null, person: string | null, on: string, reason: string | null): string {
  const theirs = person ? `${person}'s session${on}` : `a session${on}`;
  switch (event) {
    case 'waiting':
      return `${theirs} is waiting for a moderator`;
    case 'joined':
      return `${who} joined ${theirs} as moderator`;
    case 'left':
      return `${who} left ${theirs} as moderator`;
    case 'paused':
      return `${theirs} was paused: no moderator`;
    case 'resumed':
      return `${theirs} went on: ${who} is moderating`;
    case 'ended':
      return `${theirs} ended without a moderator${reason ? `: ${reason}` : ''}`;
    default:
      return `${who}: moderation of ${theirs}${event ? ` (${event})` : ''}`;
  }
}

/** `system:reconciler` → "the system (reconciler)"; people by their login. */
function actorName(actor: string): string {
  return actor.startsWith('system:') ? `the system (${actor.slice(7)})` : actor;
}

function adminWords(who: string, action: string | null, d: Record<string, unknown>, computer: string | null): string {
  const name = (typeof d.login === 'string' && d.login) || (typeof d.name === 'string' && d.name) || (typeof d.person === 'string' && d.person) || computer || '';
  const target = name ? ` ${name}` : '';
  switch (action) {
    case 'person.created':
      return `${who} added the person${target}`;
    case 'person.changed':
      return `${who} changed the person${target}`;
    case 'person.password_reset':
      return `${who} reset the password of${target}`;
    case 'person.unlocked':
      return `${who} unlocked${target}`;
    case 'computer.created':
      return `${who} added the computer${target}`;
    case 'computer.changed':
      return `${who} changed the computer${target}`;
    case 'computer.deleted':
      return `${who} removed the computer${target}`;
    case 'organization.created':
      return `${who} added the organization${target}`;
    case 'organization.changed':
      return `${who} changed an organization`;
    case 'organization.deleted':
      return `${who} removed the organization${target}`;
    case 'grant.added':
      return `${who} let ${String(d.person ?? 'a technician')} use ${computer ?? 'a computer'}`;
    case 'grant.removed':
      return `${who} took ${computer ?? 'a computer'} away from ${String(d.person ?? 'a technician')}`;
    default:
      return `${who} changed the settings${action ? ` (${action})` : ''}`;
  }
}

/** Audit events that happened inside a session and can be seen in its recording. */
export function replayable(type: string): boolean {
  return type.startsWith('session.') || type.startsWith('account.') || type === 'lease.expired' || type.startsWith('recording.');
}

/**
 * Why a session ended, from the reason the gateway or provisioner stored
 * (sessions.end_reason): closed, lease ended, terminated by whom, gateway lost.
 */
export function endReasonWords(reason: string | null | undefined): string {
  if (!reason) return '—';
  const r = reason.trim();
  if (r.startsWith('terminated by ')) return `terminated by ${r.slice(14)}`;
  if (r.startsWith('lease expired')) return 'lease ended';
  if (r === 'its gateway is gone') return 'gateway lost';
  if (r === 'shell exited' || r === 'client disconnected' || r === 'ended') return 'closed';
  if (r === 'connection to the computer closed') return 'the computer closed the connection';
  return r;
}
