import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { silentLogger } from '../core/logging.js';
import { SecretBox } from '../core/secret-box.js';
import { createAuth, createPerson } from '../gateway/auth/index.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { databaseFactories } from './harness/databases.js';

/**
 * issue 12 item 6 with a real reverse proxy: Debian's haproxy terminates TLS
 * (a throw-away certificate made by openssl) on loopback and forwards to the
 * gateway from its own source address, 127.0.0.2, the only address in
 * `server.trustProxy`. Clients use other loopback addresses (127.0.0.0/8 is
 * all loopback on Linux), so "direct" and "through the proxy" are told
 * apart exactly as on a real network.
 */

const PROXY_ADDR = '127.0.0.2';
const haproxy = spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0;
const openssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
const missing = !haproxy ? 'haproxy not installed (scripts/deps/proxy.txt)' : !openssl ? 'openssl not installed' : '';
const pglite = databaseFactories().find((f) => f.label === 'pglite')!;

interface Answer {
  status: number;
  setCookie: string[];
  body: string;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const end = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${stderr()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`haproxy did not listen: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(missing !== '')(`behind a TLS-terminating reverse proxy (haproxy)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let dir: string;
  let db: Database;
  let app: FastifyInstance;
  let audit: AuditLog;
  let proxy: ChildProcess;
  let proxyPort = 0;
  let gwPort = 0;
  let ca: Buffer;
  const login = `pat${randomBytes(3).toString('hex')}`;
  const PASSWORD = 'correct horse battery staple';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jgt-proxy-'));
    const mk = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=jitgate-test', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { encoding: 'utf8' });
    if (mk.status !== 0) throw new Error(`openssl: ${mk.stderr}`);
    ca = readFileSync(join(dir, 'cert.pem'));
    writeFileSync(join(dir, 'site.pem'), Buffer.concat([ca, readFileSync(join(dir, 'key.pem'))]), { mode: 0o600 });

    db = await pglite.open();
    audit = new AuditLog(db);
    await createPerson(db, { login, displayName: 'Pat', role: 'global_admin', organizationId: null, password: PASSWORD });
    const trustProxy = [PROXY_ADDR];
    const auth = createAuth({
      db, box: new SecretBox(randomBytes(32)), audit, log: silentLogger(), trustProxy, attemptsPerMinute: 3,
      cfg: { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: 100, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' },
    });
    app = await buildServer({ log: silentLogger(), metrics: createMetrics(), version: 'test', readiness: [], trustProxy, rootPlugins: [auth.plugin] });
    await app.listen({ host: '127.0.0.1', port: 0 });
    gwPort = (app.server.address() as { port: number }).port;

    proxyPort = await freePort();
    // What an operator would write: TLS at the proxy, X-Forwarded-Proto set
    // (never passed through from the client), the client address appended.
    writeFileSync(join(dir, 'haproxy.cfg'), [
      'global',
      '  maxconn 64',
      'defaults',
      '  mode http',
      '  timeout connect 5s',
      '  timeout client 30s',
      '  timeout server 30s',
      'frontend fe',
      `  bind 127.0.0.1:${proxyPort} ssl crt ${join(dir, 'site.pem')}`,
      '  http-request set-header X-Forwarded-Proto https',
      '  option forwardfor',
      '  default_backend be',
      'backend be',
      `  server gw 127.0.0.1:${gwPort} source ${PROXY_ADDR}`,
      '',
    ].join('\n'));
    const check = spawnSync('haproxy', ['-c', '-f', join(dir, 'haproxy.cfg')], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`haproxy -c: ${check.stdout}${check.stderr}`);
    proxy = spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proxy.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    await waitForPort(proxyPort, proxy, () => err);
  });

