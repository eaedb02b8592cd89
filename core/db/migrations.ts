import type { Database } from './database.js';
import { identityMigration } from './migrations/002-identity.js';
import { recordingsMigration } from './migrations/003-recordings.js';
import { accessMigration } from './migrations/004-access.js';
import { leasesMigration } from './migrations/005-leases.js';
import { auditKeyedMigration } from './migrations/008-audit-keyed.js';
import { computerNamesNocaseMigration } from './migrations/009-computer-names-nocase.js';
import { recordingNeverStartedMigration } from './migrations/010-recording-never-started.js';
import { signInSourcesMigration } from './migrations/012-sign-in-sources.js';
import { elevationMigration } from './migrations/011-elevation.js';
import { passkeysMigration } from './migrations/015-passkeys.js';
import { accessRequestsMigration } from './migrations/017-access-requests.js';
import { invitationsMigration } from './migrations/016-invitations.js';
import { searchMigration } from './migrations/018-search.js';
import { teamsLabelsMigration } from './migrations/020-teams-labels.js';
import { evidenceRetentionMigration } from './migrations/019-evidence-retention.js';
import { sessionModerationMigration } from './migrations/021-session-moderation.js';
import { searchRdpKeysMigration } from './migrations/022-search-rdp-keys.js';

/**
 * Ordered schema migrations, the same SQL on PostgreSQL and PGlite. A
 * migration once released is never edited: add a new one.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE organizations (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  -- shared-account number: the shared account is msp-<shared_code>
  shared_code text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE people (
  id uuid PRIMARY KEY,
  login text NOT NULL UNIQUE,
  display_name text NOT NULL DEFAULT '',
  email text,
  role text NOT NULL CHECK (role IN ('global_admin','org_admin','technician','auditor')),
  organization_id uuid REFERENCES organizations(id) ON DELETE RESTRICT,
  password_hash text,
  totp_secret_enc text,
  totp_enabled boolean NOT NULL DEFAULT false,
  recovery_codes jsonb NOT NULL DEFAULT '[]',
  failed_logins integer NOT NULL DEFAULT 0,
  locked_until timestamptz,
  disabled boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ssh_keys (
  id uuid PRIMARY KEY,
  person_id uuid NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  public_key text NOT NULL,
  fingerprint text NOT NULL UNIQUE,
  label text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE computers (
  id uuid PRIMARY KEY,
  organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE RESTRICT,
  name text NOT NULL,
  address text NOT NULL,
  protocols text[] NOT NULL DEFAULT '{ssh}',
  ssh_port integer NOT NULL DEFAULT 22,
  rdp_port integer NOT NULL DEFAULT 3389,
  -- account store names from the configuration, for domain and local accounts
  domain_store text,
  local_store text,
  -- per-computer JIT settings (validated by provisioner/jit-settings.ts)
  jit jsonb NOT NULL,
  -- per-computer session policy (recording input, sftp, forwarding, rdp security...)
  policy jsonb NOT NULL DEFAULT '{}',
  restricted boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (organization_id, name)
);

CREATE TABLE grants (
  computer_id uuid NOT NULL REFERENCES computers(id) ON DELETE CASCADE,
  person_id uuid NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (computer_id, person_id)
);

-- Every account jitgate created in a store. A row exists before the
-- account is created (state 'creating'), so a crash between the two leaves
-- a row the reconciler finds.
CREATE TABLE jit_accounts (
  id uuid PRIMARY KEY,
  store text NOT NULL,
  name text NOT NULL,
  mode text NOT NULL CHECK (mode IN ('named','shared')),
  -- whose account it is: 'person:<login>' or 'org:<organization id>'
  owner_key text NOT NULL,
  person_id uuid REFERENCES people(id) ON DELETE SET NULL,
  organization_id uuid REFERENCES organizations(id) ON DELETE SET NULL,
  computer_id uuid REFERENCES computers(id) ON DELETE SET NULL,
  state text NOT NULL CHECK (state IN ('creating','active','idle','deleted','failed')),
  -- AES-256-GCM with the gateway key; erased when no session needs it
  password_enc text,
  groups text[] NOT NULL DEFAULT '{}',
  keep boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE UNIQUE INDEX jit_accounts_live_name ON jit_accounts (store, name) WHERE state <> 'deleted';

-- One row per session; the lease is the session's hold on its account's
-- group memberships until lease_expires_at.
CREATE TABLE sessions (
  id uuid PRIMARY KEY,
  person_id uuid REFERENCES people(id) ON DELETE SET NULL,
  person_login text NOT NULL,
  computer_id uuid REFERENCES computers(id) ON DELETE SET NULL,
  computer_name text NOT NULL,
  protocol text NOT NULL,
  account_type text NOT NULL CHECK (account_type IN ('domain','local','existing')),
  account_id uuid REFERENCES jit_accounts(id) ON DELETE SET NULL,
  account_name text,
  store text,
  state text NOT NULL CHECK (state IN ('pending','provisioning','active','ending','ended','failed')),
  lease_expires_at timestamptz NOT NULL,
  -- groups this session's lease holds (written before each add: an intent log)
  groups text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  ended_at timestamptz,
  end_reason text,
  error_code text
);
CREATE INDEX sessions_live ON sessions (state) WHERE state IN ('pending','provisioning','active','ending');

CREATE TABLE recordings (
  id uuid PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES sessions(id) ON DELETE RESTRICT,
  kind text NOT NULL,
  path text NOT NULL,
  size_bytes bigint,
  sha256 text,
  manifest_seq bigint,
  started_at timestamptz NOT NULL DEFAULT now(),
  ended_at timestamptz
);

-- Append-only, hash-chained audit trail (core/audit.ts).
CREATE TABLE audit_events (
  seq bigint PRIMARY KEY,
  at timestamptz NOT NULL,
  type text NOT NULL,
  actor text NOT NULL,
  session_id uuid,
  computer text,
  account text,
  outcome text NOT NULL,
  data jsonb NOT NULL DEFAULT '{}',
  prev_hash text NOT NULL,
  hash text NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);

-- Short leased locks (shared accounts, reused accounts) that never hold a
-- transaction open while a directory is being called.
CREATE TABLE locks (
  key text PRIMARY KEY,
  owner text NOT NULL,
  expires_at timestamptz NOT NULL
);

CREATE TABLE settings (
  key text PRIMARY KEY,
  value jsonb NOT NULL
);
`,
  },
  identityMigration,
  recordingsMigration,
  accessMigration,
  leasesMigration,
  auditKeyedMigration,
  computerNamesNocaseMigration,
  recordingNeverStartedMigration,
  elevationMigration,
  signInSourcesMigration,
  passkeysMigration,
  invitationsMigration,
  accessRequestsMigration,
  searchMigration,
  evidenceRetentionMigration,
  teamsLabelsMigration,
  sessionModerationMigration,
  searchRdpKeysMigration,
];

/** Lock id for pg_advisory_lock so concurrent `migrate` runs serialise. */
const MIGRATION_LOCK = 73_461_001;

