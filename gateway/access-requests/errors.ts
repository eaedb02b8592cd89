import { defineErrors } from '../../core/errors.js';

/** Errors of access requests with approval (docs/access-requests.md). */
export const AccessRequestErrors = defineErrors({
  JIT_ERR_APPROVAL_REQUIRED: { status: 403, message: 'sessions on {computer} need an approved access request; request access first' },
  JIT_ERR_ACCESS_REQUEST_STATE: { status: 409, message: 'the access request is {state}: {reason}' },
  JIT_ERR_ACCESS_REQUEST_MFA: { status: 403, message: 'confirm with a code from your authenticator app (or a passkey where enrolled)' },
  JIT_ERR_ACCESS_REQUEST_NOT_REQUESTABLE: { status: 403, message: '{computer} cannot be requested: {reason}' },
  JIT_ERR_ACCESS_REQUEST_SESSIONS_NOT_ENDED: { status: 502, message: 'the window is closed, but live sessions could not all be ended: {reason}', transient: true },
  JIT_ERR_ACCESS_REQUEST_NO_APPROVERS: { status: 409, message: '{computer} needs {needed} approvals but has {available} eligible approvers besides you; ask an administrator' },
});
