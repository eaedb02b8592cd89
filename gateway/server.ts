import Fastify, { type FastifyInstance, type FastifyError, type FastifyBaseLogger, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { CoreErrors, JitgateError, isJitgateError } from '../core/errors.js';
import type { Logger } from '../core/logging.js';
import type { Metrics } from './metrics.js';
import { proxyTrust } from './trusted-proxies.js';

export interface ReadinessCheck {
  name: string;
  check: () => Promise<void>;
}

export interface ServerDeps {
  log: Logger;
  metrics: Metrics;
  readiness: ReadinessCheck[];
  version: string;
  /**
   * `server.trustProxy`: the reverse proxies whose X-Forwarded-For/-Proto/
   * -Host are believed (`req.ip`, `req.protocol`, `req.hostname`), and only
   * on requests whose direct peer is one of them. false: nobody's.
   */
  trustProxy?: false | readonly string[];
  /** `server.metricsToken`: GET /metrics needs `Authorization: Bearer <it>`; absent → /metrics is not served (404). */
  metricsToken?: { reveal(): string };
  /**
   * Plugins registered at the root before any route, wrapped with
   * fastify-plugin so their decorations and hooks apply everywhere (auth:
   * cookies, `req.principal`, CSRF; static web app).
   */
  rootPlugins?: ((app: FastifyInstance) => Promise<void>)[];
  /** Route plugins registered under /api/v1 (sessions, computers, ...). */
  apiPlugins?: ((app: FastifyInstance) => Promise<void>)[];
}

/**
 * The HTTP face of jitgate: health, readiness, metrics, the OpenAPI document
 * and the versioned API. Errors leave as `{ code, message, details }` with
 * the code's HTTP status; unexpected errors never leak their text.
 */
export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const trust = proxyTrust(deps.trustProxy);
  const trustsProxies = Array.isArray(deps.trustProxy) && deps.trustProxy.length > 0;
  const app = Fastify({
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    genReqId: (req) => {
      const h = req.headers['x-request-id'];
      return typeof h === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(h) ? h : randomUUID();
    },
    requestIdHeader: false,
    // A predicate, not `true`: X-Forwarded-For is walked from the right and
    // only hops added by a listed proxy are skipped, so req.ip is the
    // rightmost address no trusted proxy vouches for (proxy-addr semantics).
    trustProxy: trustsProxies ? (addr: string) => trust(addr) : false,
    bodyLimit: 1024 * 1024,
  });

  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    deps.metrics.httpRequests.inc({ method: req.method, route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) });
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (isJitgateError(err)) {
      if (err.status >= 500) req.log.error({ err: { code: err.code, message: err.message } }, 'request failed');
      return reply.status(err.status).send(err.toJSON());
    }
    if (err.validation) {
      return reply.status(400).send({ code: 'JIT_ERR_VALIDATION', message: `invalid input: ${err.message}`, details: {} });
    }
    if (typeof err.statusCode === 'number' && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ code: 'JIT_ERR_VALIDATION', message: err.message, details: {} });
    }
    req.log.error({ err }, 'unexpected error');
    return reply.status(500).send({ code: 'JIT_ERR_INTERNAL', message: 'internal error', details: { requestId: req.id } });
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'jitgate API', version: deps.version, description: 'Privileged session manager gateway with just-in-time accounts.' },
    },
  });
  // Websocket routes (browser terminal, RDP tunnel, live watch) live in API plugins.
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } });
  if (!app.hasRequestDecorator('principal')) app.decorateRequest('principal', null);
  for (const plugin of deps.rootPlugins ?? []) {
    await plugin(app);
  }
  // The API description maps every route an attacker could try: for signed-in
  // people only (registered after the auth plugin, whose onRequest hook sets
  // req.principal; without it nobody is signed in and the docs stay shut).
  const signedIn = async (req: FastifyRequest) => {
    if (!req.principal) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
  };
  await app.register(swaggerUi, { routePrefix: '/api/docs', uiHooks: { preHandler: signedIn } });

  app.get('/healthz', { schema: { description: 'Liveness: the process answers.', tags: ['ops'] } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { description: 'Readiness: every dependency (database, Redis) answers.', tags: ['ops'] } }, async (_req, reply) => {
    const results = await Promise.all(
      deps.readiness.map(async (r) => {
        try {
          await r.check();
          return { name: r.name, ok: true as const };
        } catch (err) {
          return { name: r.name, ok: false as const, error: isJitgateError(err) ? err.message : 'unreachable' };
        }
      }),
    );
    const ok = results.every((r) => r.ok);
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not ready', checks: results });
  });

  // Metrics show routes, job names and load: only to the holder of server.metricsToken.
  // Without one the route still exists and answers 404, so it never falls
  // through to the web app's history routing (index.html with 200).
  const want = deps.metricsToken ? createHash('sha256').update(deps.metricsToken.reveal()).digest() : null;
  app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
    if (!want) throw new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: 'metrics endpoint' });
    // Compare digests: equal length for timingSafeEqual, no length oracle.
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const got = createHash('sha256').update(m?.[1] ?? '').digest();
    if (!m || !timingSafeEqual(got, want)) {
      reply.header('www-authenticate', 'Bearer realm="jitgate metrics"');
      throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
    }
    reply.header('content-type', deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });

  app.get('/api/openapi.json', { schema: { hide: true }, preHandler: signedIn }, async () => app.swagger());

  for (const plugin of deps.apiPlugins ?? []) {
    await app.register(plugin, { prefix: '/api/v1' });
  }
  return app;
}
