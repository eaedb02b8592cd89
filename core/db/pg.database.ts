import { createRequire } from 'node:module';
import type { Pool } from 'pg';
import { JitgateError, CoreErrors } from '../errors.js';
import type { Database, Queryable, Row } from './database.js';

/**
 * pg, loaded without making Node 20 load undici. pg's lib/stream.js asks at load time whether it
 * runs in a Cloudflare Worker: it reads `navigator.userAgent`, and where `navigator` is not defined
 * (Node 20; Node ≥ 21 defines it) it constructs a `Response`, whose first use loads Node's bundled
 * undici (~60 ms of CPU, a fifth of `jitgate accounts list` on PostgreSQL, issue 12). While pg loads
 * we show it the `navigator` Node ≥ 21 itself provides, so it takes the same path as there. The
 * require is synchronous, so no other code runs while the stand-in exists, and it is removed after.
 */
function loadPg(): typeof import('pg') {
  const require = createRequire(import.meta.url);
  if ('navigator' in globalThis) return require('pg') as typeof import('pg');
  Object.defineProperty(globalThis, 'navigator', { value: { userAgent: `Node.js/${process.versions.node.split('.')[0]}` }, configurable: true, writable: true });
  try {
    return require('pg') as typeof import('pg');
  } finally {
    delete (globalThis as { navigator?: unknown }).navigator;
  }
}

const pg = loadPg();

// Return timestamps as Date and bigint (int8) as string is pg's default;
// keep int8 as string (audit sequence numbers can exceed 2^53 in theory).

export interface PgOptions {
  url: string;
  poolSize?: number;
  applicationName?: string;
}

export class PgDatabase implements Database {
  readonly kind = 'postgres' as const;
  readonly #pool: Pool;

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
