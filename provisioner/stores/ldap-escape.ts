/**
 * Escaping for values placed into LDAP distinguished names (RFC 4514) and
 * search filters (RFC 4515), and the sAMAccountName character rules of
 * Active Directory. Pure functions; no I/O.
 */
import { JitgateError } from '../../core/errors.js';
import { StoreErrors } from '../errors.js';

const DN_SPECIAL = new Set([',', '+', '"', '\\', '<', '>', ';', '=']);

function hex(ch: string): string {
  return [...Buffer.from(ch, 'utf8')].map((b) => `\\${b.toString(16).padStart(2, '0')}`).join('');
}

/**
 * Escape an attribute value for use inside an RDN (RFC 4514 section 2.4):
 * `, + " \ < > ; =` get a backslash, a leading `#` or space and a trailing
 * space are escaped, NUL becomes `\00`. Other characters (including
 * non-ASCII) are sent as UTF-8, which the RFC allows.
 */
export function escapeDnValue(value: string): string {
  let out = '';
  const chars = [...value];
  chars.forEach((ch, i) => {
    if (ch === '\0') out += '\\00';
    else if (DN_SPECIAL.has(ch)) out += `\\${ch}`;
    else if (i === 0 && (ch === '#' || ch === ' ')) out += `\\${ch}`;
    else if (i === chars.length - 1 && ch === ' ') out += '\\ ';
    else out += ch;
  });
  return out;
}

/**
 * Escape an assertion value for a search filter (RFC 4515 section 3):
 * `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c`, `\00`.
 */
export function escapeFilterValue(value: string): string {
  let out = '';
  for (const ch of value) {
    if (ch === '*' || ch === '(' || ch === ')' || ch === '\\' || ch === '\0') out += hex(ch);
    else out += ch;
  }
  return out;
}

/**
 * Characters AD refuses in a sAMAccountName ([MS-ADTS] 3.1.1.5.2.1.1 / "User
 * Name Formats"): `" / \ [ ] : ; | = , + * ? < > @` and control characters.
 */
const SAM_FORBIDDEN = /["/\\[\]:;|=,+*?<>@\u0000-\u001f\u007f]/u;

/** Longest sAMAccountName AD accepts for a user (pre-Windows 2000 logon name). */
export const SAM_MAX_LENGTH = 20;

/**
 * What jitgate itself generates (`<login>_<random>`, `msp-<code>`): ASCII
 * letters and digits, then also `.`, `_`, `-`. Narrower than what AD allows
 * on purpose: no name that needs DN escaping, looks like shell, or differs
 * only by Unicode normalisation ever reaches the directory.
 */
const SAM_ALLOWED = /^[A-Za-z0-9][A-Za-z0-9._-]*$/u;

/**
 * Throw JIT_ERR_STORE_INVALID_NAME unless `name` is a sAMAccountName this
 * store will handle: 1-20 characters, none AD forbids, only the jitgate
 * alphabet above, not ending in a dot (AD strips it).
 */
export function assertValidSamAccountName(name: string): void {
  const fail = (reason: string): never => {
    throw new JitgateError(StoreErrors.JIT_ERR_STORE_INVALID_NAME, { what: 'account', reason });
  };
  if (name.length === 0) fail('empty');
  if ([...name].length > SAM_MAX_LENGTH) fail(`longer than ${SAM_MAX_LENGTH} characters`);
  if (SAM_FORBIDDEN.test(name)) fail('contains a character Active Directory forbids in sAMAccountName');
  if (!SAM_ALLOWED.test(name)) fail('only ASCII letters and digits, then ".", "_" and "-" are accepted');
  if (name.endsWith('.')) fail('ends with a dot');
}
