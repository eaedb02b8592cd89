import { join } from 'node:path';
import type { Database } from './database.js';

export interface OpenDatabaseOptions {
  url?: string;
  dataDir: string;
  poolSize?: number;
  /**
   * A one-shot operator command, not `serve`: embedded PGlite starts with a
   * small buffer pool (see PgliteDatabase.open). No effect on PostgreSQL.
   */
  shortLived?: boolean;
}

/**
 * A PostgreSQL pool when a URL is configured, else embedded PGlite in `<dataDir>/pglite`.
 * Each adapter is imported only when chosen: PGlite's WASM runtime is of no use to a
 * PostgreSQL installation, nor pg to an embedded one (CLI start-up time, issue 12).
 */
export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  if (opts.url) {
    const { PgDatabase } = await import('./pg.database.js');
    return new PgDatabase({ url: opts.url, poolSize: opts.poolSize });
  }
  const { PgliteDatabase } = await import('./pglite.database.js');
  return PgliteDatabase.open(join(opts.dataDir, 'pglite'), { shortLived: opts.shortLived ?? false });
}
