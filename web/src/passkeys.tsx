import { startAuthentication, startRegistration, WebAuthnError, type PublicKeyCredentialCreationOptionsJSON, type PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/browser';
import { useState } from 'preact/hooks';
import { ApiError, post } from './api.js';
import { RecoveryCodesShown } from './recovery-codes.js';
import { ErrorBox, Field, TextInput } from './ui.js';

/**
 * Passkeys in the browser (docs/auth.md, Passkeys) through
 * @simplewebauthn/browser: the gateway makes the options and checks the
 * answer; the browser and the authenticator (this device, a security key, or
 * a phone reached through the browser's own QR code) do the rest.
 */

/** The browser's refusal in words (cancelled, no passkey here, not supported). */
export function passkeyError(err: unknown): unknown {
  if (err instanceof WebAuthnError) {
    if (err.code === 'ERROR_CEREMONY_ABORTED') return new Error('The passkey request was cancelled.');
    return new Error(`The browser refused the passkey request: ${err.message}`);
  }
  if (err instanceof Error && err.name === 'NotAllowedError') return new Error('The passkey request was cancelled or timed out.');
  if (err instanceof ApiError && err.code === 'JIT_ERR_AUTH_PASSKEY_INVALID') return new Error('This passkey was not accepted (revoked, or not for this site).');
  return err;
}

export function passkeysSupported(): boolean {
  return typeof window !== 'undefined' && typeof window.PublicKeyCredential === 'function';
}

/** Sign in with a passkey: passwordless, or the second factor of a half-done sign-in. */
export async function signInWithPasskey(): Promise<{ next: string }> {
  const optionsJSON = await post<PublicKeyCredentialRequestOptionsJSON>('/auth/passkey/options');
  const response = await startAuthentication({ optionsJSON });
  return post<{ next: string }>('/auth/passkey', { response });
}

/** Create a passkey named `name` (My account, or the enrollment step of a sign-in); a passkey-only person's first one comes with recovery codes. */
export async function createPasskey(name: string): Promise<{ next: string; recoveryCodes: string[] | null }> {
  const optionsJSON = await post<PublicKeyCredentialCreationOptionsJSON>('/me/passkeys/options');
  const response = await startRegistration({ optionsJSON });
  return post<{ next: string; recoveryCodes: string[] | null }>('/me/passkeys', { name, response });
}

/** Step-up with a passkey before connecting. */
export async function stepUpWithPasskey(): Promise<void> {
  const optionsJSON = await post<PublicKeyCredentialRequestOptionsJSON>('/auth/step-up/options');
  const response = await startAuthentication({ optionsJSON });
  await post('/auth/step-up', { response });
}

/** A name for a new passkey: the platform, as a suggestion the person may change. */
export function defaultPasskeyName(): string {
  const ua = navigator.userAgent;
  const os = /Windows/.test(ua) ? 'Windows' : /Mac OS/.test(ua) ? 'Mac' : /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iPhone' : /Linux/.test(ua) ? 'Linux' : 'This device';
  return `${os} passkey`;
}

/**
 * The "name it, then create it" form, for My account and the sign-in's
 * enrollment step; the recovery codes of a first passkey are shown before `onDone`.
 */
export function PasskeyEnrollForm({ onDone, submitLabel = 'Create passkey' }: { onDone: (next: string) => void; submitLabel?: string }) {
  const [name, setName] = useState(defaultPasskeyName);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [codes, setCodes] = useState<{ list: string[]; next: string } | null>(null);
  if (codes) return <RecoveryCodesShown codes={codes.list} what="your passkey" onDone={() => onDone(codes.next)} />;
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await createPasskey(name.trim());
      if (r.recoveryCodes) setCodes({ list: r.recoveryCodes, next: r.next });
      else onDone(r.next);
    } catch (err) {
      setError(passkeyError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={(e) => void submit(e)} aria-label="New passkey">
      <Field id="passkey-name" label="Passkey name" hint="To tell your passkeys apart, e.g. the device or security key it lives on.">
        <TextInput id="passkey-name" value={name} onValue={setName} required />
      </Field>
      <ErrorBox error={error} />
      <button type="submit" class="primary" disabled={busy || !name.trim()}>
        {submitLabel}
      </button>
    </form>
  );
}

/**
 * Step-up before connecting: the computer wants a recent confirmation. A
 * passkey when the person has one, else (where allowed) an authentication code.
 */
export function StepUpPrompt({ message, onDone }: { message: string; onDone: () => void }) {
  const [code, setCode] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const run = async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
      onDone();
    } catch (err) {
      setError(passkeyError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="step-up" role="alertdialog" aria-labelledby="step-up-title" data-testid="step-up">
      <h2 id="step-up-title">Confirm it is you</h2>
      <p>{message}</p>
      <button type="button" class="primary" disabled={busy} onClick={() => void run(stepUpWithPasskey)}>
        Confirm with a passkey
      </button>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void run(() => post('/auth/step-up', { code: code.replace(/\s/g, '') }));
        }}
      >
        <Field id="step-up-code" label="Or an authentication code">
          <TextInput id="step-up-code" value={code} onValue={setCode} autoComplete="one-time-code" />
        </Field>
        <button type="submit" disabled={busy || !code.trim()}>
          Confirm with the code
        </button>
      </form>
      <ErrorBox error={error} />
    </div>
  );
}
