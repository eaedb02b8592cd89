import type { Migration } from '../migrations.js';

/** Migration 2: web sign-in sessions, bootstrap, MFA (gateway/auth). Released migrations are never edited. */
export const identityMigration: Migration = {
  version: 2,
  name: 'identity',
  sql: `
-- Last accepted TOTP time step: a code is accepted once (RFC 6238 section 5.2).
ALTER TABLE people ADD COLUMN totp_last_step bigint;
ALTER TABLE people ADD COLUMN password_changed_at timestamptz;

-- Web sign-in sessions. The cookie carries a random token; only its SHA-256
-- is stored. The CSRF token is derived from the cookie token (HMAC), so it
-- is not stored either. stage 'password' = first factor done, TOTP (or its
-- enrollment) pending; 'done' = signed in.
CREATE TABLE auth_sessions (
  id uuid PRIMARY KEY,
  person_id uuid NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  token_hash text NOT NULL UNIQUE,
  stage text NOT NULL CHECK (stage IN ('password','done')),
  -- TOTP secret being enrolled (SecretBox, bound to the session id) until confirmed
  pending_totp_enc text,
  created_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz,
  revoked_by text,
  ip text,
  user_agent text
);
CREATE INDEX auth_sessions_person ON auth_sessions (person_id);

-- One-time first-run links (/setup#<token>), stored as SHA-256.
CREATE TABLE bootstrap_tokens (
  token_hash text PRIMARY KEY,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at timestamptz
);
`,
};
