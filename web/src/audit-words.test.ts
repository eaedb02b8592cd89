import { describe, expect, it } from 'vitest';
import { describeAuditEvent, endReasonWords } from './audit-words.js';

type Ev = Parameters<typeof describeAuditEvent>[0];
const ev = (type: string, over: Partial<Ev> = {}): Ev => ({ type, actor: 'alice', computer: 'web01', account: 'alice_k3x9q2', data: {}, ...over });

describe('describeAuditEvent', () => {
  it.each<[string, Ev, string]>([
    ['an SSH session opening', ev('session.started', { data: { protocol: 'ssh' } }), 'alice opened an SSH session on web01 as alice_k3x9q2'],
    ['a session without protocol', ev('session.started'), 'alice opened a session on web01 as alice_k3x9q2'],
    ['elevation', ev('session.started', { data: { mode: 'elevate' } }), 'alice was given admin rights on web01 as alice_k3x9q2'],
    ['a request', ev('session.requested', { account: null, data: { protocol: 'rdp' } }), 'alice asked for an RDP session on web01'],
    ['an end with its reason', ev('session.ended', { data: { reason: 'lease expired' } }), "alice's session on web01 as alice_k3x9q2 ended: lease expired"],
    ['a termination by an admin', ev('session.terminated', { actor: 'ada', data: { person: 'alice' } }), "ada terminated alice's session on web01 as alice_k3x9q2"],
    ['a refusal', ev('session.denied', { account: null }), 'alice was refused a session on web01'],
    ['a group membership', ev('account.group_added', { data: { group: 'sudo' } }), 'alice_k3x9q2 was added to sudo on web01'],
    ['a deletion with reason', ev('account.deleted', { actor: 'system:provisioner', data: { reason: 'lease expired' } }), 'account alice_k3x9q2 was deleted on web01 (lease expired)'],
    ['a log-off', ev('account.logged_off', { actor: 'system:provisioner', data: { reason: 'terminated by ada' } }), 'alice_k3x9q2 was logged off on web01 (terminated by ada)'],
    ['a system actor', ev('lease.expired', { actor: 'system:reconciler' }), 'the lease of alice_k3x9q2 on web01 ran out'],
    ['a failed sign-in', ev('auth.sign_in_failed', { computer: null, account: null, data: { reason: 'disabled' } }), 'alice failed to sign in (disabled)'],
    ['a live watch', ev('recording.viewed', { actor: 'ada', data: { live: true } }), 'ada watched a live session on web01 as alice_k3x9q2'],
    ['a replay', ev('recording.viewed', { actor: 'ada' }), 'ada replayed a recording on web01 as alice_k3x9q2'],
    ['an admin adding a person', ev('admin.changed', { actor: 'ada', computer: null, account: null, data: { action: 'person.created', login: 'bob' } }), 'ada added the person bob'],
    ['an admin sharing a computer', ev('admin.changed', { actor: 'ada', account: null, data: { action: 'grant.added', person: 'tina' } }), 'ada let tina use web01'],
    ['an unknown admin action', ev('admin.changed', { actor: 'ada', computer: null, account: null, data: { action: 'apply' } }), 'ada changed the settings (apply)'],
    ['a moderator joining', ev('session.moderation', { actor: 'mo', data: { event: 'joined', person: 'alice' } }), "mo joined alice's session on web01 as moderator"],
    ['a session paused without moderator', ev('session.moderation', { actor: 'system:moderation', data: { event: 'paused', person: 'alice' } }), "alice's session on web01 was paused: no moderator"],
    ['an unknown type', ev('future.thing', { account: null }), 'alice: future.thing on web01'],
  ])('%s', (_what, e, words) => {
    expect(describeAuditEvent(e)).toBe(words);
  });
});

describe('endReasonWords', () => {
  it.each<[string | null, string]>([
    ['terminated by ada', 'terminated by ada'],
    ['lease expired', 'lease ended'],
    ['lease expired (reconciler)', 'lease ended'],
    ['its gateway is gone', 'gateway lost'],
    ['shell exited', 'closed'],
    ['client disconnected', 'closed'],
    ['connection to the computer closed', 'the computer closed the connection'],
    ['recording failed', 'recording failed'],
    [null, '—'],
  ])('%s reads %s', (reason, words) => expect(endReasonWords(reason)).toBe(words));
});
