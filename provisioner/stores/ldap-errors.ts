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
  noSuchObject: 32,
  invalidCredentials: 49,
  insufficientAccessRights: 50,
  busy: 51,
  unavailable: 52,
  unwillingToPerform: 53,
  entryAlreadyExists: 68,
} as const;

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
}

function transportReason(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return typeof code === 'string' ? code : err.name;
  }
  return 'unknown error';
}

/** Map anything thrown by ldapts to a JitgateError (JitgateErrors pass through). */
export function mapLdapError(err: unknown, ctx: ErrorContext): JitgateError {
  if (isJitgateError(err)) return err;
  const code = ldapResultCode(err);
  if (code === undefined) {
    // Socket, TLS, timeout and parser errors: the store is not usable right now.
    return new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: ctx.store, reason: transportReason(err) }, { cause: err });
  }
  const opts = { cause: err };
  switch (code) {
    case LdapResult.entryAlreadyExists:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_ACCOUNT_EXISTS, { name: ctx.name }, opts);
    case LdapResult.constraintViolation:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_PASSWORD_POLICY, { reason: `constraint violation (LDAP 19) during ${ctx.operation}` }, opts);
    case LdapResult.unwillingToPerform:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_UNWILLING, { reason: `unwilling to perform (LDAP 53) during ${ctx.operation}` }, opts);
    case LdapResult.noSuchObject:
      if (ctx.group !== undefined) return new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP, { group: ctx.group }, opts);
      return new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT, { name: ctx.name }, opts);
    case LdapResult.invalidCredentials: {
      const data = adBindDataCode(err);
      const reason = data === undefined ? 'invalid credentials (LDAP 49)' : `${AD_BIND_DATA_CODES[data] ?? 'bind refused'} (LDAP 49, AD data ${data})`;
      return new JitgateError(StoreErrors.JIT_ERR_STORE_AUTH, { store: ctx.store, reason }, opts);
    }
    case LdapResult.strongerAuthRequired:
    case LdapResult.confidentialityRequired:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_INSECURE, { operation: ctx.operation }, opts);
    case LdapResult.busy:
    case LdapResult.unavailable:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_UNREACHABLE, { store: ctx.store, reason: `server busy or unavailable (LDAP ${code})` }, opts);
    case LdapResult.insufficientAccessRights:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: ctx.store, reason: `insufficient access rights (LDAP 50) during ${ctx.operation}` }, opts);
    default:
      return new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: ctx.store, reason: `LDAP result ${code} during ${ctx.operation}` }, opts);
  }
}
