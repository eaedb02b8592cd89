import { PolicyNumberField } from './policy-fields.js';

/** Field map entry for the form's error summary (docs/auth.md, step-up). */
export const STEP_UP_FIELDS = { 'policy.stepUpMinutes': { label: 'Confirm with a passkey or code at connect (minutes)', id: 'p-stepUpMinutes' } };

/**
 * `policy.stepUpMinutes` (gateway/api/computer-policy.ts, gateway/auth/step-up.ts): connecting needs
 * a passkey or TOTP confirmation at most this many minutes old. Empty removes it (the sign-in suffices).
 */
export function StepUpField(props: { policy: Record<string, unknown>; onPolicy: (p: Record<string, unknown>) => void; fe: (path: string) => string | undefined }) {
  return (
    <PolicyNumberField
      {...props}
      name="stepUpMinutes"
      label={STEP_UP_FIELDS['policy.stepUpMinutes'].label}
      hint="A confirmation at most this old is asked for before each session (1–1440). Empty: the sign-in suffices."
    />
  );
}
