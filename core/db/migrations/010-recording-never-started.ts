import type { Migration } from '../migrations.js';

/**
 * Migration 10: recordings that never started (recorder/). Released
 * migrations are never edited.
 *
 * An RDP recording slot is indexed before guacd is asked to connect (guacd
 * needs the file name in its `connect`); when guacd refuses the connection
 * nothing is ever written. Such a row is closed as `never_started` and signed
 * into the manifest with the marker `never-started` in place of a SHA-256
 * (recorder/manifest.ts `NEVER_STARTED`), so `jitgate recordings verify`
 * accepts it, and nobody without the signing key can turn a real recording
 * into one.
 */
export const recordingNeverStartedMigration: Migration = {
  version: 10,
  name: 'recording never started',
  sql: `
ALTER TABLE recordings ADD COLUMN never_started boolean NOT NULL DEFAULT false;
`,
};
