import type { LiveSessionInfo, LiveSessions } from '../contracts.js';

/**
 * Which live sessions of one person to end. Without `authSessionIds` every
 * one of theirs; with it, only those opened under these sign-ins (the web
 * sign-in id, or `ssh:<connection>` for the SSH front door). A live entry
 * written by a gateway that did not record its sign-in counts as opened
 * under any sign-in: ending too much is safe, keeping too much is not.
 */
export interface LiveSessionMatch {
  personId: string;
  /** Matched when an entry has no personId. */
  login: string;
  authSessionIds?: readonly string[];
  /** Keep sessions opened under this sign-in (a person changing their own password keeps the tab they use). */
  exceptAuthSessionId?: string;
}

/** End matching live sessions (e.g. after sign-out, a revoked sign-in, a password change, an MFA reset). */
export type EndLiveSessions = (match: LiveSessionMatch, by: string) => Promise<string[]>;

export function matchesLiveSession(l: LiveSessionInfo, m: LiveSessionMatch): boolean {
  if (l.personId !== undefined ? l.personId !== m.personId : l.personLogin !== m.login) return false;
  if (m.exceptAuthSessionId !== undefined && l.authSessionId === m.exceptAuthSessionId) return false;
  if (m.authSessionIds && l.authSessionId !== undefined && !m.authSessionIds.includes(l.authSessionId)) return false;
  return true;
}

/**
 * Terminate the matching sessions wherever they run: the registry tells the
 * holding gateway, which closes the connection, audits `session.terminated`
 * with `by` as actor, and enqueues the teardown (the path an admin's
 * terminate and disabling a person take). Returns the ended session ids.
 */
export function liveSessionEnder(live: Pick<LiveSessions, 'list' | 'terminate'>): EndLiveSessions {
  return async (match, by) => {
    const ended: string[] = [];
    for (const l of await live.list()) {
      if (!matchesLiveSession(l, match)) continue;
      await live.terminate(l.sessionId, by);
      ended.push(l.sessionId);
    }
    return ended;
  };
}
