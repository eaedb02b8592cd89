import { describe, expect, it } from 'vitest';
import type { LiveSessionInfo } from '../contracts.js';
import { liveSessionEnder, matchesLiveSession } from './end-live-sessions.js';

const entry = (over: Partial<LiveSessionInfo>): LiveSessionInfo => ({
  sessionId: 's', personLogin: 'lena', computerName: 'pc', protocol: 'ssh', account: null, startedAt: '2030-01-01T00:00:00Z', gateway: 'gw', ...over,
});

describe('which live sessions a sign-in ends', () => {
  it('matches by person, then by the sign-in that opened the session', () => {
    const m = { personId: 'p1', login: 'lena', authSessionIds: ['a1'] };
    expect(matchesLiveSession(entry({ personId: 'p1', authSessionId: 'a1' }), m)).toBe(true);
    expect(matchesLiveSession(entry({ personId: 'p1', authSessionId: 'a2' }), m)).toBe(false);
    expect(matchesLiveSession(entry({ personId: 'p2', personLogin: 'lena', authSessionId: 'a1' }), m)).toBe(false);
    // Entries from a gateway that did not record the sign-in: ended (too much is safe, too little is not).
    expect(matchesLiveSession(entry({}), m)).toBe(true);
    expect(matchesLiveSession(entry({ personLogin: 'mark' }), m)).toBe(false);
    // All of a person's but the current sign-in's (own password change).
    const all = { personId: 'p1', login: 'lena', exceptAuthSessionId: 'a1' };
    expect(matchesLiveSession(entry({ personId: 'p1', authSessionId: 'a1' }), all)).toBe(false);
    expect(matchesLiveSession(entry({ personId: 'p1', authSessionId: 'ssh:c1' }), all)).toBe(true);
  });

  it('terminates each match with the actor, and reports them', async () => {
    const terminated: [string, string][] = [];
    const end = liveSessionEnder({
      list: async () => [entry({ sessionId: 'x', personId: 'p1', authSessionId: 'a1' }), entry({ sessionId: 'y', personId: 'p1', authSessionId: 'a2' })],
      terminate: async (id, by) => {
        terminated.push([id, by]);
        return true;
      },
    });
    expect(await end({ personId: 'p1', login: 'lena', authSessionIds: ['a2'] }, 'gus')).toEqual(['y']);
    expect(terminated).toEqual([['y', 'gus']]);
  });
});
