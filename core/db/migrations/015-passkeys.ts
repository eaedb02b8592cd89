import type { Migration } from '../migrations.js';

/**
 * Migration 15: passkeys (WebAuthn credentials, gateway/auth/passkey.service.ts),
 * organizations that require them, and step-up confirmations at connect time
 * (docs/auth.md). Released migrations are never edited.
 *
 * A credential is found by its id alone (discoverable credentials: the
 * browser names it, WebAuthn Level 3 section 7.2 step 6), so `credential_id`
 * is unique across people. `counter` is the signature counter last seen
 * (section 6.1.1): a response whose counter does not move past it is refused.
 */
export const passkeysMigration: Migration = {
  version: 15,
  name: 'passkeys',
  sql: `
CREATE TABLE passkeys (
  id uuid PRIMARY KEY,
  person_id uuid NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  -- base64url, as the browser sends it
  credential_id text NOT NULL UNIQUE,
  -- COSE public key, base64url
  public_key text NOT NULL,
  counter bigint NOT NULL DEFAULT 0,
  transports jsonb NOT NULL DEFAULT '[]',
  name text NOT NULL,
  -- singleDevice / multiDevice, and whether it is backed up (synced passkey)
  device_type text NOT NULL DEFAULT 'singleDevice',
  backed_up boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL,
  last_used_at timestamptz
);
CREATE INDEX passkeys_person ON passkeys (person_id);

-- One-time WebAuthn challenges: consumed (deleted) by the response that
-- answers them. auth_session_id binds registration, second-factor and
-- step-up challenges to the sign-in that asked; passwordless sign-in
-- challenges have none.
CREATE TABLE webauthn_challenges (
  challenge text PRIMARY KEY,
  purpose text NOT NULL CHECK (purpose IN ('register','sign-in','second-factor','step-up')),
  auth_session_id uuid REFERENCES auth_sessions(id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL
);

-- "Require phishing-resistant MFA": people of this organization complete a
-- sign-in with a passkey only (TOTP and an identity provider's MFA do not).
ALTER TABLE organizations ADD COLUMN require_passkeys boolean NOT NULL DEFAULT false;

-- The last time this sign-in proved a second factor (TOTP, recovery code,
-- passkey), for computers that require a fresh confirmation at connect time.
ALTER TABLE auth_sessions ADD COLUMN step_up_at timestamptz;
-- A second factor was proved while the organization requires a passkey the
-- person does not have yet: this half-done sign-in may enroll one.
ALTER TABLE auth_sessions ADD COLUMN second_factor_passed boolean NOT NULL DEFAULT false;
`,
};
