import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { generateSecret, generateURI, verify } from 'otplib';
import QRCode from 'qrcode';

/**
 * TOTP (RFC 6238): SHA-1, 6 digits, 30 s steps, ±1 step accepted for clock
 * drift, each step accepted at most once (the caller keeps the last used
 * step, RFC 6238 section 5.2). Recovery codes are one-time and stored as
 * SHA-256 (they carry 60 random bits; a slow hash adds nothing).
 */
export const TOTP_PERIOD = 30;
export const RECOVERY_CODE_COUNT = 10;

export function newTotpSecret(): string {
  return generateSecret({ length: 20 });
}

export function totpUri(issuer: string, login: string, secret: string): string {
  return generateURI({ issuer, label: login, secret, algorithm: 'sha1', digits: 6, period: TOTP_PERIOD });
}

export function qrDataUrl(uri: string): Promise<string> {
  return QRCode.toDataURL(uri, { errorCorrectionLevel: 'M', margin: 2, width: 240 });
}

export function isTotpCodeShape(code: string): boolean {
  return /^\d{6}$/.test(code);
}

/**
 * The time step `code` belongs to, if it is valid at `now` (±1 step) and
 * newer than `lastStep`; null otherwise.
 */
export async function verifyTotp(secret: string, code: string, lastStep: number | null, now: Date): Promise<number | null> {
  if (!isTotpCodeShape(code)) return null;
  try {
    const r = await verify({
      secret,
      token: code,
      algorithm: 'sha1',
      digits: 6,
      period: TOTP_PERIOD,
      epoch: Math.floor(now.getTime() / 1000),
      epochTolerance: TOTP_PERIOD,
      ...(lastStep !== null ? { afterTimeStep: lastStep } : {}),
    });
    return r.valid && 'timeStep' in r ? r.timeStep : null;
  } catch {
    return null;
  }
}

// No 0/o, 1/l/i: codes are read off paper.
const ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';

/** `xxxx-xxxx-xxxx`: 12 characters of a 31-letter alphabet (~59 bits). */
export function newRecoveryCode(): string {
  let s = '';
  for (let i = 0; i < 12; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8)}`;
}

/** A fresh set of RECOVERY_CODE_COUNT codes: the codes (shown once) and what is stored (their hashes). */
export function newRecoveryCodeSet(): { codes: string[]; hashes: string[] } {
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
  return { codes, hashes: codes.map(hashRecoveryCode) };
}

export function normalizeRecoveryCode(code: string): string {
  return code.trim().toLowerCase().replace(/[\s-]/g, '');
}

export function isRecoveryCodeShape(code: string): boolean {
  return /^[a-z0-9]{12}$/.test(normalizeRecoveryCode(code));
}

export function hashRecoveryCode(code: string): string {
  return createHash('sha256').update(`jitgate-recovery:${normalizeRecoveryCode(code)}`).digest('hex');
}

/** Index of the stored hash matching `code`, or -1 (compares every entry in constant time). */
export function matchRecoveryCode(storedHashes: readonly string[], code: string): number {
  const h = Buffer.from(hashRecoveryCode(code), 'hex');
  let found = -1;
  storedHashes.forEach((s, i) => {
    const b = Buffer.from(s, 'hex');
    if (b.length === h.length && timingSafeEqual(b, h) && found < 0) found = i;
  });
  return found;
}
