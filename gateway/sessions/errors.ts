import { defineErrors } from '../../core/errors.js';

/** Errors of the session broker (opening, provisioning wait, ending sessions). */
export const SessionErrors = defineErrors({
  JIT_ERR_SESSION_PROVISION_FAILED: { status: 502, message: 'could not prepare an account on {computer}: {reason}' },
  JIT_ERR_SESSION_NOT_LIVE: { status: 404, message: 'session {session} is not live on any gateway' },
});
