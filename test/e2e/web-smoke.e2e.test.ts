import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { silentLogger } from '../../core/logging.js';
import { createMetrics } from '../../gateway/metrics.js';
import { buildServer } from '../../gateway/server.js';
import { WEB_CSP, webStatic } from '../../gateway/web-static.js';
import { buildWeb } from '../../web/build.js';
import { chromiumAvailable, launchBrowser, screenshot } from './browser.js';

/**
 * The built web app served by webStatic on a bare buildServer — no identity
 * routes yet, so the two API calls the sign-in page makes (GET /auth/me and
 * GET /auth/providers) are answered by stubs with the documented shapes
 * ("not signed in"; no identity provider configured).
 */
async function serve(distDir: string): Promise<{ app: FastifyInstance; url: string }> {
  const app = await buildServer({
    log: silentLogger(),
    metrics: createMetrics(),
    version: 't',
    readiness: [],
    rootPlugins: [webStatic(distDir)],
    apiPlugins: [
      async (a) => {
        a.get('/auth/me', async () => ({ person: null, pending: null, csrfToken: 'stub-csrf' }));
        a.get('/auth/providers', async () => []);
      },
    ],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  return { app, url: `http://127.0.0.1:${addr.port}` };
}

describe('web app served by webStatic', () => {
  let dist = '';
  let buildMs = 0;
  beforeAll(async () => {
    dist = mkdtempSync(join(tmpdir(), 'jg-web-dist-'));
    const t = Date.now();
    await buildWeb(dist);
    buildMs = Date.now() - t;
  }, 180_000);
  afterAll(() => {
    if (dist) rmSync(dist, { recursive: true, force: true });
  });

  it('serves index.html no-cache with the CSP, hashed assets immutable, SPA fallback outside /api, JSON 404 inside', async () => {
    console.log(`web build: ${buildMs} ms`);
    const { app } = await serve(dist);
    try {
      const index = await app.inject({ url: '/' });
      expect(index.statusCode).toBe(200);
      expect(index.headers['content-type']).toMatch(/text\/html/);
      expect(index.headers['cache-control']).toBe('no-cache');
      expect(index.headers['content-security-policy']).toBe(WEB_CSP);
      expect(index.headers['x-content-type-options']).toBe('nosniff');
      expect(index.headers['referrer-policy']).toBe('no-referrer');
      expect(WEB_CSP).toContain("frame-ancestors 'none'");
      expect(WEB_CSP).toContain("default-src 'self'");
      expect(index.body).not.toMatch(/https?:\/\//); // no CDN, no external fonts

      const asset = /src="(\/assets\/[^"]+\.js)"/.exec(index.body)?.[1];
      expect(asset).toBeDefined();
      const js = await app.inject({ url: asset! });
      expect(js.statusCode).toBe(200);
      expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(js.headers['content-type']).toMatch(/javascript/);

      for (const path of ['/setup', '/admin/computers', '/terminal/abc?accountType=local']) {
        const r = await app.inject({ url: path });
        expect(r.statusCode, path).toBe(200);
        expect(r.body, path).toBe(index.body);
        expect(r.headers['cache-control'], path).toBe('no-cache');
        expect(r.headers['content-security-policy'], path).toBe(WEB_CSP);
      }
      const api404 = await app.inject({ url: '/api/v1/nope' });
      expect(api404.statusCode).toBe(404);
      expect(api404.json().code).toBe('JIT_ERR_NOT_FOUND');
      expect((await app.inject({ url: '/assets/missing-abc.js' })).statusCode).toBe(404);
      expect((await app.inject({ method: 'POST', url: '/setup' })).statusCode).toBe(404);
      expect((await app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    } finally {
      await app.close();
    }
  });

  it('without a build says how to build it', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'jg-web-empty-'));
    const { app } = await serve(empty);
    try {
      for (const path of ['/', '/sign-in']) {
        const r = await app.inject({ url: path });
        expect(r.statusCode).toBe(503);
        expect(r.body).toContain('node --import tsx web/build.ts');
        expect(r.headers['content-security-policy']).toBe(WEB_CSP);
      }
      expect((await app.inject({ url: '/api/v1/auth/me' })).statusCode).toBe(200);
    } finally {
      await app.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });

  const browser = chromiumAvailable();
  it.skipIf(!browser.ok)(`loads the sign-in page in chromium without console errors, at 1280x800 and 390x844${browser.ok ? '' : ` (skipped: ${browser.reason})`}`, async () => {
    const { app, url } = await serve(dist);
    const b = await launchBrowser();
    try {
      const page = await b.newPage();
      const t = Date.now();
      const res = await page.goto(`${url}/admin/computers`, { waitUntil: 'load' });
      expect(res?.headers()['content-security-policy']).toBe(WEB_CSP);
      // not signed in: the app routes to the sign-in page and remembers where to go back to
      await page.getByRole('heading', { name: 'Sign in to jitgate' }).waitFor();
      console.log(`sign-in page ready in ${Date.now() - t} ms`);
      expect(new URL(page.url()).pathname).toBe('/sign-in');
      expect(new URL(page.url()).searchParams.get('next')).toBe('/admin/computers');
      expect(await page.evaluate('document.activeElement?.id')).toBe('login');
      // keyboard focus is visible
      await page.keyboard.press('Tab');
      const outline = await page.evaluate('getComputedStyle(document.activeElement).outlineStyle');
      expect(outline).not.toBe('none');
      await screenshot(page, 'smoke-sign-in-1280x800');
      await page.setViewportSize({ width: 390, height: 844 });
      const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
      expect(overflow).toBeLessThanOrEqual(0);
      await screenshot(page, 'smoke-sign-in-390x844');
      expect(b.errors).toEqual([]);
    } finally {
      await b.close();
      await app.close();
    }
  });
});
