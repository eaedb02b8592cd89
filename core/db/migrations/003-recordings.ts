import type { Migration } from '../migrations.js';

/** Migration 3: recording manifest and integrity (recorder/). Released migrations are never edited. */
export const recordingsMigration: Migration = {
  version: 3,
  name: 'recordings',
  sql: `
SELECT 1;
`,
};
