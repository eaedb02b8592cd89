import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { makeMarker, parseMarker } from './reconcile-plan.js';

describe('ownership markers', () => {
  it('round-trip, stay within the 48 characters of a Windows description, and reject anything else', () => {
    for (let i = 0; i < 50; i++) {
      const id = randomUUID();
      const m = makeMarker('abcd1234abcd1234', id);
      expect(m.length).toBeLessThanOrEqual(48);
      expect(m).toMatch(/^jitgate:[A-Za-z0-9:._-]+$/);
      expect(parseMarker(m)).toEqual({ installationId: 'abcd1234abcd1234', accountId: id });
    }
    for (const bad of ['', 'jitgate:', 'jitgate:abcd:short', 'Jitgate:abcd1234:AAAAAAAAAAAAAAAAAAAAAA', 'jitgate:ab*d:AAAAAAAAAAAAAAAAAAAAAA', 'x jitgate:abcd:AAAAAAAAAAAAAAAAAAAAAA']) {
      expect(parseMarker(bad)).toBeNull();
    }
  });
});
