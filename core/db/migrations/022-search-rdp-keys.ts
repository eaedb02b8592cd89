import type { Migration } from '../migrations.js';

/**
 * Migration 22: RDP recordings in the search index (recorder/search-extract.ts
 * `extractGuacRecording`). Released migrations are never edited.
 *
 * A line of kind `key` is a key combination or a special key pressed in a
 * remote desktop session (`Ctrl+C`, `Alt+Tab`, `F5`), apart from `keys`, the
 * text typed: the timeline shows them as what they are, and typed text that
 * happens to read `Ctrl+C` stays typed text. `search_lines_kind_check` is
 * the name PostgreSQL (and PGlite) gave migration 18's inline CHECK.
 */
export const searchRdpKeysMigration: Migration = {
  version: 22,
  name: 'search rdp keys',
  sql: `
ALTER TABLE search_lines DROP CONSTRAINT search_lines_kind_check;
ALTER TABLE search_lines ADD CONSTRAINT search_lines_kind_check
  CHECK (kind IN ('output','input','command','exec','sftp','keys','key','clipboard'));
`,
};
