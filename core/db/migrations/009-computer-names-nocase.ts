import type { Migration } from '../migrations.js';

/**
 * Migration 9: computer names are unique per organization without regard to
 * case, as people type them (`ssh alice+WEB01@…` reaches web01; logins are
 * case-insensitive already). Released migrations are never edited.
 *
 * Names that differ only in case within one organization could exist
 * before (the API compared them exactly). The oldest of each such group
 * keeps its name; the others get `-<first 8 characters of their id>`
 * appended (cut to stay within the 63 characters the API allows), so the
 * unique index can be built and no computer silently shadows another.
 * Grants, sessions and recordings refer to computers by id and are
 * unaffected; `docs/ssh.md` tells operators to look for renamed computers.
 */
export const computerNamesNocaseMigration: Migration = {
  version: 9,
  name: 'computer names unique without case',
  sql: `
UPDATE computers c SET name = left(c.name, 54) || '-' || left(c.id::text, 8), updated_at = now()
  FROM (SELECT id, row_number() OVER (PARTITION BY organization_id, lower(name) ORDER BY created_at, id) AS n FROM computers) d
  WHERE d.id = c.id AND d.n > 1;
CREATE UNIQUE INDEX computers_organization_lower_name ON computers (organization_id, lower(name));
CREATE INDEX computers_lower_name ON computers (lower(name));
`,
};
