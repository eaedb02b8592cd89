/**
 * Run `fn` over `items` with at most `limit` calls in flight, in order of
 * start. `fn` is expected to handle its own failures; one that throws stops
 * no other item, and the first such error is rethrown once all have settled.
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, not ${limit}`);
  let next = 0;
  let firstError: { err: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        firstError ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (firstError) throw firstError.err;
}
