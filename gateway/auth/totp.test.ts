import { describe, expect, it } from 'vitest';
import { generate } from 'otplib';
import {
  RECOVERY_CODE_COUNT,
  hashRecoveryCode,
  isRecoveryCodeShape,
  matchRecoveryCode,
  newRecoveryCode,
  newTotpSecret,
  totpUri,
  verifyTotp,
} from './totp.js';
import { RateLimiter } from './rate-limit.js';

// RFC 6238 Appendix B test secret ("12345678901234567890") in base32, and its SHA-1 vectors (last 6 digits).
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';

describe('TOTP helpers', () => {
  it('matches the RFC 6238 SHA-1 test vectors', async () => {
    for (const [t, code] of [
      [59, '287082'],
      [1111111109, '081804'],
      [1234567890, '005924'],
      [2000000000, '279037'],
    ] as const) {
      expect(await verifyTotp(RFC_SECRET, code, null, new Date(t * 1000))).toBe(Math.floor(t / 30));
    }
  });

  it('accepts one step of drift either way, not two', async () => {
    const secret = newTotpSecret();
    const t = 1_800_000_015;
    const code = await generate({ secret, epoch: t });
    expect(await verifyTotp(secret, code, null, new Date((t - 30) * 1000))).toBe(Math.floor(t / 30));
    expect(await verifyTotp(secret, code, null, new Date((t + 30) * 1000))).toBe(Math.floor(t / 30));
    expect(await verifyTotp(secret, code, null, new Date((t + 60) * 1000))).toBeNull();
    expect(await verifyTotp(secret, code, null, new Date((t - 60) * 1000))).toBeNull();
  });

  it('refuses a code whose step was already used, and garbage', async () => {
    const secret = newTotpSecret();
    const t = 1_800_000_000;
    const code = await generate({ secret, epoch: t });
    const step = await verifyTotp(secret, code, null, new Date(t * 1000));
    expect(step).toBe(t / 30);
    expect(await verifyTotp(secret, code, step, new Date(t * 1000))).toBeNull();
    expect(await verifyTotp(secret, code, step! - 1, new Date(t * 1000))).toBe(step);
    for (const bad of ['', '12345', '1234567', 'abcdef', ' 12345']) expect(await verifyTotp(secret, bad, null, new Date(t * 1000))).toBeNull();
  });

  it('builds an otpauth URI with issuer, label and secret', () => {
    const secret = newTotpSecret();
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    const uri = new URL(totpUri('jitgate', 'alice', secret));
    expect(uri.protocol).toBe('otpauth:');
    expect(decodeURIComponent(uri.pathname)).toMatch(/jitgate:alice$/);
    expect(uri.searchParams.get('secret')).toBe(secret);
    expect(uri.searchParams.get('issuer')).toBe('jitgate');
  });
});

describe('recovery codes', () => {
  it('are distinct, readable, and match their hash only (case and dashes ignored)', () => {
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    expect(new Set(codes).size).toBe(RECOVERY_CODE_COUNT);
    for (const c of codes) {
      expect(c).toMatch(/^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$/);
      expect(isRecoveryCodeShape(c)).toBe(true);
    }
    const hashes = codes.map(hashRecoveryCode);
    expect(hashes.join()).not.toContain(codes[0]!.replace(/-/g, ''));
    expect(matchRecoveryCode(hashes, codes[3]!)).toBe(3);
    expect(matchRecoveryCode(hashes, codes[3]!.toUpperCase().replace(/-/g, ' '))).toBe(3);
    expect(matchRecoveryCode(hashes, newRecoveryCode())).toBe(-1);
    expect(isRecoveryCodeShape('123456')).toBe(false);
  });
});

describe('rate limiter', () => {
  it('allows the burst, then refills at the configured rate, per key', () => {
    let t = 0;
    const rl = new RateLimiter(10, 60_000, () => t);
    for (let i = 0; i < 10; i++) expect(rl.take('a').ok).toBe(true);
    const denied = rl.take('a');
    expect(denied.ok).toBe(false);
    expect(denied.retryAfterS).toBe(6);
    expect(rl.take('b').ok).toBe(true);
    t += 6_000;
    expect(rl.take('a').ok).toBe(true);
    expect(rl.take('a').ok).toBe(false);
  });
});
