/**
 * Translation of ldapts errors into JitgateError at the LDAP boundary.
 * Decisions use the LDAP result code (RFC 4511 appendix A) and, for failed
 * binds, the Active Directory data code; never the message text as such.
 */
import { ResultCodeError } from 'ldapts';
import { JitgateError, isJitgateError } from '../../core/errors.js';
import { StoreErrors } from '../errors.js';

/** LDAP result codes (RFC 4511 appendix A.1) this store reacts to. */
export const LdapResult = {
  strongerAuthRequired: 8,
  confidentialityRequired: 13,
  noSuchAttribute: 16,
  constraintViolation: 19,
  attributeOrValueExists: 20,
  invalidAttributeSyntax: 21,
  noSuchObject: 32,
  invalidCredentials: 49,
  insufficientAccessRights: 50,
  busy: 51,
  unavailable: 52,
  unwillingToPerform: 53,
  entryAlreadyExists: 68,
} as const;

/**
 * Result codes of RFC 4511 appendix A.1 in words, for messages an operator
 * reads (`LDAP result 21` alone says nothing). Where Active Directory gives a
 * code a typical cause, it is named.
 */
export const LDAP_RESULT_WORDS: Readonly<Record<number, string>> = {
  1: 'operations error',
  2: 'protocol error',
  3: 'time limit exceeded',
  4: 'size limit exceeded',
  7: 'authentication method not supported',
  8: 'stronger authentication required',
  10: 'referral (the entry is in another naming context)',
  11: 'administrative limit exceeded',
  12: 'unavailable critical extension',
  13: 'confidentiality required',
  16: 'no such attribute',
  17: 'undefined attribute type',
  18: 'inappropriate matching',
  19: 'constraint violation (a value too long, or the password policy)',
  20: 'attribute or value exists',
  21: 'invalid attribute syntax (a value too long or malformed)',
  32: 'no such object',
  34: 'invalid DN syntax',
  36: 'alias dereferencing problem',
  48: 'inappropriate authentication',
  49: 'invalid credentials',
  50: 'insufficient access rights',
  51: 'busy',
  52: 'unavailable',
  53: 'unwilling to perform (e.g. the password policy, or a password set without TLS)',
  54: 'loop detected',
  64: 'naming violation',
  65: 'object class violation',
  66: 'not allowed on a non-leaf entry',
  67: 'not allowed on the RDN',
  68: 'entry already exists',
  69: 'object class modifications prohibited',
  71: 'affects multiple DSAs',
  80: 'other error',
};

/** `invalid attribute syntax (...) (LDAP 21)`: the words for a result code, and the code. */
export function ldapResultWords(code: number): string {
  return `${LDAP_RESULT_WORDS[code] ?? 'unknown result'} (LDAP ${code})`;
}

/** The LDAP result code of an ldapts error, or undefined for transport errors. */
export function ldapResultCode(err: unknown): number | undefined {
  return err instanceof ResultCodeError ? err.code : undefined;
}

/**
 * AD puts a Win32 error in the diagnostic message of a failed bind
 * (`80090308: LdapErr: ..., data 52e, v...`; [MS-ADTS] 3.1.1.3.4.1.17 and
 * Microsoft "LDAP error 49 data codes"). It is a structured field, not prose.
 */
const AD_BIND_DATA_CODES: Readonly<Record<string, string>> = {
  '525': 'user not found',
  '52e': 'invalid credentials',
  '530': 'logon not permitted at this time',
  '531': 'logon not permitted at this workstation',
  '532': 'password expired',
  '533': 'account disabled',
  '568': 'too many security IDs',
  '701': 'account expired',
  '773': 'password must be reset',
  '775': 'account locked out',
};

/** The AD data code of a failed bind (`52e`, `533`, ...), if present. */
export function adBindDataCode(err: unknown): string | undefined {
  if (!(err instanceof ResultCodeError)) return undefined;
  const m = /\bdata ([0-9a-f]{3,8})\b/i.exec(err.message);
  return m?.[1]?.toLowerCase();
}

