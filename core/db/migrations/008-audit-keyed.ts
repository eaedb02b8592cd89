import type { Migration } from '../migrations.js';

/**
 * Migration 8: the audit chain becomes keyed (core/audit-chain.ts,
 * docs/audit.md). Released migrations are never edited.
 *
 * `audit_events.alg` says how each row's link was computed: rows already
 * written keep `sha256` (the unkeyed hash they were written with, so an
 * upgrade does not break `audit verify`); rows written from now on carry
 * `hmac-sha256`. The settings row `audit.keyed_from` records the first keyed
 * event; `audit verify` treats an unkeyed row after it as a downgrade (the
 * checkpoints outside the database say the same, should the row be deleted).
 */
export const auditKeyedMigration: Migration = {
  version: 8,
  name: 'keyed audit chain',
  sql: `
ALTER TABLE audit_events ADD COLUMN alg text NOT NULL DEFAULT 'sha256' CHECK (alg IN ('sha256', 'hmac-sha256'));
`,
};
