import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { errorText, get, post, put, type Organization } from '../api.js';
import { can, useSession } from '../session.js';
import { Checkbox, ErrorBox, Field, Link, Page, TextInput, fmtTime, type FormSpec } from '../ui.js';

/**
 * Access requests (docs/access-requests.md): the technician's "Request
 * access" form with live status, the approvers' list with approve/deny
 * confirmed by a second factor, and one request's page (`/requests/<id>`,
 * where notifications link: sign-in first, then the code, never the link
 * alone). Lists refresh themselves every few seconds: no reload needed.
 */

export interface AccessRequest {
  id: string;
  organizationId: string;
  computerId: string | null;
  computerName: string;
  requester: string;
  reason: string;
  ticket: string | null;
  minutes: number;
  state: 'pending' | 'approved' | 'denied' | 'expired' | 'revoked' | 'cancelled';
  breakGlass: boolean;
  required: number;
  approvals: number;
  status: string;
  decisions: { approver: string; decision: 'approve' | 'deny'; factor: string; comment: string | null; at: string }[];
  sessions: string[];
  createdAt: string;
  windowEndsAt: string | null;
  endedBy: string | null;
  grantedAt: string | null;
  mine: boolean;
  mayDecide: boolean;
  mayRevoke: boolean;
  mayCancel: boolean;
  mayGrant: boolean;
}

interface Requestable {
  id: string;
  name: string;
  organizationId: string;
  maxSessionMinutes: number;
  requireApproval: boolean;
  unshared: boolean;
  breakGlass: boolean;
  approvalsRequired: number;
}

const POLL_MS = 2500;

/** Load now and again every POLL_MS while mounted; keeps the last good data while a refresh is in flight. */
function usePoll<T>(load: () => Promise<T>, deps: unknown[] = []): { data: T | undefined; error: unknown; refresh: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const run = () =>
      load().then(
        (d) => {
          if (!live) return;
          setData(d);
          setError(null);
        },
        (e: unknown) => live && setError(e),
      );
    void run();
    const t = setInterval(() => void run(), POLL_MS);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [tick, ...deps]);
  return { data, error, refresh: () => setTick((n) => n + 1) };
}

const STATE_BADGE: Record<AccessRequest['state'], string> = { pending: 'warn', approved: 'ok', denied: 'bad', expired: '', revoked: 'bad', cancelled: '' };

function StateBadge({ r }: { r: AccessRequest }) {
  return (
    <>
      <span class={`badge ${STATE_BADGE[r.state]}`}>{r.state}</span>
      {r.breakGlass && <span class="badge bad">break-glass</span>}
    </>
  );
}

/** Approve or deny: the code from the authenticator app is asked every time (a passkey prompt joins here once passkeys exist). */
function Decide({ r, onDone }: { r: AccessRequest; onDone: () => void }) {
  const [choice, setChoice] = useState<'approve' | 'deny' | null>(null);
  const [code, setCode] = useState('');
  const [comment, setComment] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  if (!choice)
    return (
      <div class="row">
        <button type="button" class="primary" onClick={() => setChoice('approve')}>
          Approve
        </button>
        <button type="button" class="danger" onClick={() => setChoice('deny')}>
          Deny
        </button>
      </div>
    );
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await post(`/access-requests/${r.id}/${choice}`, { code: code.trim(), comment: comment.trim() || null });
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="confirm" onSubmit={(e) => void submit(e)} aria-label={`Confirm ${choice}`}>
      <p>
        {choice === 'approve' ? 'Approve' : 'Deny'} access to <strong>{r.computerName}</strong> for <strong>{r.requester}</strong>: confirm it is you.
      </p>
      <Field id={`code-${r.id}`} label="Authentication code" hint="From your authenticator app; a fresh code each time.">
        <TextInput id={`code-${r.id}`} value={code} onValue={setCode} inputMode="numeric" autoComplete="one-time-code" required autoFocus />
      </Field>
      <Field id={`comment-${r.id}`} label="Comment (optional)">
        <TextInput id={`comment-${r.id}`} value={comment} onValue={setComment} />
      </Field>
      <ErrorBox error={error} />
      <div class="row">
        <button type="submit" class={choice === 'approve' ? 'primary' : 'danger'} disabled={busy}>
          Confirm {choice === 'approve' ? 'approval' : 'denial'}
        </button>
        <button type="button" onClick={() => setChoice(null)}>
          Back
        </button>
      </div>
    </form>
  );
}

