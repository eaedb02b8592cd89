import { defineErrors } from '../../core/errors.js';

/** Errors of the native SSH front door (gateway/ssh/front-door*.ts). */
export const FrontDoorErrors = defineErrors({
  JIT_ERR_FRONTDOOR_HOST_KEY: { status: 500, message: 'SSH front door host key {file} is unusable: {reason}' },
  /** A channel the computer's policy does not allow (file transfer, port forwarding); nothing is provisioned for it. */
  JIT_ERR_FRONTDOOR_NOT_ALLOWED: { status: 403, message: '{what} is not allowed on {computer}' },
});
