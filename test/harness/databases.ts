import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import type { Database } from '../../core/db/database.js';
import { migrate } from '../../core/db/migrations.js';
import { PgDatabase } from '../../core/db/pg.database.js';
import { PgliteDatabase } from '../../core/db/pglite.database.js';
import { createTestDatabase } from './postgres.js';

export interface DbFactory {
  label: 'pglite' | 'postgres';
  /** Why this backend cannot run here ('' when it can). */
  skip: string;
  /** A fresh, migrated database. */
  open(): Promise<Database>;
}

/** The store-level suites run on both embedded PGlite and a real PostgreSQL server. */
export function databaseFactories(): DbFactory[] {
  const pgUrl = inject('pgUrl');
  return [
    {
      label: 'pglite',
      skip: '',
      async open() {
        const db = await PgliteDatabase.open();
        await migrate(db);
        return db;
      },
    },
    {
      label: 'postgres',
      skip: pgUrl ? '' : `no PostgreSQL server: ${inject('missing')}`,
      async open() {
        const url = await createTestDatabase(pgUrl, `t_${randomBytes(6).toString('hex')}`);
        const db = new PgDatabase({ url, poolSize: 5 });
        await migrate(db);
        return db;
      },
    },
  ];
}