/** One request as a card: what, why, who decided, and what the viewer may do with it. */
function RequestCard({ r, onChange }: { r: AccessRequest; onChange: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const act = (path: string, confirmText?: string) => async () => {
    if (confirmText && !confirm(confirmText)) return;
    try {
      setError(null);
      await post(`/access-requests/${r.id}/${path}`, {});
      onChange();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <article class="request" data-request={r.id} data-state={r.state} aria-label={`Request for ${r.computerName} by ${r.requester}`}>
      <header class="row">
        <strong>{r.computerName}</strong> <StateBadge r={r} />
      </header>
      <p class="status" role="status" data-testid="request-status" aria-live="polite">
        {r.status}
        {r.state === 'pending' && '…'}
      </p>
      <dl class="facts">
        <dt>Requested by</dt>
        <dd>{r.requester}</dd>
        <dt>Reason</dt>
        <dd>{r.reason}</dd>
        {r.ticket && (
          <>
            <dt>Ticket</dt>
            <dd>{r.ticket}</dd>
          </>
        )}
        <dt>Duration</dt>
        <dd>{r.minutes} minutes</dd>
        <dt>Asked</dt>
        <dd>{fmtTime(r.createdAt)}</dd>
        {r.windowEndsAt && (
          <>
            <dt>Window ends</dt>
            <dd>{fmtTime(r.windowEndsAt)}</dd>
          </>
        )}
        {r.decisions.length > 0 && (
          <>
            <dt>Decisions</dt>
            <dd>
              {r.decisions.map((d) => (
                <div key={d.approver}>
                  {d.approver}: {d.decision === 'approve' ? 'approved' : 'denied'} ({d.factor}){d.comment ? ` — ${d.comment}` : ''}
                </div>
              ))}
            </dd>
          </>
        )}
        {r.sessions.length > 0 && (
          <>
            <dt>Sessions</dt>
            <dd>{r.sessions.length}</dd>
          </>
        )}
        {r.endedBy && (
          <>
            <dt>Ended by</dt>
            <dd>{r.endedBy}</dd>
          </>
        )}
      </dl>
      {r.mayDecide && <Decide r={r} onDone={onChange} />}
      <div class="row">
        {r.mine && r.state === 'approved' && r.computerId && (
          <Link href="/" class="button primary">
            Connect
          </Link>
        )}
        {r.mayCancel && (
          <button type="button" onClick={() => void act('cancel')()}>
            Cancel request
          </button>
        )}
        {r.mayRevoke && (
          <button type="button" class="danger" onClick={() => void act('revoke', `Revoke access to ${r.computerName} for ${r.requester}? Live sessions end now.`)()}>
            {r.mine ? 'End my access' : 'Revoke'}
          </button>
        )}
        {r.mayGrant && (
          <button type="button" onClick={() => void act('grant', `Share ${r.computerName} with ${r.requester} for good?`)()}>
            Make a standing grant
          </button>
        )}
        <Link href={`/requests/${r.id}`}>Open</Link>
      </div>
      <ErrorBox error={error} />
    </article>
  );
}

/** The technician's form: computer, reason, minutes (up to the computer's longest session), ticket; break-glass where enabled. */
function RequestForm({ onCreated }: { onCreated: () => void }) {
  const [computers, setComputers] = useState<Requestable[] | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [computerId, setComputerId] = useState('');
  const [reason, setReason] = useState('');
  const [minutes, setMinutes] = useState('30');
  const [ticket, setTicket] = useState('');
  const [glass, setGlass] = useState(false);
  const [code, setCode] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    get<Requestable[]>('/access-requests/computers').then((cs) => {
      setComputers(cs);
      if (cs[0]) setComputerId(cs[0].id);
    }, setLoadError);
  }, []);
  if (loadError) return <ErrorBox error={loadError} />;
  if (!computers) return <p aria-busy="true">Loading…</p>;
  if (computers.length === 0) return <p class="muted">No computer needs a request from you.</p>;
  const c = computers.find((x) => x.id === computerId);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setFields({});
    try {
      const body = { computerId, reason: reason.trim(), minutes: Number(minutes), ticket: ticket.trim() || null };
      await post(glass ? '/access-requests/break-glass' : '/access-requests', glass ? { ...body, code: code.trim() } : body);
      setReason('');
      setTicket('');
      setCode('');
      setGlass(false);
      onCreated();
    } catch (err) {
      setError(err);
      setFields((err as { fields?: Record<string, string> }).fields ?? {});
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="editor request-form" onSubmit={(e) => void submit(e)} aria-label="Request access">
      <Field id="r-computer" label="Computer" error={fields.computerId}>
        <select id="r-computer" value={computerId} onChange={(e) => setComputerId((e.currentTarget as HTMLSelectElement).value)}>
          {computers.map((x) => (
            <option key={x.id} value={x.id}>
              {x.name}
              {x.unshared ? ' (not shared with you)' : ''}
            </option>
          ))}
        </select>
      </Field>
      {c && (
        <p class="muted">
          Needs {c.approvalsRequired} approval{c.approvalsRequired === 1 ? '' : 's'}; at most {c.maxSessionMinutes} minutes.
        </p>
      )}
      <Field id="r-reason" label="Reason" error={fields.reason}>
        <textarea id="r-reason" value={reason} required rows={2} onInput={(e) => setReason((e.currentTarget as HTMLTextAreaElement).value)} aria-invalid={fields.reason ? 'true' : undefined} />
      </Field>
      <div class="grid2">
        <Field id="r-minutes" label="Duration (minutes)" error={fields.minutes}>
          <TextInput id="r-minutes" type="number" min={1} max={c?.maxSessionMinutes ?? 1440} value={minutes} onValue={setMinutes} error={fields.minutes} />
        </Field>
        <Field id="r-ticket" label="Ticket (optional)" error={fields.ticket}>
          <TextInput id="r-ticket" value={ticket} onValue={setTicket} error={fields.ticket} placeholder="INC-1234" />
        </Field>
      </div>
      {c?.breakGlass && (
        <Checkbox id="r-glass" label="Break glass: emergency, open now without approval (every approver is alerted)" checked={glass} onChange={setGlass} />
      )}
      {glass && (
        <Field id="r-code" label="Authentication code" hint="Break-glass needs your second factor.">
          <TextInput id="r-code" value={code} onValue={setCode} inputMode="numeric" autoComplete="one-time-code" required />
        </Field>
      )}
      <ErrorBox error={error} />
      <div class="row">
        <button type="submit" class={glass ? 'danger' : 'primary'} disabled={busy}>
          {glass ? 'Break glass now' : 'Request access'}
        </button>
      </div>
    </form>
  );
}