export interface ErrorContext {
  /** The store label used in messages (the URL). */
  readonly store: string;
  /** What was being done, e.g. `create`, `bind`. */
  readonly operation: string;
  readonly name?: string;
  readonly group?: string;
  /** The connect/operation timeout in force, and how long the failed attempt took: tells "no answer" from a quick failure. */
  readonly timeoutMs?: number;
  readonly elapsedMs?: number;
}

/** Node's errno codes of a failed connection, in words. */
const SOCKET_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by the peer',
  EPIPE: 'connection closed by the peer',
  ETIMEDOUT: 'connection timed out (TCP)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EHOSTDOWN: 'host down',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed (temporary)',
};

/** OpenSSL certificate verification codes (X509_V_ERR_*) as Node reports them in `err.code`. */
const TLS_TRUST_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
]);

function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

/**
 * Why a transport failure happened, in words: by the errno / TLS code Node
 * sets, else by time (ldapts reports its own timeouts as plain Errors, so an
 * attempt that lasted the whole timeout is called a timeout; the message
 * text is never read).
 */
export function transportReason(err: unknown, ctx: Pick<ErrorContext, 'timeoutMs' | 'elapsedMs'> = {}): string {
  const code = err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
  if (typeof code === 'string') {
    const words = SOCKET_ERRORS[code];
    if (words !== undefined) return words;
    if (TLS_TRUST_ERRORS.has(code)) return `TLS certificate not trusted (${code}): check caCert`;
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'TLS certificate does not name this host (ERR_TLS_CERT_ALTNAME_INVALID)';
    if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `TLS certificate not valid now (${code})`;
    if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return `TLS handshake failed (${code})`;
    return code;
  }
  if (ctx.timeoutMs !== undefined && ctx.elapsedMs !== undefined && ctx.elapsedMs >= ctx.timeoutMs * 0.95) {
    return `no answer: timed out after ${formatSeconds(ctx.timeoutMs)}`;
  }
  if (err instanceof Error) return 'connection closed before the directory answered';
  return 'unknown error';
}

/** Map anything thrown by ldapts to a JitgateError (JitgateErrors pass through). */
export function mapLdapError(err: unknown, ctx: ErrorContext): JitgateError {
  if (isJitgateError(err)) return err;
  const code = ldapResultCode(err);
  if (code === undefined) {
    // Socket, TLS, timeout and parser errors: the store is not usable right now.
    return new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: ctx.store, reason: transportReason(err, ctx) }, { cause: err });
  }
  const opts = { cause: err };
  switch (code) {
    case LdapResult.entryAlreadyExists:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_ACCOUNT_EXISTS, { name: ctx.name }, opts);
    case LdapResult.constraintViolation:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_PASSWORD_POLICY, { reason: `${ldapResultWords(code)} during ${ctx.operation}` }, opts);
    case LdapResult.unwillingToPerform:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_UNWILLING, { reason: `${ldapResultWords(code)} during ${ctx.operation}` }, opts);
    case LdapResult.noSuchObject:
      if (ctx.group !== undefined) return new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP, { group: ctx.group }, opts);
      return new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT, { name: ctx.name }, opts);
    case LdapResult.invalidCredentials: {
      const data = adBindDataCode(err);
      const reason = data === undefined ? ldapResultWords(code) : `${AD_BIND_DATA_CODES[data] ?? 'bind refused'} (LDAP 49, AD data ${data})`;
      return new JitgateError(StoreErrors.JIT_ERR_STORE_AUTH, { store: ctx.store, reason }, opts);
    }
    case LdapResult.strongerAuthRequired:
    case LdapResult.confidentialityRequired:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_INSECURE, { operation: ctx.operation }, opts);
    case LdapResult.busy:
    case LdapResult.unavailable:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: ctx.store, reason: `server ${ldapResultWords(code)}` }, opts);
    case LdapResult.insufficientAccessRights:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: ctx.store, reason: `${ldapResultWords(code)} during ${ctx.operation}: the service account may not do this` }, opts);
    default:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: ctx.store, reason: `${ldapResultWords(code)} during ${ctx.operation}` }, opts);
  }
}
