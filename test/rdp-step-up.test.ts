import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { generate } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import type { Computer } from '../core/domain.js';
import { silentLogger } from '../core/logging.js';
import { Secret } from '../core/secret.js';
import { SecretBox } from '../core/secret-box.js';
import { checkCsrfQuery, createAuth, stepUpCheck } from '../gateway/auth/index.js';
import { createMetrics } from '../gateway/metrics.js';
import { rdpRoutes } from '../gateway/rdp/rdp-tunnel.js';
import { buildServer } from '../gateway/server.js';
import { SESSION_CLOSE } from '../gateway/sessions/close-codes.js';
import { signIn, type SignedInClient } from './fixtures/signed-in.js';
import { databaseFactories } from './harness/databases.js';
import { FixedBroker, SlotRecorder, startGuacdPeer, type GuacdPeer } from './harness/guacd-peer.js';

/**
 * Step-up at connect time (issue 15: "a computer can require a fresh
 * passkey/TOTP confirmation at connect time") on the RDP path: a person
 * signed in for real (password + TOTP, session cookie, CSRF token) opens the
 * remote-desktop websocket to a computer whose policy asks for a
 * confirmation within 5 minutes. An older one is refused before anything is
 * provisioned or guacd (the Guacamole-protocol test peer) is asked; after
 * POST /auth/step-up with a fresh code the same sign-in connects. The
 * clock of the identity module and of the check is moved, not waited for.
 */
const pglite = databaseFactories().find((f) => f.label === 'pglite')!;
const PASSWORD = `pw-${randomUUID()}`;

function computer(policy: Record<string, unknown>): Computer {
  return {
    id: randomUUID(), organizationId: 'o1', name: 'win-stepup', address: '10.9.8.7', protocols: ['rdp'], sshPort: 22, rdpPort: 3389,
    domainStore: 'ad', localStore: null, jit: {}, policy, restricted: false,
  };
}

interface Attempt {
  code: number;
  /** `jitgate,error,<code>,<message>` as the browser reads it, when one came. */
  error: string[] | undefined;
  ready: boolean;
}

/** Open the tunnel as the browser does (cookie of the sign-in, CSRF token in the query) and read until it is ready or closed. */
function connect(url: string, c: SignedInClient, csrf = c.csrf): Promise<Attempt> {
  const q = new URLSearchParams({ computer: 'win-stepup', accountType: 'domain', width: '1024', height: '768', dpi: '96', csrf });
  const ws = new WebSocket(`${url}?${q.toString()}`, 'guacamole', { headers: { cookie: `jitgate_session=${c.cookie}` } });
  let text = '';
  return new Promise((resolve, reject) => {
    const result = (code: number): Attempt => {
      // Whole instructions only: `<len>.<opcode>,<len>.<arg>…;` (the messages here are ASCII).
      const instructions = text.split(';').map((i) => i.split(',').map((e) => e.slice(e.indexOf('.') + 1)));
      return { code, error: instructions.find((i) => i[0] === 'jitgate' && i[1] === 'error')?.slice(2), ready: instructions.some((i) => i[0] === 'jitgate' && i[1] === 'ready') };
    };
    ws.on('message', (d: Buffer) => {
      text += d.toString('utf8');
      if (result(0).ready) {
        ws.close(1000);
        resolve(result(0));
      }
    });
    ws.on('close', (code) => resolve(result(code)));
    ws.on('error', reject);
  });
}

describe('RDP connect with step-up, through the real sign-in (cookie + CSRF)', () => {
  let db: Database;
  let app: FastifyInstance;
  let peer: GuacdPeer;
  let broker: FixedBroker;
  let url = '';
  let dir = '';
  let clock = Date.now();
  const now = (): Date => new Date(clock);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jitgate-rdp-stepup-'));
    db = await pglite.open();
    const audit = new AuditLog(db);
    const auth = createAuth({
      db, box: new SecretBox(randomBytes(32)), audit, log: silentLogger(), now,
      cfg: { sessionHours: 12, idleMinutes: 600, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' },
    });
    peer = await startGuacdPeer();
    broker = new FixedBroker(computer({ stepUpMinutes: 5 }), { username: 'alice_k3x9q2', password: new Secret('Pw-1'), domain: 'CORP' });
    app = await buildServer({
      log: silentLogger(), metrics: createMetrics(), version: 'test', readiness: [], rootPlugins: [auth.plugin],
      apiPlugins: [
        rdpRoutes({
          log: silentLogger(), broker, recorder: new SlotRecorder(dir), guacd: { host: peer.host, port: peer.port }, guacdTimeoutMs: 10_000,
          // as app/main.ts wires the tunnel
          checkCsrf: checkCsrfQuery, stepUp: stepUpCheck(db, now),
        }),
      ],
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/api/v1/rdp`;
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await peer?.close();
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a sign-in whose last confirmation is older than the computer asks, before provisioning or guacd; connects after POST /auth/step-up', async () => {
    const org = randomUUID();
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [org, `org-${org.slice(0, 8)}`, String(10_000_000 + Math.floor(Math.random() * 89_999_999))]);
    const c = await signIn(app, db, { login: `stella${randomBytes(2).toString('hex')}`, role: 'technician', organizationId: org, password: PASSWORD }, { totpTime: () => clock });

    // Just signed in with a TOTP code: fresh enough.
    const fresh = await connect(url, c);
    expect(fresh).toMatchObject({ ready: true, error: undefined });
    expect(broker.provisioned).toBe(1);

    // Six minutes later the same sign-in is too old for a computer that asks within five.
    clock += 6 * 60_000;
    const sessionsAtGuacd = peer.connections.length + peer.probes.length;
    const stale = await connect(url, c);
    expect(stale.code).toBe(SESSION_CLOSE.accessDenied);
    expect(stale.ready).toBe(false);
    expect(stale.error).toEqual(['JIT_ERR_AUTH_STEP_UP_REQUIRED', 'win-stepup asks you to confirm it is you (passkey or authentication code) within 5 min before connecting']);
    // Refused in the broker's admit: nothing provisioned, guacd not contacted.
    expect(broker.provisioned).toBe(1);
    expect(peer.connections.length + peer.probes.length).toBe(sessionsAtGuacd);

    // The CSRF token is checked first: a wrong one is refused whatever the step-up.
    const forged = await connect(url, c, 'not-the-token');
    expect(forged.code).toBe(SESSION_CLOSE.accessDenied);
    expect(forged.error?.[0]).toBe('JIT_ERR_AUTH_CSRF');

    // A wrong code does not confirm; a fresh one does, and the same sign-in connects.
    clock += 31_000;
    expect((await c.post('/auth/step-up', { code: '000000' })).statusCode).toBe(401);
    expect((await connect(url, c)).error?.[0]).toBe('JIT_ERR_AUTH_STEP_UP_REQUIRED');
    const confirmed = await c.post('/auth/step-up', { code: await generate({ secret: c.secret, epoch: Math.floor(clock / 1000) }) });
    expect(confirmed.statusCode).toBe(204);
    const after = await connect(url, c);
    expect(after).toMatchObject({ ready: true, error: undefined });
    expect(broker.provisioned).toBe(2);
    await peer.waitFor(() => peer.connections.length >= 2, 10_000, 'the second session at guacd');
  });
});
