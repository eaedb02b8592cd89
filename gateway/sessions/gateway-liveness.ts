import { Redis, type RedisOptions } from 'ioredis';
import type { HolderLiveness } from '../../provisioner/holder-liveness.js';

/**
 * Which gateways holding sessions are gone, read from the `alive:<id>` keys
 * every gateway's RedisLiveSessions refreshes on each heartbeat with a
 * time-to-live (docs/jit-engine.md "Reconciler"). A holder that is not a
 * gateway is never reported gone.
 */
export class RedisGatewayLiveness implements HolderLiveness {
  readonly #redis: Redis;
  readonly #prefix: string;

  readonly #staleMs: number;

  /**
   * `prefix` is the live-session registry's prefix (`<redis.prefix>:live`);
   * `staleMs` its alive keys' time-to-live (RedisLiveSessions: 4 × 5 s).
   */
  constructor(redis: RedisOptions, prefix: string, staleMs = 20_000) {
    this.#redis = new Redis({ ...redis, lazyConnect: true, maxRetriesPerRequest: 3 });
    this.#redis.on('error', () => undefined);
    this.#prefix = prefix;
    this.#staleMs = staleMs;
  }

  async deadHolders(holders: readonly string[]): Promise<ReadonlySet<string>> {
    const gateways = holders.filter((h) => h.startsWith('gateway:'));
    if (gateways.length === 0) return new Set();
    if (this.#redis.status === 'wait') await this.#redis.connect();
    // A Redis that lost its data (restarted empty) has no alive key at all until each gateway's next
    // heartbeat: nobody is provably gone before one whole stale window of this Redis's data has passed.
    // `since` is when this data began, on Redis's own clock (no skew between machines).
    const [sec, micro] = await this.#redis.time();
    const now = Number(sec) * 1000 + Math.floor(Number(micro) / 1000);
    await this.#redis.set(`${this.#prefix}:since`, String(now), 'NX');
    const since = Number(await this.#redis.get(`${this.#prefix}:since`));
    if (!(now - since >= this.#staleMs)) return new Set();
    const alive = await this.#redis.mget(...gateways.map((h) => `${this.#prefix}:alive:${h.slice('gateway:'.length)}`));
    return new Set(gateways.filter((_, i) => alive[i] === null));
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}
