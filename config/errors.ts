import { defineErrors } from '../core/errors.js';

export const ConfigErrors = defineErrors({
  JIT_ERR_CONFIG_INVALID: { status: 500, message: 'configuration is invalid:\n{problems}' },
  JIT_ERR_CONFIG_UNREADABLE: { status: 500, message: 'cannot read configuration file {file}: {reason}' },
});
