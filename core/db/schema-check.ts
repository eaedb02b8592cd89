import { CoreErrors, JitgateError } from '../errors.js';
import type { Database } from './database.js';
import { MIGRATIONS, type Migration } from './migrations.js';

/** SQLSTATE undefined_table: the database was never migrated (PostgreSQL, appendix A). */
const UNDEFINED_TABLE = '42P01';

/**
 * For a command that only reads: one query proves the schema is what this build expects, where
 * `migrate` takes five round trips and a lock (issue 12: `accounts list` in ≤ 0.3 s). A database
 * behind this build is refused with JIT_ERR_DB_NOT_MIGRATED rather than migrated: reading is no
 * reason to change the schema, and a command run by mistake against the wrong database must
 * not create one there. A newer schema is accepted, as `migrate` accepts it.
 */
export async function requireMigrated(db: Database, migrations: readonly Migration[] = MIGRATIONS): Promise<void> {
  let applied: Set<number>;
  try {
    applied = new Set((await db.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
  } catch (err) {
    // A PostgreSQL error code, not message text (docs/STYLE.md §4); PGlite reports the same codes.
    if ((err as { code?: unknown }).code !== UNDEFINED_TABLE) throw err;
    applied = new Set();
  }
  // Every migration this build knows, not only the highest: numbers are not applied in order of merge.
  const missing = migrations.filter((m) => !applied.has(m.version)).map((m) => m.version);
  if (missing.length === 0) return;
  const expected = Math.max(0, ...migrations.map((m) => m.version));
  const what = db.kind === 'postgres' ? 'the PostgreSQL database' : 'the embedded database';
  const state = applied.size === 0
    ? `${what} is not migrated yet (this version needs schema ${expected})`
    : `${what} lacks migration(s) ${missing.join(', ')} that this version needs`;
  throw new JitgateError(CoreErrors.JIT_ERR_DB_NOT_MIGRATED, { state });
}
