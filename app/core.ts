import { join } from 'node:path';
import type { Config } from '../config/load.js';
import { AuditLog } from '../core/audit.js';
import { AuditCheckpointer } from '../core/audit-checkpoint.js';
import { auditCheckpointPath, loadAuditKey } from '../core/audit-key.js';
import type { Database } from '../core/db/database.js';
import { migrate } from '../core/db/migrations.js';
import { openDatabase } from '../core/db/open.js';
import type { Logger } from '../core/logging.js';
import { SecretBox } from '../core/secret-box.js';
import type { AccountStore } from '../provisioner/account-store.js';
import { JitAccountService } from '../provisioner/jit-account.service.js';
import { JitRepository } from '../provisioner/jit-repository.js';
import type { HolderLiveness } from '../provisioner/holder-liveness.js';
import { storeScopeOf } from '../provisioner/store-scope.js';
import { buildStore } from './stores.js';
import { lockEmbedded } from './embedded-lock.js';

/**
 * Database, stores and the JIT engine: what `serve` and every operator command
 * share. Kept apart from main.ts (the gateway runtime) so an operator command
 * loads no HTTP server, SSH gateway, queue or recorder (issue 12, start-up time).
 */

export interface Core {
  cfg: Config;
  log: Logger;
  db: Database;
  box: SecretBox;
  repo: JitRepository;
  audit: AuditLog;
  /** Signed checkpoints of the audit chain's head, outside the database (docs/audit.md). */
  checkpoints: AuditCheckpointer;
  stores: Map<string, AccountStore>;
  engine: JitAccountService;
  close(): Promise<void>;
}

export function secretBoxFor(cfg: Config): SecretBox {
  return cfg.secrets.key ? SecretBox.fromBase64(cfg.secrets.key.reveal()) : SecretBox.fromKeyFile(join(cfg.dataDir, 'secret.key'));
}

export async function buildStores(cfg: Config, log: Logger): Promise<Map<string, AccountStore>> {
  const stores = new Map<string, AccountStore>();
  for (const sc of cfg.accountStores) stores.set(sc.name, await buildStore(sc, log));
  return stores;
}

/** Database, stores and engine: what every command that touches accounts needs. */
export interface OpenCoreOptions {
  migrate?: boolean;
  holders?: HolderLiveness;
  /** A one-shot operator command, not `serve` (openDatabase's option). */
  shortLived?: boolean;
}

export async function openCore(cfg: Config, log: Logger, opts: OpenCoreOptions = {}): Promise<Core> {
  const unlock = lockEmbedded(cfg);
  let db: Database | undefined;
  try {
    db = await openDatabase({ url: cfg.database.url?.reveal(), dataDir: cfg.dataDir, poolSize: cfg.database.poolSize, shortLived: opts.shortLived ?? false });
    if (opts.migrate ?? true) {
      const m = await migrate(db);
      if (m.applied.length) log.info({ applied: m.applied, version: m.current }, 'database migrated');
    }
    const box = secretBoxFor(cfg);
    const repo = new JitRepository(db);
    // The audit key, like the recordings key, lives outside the database (docs/audit.md).
    const auditKey = loadAuditKey({ configured: cfg.audit.signingKey, dataDir: cfg.dataDir });
    const audit = new AuditLog(db, { key: auditKey });
    const checkpoints = new AuditCheckpointer({
      audit, key: auditKey, log,
      file: cfg.audit.checkpointFile ?? auditCheckpointPath(cfg.dataDir),
      every: cfg.audit.checkpointEvery,
      intervalMs: cfg.audit.checkpointIntervalSeconds * 1000,
    });
    const installationId = await repo.installationId(cfg.jit.installationId);
    const stores = await buildStores(cfg, log);
    const engine = new JitAccountService({
      repo, audit, box, stores, log, installationId,
      leaseGraceMs: cfg.jit.leaseGraceSeconds * 1000,
      defaultSessionMinutes: cfg.jit.defaultSessionMinutes,
      provisioningTimeoutMs: cfg.jit.provisioningTimeoutSeconds * 1000,
      storeScopes: new Map(cfg.accountStores.map((sc) => [sc.name, storeScopeOf(sc)])),
      elevation: new Map(cfg.accountStores.map((sc) => [sc.name, { accountName: sc.elevation.accountName }])),
      ...(opts.holders ? { holders: opts.holders } : {}),
    });
    const database = db;
    return {
      cfg, log, db: database, box, repo, audit, checkpoints, stores, engine,
      async close() {
        await Promise.allSettled([...stores.values()].map((s) => s.close()));
        await checkpoints.close();
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