/** Admins: whether technicians may ask for computers not shared with them (per organization). */
function OrgSetting() {
  const { me } = useSession();
  const [orgs, setOrgs] = useState<(Organization & { unsharedRequests?: boolean })[]>([]);
  const [error, setError] = useState<unknown>(null);
  const load = async () => {
    const list = await get<Organization[]>('/organizations');
    const withSetting = await Promise.all(list.map(async (o) => ({ ...o, ...(await get<{ unsharedRequests: boolean }>(`/organizations/${o.id}/access-request-settings`)) })));
    setOrgs(withSetting);
  };
  useEffect(() => {
    load().catch(setError);
  }, [me.person?.id]);
  return (
    <section aria-label="Request settings">
      <h2>Settings</h2>
      <ErrorBox error={error} />
      {orgs.map((o) => (
        <Checkbox
          key={o.id}
          id={`unshared-${o.id}`}
          label={`${o.name}: technicians may request computers not shared with them`}
          checked={o.unsharedRequests === true}
          onChange={(v) => void put(`/organizations/${o.id}/access-request-settings`, { unsharedRequests: v }).then(load, setError)}
        />
      ))}
    </section>
  );
}

export function RequestsPage({ id }: { id?: string }) {
  const { me } = useSession();
  const p = me.person;
  const list = usePoll(() => (id ? get<AccessRequest>(`/access-requests/${id}`).then((r) => [r]) : get<AccessRequest[]>('/access-requests')), [id]);
  const all = list.data ?? [];
  if (id) {
    const r = all[0];
    return (
      <Page title="Access request">
        {list.error ? <p class="error" role="alert">{errorText(list.error)}</p> : null}
        {r ? <RequestCard r={r} onChange={list.refresh} /> : !list.error && <p aria-busy="true">Loading…</p>}
        <p>
          <Link href="/requests">All requests</Link>
        </p>
      </Page>
    );
  }
  const toDecide = all.filter((r) => r.mayDecide);
  const mine = all.filter((r) => r.mine);
  const others = all.filter((r) => !r.mine && !r.mayDecide);
  return (
    <Page title="Requests">
      <ErrorBox error={list.error} />
      {can(p, 'connect') && (
        <section aria-label="Request access">
          <h2>Request access</h2>
          <RequestForm onCreated={list.refresh} />
        </section>
      )}
      <section aria-label="Waiting for you">
        <h2>Waiting for you {toDecide.length > 0 && <span class="badge warn">{toDecide.length}</span>}</h2>
        {toDecide.length === 0 ? <p class="muted">Nothing to approve.</p> : toDecide.map((r) => <RequestCard key={r.id} r={r} onChange={list.refresh} />)}
      </section>
      {mine.length > 0 && (
        <section aria-label="My requests">
          <h2>My requests</h2>
          {mine.map((r) => (
            <RequestCard key={r.id} r={r} onChange={list.refresh} />
          ))}
        </section>
      )}
      {others.length > 0 && (
        <section aria-label="Other requests">
          <h2>Other requests</h2>
          {others.map((r) => (
            <RequestCard key={r.id} r={r} onChange={list.refresh} />
          ))}
        </section>
      )}
      {can(p, 'admin') && <OrgSetting />}
    </Page>
  );
}

