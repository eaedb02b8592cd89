import { randomInt } from 'node:crypto';
import { CoreErrors, JitgateError } from '../core/errors.js';

const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
export const SUFFIX_LENGTH = 6;

/**
 * `<login>_<random>`: the login folded to [a-z0-9] (anything else dropped),
 * never starting with a digit (Linux), cut so the whole name fits
 * `maxLength` (20 for AD sAMAccountName and Windows local accounts — Samba
 * accepts more, Windows does not, so we enforce it ourselves).
 */
export function jitAccountName(login: string, maxLength: number, random: () => string = randomSuffix): string {
  let base = login.normalize('NFKD').toLowerCase().replace(/[^a-z0-9]/g, '');
  if (base === '') {
    throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'the login has no letters or digits to build an account name from' });
  }
  if (/^[0-9]/.test(base)) base = `u${base}`;
  const room = maxLength - SUFFIX_LENGTH - 1;
  if (room < 1) throw new Error(`store name limit ${maxLength} too short`);
  return `${base.slice(0, room)}_${random()}`;
}

export function randomSuffix(): string {
  let s = '';
  for (let i = 0; i < SUFFIX_LENGTH; i++) s += ALNUM[randomInt(ALNUM.length)];
  return s;
}

/** The shared per-organization account: `msp-<code>`. */
export function sharedAccountName(code: string): string {
  if (!/^[0-9]{4,8}$/.test(code)) throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'shared account code must be 4-8 digits' });
  return `msp-${code}`;
}

const UPPER = 'ABCDEFGHJKLMNPQRSTUVWXYZ';
const LOWER = 'abcdefghijkmnopqrstuvwxyz';
const DIGIT = '23456789';
const SYMBOL = '!#%+-.:=@^_~';
const ALL = UPPER + LOWER + DIGIT + SYMBOL;

/**
 * A crypto-random password of `length` (>= 24) with all four classes, that
 * contains neither the account name nor any 3+ character token of it (AD's
 * complexity rule compares against sAMAccountName and displayName tokens).
 */
export function generatePassword(accountName: string, length = 28): string {
  if (length < 24) throw new Error('passwords are at least 24 characters');
  const tokens = accountName
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((t) => t.length >= 3);
  tokens.push(accountName.toLowerCase());
  for (;;) {
    const chars = [UPPER, LOWER, DIGIT, SYMBOL].map((set) => set[randomInt(set.length)]!);
    while (chars.length < length) chars.push(ALL[randomInt(ALL.length)]!);
    for (let i = chars.length - 1; i > 0; i--) {
      const j = randomInt(i + 1);
      [chars[i], chars[j]] = [chars[j]!, chars[i]!];
    }
    const pw = chars.join('');
    const lower = pw.toLowerCase();
    if (tokens.every((t) => t === '' || !lower.includes(t))) return pw;
  }
}
