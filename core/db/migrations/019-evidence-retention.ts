import type { Migration } from '../migrations.js';

/**
 * Migration 19: evidence retention (issue 19, docs/evidence.md). Released
 * migrations are never edited.
 *
 * - `organizations.recording_retention_days`: recordings of the
 *   organization's sessions older than this many days are deleted by the
 *   retention job (recorder/retention.ts); NULL keeps them forever.
 * - `sessions.legal_hold`: a session under legal hold is never deleted by
 *   retention, whatever its age; who set it and when, for the page.
 * - `recording_purges`: one row per recording retention deleted. The signed
 *   manifest keeps its entry (it is append-only and has no foreign key), and
 *   `jitgate recordings verify` counts an entry without a recording row as a
 *   deleted row unless it is listed here; each purge is also an audit event
 *   (`recording.deleted`) in the keyed chain.
 */
export const evidenceRetentionMigration: Migration = {
  version: 19,
  name: 'evidence retention',
  sql: `
ALTER TABLE organizations ADD COLUMN recording_retention_days integer CHECK (recording_retention_days IS NULL OR recording_retention_days BETWEEN 1 AND 36500);
ALTER TABLE sessions ADD COLUMN legal_hold boolean NOT NULL DEFAULT false;
ALTER TABLE sessions ADD COLUMN legal_hold_by text;
ALTER TABLE sessions ADD COLUMN legal_hold_at timestamptz;

CREATE TABLE recording_purges (
  recording_id uuid PRIMARY KEY,
  session_id uuid NOT NULL,
  manifest_seq bigint,
  sha256 text,
  purged_at timestamptz NOT NULL DEFAULT now(),
  reason text NOT NULL
);
`,
};
