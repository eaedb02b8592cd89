import type { Config } from '../config/load.js';
import type { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { openDatabase } from '../core/db/open.js';
import { requireMigrated } from '../core/db/schema-check.js';
import { JitRepository } from '../provisioner/jit-repository.js';
import { lockEmbedded } from './embedded-lock.js';

/**
 * What a command that only reads needs: the database and its queries, nothing else (issue 12:
 * `accounts list` in ≤ 0.3 s on PostgreSQL, ≤ 1 s embedded). Unlike app/core.ts it does not
 * migrate (one query checks the schema instead, core/db/schema-check.ts), builds no account store
 * (listing accounts reads the database, not the directory), no engine and no secret box, and
 * writes nothing: not even the installation id.
 */
export interface ReadOnlyCore {
  db: Database;
  repo: JitRepository;
  /** The audit log with its key (docs/audit.md); loaded only by the commands that read it. */
  audit(): Promise<AuditLog>;
  close(): Promise<void>;
}

export async function openReadOnly(cfg: Config): Promise<ReadOnlyCore> {
  const unlock = lockEmbedded(cfg);
  let db: Database | undefined;
  try {
    db = await openDatabase({ url: cfg.database.url?.reveal(), dataDir: cfg.dataDir, poolSize: 1, shortLived: true });
    await requireMigrated(db);
    const database = db;
    return {
      db: database,
      repo: new JitRepository(database),
      async audit() {
        const [{ AuditLog }, { loadAuditKey }] = await Promise.all([import('../core/audit.js'), import('../core/audit-key.js')]);
        return new AuditLog(database, { key: loadAuditKey({ configured: cfg.audit.signingKey, dataDir: cfg.dataDir }) });
      },
      async close() {
        await database.close();
        unlock();
      },
    };
  } catch (err) {
    await db?.close().catch(() => undefined);
    unlock();
    throw err;
  }
}
