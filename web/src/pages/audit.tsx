import { useState } from 'preact/hooks';
import { API, get, qs, type AuditEvent } from '../api.js';
import { ErrorBox, Link, Page, useLoad } from '../ui.js';
import { describeAuditEvent, replayable } from '../audit-words.js';
import { fmtWhen } from '../time.js';

const OUTCOME: Record<string, string> = { success: 'ok', failure: 'warn', denied: 'bad' };

const TYPES = [
  'session.requested', 'session.denied', 'session.started', 'session.ended', 'session.failed', 'session.terminated',
  'account.created', 'account.reused', 'account.group_added', 'account.group_removed', 'account.disabled', 'account.enabled',
  'account.password_rotated', 'account.password_revealed', 'account.deleted', 'account.rolled_back',
  'lease.expired', 'reconcile.removed', 'reconcile.completed',
  'auth.signed_in', 'auth.sign_in_failed', 'auth.signed_out', 'auth.locked', 'auth.totp_enrolled', 'auth.recovery_code_used',
  'auth.password_changed', 'auth.session_revoked', 'auth.bootstrap', 'auth.ssh_key_added', 'auth.ssh_key_removed',
  'admin.changed', 'access.denied', 'recording.started', 'recording.completed', 'recording.viewed', 'recording.verified',
];

const EMPTY = { person: '', computer: '', account: '', type: '', from: '', to: '' };

function toQuery(f: typeof EMPTY) {
  return { ...f, from: f.from && new Date(f.from).toISOString(), to: f.to && new Date(f.to).toISOString() };
}

function dataText(d: Record<string, unknown>): string {
  return Object.entries(d ?? {})
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join(' ');
}

/**
 * The hash-chained audit trail in words ("alice opened an SSH session on web01
 * as alice_k3x9q2"), the outcome in its own column, session events linked to
 * the session's replay at that moment; filters, pagination, CSV / JSON lines
 * export of the same filter.
 */
export function AuditPage() {
  const [f, setF] = useState(EMPTY);
  const [applied, setApplied] = useState(EMPTY);
  const [cursors, setCursors] = useState<string[]>([]);
  const before = cursors[cursors.length - 1];
  const { data, error, loading } = useLoad(() => get<{ events: AuditEvent[]; next?: string | number }>(`/audit${qs({ ...toQuery(applied), limit: 100, before })}`), [applied, before]);
  const set = (k: keyof typeof EMPTY) => (e: Event) => setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).value });
  const exportQs = (format: string) => `${API}/audit/export${qs({ ...toQuery(applied), format })}`;
  return (
    <Page
      title="Audit"
      actions={
        <>
          <a class="button" href={exportQs('csv')} download>
            Export CSV
          </a>
          <a class="button" href={exportQs('jsonl')} download>
            Export JSON lines
          </a>
        </>
      }
    >
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setCursors([]);
          setApplied(f);
        }}
      >
        <div class="filter">
          <label for="f-person">Person</label>
          <input id="f-person" value={f.person} onInput={set('person')} />
        </div>
        <div class="filter">
          <label for="f-computer">Computer</label>
          <input id="f-computer" value={f.computer} onInput={set('computer')} />
        </div>
        <div class="filter">
          <label for="f-account">Account</label>
          <input id="f-account" value={f.account} onInput={set('account')} />
        </div>
        <div class="filter">
          <label for="f-type">Type</label>
          <select id="f-type" value={f.type} onChange={set('type')}>
            <option value="">any</option>
            {TYPES.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </div>
        <div class="filter">
          <label for="f-from">From</label>
          <input id="f-from" type="datetime-local" value={f.from} onInput={set('from')} />
        </div>
        <div class="filter">
          <label for="f-to">To</label>
          <input id="f-to" type="datetime-local" value={f.to} onInput={set('to')} />
        </div>
        <button type="submit">Filter</button>
      </form>
      <ErrorBox error={error} />
      <table class="list audit" aria-busy={loading}>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">When</th>
            <th scope="col">What happened</th>
            <th scope="col">Outcome</th>
            <th scope="col">Details</th>
            <th scope="col">
              <span class="sr-only">Replay</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {(data?.events ?? []).map((e) => (
            <tr key={e.seq} data-type={e.type}>
              <td data-label="#">{e.seq}</td>
              <td data-label="When">
                <time dateTime={e.at}>{fmtWhen(e.at)}</time>
              </td>
              <td data-label="What happened" data-testid="audit-words">
                {describeAuditEvent(e)} <code class="muted">{e.type}</code>
              </td>
              <td data-label="Outcome">
                <span class={`badge ${OUTCOME[e.outcome] ?? 'warn'}`} data-outcome={e.outcome}>
                  {e.outcome}
                </span>
              </td>
              <td data-label="Details" class="details">
                {dataText(e.data)}
              </td>
              <td class="row-actions">
                {e.sessionId && replayable(e.type) && (
                  <Link href={`/recordings${qs({ session: e.sessionId, at: e.at })}`}>
                    Replay<span class="sr-only"> the session at {fmtWhen(e.at)}</span>
                  </Link>
                )}
              </td>
            </tr>
          ))}
          {data?.events.length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                No events match these filters. Clear a filter or widen the dates to see more.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      <div class="row">
        <button type="button" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
          Newer
        </button>
        <button type="button" disabled={data?.next === undefined || data?.next === null} onClick={() => data?.next !== undefined && setCursors([...cursors, String(data.next)])}>
          Older
        </button>
      </div>
    </Page>
  );
}
