import { Checkbox, Field, TextInput } from '../ui.js';

type PolicyProps = { policy: Record<string, unknown>; onPolicy: (p: Record<string, unknown>) => void; fe: (path: string) => string | undefined };

/**
 * A whole-number field of a computer's policy (gateway/api/computer-policy.ts). Empty removes the
 * key (the default applies); what is typed is sent as typed when it is not a whole number, so the
 * API's words ("whole minutes", "at least 1 minute") show beside the field.
 */
export function PolicyNumberField(props: PolicyProps & { name: string; label: string; hint: string }) {
  const { policy, onPolicy, fe, name } = props;
  const id = `p-${name}`;
  const path = `policy.${name}`;
  return (
    <Field id={id} label={props.label} error={fe(path)} hint={props.hint}>
      <TextInput
        id={id}
        inputMode="numeric"
        value={policy[name] === undefined ? '' : String(policy[name])}
        onValue={(v) => {
          const { [name]: _old, ...rest } = policy;
          const t = v.trim();
          onPolicy(t === '' ? rest : { ...rest, [name]: /^\d+$/.test(t) ? Number(t) : t });
        }}
        error={fe(path)}
      />
    </Field>
  );
}

/** Field map entries for the form's error summary. */
export const MODERATOR_FIELDS = {
  'policy.moderatorGraceSeconds': { label: 'Grace after the moderator leaves (seconds)', id: 'p-moderatorGraceSeconds' },
  'policy.moderatorWaitMinutes': { label: 'Wait for a first moderator (minutes)', id: 'p-moderatorWaitMinutes' },
};

/** Four-eyes sessions (docs/access-requests.md): a moderator, one of the computer's approvers, must watch. */
export function ModeratorFields(props: PolicyProps) {
  const { policy, onPolicy } = props;
  const on = policy.requireModerator === true;
  return (
    <fieldset>
      <legend>Four-eyes sessions</legend>
      <Checkbox
        id="p-requireModerator"
        label="Require a moderator: sessions connect only while one of the computer's approvers watches"
        checked={on}
        onChange={(v) => {
          const { requireModerator: _old, ...rest } = policy;
          onPolicy(v ? { ...rest, requireModerator: true } : rest);
        }}
        hint="The approvers are told by email and webhooks when a session waits; input pauses when the last moderator leaves."
      />
      {on && (
        <>
          <PolicyNumberField {...props} name="moderatorWaitMinutes" label={MODERATOR_FIELDS['policy.moderatorWaitMinutes'].label} hint="A session nobody moderates within this time ends (1–240; empty: 15)." />
          <PolicyNumberField {...props} name="moderatorGraceSeconds" label={MODERATOR_FIELDS['policy.moderatorGraceSeconds'].label} hint="A paused session ends unless a moderator returns within this time (5–3600; empty: 60)." />
        </>
      )}
    </fieldset>
  );
}
