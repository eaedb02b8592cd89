import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from './audit.js';
import { auditForwardConfigSchema, forwardAudit } from './audit-forward.js';
import type { Database } from './db/database.js';
import { migrate } from './db/migrations.js';
import { PgliteDatabase } from './db/pglite.database.js';

async function until<T>(f: () => T | undefined, what: string, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('audit forwarding', () => {
  let db: Database;
  const dir = mkdtempSync(join(tmpdir(), 'jgt-audit-fwd-'));
  beforeAll(async () => {
    db = await PgliteDatabase.open();
    await migrate(db);
  });
  afterAll(async () => db?.close());

  it('writes each committed event as a JSON line to a file', async () => {
    const audit = new AuditLog(db);
    const file = join(dir, 'audit.jsonl');
    const fwd = forwardAudit(audit, auditForwardConfigSchema.parse({ file }));
    const e1 = await audit.record({ type: 'auth.signed_in', actor: 'alice', outcome: 'success' });
    const e2 = await audit.record({ type: 'access.denied', actor: 'bob', outcome: 'denied', computer: 'web01', data: { reason: 'restricted' } });
    await fwd.close();
    await audit.record({ type: 'auth.signed_out', actor: 'alice', outcome: 'success' });
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      expect.objectContaining({ seq: e1.seq, type: 'auth.signed_in', actor: 'alice', hash: e1.hash, at: e1.at.toISOString() }),
      expect.objectContaining({ seq: e2.seq, type: 'access.denied', computer: 'web01', data: { reason: 'restricted' }, prevHash: e1.hash }),
    ]);
  });

  it('sends RFC 5424 messages over UDP', async () => {
    const server = createSocket('udp4');
    const got: string[] = [];
    server.on('message', (m) => got.push(m.toString('utf8')));
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const audit = new AuditLog(db);
    const fwd = forwardAudit(audit, auditForwardConfigSchema.parse({ syslog: { target: `udp://127.0.0.1:${port}` } }), { hostname: 'gw1' });
    const e = await audit.record({ type: 'session.started', actor: 'a"li]ce', outcome: 'success', sessionId: null, computer: 'web01' });
    const denied = await audit.record({ type: 'access.denied', actor: 'bob', outcome: 'denied' });
    const msgs = await until(() => (got.length >= 2 ? got : undefined), 'two datagrams');
    await fwd.close();
    server.close();
    // facility 13 (log audit) * 8 + severity 5 (notice) = 109; denied → warning (4) = 108.
    expect(msgs[0]).toMatch(new RegExp(`^<109>1 ${e.at.toISOString().replace(/\./g, '\\.')} gw1 jitgate ${process.pid} session\\.started \\[jitgate@32473 seq="${e.seq}" outcome="success" actor="a\\\\"li\\\\]ce" hash="${e.hash}"\\] \\uFEFF\\{`));
    expect(JSON.parse(msgs[0]!.slice(msgs[0]!.indexOf('\uFEFF') + 1))).toMatchObject({ seq: e.seq, computer: 'web01' });
    expect(msgs[1]!.startsWith(`<108>1 `)).toBe(true);
    expect(msgs[1]).toContain(`seq="${denied.seq}"`);
  });

  it('sends octet-counted messages over a unix stream socket, buffering until it connects; an absent target never fails recording', async () => {
    const path = join(dir, 'syslog.sock');
    let buf = '';
    const server = createServer((s) => s.on('data', (d: Buffer) => (buf += d.toString('utf8'))));
    await new Promise<void>((r) => server.listen(path, () => r()));
    const audit = new AuditLog(db);
    const fwd = forwardAudit(audit, auditForwardConfigSchema.parse({ syslog: { target: `unix:${path}`, facility: 4, appName: 'jg' } }));
    const evs = [];
    for (let i = 0; i < 3; i++) evs.push(await audit.record({ type: 'recording.viewed', actor: 'carol', outcome: 'success', data: { i } }));
    const frames = await until(() => {
      const out: string[] = [];
      let rest = Buffer.from(buf, 'utf8');
      for (;;) {
        const sp = rest.indexOf(0x20);
        if (sp < 0) break;
        const len = Number(rest.subarray(0, sp).toString());
        if (rest.length < sp + 1 + len) break;
        out.push(rest.subarray(sp + 1, sp + 1 + len).toString('utf8'));
        rest = rest.subarray(sp + 1 + len);
      }
      return out.length >= 3 ? out : undefined;
    }, 'three framed messages');
    expect(frames.map((m) => m.match(/seq="(\d+)"/)![1])).toEqual(evs.map((e) => String(e.seq)));
    expect(frames[0]!.startsWith('<37>1 ')).toBe(true);
    await fwd.close();
    await new Promise<void>((r) => server.close(() => r()));

    const nowhere = forwardAudit(audit, auditForwardConfigSchema.parse({ syslog: { target: `unix:${join(dir, 'absent.sock')}` }, file: join(dir, 'no-such-dir', 'x.jsonl') }));
    const e = await audit.record({ type: 'auth.signed_in', actor: 'dave', outcome: 'success' });
    expect(e.seq).toBeGreaterThan(0);
    await nowhere.close();
  });

  it('rejects bad targets in configuration', () => {
    expect(auditForwardConfigSchema.safeParse({ syslog: { target: 'http://x:1' } }).success).toBe(false);
    expect(auditForwardConfigSchema.safeParse({ syslog: { target: 'udp://[::1]:514' } }).success).toBe(true);
    expect(auditForwardConfigSchema.safeParse({ bogus: 1 }).success).toBe(false);
  });
});
