import { useEffect, useState } from 'preact/hooks';
import { ApiError, post } from '../api.js';
import { navigate } from '../router.js';
import { useSession } from '../session.js';
import { ErrorBox, Field, ROLE_LABEL, TextInput, fmtTime } from '../ui.js';
import { TotpEnrollment } from './enroll.js';

interface Preview {
  login: string;
  displayName: string;
  role: string;
  organizationName: string | null;
  expiresAt: string;
}

/** Why a link does not work, in words (the codes are docs/errors.md's). */
function linkProblem(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.code === 'JIT_ERR_AUTH_INVITATION_USED') return 'This invitation link was already used. Sign in with the password you chose.';
    if (err.code === 'JIT_ERR_AUTH_INVITATION_EXPIRED') return `This invitation link expired on ${fmtTime(String(err.details.expiredAt ?? ''))}. Ask your administrator for a new one.`;
    if (err.code === 'JIT_ERR_AUTH_INVITATION_REVOKED') return 'This invitation was withdrawn by an administrator. Ask them for a new one.';
    if (err.code === 'JIT_ERR_AUTH_INVITATION_UNKNOWN') return 'This invitation link is not valid. Check that it was copied whole, or ask your administrator for a new one.';
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * `/invite#<token>` (docs/auth.md "Invitations"): the invitee sees who they
 * are invited as, chooses a password, then enrolls TOTP like any first
 * sign-in. The token is read from the fragment and leaves the address bar
 * once used.
 */
export function InvitePage() {
  const { refresh } = useSession();
  const [token] = useState(() => location.hash.slice(1));
  const [preview, setPreview] = useState<Preview | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [form, setForm] = useState({ password: '', confirm: '' });
  const [fields, setFields] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [enrolling, setEnrolling] = useState(false);

  useEffect(() => {
    document.title = 'Invitation · jitgate';
    if (!token) return setProblem(linkProblem(new ApiError(404, 'JIT_ERR_AUTH_INVITATION_UNKNOWN', '', {})));
    post<Preview>('/auth/invitation', { token }).then(setPreview, (e: unknown) => setProblem(linkProblem(e)));
  }, [token]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setFields({});
    if (form.password !== form.confirm) return setFields({ confirm: 'the passwords differ' });
    setBusy(true);
    try {
      await post('/auth/invitation/accept', { token, password: form.password });
      history.replaceState(null, '', '/invite');
      await refresh();
      setEnrolling(true);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'JIT_ERR_AUTH_WEAK_PASSWORD') setFields({ password: err.message });
      else if (err instanceof ApiError && err.code.startsWith('JIT_ERR_AUTH_INVITATION_')) setProblem(linkProblem(err));
      else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="center">
      <div class="card">
        <h1>Join jitgate</h1>
        {enrolling ? (
          <TotpEnrollment onDone={() => void refresh().then(() => navigate('/', true))} />
        ) : problem ? (
          <p class="error" role="alert" data-testid="invitation-problem">
            {problem}
          </p>
        ) : !preview ? (
          <p aria-busy="true">Checking the invitation link…</p>
        ) : (
          <form onSubmit={submit}>
            <p data-testid="invitation">
              You are invited as <strong>{preview.login}</strong> ({ROLE_LABEL[preview.role] ?? preview.role}
              {preview.organizationName ? ` of ${preview.organizationName}` : ''}). The link works once, until {fmtTime(preview.expiresAt)}. Choose your
              password; you will set up two-factor sign-in next.
            </p>
            <Field id="invite-password" label="Password" error={fields.password} hint="At least 10 characters; a passphrase is best.">
              <TextInput id="invite-password" type="password" value={form.password} onValue={(v) => setForm({ ...form, password: v })} autoComplete="new-password" required autoFocus />
            </Field>
            <Field id="invite-confirm" label="Password again" error={fields.confirm}>
              <TextInput id="invite-confirm" type="password" value={form.confirm} onValue={(v) => setForm({ ...form, confirm: v })} autoComplete="new-password" required />
            </Field>
            <ErrorBox error={error} />
            <button type="submit" class="primary" disabled={busy}>
              Create my account
            </button>
          </form>
        )}
      </div>
    </main>
  );
}
