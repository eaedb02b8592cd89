import type { Database } from '../../core/db/database.js';
import type { LiveSessions } from '../contracts.js';
import type { EndComputerSessions } from './access-request.service.js';

/**
 * End a person's live sessions on one computer wherever they run: the live
 * registry's entries of that person whose session row names the computer,
 * terminated the way an admin's terminate and disabling a person do
 * (gateway/sessions/end-live-sessions.ts): the holding gateway closes the
 * connection, audits `session.terminated` with `by`, and tears down.
 */
export function computerSessionEnder(db: Database, live: Pick<LiveSessions, 'list' | 'terminate'>): EndComputerSessions {
  return async (computerId, personId, by) => {
    const mine = (await live.list()).filter((l) => l.personId === personId || l.personId === undefined);
    if (mine.length === 0) return [];
    const rows = await db.query<{ id: string }>('SELECT id FROM sessions WHERE id = ANY($1::uuid[]) AND computer_id = $2 AND person_id = $3', [mine.map((l) => l.sessionId), computerId, personId]);
    const ended: string[] = [];
    for (const r of rows) {
      await live.terminate(r.id, by);
      ended.push(r.id);
    }
    return ended;
  };
}
