import { useState } from 'preact/hooks';
import { del, get, listOf } from '../api.js';
import { useSession } from '../session.js';
import { ErrorBox, Page, fmtTime, useLoad } from '../ui.js';

/** One row of `GET /auth-sessions` (gateway/auth: AuthSessionListItem + `current`). */
interface SignIn {
  id: string;
  personId: string;
  login: string;
  stage: 'password' | 'done';
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
  ip: string | null;
  userAgent: string | null;
  current: boolean;
}

/** Web sign-in sessions (admins: global, or their organization's people), each revocable. */
export function SignInsPage() {
  const { refresh } = useSession();
  const { data, error, reload } = useLoad(async () => listOf<SignIn>(await get('/auth-sessions')));
  const [err, setErr] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const revoke = async (s: SignIn) => {
    const what = s.current ? 'your own sign-in in this browser? You will be signed out' : `${s.login}'s sign-in from ${s.ip ?? 'an unknown address'}? Their next request must sign in again`;
    if (!confirm(`Revoke ${what}.`)) return;
    setErr(null);
    setNotice(null);
    try {
      await del(`/auth-sessions/${encodeURIComponent(s.id)}`);
      if (s.current) {
        await refresh();
        return;
      }
      setNotice(`${s.login}'s sign-in was revoked; they must sign in again.`);
      reload();
    } catch (x) {
      setErr(x);
    }
  };

  return (
    <Page title="Sign-ins">
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <ErrorBox error={error ?? err} />
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Person</th>
            <th scope="col">IP</th>
            <th scope="col">Browser</th>
            <th scope="col">Signed in</th>
            <th scope="col">Last seen</th>
            <th scope="col">Expires</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {(data ?? []).map((s) => (
            <tr key={s.id} data-login={s.login} data-current={s.current ? 'true' : undefined}>
              <td data-label="Person">
                {s.login} {s.current && <span class="badge ok">this browser</span>} {s.stage === 'password' && <span class="badge warn">second factor pending</span>}
              </td>
              <td data-label="IP">
                <code>{s.ip ?? '—'}</code>
              </td>
              <td data-label="Browser" class="muted" style={{ fontSize: '0.85em', maxWidth: '22rem', overflowWrap: 'anywhere' }}>
                {s.userAgent || '—'}
              </td>
              <td data-label="Signed in">{fmtTime(s.createdAt)}</td>
              <td data-label="Last seen">{fmtTime(s.lastSeenAt)}</td>
              <td data-label="Expires">{fmtTime(s.expiresAt)}</td>
              <td class="row-actions">
                <button type="button" class="danger" aria-label={`Revoke ${s.login}'s sign-in${s.current ? ' (this browser)' : ''}`} onClick={() => void revoke(s)}>
                  Revoke
                </button>
              </td>
            </tr>
          ))}
          {data?.length === 0 && (
            <tr>
              <td colSpan={7} class="muted">
                Nobody is signed in.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </Page>
  );
}
