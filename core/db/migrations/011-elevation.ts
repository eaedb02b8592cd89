import type { Migration } from '../migrations.js';

/**
 * Migration 11: elevation of existing accounts (issue 14). Released
 * migrations are never edited.
 *
 * - `person_accounts`: which existing account a person has on an account
 *   store, set by admins (API, YAML import). Without a row the store's
 *   default rule (`elevation.accountName`, e.g. `{login}`) applies.
 * - `elevations`: one row per (session, group) an elevated session holds.
 *   A directory membership has no field for an ownership marker, so this
 *   row is the only proof of who added it: `added_by_jitgate` is false when
 *   the account was already a member before the session (never removed by
 *   jitgate), true when jitgate added it (or shares a membership another
 *   session of jitgate added). The row is written before the membership is
 *   added, so a crash mid-add leaves a record the reconciler acts on.
 */
export const elevationMigration: Migration = {
  version: 11,
  name: 'elevation',
  sql: `
CREATE TABLE person_accounts (
  person_id uuid NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  store text NOT NULL,
  account_name text NOT NULL CHECK (length(account_name) BETWEEN 1 AND 256),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (person_id, store)
);

CREATE TABLE elevations (
  id uuid PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES sessions(id) ON DELETE RESTRICT,
  store text NOT NULL,
  account_name text NOT NULL,
  grp text NOT NULL,
  added_by_jitgate boolean NOT NULL,
  -- adding: written before the add (the add may or may not have happened); active; removed (or released, for pre-existing ones)
  state text NOT NULL CHECK (state IN ('adding','active','removed')),
  created_at timestamptz NOT NULL DEFAULT now(),
  removed_at timestamptz,
  UNIQUE (session_id, grp)
);
CREATE INDEX elevations_open ON elevations (store, lower(account_name), grp) WHERE state <> 'removed';
`,
};
