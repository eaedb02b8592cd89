import { useEffect, useState } from 'preact/hooks';
import { ApiError, post } from '../api.js';
import { RecoveryCodesShown } from '../recovery-codes.js';
import { ErrorBox, Field, TextInput } from '../ui.js';

interface Enrollment {
  otpauthUri: string;
  qrDataUrl: string;
  secret: string;
}

/**
 * TOTP enrollment: QR code and the secret as text for manual entry, a code to
 * confirm, then the ten recovery codes shown once behind an "I saved them" step.
 */
export function TotpEnrollment({ onDone }: { onDone: () => void }) {
  const [enr, setEnr] = useState<Enrollment | null>(null);
  const [code, setCode] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [codes, setCodes] = useState<string[] | null>(null);

  useEffect(() => {
    post<Enrollment>('/auth/totp/enrollment').then(setEnr, setError);
  }, []);

  if (codes) return <RecoveryCodesShown codes={codes} onDone={onDone} />;

  const confirm = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await post<{ recoveryCodes: string[] }>('/auth/totp/enrollment/confirm', { code: code.trim() });
      setCodes(r.recoveryCodes);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 400 ? new Error('That code is not right. Check the time on your phone and try the next code.') : err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="enroll" onSubmit={confirm}>
      <h2>Set up two-factor sign-in</h2>
      <p>Scan the QR code with an authenticator app (or type the secret), then enter the 6-digit code it shows.</p>
      <div class="qr-box">
        {enr ? <img src={enr.qrDataUrl} width={200} height={200} alt="QR code for your authenticator app" /> : <div class="qr-placeholder" aria-busy="true" />}
      </div>
      <p>
        Secret for manual entry:{' '}
        <code class="secret" data-testid="totp-secret">
          {enr ? enr.secret.replace(/(.{4})/g, '$1 ').trim() : '…'}
        </code>
      </p>
      <Field id="enroll-code" label="Code from your app">
        <TextInput id="enroll-code" value={code} onValue={setCode} inputMode="numeric" autoComplete="one-time-code" pattern="[0-9 ]{6,7}" required />
      </Field>
      <ErrorBox error={error} />
      <button type="submit" class="primary" disabled={busy || !enr}>
        Confirm
      </button>
    </form>
  );
}
