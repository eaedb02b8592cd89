/** Close codes of the terminal websocket (docs/api.md), in words. */
export const CLOSE_REASONS: Record<number, string> = {
  1000: 'The session ended.',
  1006: 'The connection to the gateway was lost.',
  4001: 'You are not signed in (or your sign-in expired). Sign in again and reconnect.',
  4003: 'You do not have access to this computer.',
  4010: 'The just-in-time account could not be prepared, so the session did not start.',
  4011: 'The computer cannot be reached.',
  4012: 'An administrator terminated this session.',
  4013: 'The session reached its maximum duration.',
  4014: 'The gateway refused the request (bad request).',
};
