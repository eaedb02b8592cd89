import { join } from 'node:path';
import type { Database } from './database.js';
import { PgDatabase } from './pg.database.js';
import { PgliteDatabase } from './pglite.database.js';

export interface OpenDatabaseOptions {
  url?: string;
  dataDir: string;
  poolSize?: number;
}

/** A PostgreSQL pool when a URL is configured, else embedded PGlite in `<dataDir>/pglite`. */
export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  if (opts.url) return new PgDatabase({ url: opts.url, poolSize: opts.poolSize });
  return PgliteDatabase.open(join(opts.dataDir, 'pglite'));
}
