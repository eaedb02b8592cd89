import { useState } from 'preact/hooks';
import { API, get, put } from '../api.js';
import { can, useSession } from '../session.js';
import { ErrorBox, useLoad } from '../ui.js';
import { fmtWhen } from '../time.js';

/**
 * Evidence controls (issue 19, docs/evidence.md): a session's signed
 * evidence bundle and its legal hold beside the replay, and an
 * organization's retention period on the Organizations page. The server
 * authorizes each (gateway/api/evidence.ts); these only hide what it refuses.
 */

type Hold = { sessionId: string; legalHold: boolean; by: string | null; at: string | null };

export function SessionEvidence({ sessionId }: { sessionId: string }) {
  const { me } = useSession();
  // Admins and auditors may hold a session; a technician sees the state only.
  const mayHold = can(me.person, 'audit');
  const { data: hold, error, reload } = useLoad(() => get<Hold>(`/sessions/${encodeURIComponent(sessionId)}/legal-hold`), [sessionId]);
  const [err, setErr] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const toggle = async () => {
    if (!hold) return;
    if (hold.legalHold && !confirm('Lift the legal hold? Retention may then delete these recordings.')) return;
    setBusy(true);
    try {
      await put(`/sessions/${encodeURIComponent(sessionId)}/legal-hold`, { hold: !hold.legalHold });
      setErr(null);
      reload();
    } catch (x) {
      setErr(x);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="row" data-testid="session-evidence">
      <a href={`${API}/sessions/${encodeURIComponent(sessionId)}/evidence`} download>
        Export evidence bundle
      </a>
      {hold && (
        <span data-testid="legal-hold" data-hold={String(hold.legalHold)}>
          {hold.legalHold ? (
            <span class="badge warn" title={hold.at ? `since ${fmtWhen(hold.at)}` : undefined}>
              legal hold{hold.by ? ` (set by ${hold.by})` : ''}
            </span>
          ) : (
            <span class="muted">no legal hold</span>
          )}
        </span>
      )}
      {hold && mayHold && (
        <button type="button" disabled={busy} onClick={() => void toggle()}>
          {hold.legalHold ? 'Lift legal hold' : 'Put under legal hold'}
        </button>
      )}
      <ErrorBox error={error ?? err} />
    </div>
  );
}

type Retention = { organizationId: string; recordingRetentionDays: number | null; canChange: boolean };

export function RetentionCell({ organizationId }: { organizationId: string }) {
  const { data, error, reload } = useLoad(() => get<Retention>(`/organizations/${encodeURIComponent(organizationId)}/retention`), [organizationId]);
  const [days, setDays] = useState<string | null>(null);
  const [err, setErr] = useState<unknown>(null);
  if (!data) return <ErrorBox error={error} />;
  const shown = data.recordingRetentionDays === null ? 'kept forever' : `${data.recordingRetentionDays} days`;
  if (!data.canChange) return <span>{shown}</span>;
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      const v = (days ?? '').trim();
      await put(`/organizations/${encodeURIComponent(organizationId)}/retention`, { recordingRetentionDays: v === '' ? null : Number(v) });
      setDays(null);
      setErr(null);
      reload();
    } catch (x) {
      setErr(x);
    }
  };
  const id = `retention-${organizationId}`;
  return (
    <form class="row" onSubmit={(e) => void save(e)} data-testid="retention">
      <label for={id} class="sr-only">
        Days recordings are kept (empty: forever)
      </label>
      <input id={id} type="number" min={1} max={36500} placeholder="forever" value={days ?? (data.recordingRetentionDays === null ? '' : String(data.recordingRetentionDays))} onInput={(e) => setDays((e.currentTarget as HTMLInputElement).value)} style={{ width: '7em' }} />
      <button type="submit" disabled={days === null}>
        Save retention
      </button>
      <ErrorBox error={err} />
    </form>
  );
}