/**
 * The navigation entry: shown to admins always, to others once they have a
 * computer to request or a request to see; its badge is the live count of
 * requests waiting for the signed-in approver (polled: no reload needed).
 */
export function useRequestsNav(person: { id: string; role: string } | null): { show: boolean; label: ComponentChildren; waiting: number } {
  const [n, setN] = useState(0);
  const [relevant, setRelevant] = useState(false);
  useEffect(() => {
    if (!person) return;
    let live = true;
    const run = async () => {
      const rs = await get<AccessRequest[]>('/access-requests');
      const cs = person.role === 'technician' && rs.length === 0 ? await get<unknown[]>('/access-requests/computers') : [];
      if (!live) return;
      setN(rs.filter((r) => r.mayDecide).length);
      setRelevant(rs.length > 0 || cs.length > 0);
    };
    void run().catch(() => undefined);
    const t = setInterval(() => void run().catch(() => undefined), 5000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [person?.id]);
  // Admins decide and configure; auditors and technicians see the entry once there is something for them.
  const admin = person?.role === 'global_admin' || person?.role === 'org_admin';
  return {
    show: person !== null && (admin || relevant || n > 0),
    waiting: n,
    label: (
      <>
        Requests
        {n > 0 && (
          <span class="badge warn" data-testid="requests-waiting" aria-label={`${n} waiting for you`}>
            {n}
          </span>
        )}
      </>
    ),
  };
}

// ---- the computer editor's approval settings (gateway/api/computer-policy.ts) ----

export const APPROVAL_FIELDS: FormSpec = {
  'policy.requireApproval': { label: 'Require an approved access request', id: 'p-requireApproval' },
  'policy.approvalsRequired': { label: 'Approvals needed', id: 'p-approvalsRequired' },
  'policy.approverRoles': { label: 'Approving roles', id: 'p-approver-org_admin' },
  'policy.approverLogins': { label: 'Named approvers', id: 'p-approverLogins' },
  'policy.breakGlass': { label: 'Allow break-glass', id: 'p-breakGlass' },
};

const APPROVER_ROLES: [string, string][] = [
  ['org_admin', 'Organization admins'],
  ['technician', 'Technicians'],
  ['auditor', 'Auditors'],
];

/** The "Access approval" part of the computer editor; stored in the computer's policy. */
export function ApprovalPolicyFields(props: { policy: Record<string, unknown>; onPolicy: (p: Record<string, unknown>) => void; fe: (path: string) => string | undefined }) {
  const { policy, onPolicy, fe } = props;
  const roles = Array.isArray(policy.approverRoles) ? (policy.approverRoles as string[]) : ['org_admin'];
  const [loginsText, setLoginsText] = useState(Array.isArray(policy.approverLogins) ? (policy.approverLogins as string[]).join(', ') : '');
  const on = policy.requireApproval === true;
  return (
    <fieldset>
      <legend>Access approval</legend>
      <Checkbox
        id="p-requireApproval"
        label="Require an approved access request before each session (never approved by the requester)"
        checked={on}
        onChange={(v) => onPolicy({ ...policy, requireApproval: v })}
      />
      {on && (
        <>
          <div class="grid2">
            <Field id="p-approvalsRequired" label="Approvals needed" error={fe('policy.approvalsRequired')}>
              <TextInput
                id="p-approvalsRequired"
                type="number"
                min={1}
                max={10}
                value={String(policy.approvalsRequired ?? 1)}
                onValue={(v) => onPolicy({ ...policy, approvalsRequired: /^\d+$/.test(v.trim()) ? Number(v.trim()) : v })}
                error={fe('policy.approvalsRequired')}
              />
            </Field>
            <Field id="p-approverLogins" label="Named approvers (logins, comma-separated)" error={fe('policy.approverLogins')} hint="People of the computer's organization.">
              <TextInput
                id="p-approverLogins"
                value={loginsText}
                onValue={(v) => {
                  setLoginsText(v);
                  onPolicy({ ...policy, approverLogins: v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean) });
                }}
                error={fe('policy.approverLogins')}
              />
            </Field>
          </div>
          <p class="muted">Approving roles (of the computer's organization):</p>
          {APPROVER_ROLES.map(([role, label]) => (
            <Checkbox
              key={role}
              id={`p-approver-${role}`}
              label={label}
              checked={roles.includes(role)}
              onChange={(v) => onPolicy({ ...policy, approverRoles: v ? [...roles.filter((r) => r !== role), role] : roles.filter((r) => r !== role) })}
            />
          ))}
        </>
      )}
      <Checkbox
        id="p-breakGlass"
        label="Allow break-glass: open at once without approval, with a reason and the second factor; every approver is alerted"
        checked={policy.breakGlass === true}
        onChange={(v) => onPolicy({ ...policy, breakGlass: v })}
      />
    </fieldset>
  );
}
