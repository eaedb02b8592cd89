/**
 * In-memory token bucket per key (IP + login). Per gateway process: with
 * several gateways the lockout counter in the database is the shared limit,
 * this only slows a single client down.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly capacity: number,
    private readonly perMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Take one token; `retryAfterS` > 0 when the bucket is empty. */
  take(key: string): { ok: boolean; retryAfterS: number } {
    const t = this.now();
    const rate = this.capacity / this.perMs;
    const b = this.#buckets.get(key) ?? { tokens: this.capacity, at: t };
    // A clock stepped back (NTP) must not drain the bucket for as long as it stepped.
    b.tokens = Math.min(this.capacity, b.tokens + Math.max(0, t - b.at) * rate);
    b.at = t;
    if (this.#buckets.size > 10_000) this.#prune(t);
    this.#buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true, retryAfterS: 0 };
    }
    return { ok: false, retryAfterS: Math.max(1, Math.ceil((1 - b.tokens) / rate / 1000)) };
  }

  #prune(t: number): void {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + (t - b.at) * (this.capacity / this.perMs) >= this.capacity) this.#buckets.delete(k);
    }
  }
}
