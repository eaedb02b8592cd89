import { useState } from 'preact/hooks';

/**
 * Recovery codes, shown once, behind an "I saved them" step: after TOTP
 * enrollment, a passkey-only person's first passkey, or making new ones under
 * My account (docs/auth.md, MFA enrollment and recovery codes).
 */
export function RecoveryCodesShown({ codes, onDone, what = 'your authenticator' }: { codes: string[]; onDone: () => void; what?: string }) {
  const [saved, setSaved] = useState(false);
  return (
    <div class="enroll">
      <h2>Recovery codes</h2>
      <p>
        Each code signs you in once if you lose {what}. They are shown <strong>only now</strong>: store them somewhere safe.
      </p>
      <ol class="codes" data-testid="recovery-codes">
        {codes.map((c) => (
          <li key={c}>
            <code>{c}</code>
          </li>
        ))}
      </ol>
      <div class="check">
        <input id="saved" type="checkbox" checked={saved} onChange={(e) => setSaved((e.currentTarget as HTMLInputElement).checked)} />
        <label for="saved">I saved my recovery codes</label>
      </div>
      <button type="button" class="primary" disabled={!saved} onClick={onDone}>
        Continue
      </button>
    </div>
  );
}
