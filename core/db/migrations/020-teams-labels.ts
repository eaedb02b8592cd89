import type { Migration } from '../migrations.js';

/**
 * Migration 20: teams, labels on computers, grants by team × label selector
 * (issue 15 "Teams and labels", docs/auth.md "Teams and labels").
 * Released migrations are never edited.
 *
 * - `teams`: groups of people inside one organization; `sync_groups` names
 *   the identity-provider groups (OIDC groups claim, LDAP memberOf) whose
 *   members the sign-in puts in the team (gateway/teams/team-policy.ts).
 * - `team_members`: `source` tells a membership an admin added ('manual')
 *   from one a sign-in set ('sync'); a sign-in only removes what it set.
 * - `computers.labels`: `{"env":"prod","customer":"acme"}`.
 * - `team_grants`: the team's technicians may use the computers of the
 *   team's organization whose labels contain every pair of `selector`
 *   (as a person × computer grant does for one computer). The organization
 *   is the team's: a team of one organization never matches a computer of
 *   another, which the rules check again on every decision.
 */
export const teamsLabelsMigration: Migration = {
  version: 20,
  name: 'teams and labels',
  sql: `
CREATE TABLE teams (
  id uuid PRIMARY KEY,
  organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 63),
  description text NOT NULL DEFAULT '',
  sync_groups text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX teams_org_name_nocase ON teams (organization_id, lower(name));

CREATE TABLE team_members (
  team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
  person_id uuid NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  source text NOT NULL CHECK (source IN ('manual','sync')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (team_id, person_id)
);
CREATE INDEX team_members_person ON team_members (person_id);

ALTER TABLE computers ADD COLUMN labels jsonb NOT NULL DEFAULT '{}';

CREATE TABLE team_grants (
  id uuid PRIMARY KEY,
  team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
  selector jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (team_id, selector)
);
`,
};
