import type { Migration } from '../migrations.js';

/**
 * Migration 21: four-eyes (moderated) sessions and break-glass in the
 * recording's own metadata (issue 16, docs/access-requests.md). Released
 * migrations are never edited.
 *
 * - `recordings.metadata`: what a reviewer must know about the recording
 *   beside the bytes: `breakGlass` and `accessRequestId` when the session ran
 *   in a break-glass window; `moderated` and `moderation`, the moderators'
 *   presence (who joined and left when, pauses, how the session ended) for a
 *   computer that requires a moderator. Written by the gateway holding the
 *   session as it happens, so a recording of a session cut short still
 *   carries what was known.
 */
export const sessionModerationMigration: Migration = {
  version: 21,
  name: 'session moderation',
  sql: `
ALTER TABLE recordings ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
`,
};
