import type { Migration } from '../migrations.js';

/**
 * Migration 3: recording manifest and integrity (recorder/). Released migrations are never edited.
 *
 * `recording_manifest` is append-only: each entry's `mac` is an HMAC-SHA256
 * (recordings signing key) over its seq, recording id, sha256, size, time and
 * the previous entry's mac (recorder/manifest.ts), so an edited file, an
 * edited row, or a deleted/reordered entry is detected by
 * `jitgate recordings verify`. No foreign key to `recordings`: a deleted
 * recording row must show up as an orphan entry, not vanish with it.
 */
export const recordingsMigration: Migration = {
  version: 3,
  name: 'recordings',
  sql: `
CREATE TABLE recording_manifest (
  seq bigint PRIMARY KEY,
  recording_id uuid NOT NULL,
  sha256 text NOT NULL,
  size_bytes bigint NOT NULL,
  prev_mac text NOT NULL,
  mac text NOT NULL,
  at timestamptz NOT NULL
);
CREATE INDEX recording_manifest_recording ON recording_manifest (recording_id);

-- bytes the writer dropped because a caller ignored backpressure past the hard cap
ALTER TABLE recordings ADD COLUMN dropped_bytes bigint NOT NULL DEFAULT 0;
CREATE INDEX recordings_session ON recordings (session_id);
CREATE INDEX recordings_started ON recordings (started_at);
`,
};
