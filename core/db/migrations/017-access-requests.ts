import type { Migration } from '../migrations.js';

/**
 * Migration 17: access requests with approval (issue 16, docs/access-requests.md).
 * Released migrations are never edited.
 *
 * - `access_requests`: one row per request. A pending request waits for
 *   `required_approvals` approvals (copied from the computer's policy when it
 *   is made, so a later policy change does not re-count an open request) until
 *   `pending_until`; approved, it opens the window [`window_starts_at`,
 *   `window_ends_at`) in which the requester may start sessions on the
 *   computer; revoked or expired it opens nothing. `break_glass` requests skip
 *   approval (the computer must allow it) and stay flagged.
 * - `access_request_decisions`: each approver's answer, with the second factor
 *   that confirmed it; one answer per approver (primary key).
 * - `access_request_sessions`: which sessions ran inside which window ("used by").
 * - `organizations.unshared_requests`: technicians may ask for computers of
 *   their organization that were not shared with them.
 */
export const accessRequestsMigration: Migration = {
  version: 17,
  name: 'access requests',
  sql: `
ALTER TABLE organizations ADD COLUMN unshared_requests boolean NOT NULL DEFAULT false;

CREATE TABLE access_requests (
  id uuid PRIMARY KEY,
  organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  computer_id uuid REFERENCES computers(id) ON DELETE CASCADE,
  computer_name text NOT NULL,
  requester_id uuid NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  requester_login text NOT NULL,
  reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
  ticket text CHECK (ticket IS NULL OR length(ticket) BETWEEN 1 AND 200),
  minutes integer NOT NULL CHECK (minutes BETWEEN 1 AND 10080),
  required_approvals integer NOT NULL CHECK (required_approvals BETWEEN 1 AND 10),
  break_glass boolean NOT NULL DEFAULT false,
  state text NOT NULL CHECK (state IN ('pending','approved','denied','expired','revoked','cancelled')),
  created_at timestamptz NOT NULL DEFAULT now(),
  pending_until timestamptz NOT NULL,
  decided_at timestamptz,
  window_starts_at timestamptz,
  window_ends_at timestamptz,
  ended_at timestamptz,
  ended_by text,
  granted_at timestamptz
);
CREATE INDEX access_requests_open ON access_requests (computer_id, requester_id) WHERE state IN ('pending','approved');
CREATE INDEX access_requests_org ON access_requests (organization_id, created_at);

CREATE TABLE access_request_decisions (
  request_id uuid NOT NULL REFERENCES access_requests(id) ON DELETE CASCADE,
  approver_id uuid REFERENCES people(id) ON DELETE SET NULL,
  approver_login text NOT NULL,
  decision text NOT NULL CHECK (decision IN ('approve','deny')),
  factor text NOT NULL,
  comment text,
  at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (request_id, approver_login)
);

CREATE TABLE access_request_sessions (
  request_id uuid NOT NULL REFERENCES access_requests(id) ON DELETE CASCADE,
  session_id uuid NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (request_id, session_id)
);
`,
};
