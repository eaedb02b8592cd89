import { useEffect, useState } from 'preact/hooks';
import { ApiError, get, post } from '../api.js';
import { navigate } from '../router.js';
import { useSession } from '../session.js';
import { ErrorBox, Field, TextInput } from '../ui.js';
import { TotpEnrollment } from './enroll.js';
import { PasskeyEnrollForm, passkeyError, passkeysSupported, signInWithPasskey } from '../passkeys.js';

type Step = 'password' | 'totp' | 'totp-enrollment' | 'passkey' | 'passkey-enrollment';

function afterSignIn(): void {
  const next = new URLSearchParams(location.search).get('next');
  navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', true);
}

/** A provider people may sign in with (GET /auth/providers: names only). */
interface IdentityProvider {
  name: string;
  displayName: string;
  type: 'oidc' | 'ldap';
}

const SSO_ERRORS: Record<string, string> = {
  JIT_ERR_AUTH_SSO_NOT_MAPPED: 'Your identity provider does not give you access to jitgate. Ask an administrator.',
  JIT_ERR_AUTH_SSO_DISABLED: 'Your jitgate account is disabled. Ask an administrator.',
  JIT_ERR_AUTH_SSO_UNAVAILABLE: 'The identity provider cannot be reached. Try again later.',
};

function ssoError(): Error | null {
  const code = new URLSearchParams(location.search).get('error');
  if (!code) return null;
  return new Error(SSO_ERRORS[code] ?? 'Single sign-on failed. Try again.');
}

function signInError(err: unknown): unknown {
  if (err instanceof ApiError && err.code === 'JIT_ERR_AUTH_LOCAL_PASSWORD_FORBIDDEN') return new Error('Your organization signs in through its identity provider: use the button below.');
  if (err instanceof ApiError && err.code === 'JIT_ERR_AUTH_LOCKED') {
    const until = typeof err.details.until === 'string' ? new Date(err.details.until) : null;
    const when = until && !Number.isNaN(until.getTime()) ? ` until ${until.toLocaleString()}` : '';
    return new Error(`This account is locked${when} after too many failed attempts. Try again then, or ask an administrator to unlock it.`);
  }
  if (err instanceof ApiError && err.status === 429) return new Error('Too many attempts. Wait a minute and try again.');
  if (err instanceof ApiError && err.code === 'JIT_ERR_AUTH_PASSKEY_REQUIRED') return new Error('Your organization requires a passkey: use your passkey, or a recovery code to enroll a new one.');
  return passkeyError(err);
}

const SIGNING_IN = 'jitgate.signing-in';

