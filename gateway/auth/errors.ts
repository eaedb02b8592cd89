import { defineErrors } from '../../core/errors.js';

/** Identity and sign-in (gateway/auth). Generic codes (AUTH_REQUIRED, FORBIDDEN) live in core/errors.ts. */
export const AuthErrors = defineErrors({
  JIT_ERR_AUTH_INVALID_CREDENTIALS: { status: 401, message: 'wrong login or password' },
  JIT_ERR_AUTH_INVALID_CODE: { status: 401, message: 'wrong or already used code' },
  JIT_ERR_AUTH_LOCKED: { status: 423, message: 'too many failed attempts: try again after {until}' },
  JIT_ERR_AUTH_RATE_LIMITED: { status: 429, message: 'too many attempts: wait {seconds} s', transient: true },
  JIT_ERR_AUTH_CSRF: { status: 403, message: 'missing or wrong CSRF token (x-csrf-token from GET /auth/me)' },
  JIT_ERR_AUTH_WRONG_STEP: { status: 409, message: 'this sign-in step is not expected now (expected: {expected})' },
  JIT_ERR_AUTH_BOOTSTRAP_INVALID: { status: 410, message: 'the setup link is invalid, expired or already used' },
  JIT_ERR_AUTH_WEAK_PASSWORD: { status: 400, message: 'password too weak: {reason}' },
  JIT_ERR_AUTH_SSH_KEY_INVALID: { status: 400, message: 'not an OpenSSH public key: {reason}' },
  JIT_ERR_AUTH_SSO_FAILED: { status: 401, message: 'sign-in through {provider} failed: {reason}' },
  JIT_ERR_AUTH_SSO_NOT_MAPPED: { status: 403, message: 'the identity provider {provider} gives this person no role or organization in jitgate ({reason})' },
  JIT_ERR_AUTH_SSO_DISABLED: { status: 403, message: 'this person is disabled in jitgate' },
  JIT_ERR_AUTH_SSO_UNKNOWN_PROVIDER: { status: 404, message: 'no identity provider named {provider}' },
  JIT_ERR_AUTH_SSO_UNAVAILABLE: { status: 503, message: 'identity provider {provider} cannot be reached', transient: true },
  JIT_ERR_AUTH_LOCAL_PASSWORD_FORBIDDEN: { status: 403, message: 'your organization signs in through its identity provider, not with a jitgate password' },
  JIT_ERR_AUTH_LOGOUT_TOKEN_INVALID: { status: 400, message: 'invalid logout token: {reason}' },
  JIT_ERR_AUTH_PASSKEY_INVALID: { status: 401, message: 'the passkey was not accepted: {reason}' },
  JIT_ERR_AUTH_PASSKEY_REQUIRED: { status: 403, message: 'your organization requires a passkey to sign in (phishing-resistant MFA)' },
  JIT_ERR_AUTH_STEP_UP_REQUIRED: { status: 403, message: '{computer} asks you to confirm it is you (passkey or authentication code) within {minutes} min before connecting' },
  JIT_ERR_AUTH_INVITATION_UNKNOWN: { status: 404, message: 'this invitation link is not valid: check that it was copied whole, or ask an administrator for a new one' },
  JIT_ERR_AUTH_INVITATION_USED: { status: 410, message: 'this invitation link was already used: sign in instead' },
  JIT_ERR_AUTH_INVITATION_EXPIRED: { status: 410, message: 'this invitation link expired at {expiredAt}: ask an administrator for a new one' },
  JIT_ERR_AUTH_INVITATION_REVOKED: { status: 410, message: 'this invitation was withdrawn by an administrator' },
  JIT_ERR_AUTH_PASSWORD_CHANGE_REQUIRED: { status: 403, message: 'an administrator set your password: change it before anything else (POST /me/password)' },
});
