import { afterEach, describe, expect, it } from 'vitest';
import { PgliteDatabase } from './pglite.database.js';

describe('PgliteDatabase.open', () => {
  let db: PgliteDatabase | undefined;
  afterEach(async () => {
    await db?.close();
    db = undefined;
  });

  // PostgreSQL initialises its whole buffer pool at start: 128MB costs a one-shot CLI command ~0.5 s of CPU in WASM (issue 12).
  it('a short-lived open (operator command) starts with a small buffer pool', async () => {
    db = await PgliteDatabase.open(undefined, { shortLived: true });
    expect(await db.query('SHOW shared_buffers')).toEqual([{ shared_buffers: '1MB' }]);
    // PGlite's own start parameters are kept
    expect(await db.query('SHOW search_path')).toEqual([{ search_path: 'public' }]);
  });

  it('a long-running open (serve, tests) keeps the default buffer pool', async () => {
    db = await PgliteDatabase.open();
    expect(await db.query('SHOW shared_buffers')).toEqual([{ shared_buffers: '128MB' }]);
  });
});
