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

/** One attribute type and value of an RDN, normalised for comparison. */
export interface DnAttribute {
  /** Lower-cased attribute type (`ou`, `dc`, `cn`, or an OID). */
  type: string;
  /** Unescaped value, lower-cased (AD compares DN values case-insensitively). */
  value: string;
}

/**
 * Parse a distinguished name (RFC 4514 section 3) into its RDNs, most
 * specific first, each a set of attributes (multi-valued RDNs are sorted so
 * `A=1+B=2` equals `B=2+A=1`). Escapes (`\,` and `\2c`) are resolved, so two
 * spellings of one DN parse equal. Returns null for anything malformed
 * (empty RDN, missing `=`, dangling escape, bad hex): a caller deciding
 * authorization treats that as "not inside".
 */
export function parseDn(dn: string): DnAttribute[][] | null {
  if (dn.trim() === '') return null;
  const rdns: DnAttribute[][] = [];
  let attrs: DnAttribute[] = [];
  let type = '';
  let bytes: number[] = [];
  let inValue = false;
  // Unescaped spaces around a value are not part of it (RFC 4514 section 2.4); escaped ones are.
  let pendingSpaces = 0;
  const flushAttr = (): boolean => {
    if (!inValue) return false;
    const t = type.trim().toLowerCase();
    if (!/^([a-z][a-z0-9-]*|[0-9]+(\.[0-9]+)*)$/.test(t) || bytes.length === 0) return false;
    attrs.push({ type: t, value: Buffer.from(bytes).toString('utf8').toLowerCase() });
    type = '';
    bytes = [];
    inValue = false;
    pendingSpaces = 0;
    return true;
  };
  const utf8 = (s: string) => [...Buffer.from(s, 'utf8')];
  for (let i = 0; i < dn.length; i++) {
    const ch = dn[i]!;
    if (!inValue) {
      if (ch === '=') inValue = true;
      else if (ch === ',' || ch === '+' || ch === '\\') return null;
      else type += ch;
      continue;
    }
    if (ch === '\\') {
      const next = dn[i + 1];
      if (next === undefined) return null;
      for (; pendingSpaces > 0; pendingSpaces--) bytes.push(0x20);
      if (/[0-9A-Fa-f]/.test(next)) {
        const pair = dn.slice(i + 1, i + 3);
        if (!/^[0-9A-Fa-f]{2}$/.test(pair)) return null;
        bytes.push(parseInt(pair, 16));
        i += 2;
      } else if ('"+,;<>\\ #='.includes(next)) {
        bytes.push(...utf8(next));
        i += 1;
      } else return null; // RFC 4514 escapes only the specials, space, # and =, or a hex pair
      continue;
    }
    if (ch === ',' || ch === '+' || ch === ';') {
      if (!flushAttr()) return null;
      if (ch !== '+') {
        rdns.push(attrs.sort((a, b) => (a.type + '=' + a.value < b.type + '=' + b.value ? -1 : 1)));
        attrs = [];
      }
      continue;
    }
    if (ch === ' ') {
      if (bytes.length > 0) pendingSpaces++;
      continue;
    }
    for (; pendingSpaces > 0; pendingSpaces--) bytes.push(0x20);
    bytes.push(...utf8(ch));
  }
  if (!flushAttr()) return null;
  rdns.push(attrs.sort((a, b) => (a.type + '=' + a.value < b.type + '=' + b.value ? -1 : 1)));
  return rdns;
}

/**
 * Whether `dn` equals `ancestor` or lies below it, compared RDN by RDN
 * (never by string suffix: `OU=x,DC=evilcorp,DC=example` is not inside
 * `DC=corp,DC=example`). Malformed input is never inside anything.
 */
export function isDnWithin(dn: string, ancestor: string): boolean {
  const child = parseDn(dn);
  const parent = parseDn(ancestor);
  if (!child || !parent || child.length < parent.length) return false;
  const offset = child.length - parent.length;
  return parent.every((rdn, i) => {
    const other = child[offset + i]!;
    return rdn.length === other.length && rdn.every((a, j) => a.type === other[j]!.type && a.value === other[j]!.value);
  });
}
