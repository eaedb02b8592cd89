import { defineErrors } from '../core/errors.js';

export const JitErrors = defineErrors({
  JIT_ERR_JIT_SETTINGS_INVALID: { status: 422, message: 'JIT settings of {computer} are invalid: {reason}' },
  JIT_ERR_JIT_NO_STORE: { status: 422, message: 'computer {computer} has no usable account store ({store})' },
  JIT_ERR_JIT_CHOOSE_ACCOUNT_TYPE: { status: 400, message: '{computer} lets you choose: pick a domain or a local account' },
  JIT_ERR_JIT_ACCOUNT_TYPE_NOT_ALLOWED: { status: 400, message: '{computer} does not allow {type} accounts' },
  JIT_ERR_JIT_SESSION_CLOSED: { status: 409, message: 'session {session} is {state}' },
  JIT_ERR_JIT_MAX_DURATION: { status: 409, message: 'sessions on {computer} last at most {minutes} minutes; this one cannot be extended further' },
  JIT_ERR_JIT_LOCK_TIMEOUT: { status: 503, message: 'timed out waiting for {key}', transient: true },
  JIT_ERR_JIT_NO_CREDENTIALS: { status: 409, message: 'session {session} has no credentials to inject' },
  JIT_ERR_JIT_LEASE_TOO_LONG: { status: 422, message: 'sessions on {computer} last at most {minutes} minutes; {asked} were asked for' },
  JIT_ERR_JIT_PROVISION_TIMEOUT: { status: 504, message: 'provisioning of session {session} did not finish in time', transient: true },
  JIT_ERR_JIT_ELEVATE_NO_ACCOUNT: { status: 422, message: '{person} has no account {name} on {store} to elevate: map the person to their existing account (People) or create it first' },
  JIT_ERR_JIT_ELEVATE_DISABLED: { status: 422, message: 'account {name} of {person} on {store} is disabled; jitgate does not elevate a disabled account' },
  JIT_ERR_JIT_ELEVATE_PROTECTED: { status: 403, message: 'account {name} of {person} on {store} is protected ({reason}); jitgate never elevates it' },
  JIT_ERR_JIT_PASSWORD_FROM_PERSON: { status: 409, message: 'session {session} elevates your own account {name}: jitgate does not hold its password, type it in the remote login' },
});
