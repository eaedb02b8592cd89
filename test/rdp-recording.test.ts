import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import type { Computer } from '../core/domain.js';
import { silentLogger } from '../core/logging.js';
import { Secret } from '../core/secret.js';
import { createRecorder, type Recorder } from '../recorder/session-recorder.js';
import { loadSigningKey } from '../recorder/signing-key.js';
import { databaseFactories } from './harness/databases.js';
import { FixedBroker, startGuacdPeer, startRdpTestApp } from './harness/guacd-peer.js';

/**
 * RDP recordings through the real recorder (recorder/session-recorder.ts on
 * PGlite and PostgreSQL): the tunnel asks for a slot, guacd (the peer, which
 * writes its output like guacd does) writes the file at recording-path /
 * recording-name, and on close the gateway has it hashed, signed and indexed.
 */

const PASSWORD = 'Rec;pw,😀';
const computer: Computer = {
  id: 'c1', organizationId: 'o1', name: 'win01', address: '10.9.8.7', protocols: ['rdp'], sshPort: 22, rdpPort: 3389,
  domainStore: 'ad', localStore: null, jit: {}, policy: {}, restricted: false,
};

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

async function until<T>(fn: () => T | undefined | false | null | Promise<T | undefined | false | null>, what: string, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false && v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

for (const f of databaseFactories()) {
  describe.skipIf(f.skip !== '')(`RDP recording through the recorder on ${f.label}`, () => {
    let db: Database;
    let dir: string;
    let rec: Recorder;

    beforeAll(async () => {
      db = await f.open();
      dir = mkdtempSync(join(tmpdir(), 'jitgate-rdp-rec-'));
      rec = createRecorder({ db, audit: new AuditLog(db), log: silentLogger(), dir: join(dir, 'recordings'), signingKey: loadSigningKey({ dataDir: dir }) });
    });
    afterAll(async () => {
      await db?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('guacd writes the file named by the slot; closing the session indexes it (sha256, size, integrity ok)', async () => {
      const peer = await startGuacdPeer({ writeRecordings: true, extra: [['name', 'Desktop 😀']] });
      const broker = new FixedBroker(computer, { username: 'alice_k3x9q2', password: new Secret(PASSWORD), domain: 'CORP' });
      broker.onSession = async (s) => {
        await db.query(
          "INSERT INTO sessions (id, person_login, computer_name, protocol, account_type, state, lease_expires_at) VALUES ($1, 'alice', 'win01', 'rdp', 'domain', 'active', now() + interval '1 hour')",
          [s.id],
        );
      };
      const t = await startRdpTestApp({ broker, recorder: rec, guacd: { host: peer.host, port: peer.port } });
      try {
        const ws = new WebSocket(`${t.wsUrl}?computer=win01&csrf=good`, 'guacamole');
        const frames: string[] = [];
        ws.on('message', (d: Buffer) => frames.push(d.toString('utf8')));
        await until(() => frames.some((x) => x.includes('7.jitgate,5.ready')), 'ready');
        const conn = peer.connections[0]!;
        expect(conn.args['recording-path']?.startsWith(join(dir, 'recordings'))).toBe(true);
        expect(conn.args['recording-name']).toMatch(/\.guac$/);
        await until(() => frames.some((x) => x.includes('Desktop')), 'drawing relayed');
        ws.send('10.disconnect;');
        const sessionId = broker.opened[0]!.session.id;
        await until(() => broker.opened[0]!.ended.length === 1, 'end()');

        const rows = await db.query<{ id: string; kind: string; size_bytes: string; sha256: string; ended_at: Date | null }>(
          'SELECT id, kind, size_bytes, sha256, ended_at FROM recordings WHERE session_id = $1', [sessionId],
        );
        expect(rows).toHaveLength(1);
        const row = rows[0]!;
        const file = readFileSync(conn.recordingFile!);
        expect(row.kind).toBe('rdp');
        expect(row.ended_at).not.toBeNull();
        expect(Number(row.size_bytes)).toBe(file.length);
        expect(row.sha256).toBe(createHash('sha256').update(file).digest('hex'));
        expect(file.toString('utf8')).toMatch(/^4\.size,1\.0,2\.64,2\.48;3\.img,/);
        expect(file.toString('utf8')).toContain('4.name,9.Desktop 😀;');
        expect(file.toString('utf8')).not.toContain(PASSWORD);

        const opened = await rec.open(row.id);
        expect(opened?.integrity).toBe('ok');
        expect(await readAll(opened!.stream)).toEqual(file);
      } finally {
        await t.app.close();
        await peer.close();
      }
    });
  });
}
