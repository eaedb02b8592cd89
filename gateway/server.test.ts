import { describe, expect, it } from 'vitest';
import fp from 'fastify-plugin';
import { JitgateError, CoreErrors } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { silentLogger } from '../core/logging.js';
import { createMetrics } from './metrics.js';
import { buildServer } from './server.js';

describe('HTTP server', () => {
  it('reports not ready with the failing dependency, and a request id on every answer', async () => {
    const app = await buildServer({
      log: silentLogger(), metrics: createMetrics(), version: 't',
      readiness: [
        { name: 'database', check: async () => undefined },
        { name: 'redis', check: async () => { throw new JitgateError(CoreErrors.JIT_ERR_REDIS_UNREACHABLE, { reason: 'ECONNREFUSED' }); } },
      ],
    });
    const r = await app.inject({ url: '/readyz', headers: { 'x-request-id': 'abc-123' } });
    expect(r.statusCode).toBe(503);
    expect(r.headers['x-request-id']).toBe('abc-123');
    expect(r.json()).toEqual({ status: 'not ready', checks: [{ name: 'database', ok: true }, { name: 'redis', ok: false, error: 'redis unreachable: ECONNREFUSED' }] });
    await app.close();
  });

  it('maps typed errors to their status and hides unexpected ones', async () => {
    const app = await buildServer({
      log: silentLogger(), metrics: createMetrics(), version: 't', readiness: [],
      apiPlugins: [
        async (a) => {
          a.get('/typed', async () => { throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'computer web01' }); });
          a.get('/boom', async () => { throw new Error('secret internals: password=hunter2'); });
        },
      ],
    });
    const t = await app.inject({ url: '/api/v1/typed' });
    expect(t.statusCode).toBe(404);
    expect(t.json()).toEqual({ code: 'JIT_ERR_NOT_FOUND', message: 'computer web01 not found', details: { what: 'computer web01' } });
    const b = await app.inject({ url: '/api/v1/boom' });
    expect(b.statusCode).toBe(500);
    expect(b.body).not.toContain('hunter2');
    expect(b.json().code).toBe('JIT_ERR_INTERNAL');
    await app.close();
  });
  it('serves /metrics only with server.metricsToken, and only to its bearer', async () => {
    const closed = await buildServer({ log: silentLogger(), metrics: createMetrics(), version: 't', readiness: [] });
    expect((await closed.inject({ url: '/metrics' })).statusCode).toBe(404);
    expect((await closed.inject({ url: '/metrics', headers: { authorization: 'Bearer anything' } })).statusCode).toBe(404);
    await closed.close();

    const token = 'metrics-token-0123456789';
    const app = await buildServer({ log: silentLogger(), metrics: createMetrics(), version: 't', readiness: [], metricsToken: new Secret(token) });
    const anon = await app.inject({ url: '/metrics' });
    expect(anon.statusCode).toBe(401);
    expect(anon.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(anon.body).not.toContain('jitgate_');
    for (const authorization of [`Bearer ${token}x`, `Bearer ${token.slice(1)}`, token, `Basic ${token}`]) {
      expect((await app.inject({ url: '/metrics', headers: { authorization } })).statusCode).toBe(401);
    }
    const ok = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${token}` } });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toContain('jitgate_http_requests_total');
    await app.close();
  });

  it('shows the API description (/api/docs, /api/openapi.json) to signed-in people only', async () => {
    // Stands in for the auth plugin: a root onRequest hook that sets req.principal.
    const fakeAuth = fp(async (a) => {
      a.addHook('onRequest', async (req) => {
        req.principal = req.headers['x-who'] === 'pat'
          ? { personId: 'p', login: 'pat', displayName: 'Pat', role: 'technician', organizationId: 'o', authSessionId: 's' }
          : null;
      });
    });
    const app = await buildServer({ log: silentLogger(), metrics: createMetrics(), version: 't', readiness: [], rootPlugins: [async (a) => a.register(fakeAuth)] });
    for (const url of ['/api/docs', '/api/docs/', '/api/docs/json', '/api/docs/static/index.html', '/api/openapi.json']) {
      const r = await app.inject({ url });
      expect(r.statusCode, url).toBe(401);
      expect(r.json().code, url).toBe('JIT_ERR_AUTH_REQUIRED');
    }
    const doc = await app.inject({ url: '/api/openapi.json', headers: { 'x-who': 'pat' } });
    expect(doc.statusCode).toBe(200);
    expect(Object.keys(doc.json().paths)).toContain('/readyz');
    expect([200, 302]).toContain((await app.inject({ url: '/api/docs', headers: { 'x-who': 'pat' } })).statusCode);
    await app.close();
  });
});
