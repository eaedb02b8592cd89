import type { Queryable } from '../../core/db/database.js';

/** An approved request whose window is open now. */
export interface OpenWindow {
  requestId: string;
  breakGlass: boolean;
  endsAt: Date;
}

/**
 * The approved, unexpired, unrevoked window of `personId` on `computerId`
 * at `now`, or null. Read at the moment a session is checked (never from a
 * cached list): a revocation committed a millisecond earlier is seen.
 */
export async function openWindowFor(db: Queryable, computerId: string, personId: string, now: Date = new Date()): Promise<OpenWindow | null> {
  const rows = await db.query<{ id: string; break_glass: boolean; window_ends_at: Date | string }>(
    `SELECT id, break_glass, window_ends_at FROM access_requests
      WHERE computer_id = $1 AND requester_id = $2 AND state = 'approved' AND window_ends_at > $3
      ORDER BY window_ends_at DESC LIMIT 1`,
    [computerId, personId, now],
  );
  const r = rows[0];
  return r ? { requestId: r.id, breakGlass: r.break_glass, endsAt: new Date(r.window_ends_at) } : null;
}
