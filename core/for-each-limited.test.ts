import { describe, expect, it } from 'vitest';
import { forEachLimited } from './for-each-limited.js';

/** Resolvable by hand: the order of events is forced, never timed. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((res) => (open = res));
  return { promise, open };
}

describe('forEachLimited', () => {
  it('keeps exactly `limit` calls in flight and starts the next as one finishes', async () => {
    const gates = Array.from({ length: 5 }, gate);
    const started: number[] = [];
    let inFlight = 0;
    let most = 0;
    const run = forEachLimited(gates, 2, async (g, i) => {
      started.push(i);
      most = Math.max(most, ++inFlight);
      await g.promise;
      inFlight--;
    });
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    gates[1]!.open();
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2]);
    for (const g of gates) g.open();
    await run;
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(most).toBe(2);
  });

  it('a failing item stops no other; the first error is rethrown after all settled', async () => {
    const seen: number[] = [];
    const run = forEachLimited([0, 1, 2, 3], 2, async (n) => {
      seen.push(n);
      if (n === 1 || n === 2) throw new Error(`item ${n}`);
    });
    await expect(run).rejects.toThrow('item 1');
    expect(seen.sort()).toEqual([0, 1, 2, 3]);
  });

  it('does nothing for no items and refuses a limit below 1', async () => {
    await forEachLimited([], 3, async () => { throw new Error('never'); });
    await expect(forEachLimited([1], 0, async () => undefined)).rejects.toThrow(RangeError);
  });
});