export function SignInPage() {
  const { me, refresh } = useSession();
  const [step, setStep] = useState<Step>(me.pending ?? 'password');
  // Remembered for this tab so the code step can say who is signing in, even after a reload.
  const [login, setLogin] = useState(() => (me.pending ? (sessionStorage.getItem(SIGNING_IN) ?? '') : ''));
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [error, setError] = useState<unknown>(ssoError);
  const [busy, setBusy] = useState(false);
  const [providers, setProviders] = useState<IdentityProvider[]>([]);
  const [directory, setDirectory] = useState('');
  // Why a passkey is being created: the organization wants one, the person chose one instead of TOTP, or a recovery code stood in for a lost one.
  const [why, setWhy] = useState<'required' | 'chosen' | 'recovered'>('required');

  useEffect(() => {
    document.title = 'Sign in · jitgate';
    get<IdentityProvider[]>('/auth/providers').then(setProviders, () => setProviders([]));
  }, []);
  const next = new URLSearchParams(location.search).get('next') ?? '/';

  /** After a step: signed in, or on to what the gateway still wants (e.g. enrolling a passkey). */
  const finish = async () => {
    const m = await refresh();
    if (m.pending && !m.person) return setStep(m.pending);
    afterSignIn();
  };

  const usePasskey = async () => {
    setBusy(true);
    setError(null);
    try {
      await signInWithPasskey();
      await finish();
    } catch (err) {
      setError(signInError(err));
    } finally {
      setBusy(false);
    }
  };

  const submitPassword = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const url = directory ? `/auth/ldap/${encodeURIComponent(directory)}/sign-in` : '/auth/sign-in';
      const r = await post<{ next: Step | 'done' }>(url, { login: login.trim(), password });
      setPassword('');
      sessionStorage.setItem(SIGNING_IN, login.trim());
      const m = await refresh();
      if (r.next === 'done' || m.person) return afterSignIn();
      setStep(r.next);
    } catch (err) {
      setError(signInError(err));
    } finally {
      setBusy(false);
    }
  };

  /** Back to the password step: the half-done sign-in is ended on the gateway, not just hidden. */
  const back = async () => {
    setBusy(true);
    setError(null);
    try {
      await post('/auth/sign-out');
      await refresh();
    } catch (err) {
      setError(err);
    } finally {
      setCode('');
      setBusy(false);
      setStep('password');
    }
  };

  const submitCode = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await post('/auth/totp', { code: code.replace(/\s/g, '') });
      if (!/^\d{6}$/.test(code.replace(/\s/g, ''))) setWhy('recovered');
      setCode('');
      await finish();
    } catch (err) {
      setCode('');
      setError(signInError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="center">
      <div class="card">
        <h1>Sign in to jitgate</h1>
        {step === 'password' && (
          <form onSubmit={submitPassword}>
            {providers.some((p) => p.type === 'ldap') && (
              <Field id="directory" label="Sign in with">
                <select id="directory" value={directory} onChange={(e) => setDirectory((e.target as HTMLSelectElement).value)}>
                  <option value="">jitgate password</option>
                  {providers.filter((p) => p.type === 'ldap').map((p) => (
                    <option key={p.name} value={p.name}>{p.displayName}</option>
                  ))}
                </select>
              </Field>
            )}
            <Field id="login" label="Login">
              <TextInput id="login" name="username" value={login} onValue={setLogin} autoComplete="username" required autoFocus={!login} />
            </Field>
            <Field id="password" label="Password">
              <TextInput id="password" name="password" type="password" value={password} onValue={setPassword} autoComplete="current-password" required autoFocus={!!login} />
            </Field>
            <ErrorBox error={error} />
            <button type="submit" class="primary" disabled={busy}>
              Continue
            </button>
          </form>
        )}
        {step === 'password' && passkeysSupported() && (
          <div class="sso">
            {/* Discoverable credentials: no login typed; on a desktop the browser offers a phone's passkey through its QR code. */}
            <button type="button" class="button" disabled={busy} onClick={() => void usePasskey()}>
              Sign in with a passkey
            </button>
          </div>
        )}
        {step === 'passkey' && (
          <div>
            <p>Use your passkey to finish signing in{login ? <> as <strong>{login}</strong></> : null}.</p>
            <ErrorBox error={error} />
            <button type="button" class="primary" disabled={busy} onClick={() => void usePasskey()}>
              Use your passkey
            </button>{' '}
            <button type="button" class="link" onClick={() => setStep('totp')} disabled={busy}>
              Use a recovery code instead
            </button>{' '}
            <button type="button" class="link" onClick={() => void back()} disabled={busy}>
              Back to password
            </button>
          </div>
        )}
        {step === 'passkey-enrollment' && (
          <div>
            {why === 'recovered' ? (
              <p data-testid="recovered">
                You used a recovery code. Create a new passkey now (on this device, a security key, or your phone) to finish signing in; then revoke the lost one
                under My account.
              </p>
            ) : why === 'chosen' ? (
              <p>Create a passkey on this device, a security key, or your phone: it signs you in from now on, without a password.</p>
            ) : (
              <p>Your organization requires a passkey to sign in. Create one now on this device, a security key, or your phone.</p>
            )}
            <PasskeyEnrollForm onDone={() => void finish()} />
          </div>
        )}
        {step === 'password' && providers.some((p) => p.type === 'oidc') && (
          <div class="sso">
            {providers.filter((p) => p.type === 'oidc').map((p) => (
              // A full-page navigation: the provider's page, then back to the callback (no fetch, no token in the browser's script).
              <a key={p.name} class="button" href={`/api/v1/auth/oidc/${encodeURIComponent(p.name)}/start?next=${encodeURIComponent(next)}`}>
                Sign in with {p.displayName}
              </a>
            ))}
          </div>
        )}
        {step === 'totp' && (
          <form onSubmit={submitCode}>
            <p data-testid="signing-in-as">
              {login ? (
                <>
                  Signing in as <strong>{login}</strong>.
                </>
              ) : (
                'Finish signing in.'
              )}{' '}
              <button type="button" class="link" onClick={() => void back()} disabled={busy}>
                Back to password
              </button>
            </p>
            <Field id="totp" label="Authentication code" hint="The 6-digit code from your authenticator app, or one of your recovery codes.">
              <TextInput id="totp" value={code} onValue={setCode} autoComplete="one-time-code" required autoFocus />
            </Field>
            <ErrorBox error={error} />
            <button type="submit" class="primary" disabled={busy}>
              Sign in
            </button>{' '}
            {passkeysSupported() && (
              <button type="button" class="link" onClick={() => void usePasskey()} disabled={busy}>
                Use a passkey instead
              </button>
            )}
          </form>
        )}
        {step === 'totp-enrollment' && <TotpEnrollment onDone={() => void finish()} />}
        {step === 'totp-enrollment' && passkeysSupported() && (
          <p>
            <button
              type="button"
              class="link"
              onClick={() => {
                setWhy('chosen');
                setStep('passkey-enrollment');
              }}
            >
              Create a passkey instead
            </button>
          </p>
        )}
      </div>
    </main>
  );
}

