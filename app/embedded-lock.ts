import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/load.js';

/** An embedded PGlite directory can be opened by one process only. Returns the unlock. */
export function lockEmbedded(cfg: Config): () => void {
  if (cfg.database.url) return () => undefined;
  const lock = join(cfg.dataDir, 'pglite.lock');
  if (existsSync(lock)) {
    const pid = Number(readFileSync(lock, 'utf8'));
    let alive = false;
    try {
      process.kill(pid, 0);
      alive = pid !== process.pid;
    } catch {
      alive = false;
    }
    if (alive) {
      throw new Error(
        `the embedded database in ${cfg.dataDir} is in use by process ${pid} (jitgate serve). ` +
          'Stop it first, or configure a PostgreSQL database (database.url) so several processes can share it.',
      );
    }
  }
  mkdirSync(cfg.dataDir, { recursive: true });
  writeFileSync(lock, String(process.pid));
  return () => rmSync(lock, { force: true });
}
