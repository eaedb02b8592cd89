import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Content-Security-Policy of the web app. Everything is bundled and served
 * from this origin (no CDN, no external fonts).
 * - script-src 'wasm-unsafe-eval': asciinema-player compiles its terminal
 *   emulator from WebAssembly; no JavaScript eval is allowed.
 * - style-src 'unsafe-inline': xterm.js and asciinema-player create <style>
 *   elements at run time for their themes and cell sizes.
 * - connect-src 'self': fetch and same-origin ws:/wss: (CSP Level 3 §6.7.2.8
 *   lets 'self' match the websocket schemes of the page's own host).
 */
export const WEB_CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

function securityHeaders(reply: FastifyReply): void {
  reply.header('content-security-policy', WEB_CSP);
  reply.header('x-content-type-options', 'nosniff');
  reply.header('referrer-policy', 'no-referrer');
  reply.header('x-frame-options', 'DENY');
  reply.header('cross-origin-opener-policy', 'same-origin');
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>jitgate</title></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem">
<h1>jitgate</h1><p>The web app is not built. Build it once with</p>
<pre>node --import tsx web/build.ts</pre><p>and reload this page. The API is available under <code>/api/v1</code> (see <a href="/api/docs">/api/docs</a>).</p>
</body></html>`;

function isApiPath(url: string): boolean {
  return url === '/api' || url.startsWith('/api/') || url.startsWith('/api?');
}

/**
 * Root plugin (pass it in `buildServer({ rootPlugins: [webStatic(dir)] })`)
 * serving the built web app from `distDir` (web/dist):
 * - hashed files under /assets/ cached for a year as immutable, index.html
 *   `no-cache` so a new build is picked up at once;
 * - every other GET outside /api answers index.html (history routing:
 *   /setup, /terminal/<id>, ...); unknown /api paths keep the JSON 404;
 * - a strict CSP and the usual hardening headers on everything it serves;
 * - without a build, a small page saying how to build it.
 */
export function webStatic(distDir: string): (app: FastifyInstance) => Promise<void> {
  const root = resolve(distDir);
  return async (app) => {
    const built = existsSync(join(root, 'index.html'));

    const notFound = (req: FastifyRequest, reply: FastifyReply) => {
      const path = req.url.split('?')[0] ?? '/';
      if (isApiPath(path) || (req.method !== 'GET' && req.method !== 'HEAD')) {
        return reply.status(404).send({ code: 'JIT_ERR_NOT_FOUND', message: `${req.method} ${path} not found`, details: { what: 'route' } });
      }
      securityHeaders(reply);
      if (path.startsWith('/assets/') || /\.[a-z0-9]{1,8}$/i.test(path)) {
        return reply.status(404).type('text/plain; charset=utf-8').header('cache-control', 'no-store').send('not found');
      }
      reply.header('cache-control', 'no-cache');
      if (!built) return reply.status(503).type('text/html; charset=utf-8').send(NOT_BUILT);
      return reply.type('text/html; charset=utf-8').sendFile('index.html', root, { cacheControl: false });
    };

    if (built) {
      await app.register(fastifyStatic, {
        root,
        prefix: '/',
        index: 'index.html',
        wildcard: true,
        dotfiles: 'ignore',
        cacheControl: false,
        redirect: false,
        schemaHide: true,
        setHeaders: (reply, path) => {
          securityHeaders(reply);
          const rel = path.slice(root.length).replace(/\\/g, '/');
          reply.header('cache-control', rel.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
        },
      });
    } else {
      app.get('/', { schema: { hide: true } }, async (req, reply) => notFound(req, reply));
    }
    app.setNotFoundHandler(notFound);
  };
}