/** First run: `/setup#<token>` printed on the gateway's terminal creates the first global admin. */
export function SetupPage() {
  const { refresh } = useSession();
  const token = location.hash.slice(1);
  const [valid, setValid] = useState<boolean | null>(null);
  const [form, setForm] = useState({ login: '', displayName: '', password: '', confirm: '' });
  const [fields, setFields] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [enrolling, setEnrolling] = useState(false);

  useEffect(() => {
    document.title = 'First-run setup · jitgate';
    if (!token) return setValid(false);
    get<{ valid: boolean }>(`/auth/bootstrap/${encodeURIComponent(token)}`).then(
      (r) => setValid(r.valid),
      () => setValid(false),
    );
  }, [token]);

  const set = (k: keyof typeof form) => (v: string) => setForm((f) => ({ ...f, [k]: v }));

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setFields({});
    if (form.password !== form.confirm) return setFields({ confirm: 'the passwords differ' });
    setBusy(true);
    try {
      await post('/auth/bootstrap', { token, login: form.login.trim(), displayName: form.displayName.trim(), password: form.password });
      // The token is spent: keep it out of the address bar and history.
      history.replaceState(null, '', '/setup');
      await refresh();
      setEnrolling(true);
    } catch (err) {
      if (err instanceof ApiError) setFields(err.fields);
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="center">
      <div class="card">
        <h1>Set up jitgate</h1>
        {enrolling ? (
          <TotpEnrollment
            onDone={() =>
              void refresh().then(() => {
                navigate('/', true);
              })
            }
          />
        ) : valid === null ? (
          <p aria-busy="true">Checking the setup link…</p>
        ) : !valid ? (
          <p class="error" role="alert">
            This setup link is not valid: it was already used or is incomplete. Sign in instead, or take the link the gateway printed on its terminal at start.
          </p>
        ) : (
          <form onSubmit={submit}>
            <p>Create the first global administrator. You will set up two-factor sign-in next.</p>
            <Field id="setup-login" label="Login" error={fields.login}>
              <TextInput id="setup-login" value={form.login} onValue={set('login')} autoComplete="username" required autoFocus />
            </Field>
            <Field id="setup-name" label="Display name" error={fields.displayName}>
              <TextInput id="setup-name" value={form.displayName} onValue={set('displayName')} autoComplete="name" required />
            </Field>
            <Field id="setup-password" label="Password" error={fields.password}>
              <TextInput id="setup-password" type="password" value={form.password} onValue={set('password')} autoComplete="new-password" required />
            </Field>
            <Field id="setup-confirm" label="Password again" error={fields.confirm}>
              <TextInput id="setup-confirm" type="password" value={form.confirm} onValue={set('confirm')} autoComplete="new-password" required />
            </Field>
            <ErrorBox error={Object.keys(fields).length ? null : error} />
            <button type="submit" class="primary" disabled={busy}>
              Create administrator
            </button>
          </form>
        )}
      </div>
    </main>
  );
}
