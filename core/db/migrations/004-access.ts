import type { Migration } from '../migrations.js';

/** Migration 4: organizations, roles, grants and API state (gateway/api). Released migrations are never edited. */
export const accessMigration: Migration = {
  version: 4,
  name: 'access',
  sql: `
SELECT 1;
`,
};