export interface MigrationResult {
  applied: number[];
  current: number;
}

export async function migrate(db: Database, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationResult> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await tx.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const rows = await tx.query<{ version: number }>('SELECT version FROM schema_migrations');
    const have = new Set(rows.map((r) => Number(r.version)));
    const applied: number[] = [];
    for (const m of migrations) {
      if (have.has(m.version)) continue;
      await tx.query(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    const current = Math.max(0, ...migrations.map((m) => m.version));
    return { applied, current };
  });
}

/** The highest migration applied, or 0 on a database never migrated. */
export async function schemaVersion(db: Database): Promise<number> {
  // Two queries: PostgreSQL resolves every table named in a statement when it
  // parses it, so a CASE around `FROM schema_migrations` still fails with
  // "relation does not exist" on a fresh database.
  const [reg] = await db.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
  if (!reg?.t) return 0;
  const rows = await db.query<{ v: number | null }>('SELECT coalesce(max(version), 0) AS v FROM schema_migrations');
  return Number(rows[0]?.v ?? 0);
}

export interface SchemaStatus {
  /** Highest migration applied (0: never migrated). */
  readonly current: number;
  /** Highest migration this build knows. */
  readonly expected: number;
}

/** Where the schema stands against this build, without changing anything. */
export async function schemaStatus(db: Database, migrations: readonly Migration[] = MIGRATIONS): Promise<SchemaStatus> {
  return { current: await schemaVersion(db), expected: Math.max(0, ...migrations.map((m) => m.version)) };
}
