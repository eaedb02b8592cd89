import type { Migration } from '../migrations.js';

/**
 * Migration 18: full-text search across sessions (recorder/search-index.ts).
 * Released migrations are never edited.
 *
 * One row per indexed line of a sealed recording: what an SSH session printed
 * and, when the computer's policy records input, what was typed (lines typed at
 * an echo-off prompt are stored masked, never their text), exec commands and
 * their output, SFTP operations, RDP typed text and clipboard text. `at_ms` is
 * the offset into the recording, so a hit opens the player at that moment.
 * `tsv` uses the `simple` configuration: commands, paths and host names are
 * not English words, and stemming them would find the wrong things. The same
 * SQL runs on PostgreSQL and PGlite (a stored generated column and a GIN index).
 *
 * Both tables cascade from `recordings` (and the lines from `sessions`), so
 * deleting a recording or a session by retention removes its index with it.
 */
export const searchMigration: Migration = {
  version: 18,
  name: 'search',
  sql: `
CREATE TABLE search_lines (
  recording_id uuid NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
  session_id uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  seq integer NOT NULL,
  at_ms integer NOT NULL,
  kind text NOT NULL CHECK (kind IN ('output','input','command','exec','sftp','keys','clipboard')),
  -- empty when masked
  text text NOT NULL,
  masked boolean NOT NULL DEFAULT false,
  tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
  PRIMARY KEY (recording_id, seq)
);
CREATE INDEX search_lines_tsv ON search_lines USING GIN (tsv);
CREATE INDEX search_lines_session ON search_lines (session_id, at_ms);

-- Which sealed recordings are indexed (re-indexing replaces the lines and this row).
CREATE TABLE search_indexed (
  recording_id uuid PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE,
  lines integer NOT NULL,
  bytes bigint NOT NULL,
  masked integer NOT NULL DEFAULT 0,
  indexed_at timestamptz NOT NULL DEFAULT now()
);
`,
};
