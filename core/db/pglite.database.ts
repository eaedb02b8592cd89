import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { JitgateError, CoreErrors } from '../errors.js';
import type { Database, Queryable, Row } from './database.js';

/**
 * Embedded PostgreSQL (PGlite, WASM) for single-process deployments and the
 * quick start. Same SQL and migrations as the PostgreSQL adapter. One
 * connection: PGlite serialises queries itself; transactions are exclusive.
 */
export class PgliteDatabase implements Database {
  readonly kind = 'pglite' as const;
  readonly #db: PGlite;

  private constructor(db: PGlite) {
    this.#db = db;
  }

  /**
   * `dir` undefined → in memory (tests). `shortLived`: an operator command that runs a few
   * queries and exits. PostgreSQL initialises its whole buffer pool at start, and PGlite's
   * default `shared_buffers` of 128MB costs about 0.5 s of CPU in WASM there, more than the
   * command's own work; 1MB (128 pages) is plenty for a handful of queries. `serve` keeps the default.
   */
  static async open(dir?: string, opts: { shortLived?: boolean } = {}): Promise<PgliteDatabase> {
    if (dir) mkdirSync(dir, { recursive: true });
    try {
      const options = opts.shortLived ? { startParams: [...PGlite.defaultStartParams, '-c', 'shared_buffers=1MB'] } : {};
      const db = dir ? new PGlite(dir, options) : new PGlite(options);
      await db.waitReady;
      return new PgliteDatabase(db);
    } catch (err) {
      throw new JitgateError(CoreErrors.JIT_ERR_DB_UNREACHABLE, { reason: `cannot open embedded database in ${dir ?? 'memory'}: ${String(err)}` }, { cause: err });
    }
  }

  async query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    if (params.length === 0 && sql.includes(';') && /;\s*\S/.test(sql)) {
      // multi-statement (migrations)
      const results = await this.#db.exec(sql);
      return (results.at(-1)?.rows ?? []) as T[];
    }
    const res = await this.#db.query<T>(sql, params as unknown[]);
    return res.rows;
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#db.transaction(async (t) => {
      const tx: Queryable = {
        query: async <R extends Row = Row>(sql: string, params: readonly unknown[] = []) => {
          if (params.length === 0 && /;\s*\S/.test(sql)) {
            const results = await t.exec(sql);
            return (results.at(-1)?.rows ?? []) as R[];
          }
          return (await t.query<R>(sql, params as unknown[])).rows;
        },
      };
      return fn(tx);
    });
  }

  async ping(): Promise<void> {
    await this.#db.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.#db.close();
  }
}
