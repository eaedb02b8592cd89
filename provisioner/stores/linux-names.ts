/**
 * Validation and shell quoting for values the SSH store puts into commands.
 *
 * Every value is validated against a strict allow-list first, then single-quoted
 * anyway: validation alone is one mistake away from injection, quoting alone
 * lets through names that other tools (cron, sudoers, NSS) misread.
 */
import { CoreErrors, JitgateError } from '../../core/errors.js';
import { MARKER_PREFIX } from '../account-store.js';
import { StoreErrors } from '../errors.js';

/** Longest user/group name accepted (Linux `LOGIN_NAME_MAX` is 256, but utmp's ut_user is 32). */
export const LINUX_NAME_MAX = 32;

/**
 * The conservative name rule of `useradd(8)` (NAME_REGEX of Debian's adduser.conf
 * without upper case and `$`): lower-case letter or `_`, then lower-case letters,
 * digits, `_` and `-`. No leading `-` (it would read as an option).
 */
const LINUX_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

/** `jitgate:<installation>:<account-id>`; no blanks, commas or shell metacharacters. */
const MARKER = /^jitgate:[A-Za-z0-9:._-]+$/;
export const MARKER_MAX = 200;

/**
 * Where the marker goes in GECOS, `:` is the passwd field separator, so
 * useradd/usermod refuse it (exit 3). The marker is stored with `:` replaced by
 * `;`, a character the marker syntax never contains, so the mapping is reversible.
 */
export const GECOS_MARKER_PREFIX = 'jitgate;';

export type LinuxNameKind = 'user' | 'group';

export function isValidLinuxName(value: unknown): value is string {
  return typeof value === 'string' && LINUX_NAME.test(value);
}

function describeBadName(value: unknown): string {
  if (typeof value !== 'string') return 'not a string';
  if (value.length === 0) return 'empty';
  if (value.length > LINUX_NAME_MAX) return `longer than ${LINUX_NAME_MAX} characters`;
  return 'only a-z, 0-9, _ and - are allowed, starting with a-z or _';
}

/** Throws JIT_ERR_STORE_INVALID_NAME unless `value` is a safe Linux user/group name. */
export function assertValidLinuxName(value: unknown, what: LinuxNameKind): asserts value is string {
  if (!isValidLinuxName(value)) {
    // The rejected value itself stays out of the error: it may be hostile or huge.
    throw new JitgateError(StoreErrors.JIT_ERR_STORE_INVALID_NAME, { what, reason: describeBadName(value) });
  }
}

export function isValidMarker(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MARKER_MAX && MARKER.test(value);
}

export function assertValidMarker(value: unknown): asserts value is string {
  if (!isValidMarker(value)) {
    throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, {
      reason: `marker must match ${MARKER.source} and be at most ${MARKER_MAX} characters`,
    });
  }
}

/** Marker → the GECOS value written by useradd/usermod `-c`. */
export function markerToGecos(marker: string): string {
  assertValidMarker(marker);
  return marker.replaceAll(':', ';');
}

/**
 * GECOS → marker. The marker is the first comma-separated GECOS sub-field when
 * it is an encoded jitgate marker; anything else is returned unchanged (never
 * starts with `jitgate:`, since GECOS cannot contain `:`).
 */
export function gecosToMarker(gecos: string): string {
  const first = gecos.split(',', 1)[0] ?? '';
  if (first.startsWith(GECOS_MARKER_PREFIX)) {
    const marker = first.replaceAll(';', ':');
    if (isValidMarker(marker) && marker.startsWith(MARKER_PREFIX)) return marker;
  }
  return gecos;
}

/**
 * POSIX shell single-quoting: `'` → `'\''`. Refuses NUL (cannot be passed in a
 * command line at all); callers validate values before quoting.
 */
export function shellQuote(value: string): string {
  if (value.includes('\0')) {
    throw new JitgateError(StoreErrors.JIT_ERR_STORE_INVALID_NAME, { what: 'shell argument', reason: 'contains NUL' });
  }
  return `'${value.replaceAll("'", "'\\''")}'`;
}

/**
 * The expiry date for `useradd -e` / `usermod -e`: the calendar day (UTC) after
 * `expiresAt`. shadow(5) stores whole days and the account stops working at the
 * *start* of that day, in the target's time zone; the extra day keeps a lease
 * that ends late in the day from being cut short on a host east of UTC. The
 * lease itself is enforced by jitgate; this is only the fail-safe.
 */
export function shadowExpiryDate(expiresAt: Date): string {
  const t = expiresAt.getTime();
  if (!Number.isFinite(t)) {
    throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'expiry is not a valid date' });
  }
  const next = new Date(t + 86_400_000);
  const day = next.toISOString().slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) {
    throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'expiry out of range' });
  }
  return day;
}
