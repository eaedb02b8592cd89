import { InsufficientAccessError, InvalidSyntaxError, UnwillingToPerformError } from 'ldapts';
import { describe, expect, it } from 'vitest';
import { isJitgateError } from '../../core/errors.js';
import { StoreErrors } from '../errors.js';
import { ldapResultWords, mapLdapError, transportReason } from './ldap-errors.js';

const ctx = { store: 'ldaps://dc1:636', operation: 'create', name: 'alice_k3x9q2' };

function errno(code: string): Error {
  return Object.assign(new Error('x'), { code });
}

describe('mapLdapError', () => {
  it('says what a result code means, not just its number', () => {
    const e = mapLdapError(new InvalidSyntaxError(), ctx);
    expect(isJitgateError(e, StoreErrors.JIT_ERR_STORE_FAILED)).toBe(true);
    expect(e.message).toContain('invalid attribute syntax');
    expect(e.message).toContain('(LDAP 21) during create');
    expect(mapLdapError(new InsufficientAccessError(), ctx).message).toContain('insufficient access rights (LDAP 50)');
    expect(mapLdapError(new UnwillingToPerformError(), ctx).message).toContain('unwilling to perform');
    expect(ldapResultWords(32)).toBe('no such object (LDAP 32)');
    expect(ldapResultWords(4242)).toBe('unknown result (LDAP 4242)');
  });

  it('names the cause of a transport failure', () => {
    const reason = (err: unknown, timing = {}) => String(mapLdapError(err, { ...ctx, ...timing }).details.reason);
    expect(reason(errno('ECONNREFUSED'))).toBe('connection refused');
    expect(reason(errno('EHOSTUNREACH'))).toBe('host unreachable');
    expect(reason(errno('SELF_SIGNED_CERT_IN_CHAIN'))).toMatch(/^TLS certificate not trusted \(SELF_SIGNED_CERT_IN_CHAIN\)/);
    expect(reason(errno('ERR_TLS_CERT_ALTNAME_INVALID'))).toMatch(/does not name this host/);
    // ldapts' own timeouts are plain Errors: told apart by how long the attempt took.
    expect(reason(new Error('Connection timeout'), { timeoutMs: 20_000, elapsedMs: 20_004 })).toBe('no answer: timed out after 20 s');
    expect(reason(new Error('Connection closed'), { timeoutMs: 20_000, elapsedMs: 30 })).toBe('connection closed before the directory answered');
    expect(transportReason('??')).toBe('unknown error');
    expect(isJitgateError(mapLdapError(errno('ECONNRESET'), ctx), StoreErrors.JIT_ERR_STORE_UNREACHABLE)).toBe(true);
  });
});
