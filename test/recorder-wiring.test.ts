import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config/load.js';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { migrate } from '../core/db/migrations.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import { silentLogger } from '../core/logging.js';
import { recorderFromConfig, recordingsDir, signingKeyFor } from '../recorder/wiring.js';

const tmp = mkdtempSync(join(tmpdir(), 'jg-wire-'));
let db: Database;
// PGlite starts slowly on a loaded machine: open it in a hook (longer timeout), not in the test
beforeAll(async () => {
  db = await PgliteDatabase.open();
  await migrate(db);
});
afterAll(async () => {
  await db?.close();
  rmSync(tmp, { recursive: true, force: true });
});

function cfgFile(text: string): string {
  const p = join(mkdtempSync(join(tmp, 'c-')), 'jitgate.yaml');
  writeFileSync(p, text);
  return p;
}

describe('recorder wiring from the configuration', () => {
  it('defaults: <dataDir>/recordings and a generated 0600 key in <dataDir>/recording-signing.key', () => {
    const dataDir = join(tmp, 'd1');
    const cfg = loadConfig({ env: {}, file: cfgFile(`dataDir: ${dataDir}\n`) });
    expect(recordingsDir(cfg)).toBe(join(dataDir, 'recordings'));
    const key = signingKeyFor(cfg);
    expect(key).toHaveLength(32);
    expect(statSync(join(dataDir, 'recording-signing.key')).mode & 0o777).toBe(0o600);
    expect(signingKeyFor(cfg).equals(key)).toBe(true);
  });

  it('recordings.dir, recordings.signingKey (env) and guacd.recordingDir are honoured', async () => {
    const dataDir = join(tmp, 'd2');
    const keyB64 = Buffer.alloc(32, 5).toString('base64');
    const cfg = loadConfig({
      env: { JITGATE_RECORDINGS__SIGNING_KEY: keyB64 },
      file: cfgFile(`dataDir: ${dataDir}\nrecordings: { dir: ${join(tmp, 'rec2')} }\nguacd: { recordingDir: /var/lib/guacd/recordings }\n`),
    });
    expect(recordingsDir(cfg)).toBe(join(tmp, 'rec2'));
    expect(signingKeyFor(cfg).equals(Buffer.alloc(32, 5))).toBe(true);
    expect(existsSync(join(dataDir, 'recording-signing.key'))).toBe(false);
    {
      const sessionId = randomUUID();
      await db.query(
        "INSERT INTO sessions (id, person_login, computer_name, protocol, account_type, state, lease_expires_at) VALUES ($1,'carol','win01','rdp','domain','active', now() + interval '1 hour')",
        [sessionId],
      );
      const rec = recorderFromConfig(cfg, { db, audit: new AuditLog(db), log: silentLogger() });
      const slot = await rec.startRdp({ sessionId, personLogin: 'carol', computerName: 'win01', account: 'carol_q1', protocol: 'rdp', startedAt: new Date() });
      expect(slot.guacdPath).toMatch(/^\/var\/lib\/guacd\/recordings\/\d{4}\/\d{2}\/\d{2}$/);
      expect(statSync(join(tmp, 'rec2', slot.guacdPath.slice('/var/lib/guacd/recordings/'.length))).mode & 0o777).toBe(0o700);
      expect(await slot.close()).toBeNull();
    }
  });
});
