import type { Migration } from '../migrations.js';

/**
 * Migration 4: organizations, roles, grants and API state (gateway/api).
 * Released migrations are never edited.
 *
 * Sessions remember the organization of their computer when they are
 * created, so a session's recordings and audit events stay visible to that
 * organization's admins and auditors (and to nobody else's) after the
 * computer is deleted (`sessions.computer_id` is then set to NULL).
 */
export const accessMigration: Migration = {
  version: 4,
  name: 'access',
  sql: `
ALTER TABLE sessions ADD COLUMN organization_id uuid;
UPDATE sessions s SET organization_id = c.organization_id FROM computers c WHERE c.id = s.computer_id;
CREATE FUNCTION jitgate_session_organization() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.organization_id IS NULL AND NEW.computer_id IS NOT NULL THEN
    SELECT organization_id INTO NEW.organization_id FROM computers WHERE id = NEW.computer_id;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER sessions_organization BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION jitgate_session_organization();
CREATE INDEX sessions_organization ON sessions (organization_id);
CREATE INDEX IF NOT EXISTS jitgate_audit_events_session ON audit_events (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS grants_person ON grants (person_id);
`,
};