  afterAll(async () => {
    if (proxy && proxy.exitCode === null) {
      const exited = new Promise((r) => proxy.once('exit', r));
      proxy.kill('SIGTERM');
      await exited;
    }
    await app?.close();
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** POST /auth/sign-in through haproxy (https), from `from`. */
  function viaProxy(from: string, body: object, headers: Record<string, string> = {}): Promise<Answer> {
    return send(httpsRequest, { host: '127.0.0.1', port: proxyPort, ca, localAddress: from }, body, headers);
  }
  /** The same straight to the gateway (plain http), from `from`. */
  function direct(from: string, body: object, headers: Record<string, string> = {}): Promise<Answer> {
    return send(httpRequest, { host: '127.0.0.1', port: gwPort, localAddress: from }, body, headers);
  }
  function send(req: typeof httpRequest, opts: object, body: object, headers: Record<string, string>): Promise<Answer> {
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const r = req({ ...opts, method: 'POST', path: '/api/v1/auth/sign-in', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers } }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => {
          const sc = res.headers['set-cookie'] ?? [];
          resolve({ status: res.statusCode ?? 0, setCookie: sc, body: text });
        });
      });
      r.on('error', reject);
      r.end(payload);
    });
  }
  async function failedIps(since: number): Promise<string[]> {
    const events = await audit.list({ type: 'auth.sign_in_failed', actor: login });
    return events.slice(since).map((e) => (e.data as { ip: string }).ip);
  }

  it('signing in through the proxy sets a Secure cookie; straight over plain http on loopback it does not', async () => {
    const proxied = await viaProxy('127.0.0.1', { login, password: PASSWORD });
    expect(proxied.status).toBe(200);
    const c = proxied.setCookie.find((s) => s.startsWith('jitgate_session='))!;
    expect(c).toMatch(/; Secure/);
    expect(c).toMatch(/; HttpOnly/);
    // A client claiming https by itself is not believed.
    const spoofed = await direct('127.0.0.1', { login, password: PASSWORD }, { 'x-forwarded-proto': 'https' });
    expect(spoofed.status).toBe(200);
    expect(spoofed.setCookie.find((s) => s.startsWith('jitgate_session='))).not.toMatch(/; Secure/);
  });

  it('audits and rate-limits the real client: X-Forwarded-For counts only when the proxy added it', async () => {
    const before = (await audit.list({ type: 'auth.sign_in_failed', actor: login })).length;
    // Through the proxy, the client's own X-Forwarded-For entry is left of the hop haproxy appended: ignored.
    expect((await viaProxy('127.0.0.3', { login, password: 'wrong password 1' }, { 'x-forwarded-for': '198.51.100.7' })).status).toBe(401);
    // Straight to the gateway, a forged header changes nothing.
    expect((await direct('127.0.0.4', { login, password: 'wrong password 2' }, { 'x-forwarded-for': '203.0.113.9' })).status).toBe(401);
    expect(await failedIps(before)).toEqual(['127.0.0.3', '127.0.0.4']);

    // Rate limit (3 a minute per address and login): a direct client rotating forged addresses is still one key.
    for (const fake of ['203.0.113.10', '203.0.113.11']) {
      expect((await direct('127.0.0.4', { login, password: 'wrong password x' }, { 'x-forwarded-for': fake })).status).toBe(401);
    }
    const limited = await direct('127.0.0.4', { login, password: PASSWORD }, { 'x-forwarded-for': '203.0.113.12' });
    expect(limited.status).toBe(429);
    expect(JSON.parse(limited.body).code).toBe('JIT_ERR_AUTH_RATE_LIMITED');
    // Through the proxy each real client has its own key (not the proxy's address for all).
    for (let i = 0; i < 2; i++) expect((await viaProxy('127.0.0.3', { login, password: 'wrong password y' })).status).toBe(401);
    expect((await viaProxy('127.0.0.3', { login, password: PASSWORD })).status).toBe(429);
    expect((await viaProxy('127.0.0.5', { login, password: PASSWORD })).status).toBe(200);
  });
});
