import { describe, expect, it } from 'vitest';
import { pendingStep } from './identity.service.js';
import { stepUpSatisfied } from './step-up.js';

describe('stepUpSatisfied', () => {
  const now = new Date('2026-01-01T12:00:00Z');
  const ago = (min: number) => new Date(now.getTime() - min * 60_000);
  it.each([
    [undefined, null, true, 'no step-up asked'],
    [5, null, false, 'never confirmed'],
    [5, ago(4), true, 'fresh'],
    [5, ago(5), true, 'exactly at the limit'],
    [5, ago(5.01), false, 'just too old'],
    [60, ago(30), true, 'longer window'],
    [5, new Date(now.getTime() + 10_000), true, 'another gateway\'s clock slightly ahead'],
  ] as [number | undefined, Date | null, boolean, string][])('%s min, confirmed %s → %s (%s)', (minutes, at, ok) => {
    expect(stepUpSatisfied(minutes, at, now)).toBe(ok);
  });
});

describe('pendingStep (what a half-done sign-in needs)', () => {
  it.each([
    // totp, passkey, required, passed → next
    [false, false, false, false, 'totp-enrollment'],
    [true, false, false, false, 'totp'],
    [true, true, false, false, 'totp'],
    [false, true, false, false, 'passkey'],
    [false, false, true, false, 'passkey-enrollment'],
    [true, false, true, false, 'totp'],
    [true, false, true, true, 'passkey-enrollment'],
    [true, true, true, false, 'passkey'],
    [true, true, true, true, 'passkey-enrollment'],
    [false, true, true, false, 'passkey'],
  ] as const)('totp %s, passkey %s, required %s, second factor passed %s → %s', (totpEnabled, hasPasskey, passkeyRequired, secondFactorPassed, next) => {
    expect(pendingStep({ totpEnabled, hasPasskey, passkeyRequired, secondFactorPassed })).toBe(next);
  });
});
