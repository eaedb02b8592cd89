import type { TestProject } from 'vitest/node';
import { postgresAvailable, startPostgres, type PostgresHandle } from './harness/postgres.js';
import { redisAvailable, startRedis, type RedisHandle } from './harness/redis.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** unix socket of the shared test Redis ('' when unavailable) */
    redisSocket: string;
    /** admin URL of the shared test PostgreSQL ('' when unavailable) */
    pgUrl: string;
    /** why a service is missing, for skip messages */
    missing: string;
  }
}

/**
 * Starts the real services every integration suite shares: one Redis, one
 * PostgreSQL, each on a private unix socket in a fresh directory. Suites
 * isolate themselves by unique queue prefixes and databases. In CI both are
 * required; elsewhere a missing one makes the suites that need it skip and
 * say why.
 */
// Each suite stops the Samba DCs and sshd hosts it started; `scripts/samba-ad.sh
// cleanup-all` and `scripts/ssh-host.sh cleanup-all` clear leftovers by hand
// (not here: they would also stop the hosts of another run going on).
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const missing: string[] = [];
  let redis: RedisHandle | undefined;
  let pgh: PostgresHandle | undefined;
  const r = redisAvailable();
  if (r.ok) redis = await startRedis();
  else missing.push(r.reason ?? 'redis');
  const p = postgresAvailable();
  if (p.ok) pgh = await startPostgres();
  else missing.push(p.reason ?? 'postgres');
  if (process.env.CI && missing.length > 0) throw new Error(`CI needs real services: ${missing.join('; ')}`);
  project.provide('redisSocket', redis?.socketPath ?? '');
  project.provide('pgUrl', pgh?.url ?? '');
  project.provide('missing', missing.join('; '));
  return async () => {
    await Promise.allSettled([redis?.stop(), pgh?.stop()]);
  };
}
