import { useState } from 'preact/hooks';
import { ApiError, del, get, listOf, patch, post } from '../api.js';
import { PasskeyEnrollForm, passkeyError, passkeysSupported, StepUpPrompt } from '../passkeys.js';
import { RecoveryCodesShown } from '../recovery-codes.js';
import { useSession } from '../session.js';
import { ErrorBox, Field, FormErrors, Page, ROLE_LABEL, TextInput, fmtTime, useForm, useLoad, type FormSpec } from '../ui.js';
import { TotpEnrollment } from './enroll.js';

interface SshKey {
  id: string;
  label: string;
  fingerprint: string;
  algorithm: string;
  createdAt: string;
}

const PASSWORD_FIELDS: FormSpec = {
  current: { label: 'Current password', id: 'pw-current' },
  next: { label: 'New password', id: 'pw-next' },
  again: { label: 'New password again', id: 'pw-again' },
};

const KEY_FIELDS: FormSpec = {
  label: { label: 'Label', id: 'k-label' },
  publicKey: { label: 'Public key', id: 'k-key' },
};

function Password() {
  const [f, setF] = useState({ current: '', next: '', again: '' });
  const form = useForm(PASSWORD_FIELDS);
  const fields = form.fields;
  const [done, setDone] = useState(false);
  const submit = form.submit(
    async () => {
      await post('/me/password', { current: f.current, next: f.next });
      setF({ current: '', next: '', again: '' });
      setDone(true);
    },
    (): Record<string, string> => {
      setDone(false);
      return f.next !== f.again ? { again: 'the new passwords differ' } : {};
    },
  );
  return (
    <form class="editor" onSubmit={(e) => void submit(e)} ref={form.ref} noValidate aria-labelledby="pw-title">
      <h2 id="pw-title">Password</h2>
      <FormErrors form={form} />
      <Field id="pw-current" label="Current password" error={fields.current}>
        <TextInput id="pw-current" type="password" value={f.current} onValue={(v) => setF({ ...f, current: v })} autoComplete="current-password" required />
      </Field>
      <Field id="pw-next" label="New password" error={fields.next}>
        <TextInput id="pw-next" type="password" value={f.next} onValue={(v) => setF({ ...f, next: v })} autoComplete="new-password" required />
      </Field>
      <Field id="pw-again" label="New password again" error={fields.again}>
        <TextInput id="pw-again" type="password" value={f.again} onValue={(v) => setF({ ...f, again: v })} autoComplete="new-password" required />
      </Field>
      {done && (
        <p class="notice" role="status">
          Password changed.
        </p>
      )}
      <button type="submit" class="primary">
        Change password
      </button>
    </form>
  );
}

function SshKeys() {
  const { data, error, reload } = useLoad(async () => listOf<SshKey>(await get('/me/ssh-keys'), 'keys'));
  const [label, setLabel] = useState('');
  const [key, setKey] = useState('');
  const form = useForm(KEY_FIELDS);
  const fields = form.fields;
  const [err, setErr] = useState<unknown>(null);
  const add = form.submit(async () => {
    await post('/me/ssh-keys', { publicKey: key.trim(), label: label.trim() });
    setKey('');
    setLabel('');
    reload();
  });
  const remove = async (k: SshKey) => {
    try {
      await del(`/me/ssh-keys/${k.id}`);
      reload();
    } catch (x) {
      setErr(x);
    }
  };
  return (
    <form class="editor" onSubmit={(e) => void add(e)} ref={form.ref} noValidate aria-labelledby="keys-title">
      <h2 id="keys-title">SSH keys</h2>
      <FormErrors form={form} />
      <p class="muted">Keys for the SSH front door (ssh to jitgate directly, then a TOTP code).</p>
      <ErrorBox error={error ?? err} />
      <ul class="keys">
        {(data ?? []).map((k) => (
          <li key={k.id}>
            <strong>{k.label}</strong> <code>{k.fingerprint}</code> <span class="muted">{k.algorithm}, added {fmtTime(k.createdAt)}</span>{' '}
            <button type="button" class="link danger" onClick={() => void remove(k)}>
              Remove
            </button>
          </li>
        ))}
        {data?.length === 0 && <li class="muted">No keys.</li>}
      </ul>
      <Field id="k-label" label="Label" error={fields.label}>
        <TextInput id="k-label" value={label} onValue={setLabel} required />
      </Field>
      <Field id="k-key" label="Public key (ssh-ed25519 AAAA…)" error={fields.publicKey}>
        <textarea id="k-key" rows={3} value={key} onInput={(e) => setKey((e.currentTarget as HTMLTextAreaElement).value)} required spellcheck={false} />
      </Field>
      <button type="submit" disabled={form.busy}>
        Add key
      </button>
    </form>
  );
}

interface Passkey {
  id: string;
  name: string;
  deviceType: string;
  backedUp: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}

