import { randomBytes, randomUUID, createHash } from 'node:crypto';
import { CoreErrors, JitgateError } from '../../core/errors.js';
import type { Database, Queryable } from '../../core/db/database.js';
import { ROLES, type Role } from './principal.js';
import { checkPasswordPolicy, hashPassword } from './password.js';

/** Logins become parts of JIT account names (`<login>_<random>`): keep them short and plain. */
export const LOGIN_PATTERN = /^[a-z][a-z0-9._-]{0,31}$/;

export function normalizeLogin(login: string): string {
  return login.trim().toLowerCase();
}

export interface NewPerson {
  login: string;
  displayName: string;
  role: Role;
  /** null only for global admins and global auditors. */
  organizationId: string | null;
  /** Initial password (policy-checked, argon2id); null/absent → cannot sign in with a password. */
  password?: string | null;
  email?: string | null;
}

/**
 * Create a person (used by bootstrap, `jitgate demo`, the people API and
 * tests). TOTP is enrolled at their first sign-in. Throws JIT_ERR_VALIDATION,
 * JIT_ERR_AUTH_WEAK_PASSWORD or JIT_ERR_CONFLICT (login taken).
 */
export async function createPerson(db: Queryable, p: NewPerson): Promise<{ id: string; login: string }> {
  const login = normalizeLogin(p.login);
  if (!LOGIN_PATTERN.test(login)) {
    throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'login: a letter, then up to 31 letters, digits, ".", "_" or "-"' });
  }
  if (!ROLES.includes(p.role)) throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `role: one of ${ROLES.join(', ')}` });
  if (p.organizationId === null && (p.role === 'org_admin' || p.role === 'technician')) {
    throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `organizationId: required for role ${p.role}` });
  }
  let passwordHash: string | null = null;
  if (p.password !== undefined && p.password !== null) {
    checkPasswordPolicy(p.password, login);
    passwordHash = await hashPassword(p.password);
  }
  const existing = await db.query('SELECT 1 FROM people WHERE login = $1', [login]);
  if (existing.length > 0) throw new JitgateError(CoreErrors.JIT_ERR_CONFLICT, { reason: `login ${login} is taken` });
  const id = randomUUID();
  try {
    await db.query(
      'INSERT INTO people (id, login, display_name, email, role, organization_id, password_hash, password_changed_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)',
      [id, login, p.displayName.trim(), p.email ?? null, p.role, p.organizationId, passwordHash, passwordHash ? new Date() : null],
    );
  } catch (err) {
    // 23505 unique_violation: a concurrent create won the race.
    if ((err as { code?: string }).code === '23505') throw new JitgateError(CoreErrors.JIT_ERR_CONFLICT, { reason: `login ${login} is taken` });
    throw err;
  }
  return { id, login };
}

export function sha256hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export const BOOTSTRAP_TTL_HOURS = 24;

/**
 * First run: when no enabled global admin exists, issue a one-time setup
 * token (stored as SHA-256, valid BOOTSTRAP_TTL_HOURS) and return the path
 * `/setup#<token>` to print (the fragment never reaches a server log). Each
 * call issues a new token; earlier unexpired ones stay valid until one of
 * them creates the first admin. Returns null once a global admin exists.
 */
export async function ensureBootstrap(db: Database, opts: { now?: () => Date } = {}): Promise<string | null> {
  const now = opts.now?.() ?? new Date();
  return db.transaction(async (tx) => {
    const admins = await tx.query("SELECT 1 FROM people WHERE role = 'global_admin' AND NOT disabled LIMIT 1");
    await tx.query('DELETE FROM bootstrap_tokens WHERE expires_at < $1 OR used_at IS NOT NULL', [now]);
    if (admins.length > 0) return null;
    const token = randomBytes(24).toString('base64url');
    await tx.query('INSERT INTO bootstrap_tokens (token_hash, created_at, expires_at) VALUES ($1, $2, $3)', [
      sha256hex(token),
      now,
      new Date(now.getTime() + BOOTSTRAP_TTL_HOURS * 3_600_000),
    ]);
    return `/setup#${token}`;
  });
}
