import { defineErrors } from '../../core/errors.js';

/** Errors of the native SSH front door (gateway/ssh/front-door*.ts). */
export const FrontDoorErrors = defineErrors({
  JIT_ERR_FRONTDOOR_HOST_KEY: { status: 500, message: 'SSH front door host key {file} is unusable: {reason}' },
});