/** Passkeys: enroll several, rename, revoke (docs/auth.md, Passkeys). */
function Passkeys() {
  const { data, error, reload } = useLoad(async () => listOf<Passkey>(await get('/me/passkeys')));
  const [adding, setAdding] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const rename = async (k: Passkey) => {
    const name = prompt('New name for this passkey', k.name);
    if (!name || !name.trim() || name.trim() === k.name) return;
    try {
      await patch(`/me/passkeys/${k.id}`, { name: name.trim() });
      reload();
    } catch (x) {
      setErr(x);
    }
  };
  const revoke = async (k: Passkey) => {
    if (!confirm(`Revoke the passkey "${k.name}"? It will no longer sign you in.`)) return;
    try {
      await del(`/me/passkeys/${k.id}`);
      reload();
    } catch (x) {
      setErr(x);
    }
  };
  return (
    <section class="editor" aria-labelledby="passkeys-title">
      <h2 id="passkeys-title">Passkeys</h2>
      <p class="muted">Sign in without a password, on this device, a security key, or your phone (the browser shows a QR code to scan).</p>
      <ErrorBox error={passkeyError(error ?? err)} />
      <ul class="keys" data-testid="passkeys">
        {(data ?? []).map((k) => (
          <li key={k.id} data-passkey={k.name}>
            <strong>{k.name}</strong>{' '}
            <span class="muted">
              {k.deviceType === 'multiDevice' ? 'synced' : 'this authenticator only'}, added {fmtTime(k.createdAt)}, {k.lastUsedAt ? `last used ${fmtTime(k.lastUsedAt)}` : 'not used yet'}
            </span>{' '}
            <button type="button" class="link" onClick={() => void rename(k)}>
              Rename
            </button>{' '}
            <button type="button" class="link danger" onClick={() => void revoke(k)}>
              Revoke
            </button>
          </li>
        ))}
        {data?.length === 0 && <li class="muted">No passkeys.</li>}
      </ul>
      {!passkeysSupported() ? (
        <p class="muted">This browser does not support passkeys.</p>
      ) : adding ? (
        <PasskeyEnrollForm
          submitLabel="Create passkey"
          onDone={() => {
            setAdding(false);
            reload();
          }}
        />
      ) : (
        <button type="button" onClick={() => setAdding(true)}>
          Add a passkey
        </button>
      )}
    </section>
  );
}

/**
 * Recovery codes: how many are left, and new ones after a fresh passkey or
 * code confirmation (POST /me/recovery-codes answers
 * JIT_ERR_AUTH_CONFIRMATION_REQUIRED until then; docs/auth.md).
 */
function RecoveryCodes() {
  const { data, error, reload } = useLoad(async () => get<{ remaining: number }>('/me/recovery-codes'));
  const [confirming, setConfirming] = useState(false);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const make = async () => {
    setErr(null);
    try {
      setCodes((await post<{ recoveryCodes: string[] }>('/me/recovery-codes')).recoveryCodes);
      setConfirming(false);
    } catch (x) {
      if (x instanceof ApiError && x.code === 'JIT_ERR_AUTH_CONFIRMATION_REQUIRED') setConfirming(true);
      else setErr(x);
    }
  };
  if (codes)
    return (
      <section class="editor" aria-label="New recovery codes">
        <RecoveryCodesShown
          codes={codes}
          what="your passkey or authenticator"
          onDone={() => {
            setCodes(null);
            reload();
          }}
        />
      </section>
    );
  return (
    <section class="editor" aria-labelledby="recovery-title">
      <h2 id="recovery-title">Recovery codes</h2>
      <p data-testid="recovery-remaining">
        {data === undefined ? '…' : `${data.remaining} unused recovery ${data.remaining === 1 ? 'code' : 'codes'} left.`} Each signs you in once when your passkey or
        authenticator is lost.
      </p>
      <ErrorBox error={error ?? err} />
      {confirming ? (
        <StepUpPrompt message="Confirm it is you before making new recovery codes: the old ones stop working." onDone={() => void make()} />
      ) : (
        <button type="button" onClick={() => void make()}>
          Make new recovery codes
        </button>
      )}
    </section>
  );
}

export function AccountPage() {
  const { me } = useSession();
  const [reenroll, setReenroll] = useState(false);
  const [done, setDone] = useState(false);
  const p = me.person!;
  return (
    <Page title="My account">
      <p>
        Signed in as <strong>{p.login}</strong> ({p.displayName}), {ROLE_LABEL[p.role] ?? p.role}.
      </p>
      <div class="cols">
        <Password />
        <SshKeys />
        <Passkeys />
        <RecoveryCodes />
        <div class="editor">
          <h2>Two-factor sign-in</h2>
          {reenroll ? (
            <TotpEnrollment
              onDone={() => {
                setReenroll(false);
                setDone(true);
              }}
            />
          ) : (
            <>
              {done && (
                <p class="notice" role="status">
                  Your new authenticator is active; the old one and old recovery codes no longer work.
                </p>
              )}
              <p>Moving to a new phone? Enroll it again: the old authenticator stops working once you confirm a code from the new one.</p>
              <button type="button" onClick={() => setReenroll(true)}>
                Re-enroll authenticator
              </button>
            </>
          )}
        </div>
      </div>
    </Page>
  );
}
