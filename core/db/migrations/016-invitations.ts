import type { Migration } from '../migrations.js';

/**
 * Migration 16: invitations and passwords an admin set (issue 15,
 * "Invitations and people management"). Released migrations are never edited.
 *
 * - `invitations`: one-time links an admin sends instead of typing a
 *   password for someone. Only the SHA-256 of the token is kept (like
 *   bootstrap_tokens): the link is shown once, to the admin who made it.
 *   The person is created when the link is used, with the role and
 *   organization the admin chose; `used_at`/`revoked_at` make it one-time.
 * - `people.must_change_password`: set when an admin chose the password
 *   (create with a password, password reset); until the person changes it,
 *   every API call but the password change is refused (gateway/auth).
 */
export const invitationsMigration: Migration = {
  version: 16,
  name: 'invitations',
  sql: `
ALTER TABLE people ADD COLUMN must_change_password boolean NOT NULL DEFAULT false;

CREATE TABLE invitations (
  id uuid PRIMARY KEY,
  token_hash text NOT NULL UNIQUE,
  login text NOT NULL,
  display_name text NOT NULL DEFAULT '',
  email text,
  role text NOT NULL CHECK (role IN ('global_admin','org_admin','technician','auditor')),
  organization_id uuid REFERENCES organizations(id) ON DELETE CASCADE,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  revoked_at timestamptz,
  person_id uuid REFERENCES people(id) ON DELETE SET NULL
);
CREATE INDEX invitations_organization ON invitations (organization_id);
CREATE INDEX invitations_login ON invitations (login);
`,
};
