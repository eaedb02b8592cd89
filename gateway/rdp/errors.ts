import { defineErrors } from '../../core/errors.js';

/** Errors of the gateway's RDP side: the websocket tunnel and its guacd connection. */
export const RdpErrors = defineErrors({
  JIT_ERR_RDP_GUACD_UNREACHABLE: { status: 502, message: 'cannot reach guacd at {address}: {reason}', transient: true },
  JIT_ERR_RDP_GUACD_HANDSHAKE: { status: 502, message: 'guacd handshake failed: {reason}' },
  JIT_ERR_RDP_GUACD_UNSUPPORTED: {
    status: 502,
    message: 'guacd does not support the parameter {param} that the policy of {computer} needs; refusing to connect',
  },
  JIT_ERR_RDP_GUACD_ERROR: { status: 502, message: 'guacd reported an error ({status}): {reason}' },
  JIT_ERR_RDP_PROTOCOL: { status: 400, message: 'malformed Guacamole instruction: {reason}' },
  JIT_ERR_RDP_BAD_REQUEST: { status: 400, message: 'bad remote desktop request: {reason}' },
  // guacd ended the connection before the first frame (gateway/rdp/guacd-status.ts): words for the person, a hint, guacd's status.
  JIT_ERR_RDP_LOGIN_REFUSED: { status: 502, message: "{computer} refused the session's just-in-time account ({words}). {hint} (guacd: {guacd})" },
  JIT_ERR_RDP_REMOTE_FAILED: { status: 502, message: 'the remote desktop of {computer} did not open: {words}. {hint} (guacd: {guacd})' },
});
