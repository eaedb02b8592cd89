import { hash, verify, type Algorithm } from '@node-rs/argon2';
import { JitgateError } from '../../core/errors.js';
import { AuthErrors } from './errors.js';

/**
 * Password hashing: argon2id with the OWASP "19 MiB, 2 passes, 1 lane"
 * parameters (OWASP Password Storage Cheat Sheet). `Algorithm` is a const
 * enum (isolatedModules cannot read it): 2 = Argon2id.
 */
const ARGON2ID = 2 as Algorithm;
const OPTIONS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 };

export const PASSWORD_MIN_LENGTH = 10;
export const PASSWORD_MAX_LENGTH = 1024;

/** Throws JIT_ERR_AUTH_WEAK_PASSWORD. Length only (NIST SP 800-63B 5.1.1.2: no composition rules). */
export function checkPasswordPolicy(password: string, login?: string): void {
  if (password.length < PASSWORD_MIN_LENGTH) {
    throw new JitgateError(AuthErrors.JIT_ERR_AUTH_WEAK_PASSWORD, { reason: `at least ${PASSWORD_MIN_LENGTH} characters` });
  }
  if (password.length > PASSWORD_MAX_LENGTH) {
    throw new JitgateError(AuthErrors.JIT_ERR_AUTH_WEAK_PASSWORD, { reason: `at most ${PASSWORD_MAX_LENGTH} characters` });
  }
  if (login && password.toLowerCase().includes(login.toLowerCase())) {
    throw new JitgateError(AuthErrors.JIT_ERR_AUTH_WEAK_PASSWORD, { reason: 'must not contain the login' });
  }
}

export function hashPassword(password: string): Promise<string> {
  return hash(password, OPTIONS);
}

let dummy: Promise<string> | undefined;

/** Compute the dummy hash ahead of the first unknown login (otherwise that one answer is slower). */
export function warmUpPasswordHashing(): Promise<string> {
  dummy ??= hash('jitgate-dummy-password', OPTIONS);
  return dummy;
}

/**
 * Verify `password` against `stored`; with no stored hash (unknown login, no
 * password set) a dummy hash is verified instead, so the answer takes as
 * long either way and does not reveal which logins exist.
 */
export async function verifyPassword(stored: string | null | undefined, password: string): Promise<boolean> {
  if (password.length > PASSWORD_MAX_LENGTH) return false;
  if (!stored) {
    await verify(await warmUpPasswordHashing(), password).catch(() => false);
    return false;
  }
  try {
    return await verify(stored, password);
  } catch {
    return false;
  }
}
