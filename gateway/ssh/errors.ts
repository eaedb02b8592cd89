import { defineErrors } from '../../core/errors.js';

/**
 * Errors of the gateway's SSH side (browser terminal and front door) when it
 * connects to a target computer with the injected JIT credentials.
 */
export const SshGatewayErrors = defineErrors({
  JIT_ERR_SSH_HOST_UNREACHABLE: { status: 502, message: 'cannot reach {host}: {reason}', transient: true },
  JIT_ERR_SSH_AUTH_FAILED: { status: 502, message: '{host} refused the session account {account}' },
  JIT_ERR_SSH_HOST_KEY_MISMATCH: {
    status: 502,
    message: 'the host key of {host} does not match the pinned fingerprint (expected {expected}, got {seen}); refusing to connect',
  },
  JIT_ERR_SSH_HOST_KEY_NOT_PINNED: {
    status: 409,
    message:
      'the host key of {computer} is not pinned yet: an admin must confirm it under Computers → {computer} → Host key, or run `jitgate computers pin-host-key {computer}`',
  },
  JIT_ERR_SSH_HOST_KEY_NOT_CONFIRMED: {
    status: 409,
    message: '{host} presents the host key {seen}, not {expected}: scan again and compare before pinning',
  },
  JIT_ERR_SSH_CHANNEL: { status: 502, message: '{host} refused to open a {what}: {reason}' },
  JIT_ERR_SSH_BAD_REQUEST: { status: 400, message: 'bad terminal request: {reason}' },
  JIT_ERR_SSH_PASTE_NOT_ALLOWED: { status: 403, message: 'pasting into {computer} is not allowed by its clipboard policy; nothing was sent' },
  JIT_ERR_SSH_EXISTING_ACCOUNT: {
    status: 422,
    message: 'JIT is disabled on {computer}: sessions with an existing account are not available in the browser terminal yet',
  },
});
