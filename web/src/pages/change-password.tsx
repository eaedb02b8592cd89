import { useState } from 'preact/hooks';
import { ApiError, post } from '../api.js';
import { useSession } from '../session.js';
import { ErrorBox, Field, TextInput } from '../ui.js';

/**
 * Shown instead of every page while an admin-set password is unchanged: the
 * gateway refuses every other call then (JIT_ERR_AUTH_PASSWORD_CHANGE_REQUIRED),
 * so this is the only way on.
 */
export function ChangePasswordPage({ onSignOut }: { onSignOut: () => void }) {
  const { me, refresh } = useSession();
  const [f, setF] = useState({ current: '', next: '', again: '' });
  const [fields, setFields] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setFields({});
    setError(null);
    if (f.next !== f.again) return setFields({ again: 'the new passwords differ' });
    setBusy(true);
    try {
      await post('/me/password', { current: f.current, next: f.next });
      await refresh();
    } catch (err) {
      if (err instanceof ApiError && err.code === 'JIT_ERR_AUTH_WEAK_PASSWORD') setFields({ next: err.message });
      else if (err instanceof ApiError && err.code === 'JIT_ERR_AUTH_INVALID_CREDENTIALS') setFields({ current: 'this is not your current password' });
      else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="center">
      <div class="card" data-testid="must-change-password">
        <h1>Choose a new password</h1>
        <p>
          An administrator set the password of <strong>{me.person?.login}</strong>. Choose your own before you go on.
        </p>
        <form onSubmit={submit}>
          <Field id="mc-current" label="Current password" error={fields.current}>
            <TextInput id="mc-current" type="password" value={f.current} onValue={(v) => setF({ ...f, current: v })} autoComplete="current-password" required autoFocus />
          </Field>
          <Field id="mc-next" label="New password" error={fields.next}>
            <TextInput id="mc-next" type="password" value={f.next} onValue={(v) => setF({ ...f, next: v })} autoComplete="new-password" required />
          </Field>
          <Field id="mc-again" label="New password again" error={fields.again}>
            <TextInput id="mc-again" type="password" value={f.again} onValue={(v) => setF({ ...f, again: v })} autoComplete="new-password" required />
          </Field>
          <ErrorBox error={error} />
          <div class="row">
            <button type="submit" class="primary" disabled={busy}>
              Change password
            </button>
            <button type="button" class="link" onClick={onSignOut}>
              Sign out
            </button>
          </div>
        </form>
      </div>
    </main>
  );
}
