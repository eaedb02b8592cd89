import type { Migration } from '../migrations.js';

/** Migration 2: web sign-in sessions, bootstrap, MFA (gateway/auth). Released migrations are never edited. */
export const identityMigration: Migration = {
  version: 2,
  name: 'identity',
  sql: `
SELECT 1;
`,
};
