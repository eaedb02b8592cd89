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

  /** `prefix` is the live-session registry's prefix (`<redis.prefix>:live`). */
  constructor(redis: RedisOptions, prefix: string) {
    this.#redis = new Redis({ ...redis, lazyConnect: true, maxRetriesPerRequest: 3 });
    this.#redis.on('error', () => undefined);
    this.#prefix = prefix;
  }

  async deadHolders(holders: readonly string[]): Promise<ReadonlySet<string>> {
    const gateways = holders.filter((h) => h.startsWith('gateway:'));
    if (gateways.length === 0) return new Set();
    if (this.#redis.status === 'wait') await this.#redis.connect();
    const alive = await this.#redis.mget(...gateways.map((h) => `${this.#prefix}:alive:${h.slice('gateway:'.length)}`));
    return new Set(gateways.filter((_, i) => alive[i] === null));
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}
