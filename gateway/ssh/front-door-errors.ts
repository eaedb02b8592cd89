import { defineErrors } from '../../core/errors.js';

/** Errors of the native SSH front door (gateway/ssh/front-door*.ts). */
export const FrontDoorErrors = defineErrors({
  JIT_ERR_FRONTDOOR_HOST_KEY: { status: 500, message: 'SSH front door host key {file} is unusable: {reason}' },
  /** A channel the computer's policy does not allow (file transfer, port forwarding); nothing is provisioned for it. */
  JIT_ERR_FRONTDOOR_NOT_ALLOWED: { status: 403, message: '{what} is not allowed on {computer}' },
  /** An elevated session (the person's own account) needs the person's password, typed at a terminal. */
  JIT_ERR_FRONTDOOR_OWN_PASSWORD_NEEDS_TERMINAL: {
    status: 409,
    message: '{computer} logs you in as your own account {account}, whose password you type at the login prompt: connect with a terminal (ssh -t) first',
  },
});
