import type { Migration } from '../migrations.js';

/**
 * Migration 12: people who sign in through an identity provider (OIDC, LDAP)
 * and organizations that forbid local passwords (gateway/auth, docs/auth.md).
 * Released migrations are never edited.
 *
 * A person is linked to an external identity by (issuer, subject) only:
 * the OIDC `iss` + `sub` pair (OIDC Core 1.0 section 5.7: the only stable
 * identifier), or `ldap:<provider>` + the directory's objectGUID. Never by
 * e-mail: whoever controls an address at some provider would otherwise take
 * over the person with that address.
 */
export const signInSourcesMigration: Migration = {
  version: 12,
  name: 'sign-in sources',
  sql: `
CREATE TABLE person_identities (
  issuer text NOT NULL,
  subject text NOT NULL,
  person_id uuid NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  -- the configured provider name (identityProviders.oidc[].name / .ldap[].name)
  provider text NOT NULL,
  created_at timestamptz NOT NULL,
  last_sign_in_at timestamptz,
  PRIMARY KEY (issuer, subject)
);
CREATE INDEX person_identities_person ON person_identities (person_id);

-- Break-glass administrators keep their local password even where their
-- organization forbids local passwords; set explicitly, person by person.
ALTER TABLE people ADD COLUMN break_glass boolean NOT NULL DEFAULT false;
ALTER TABLE organizations ADD COLUMN local_passwords_allowed boolean NOT NULL DEFAULT true;

-- Which provider a sign-in came through, and its OIDC session id (sid), so a
-- back-channel logout token naming the sid ends exactly that sign-in.
ALTER TABLE auth_sessions ADD COLUMN idp text;
ALTER TABLE auth_sessions ADD COLUMN idp_sid text;
CREATE INDEX auth_sessions_idp_sid ON auth_sessions (idp, idp_sid) WHERE idp_sid IS NOT NULL;
`,
};
