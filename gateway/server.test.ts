import { describe, expect, it } from 'vitest';
import { JitgateError, CoreErrors } from '../core/errors.js';
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
});
