import { Field, TextInput } from '../ui.js';

/** Field map entry for the form's error summary (docs/auth.md, step-up). */
export const STEP_UP_FIELDS = { 'policy.stepUpMinutes': { label: 'Confirm with a passkey or code at connect (minutes)', id: 'p-stepUpMinutes' } };

/**
 * `policy.stepUpMinutes` (gateway/api/computer-policy.ts, gateway/auth/step-up.ts): connecting needs
 * a passkey or TOTP confirmation at most this many minutes old. Empty removes it (the sign-in
 * suffices). What is typed is sent as typed when it is not a whole number, so the API's words
 * ("a whole number of minutes", "at least 1 minute") show beside the field.
 */
export function StepUpField(props: { policy: Record<string, unknown>; onPolicy: (p: Record<string, unknown>) => void; fe: (path: string) => string | undefined }) {
  const { policy, onPolicy, fe } = props;
  return (
    <Field
      id="p-stepUpMinutes"
      label="Confirm with a passkey or code at connect (minutes)"
      error={fe('policy.stepUpMinutes')}
      hint="A confirmation at most this old is asked for before each session (1–1440). Empty: the sign-in suffices."
    >
      <TextInput
        id="p-stepUpMinutes"
        inputMode="numeric"
        value={policy.stepUpMinutes === undefined ? '' : String(policy.stepUpMinutes)}
        onValue={(v) => {
          const { stepUpMinutes: _old, ...rest } = policy;
          const t = v.trim();
          onPolicy(t === '' ? rest : { ...rest, stepUpMinutes: /^\d+$/.test(t) ? Number(t) : t });
        }}
        error={fe('policy.stepUpMinutes')}
      />
    </Field>
  );
}
