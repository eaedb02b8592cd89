import type { Migration } from '../migrations.js';

/**
 * Migration 5: what the reconciler needs to act only on what is provably
 * over (docs/jit-engine.md "Reconciler"). Released migrations are never edited.
 *
 * - `sessions.holder`: who holds the session open (`gateway:<id>` for the
 *   browser terminal, the RDP tunnel and the SSH front door; NULL for
 *   `jitgate checkout`). A session whose gateway stopped heart-beating is
 *   torn down at once, not at the end of its lease.
 * - `jit_accounts.location`: where the store created the account (the LDAP
 *   DN), so an account made in a computer's own container is found again.
 */
export const leasesMigration: Migration = {
  version: 5,
  name: 'lease holders and account locations',
  sql: `
ALTER TABLE sessions ADD COLUMN holder text;
ALTER TABLE jit_accounts ADD COLUMN location text;
CREATE INDEX sessions_live_holder ON sessions (holder) WHERE state IN ('pending','provisioning','active','ending') AND holder IS NOT NULL;
CREATE INDEX sessions_account ON sessions (account_id) WHERE account_id IS NOT NULL;
`,
};
