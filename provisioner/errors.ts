import { defineErrors } from '../core/errors.js';

export const StoreErrors = defineErrors({
  JIT_ERR_STORE_ACCOUNT_EXISTS: { status: 409, message: 'account {name} already exists' },
  JIT_ERR_STORE_NOT_MANAGED: { status: 403, message: 'account {name} is not managed by jitgate; refusing to modify it' },
  JIT_ERR_STORE_NO_SUCH_ACCOUNT: { status: 404, message: 'account {name} does not exist' },
  JIT_ERR_STORE_NO_SUCH_GROUP: { status: 404, message: 'group {group} does not exist' },
  JIT_ERR_STORE_PASSWORD_POLICY: { status: 422, message: 'password rejected by the directory policy or a constraint: {reason}' },
  JIT_ERR_STORE_UNWILLING: { status: 422, message: 'the directory is unwilling to perform the operation: {reason}' },
  JIT_ERR_STORE_INVALID_NAME: { status: 400, message: 'invalid {what} name: {reason}' },
  JIT_ERR_STORE_AUTH: { status: 502, message: 'the service identity could not authenticate to {store}: {reason}' },
  JIT_ERR_STORE_INSECURE: { status: 500, message: 'refusing to {operation} over an unencrypted connection' },
  JIT_ERR_STORE_UNREACHABLE: { status: 503, message: 'account store {store} unreachable: {reason}', transient: true },
  JIT_ERR_STORE_USER_BUSY: { status: 409, message: 'account {name} still has running processes', transient: true },
  JIT_ERR_STORE_FAILED: { status: 502, message: 'account store {store} failed: {reason}' },
  JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG: { status: 403, message: 'account store {store} may not be used for computers of {organization}: {reason}' },
  JIT_ERR_STORE_GROUP_UNKNOWN: { status: 422, message: 'group {group} is not configured on account store {store}' },
  JIT_ERR_STORE_CONTAINER_NOT_ALLOWED: { status: 403, message: 'container {container} is not inside a container account store {store} allows' },
  JIT_ERR_STORE_PROTECTED_ACCOUNT: { status: 403, message: 'account {name} is protected ({reason}); jitgate never adds it to a group' },
});
