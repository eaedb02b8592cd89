import pg from 'pg';
import { JitgateError, CoreErrors } from '../errors.js';
import type { Database, Queryable, Row } from './database.js';

// Return timestamps as Date and bigint (int8) as string is pg's default;
// keep int8 as string (audit sequence numbers can exceed 2^53 in theory).

export interface PgOptions {
  url: string;
  poolSize?: number;
  applicationName?: string;
}

export class PgDatabase implements Database {
  readonly kind = 'postgres' as const;
  readonly #pool: pg.Pool;

  constructor(opts: PgOptions) {
    this.#pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 10,
      application_name: opts.applicationName ?? 'jitgate',
      connectionTimeoutMillis: 10_000,
    });
    // An idle client erroring (server restart) must not crash the process.
    this.#pool.on('error', () => undefined);
  }

  async query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    const res = await this.#pool.query(sql, params as unknown[]);
    return res.rows as T[];
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      const tx: Queryable = {
        query: async <R extends Row = Row>(sql: string, params: readonly unknown[] = []) =>
          (await client.query(sql, params as unknown[])).rows as R[],
      };
      const out = await fn(tx);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async ping(): Promise<void> {
    try {
      await this.#pool.query('SELECT 1');
    } catch (err) {
      throw new JitgateError(CoreErrors.JIT_ERR_DB_UNREACHABLE, { reason: describe(err) }, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}

function describe(err: unknown): string {
  if (err instanceof AggregateError) return err.errors.map(describe).join('; ');
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${code} ${err.message}` : err.message;
  }
  return String(err);
}
