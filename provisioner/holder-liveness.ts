/**
 * Who holds a session open, and whether they still do. Gateways heart-beat
 * in Redis (gateway/sessions/live-sessions.ts); the reconciler, which runs
 * in workers that never import gateway/, asks through this interface so a
 * session whose gateway died is torn down at once instead of at the end of
 * its lease.
 */
export interface HolderLiveness {
  /** Of `holders` (`gateway:<id>`), those provably gone: no heartbeat within their stale window. */
  deadHolders(holders: readonly string[]): Promise<ReadonlySet<string>>;
}

/** The holder string of a gateway, as stored in `sessions.holder`. */
export function gatewayHolder(gatewayId: string): string {
  return `gateway:${gatewayId}`;
}

/**
 * For operator commands on the embedded database: only one process can open
 * it, so when the CLI runs, no gateway does; every gateway holder is gone.
 */
export const noGatewayRunning: HolderLiveness = {
  deadHolders: async (holders) => new Set(holders.filter((h) => h.startsWith('gateway:'))),
};
