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

/**
 * Codes after which connecting again gives the same answer: no access, a bad
 * request, not signed in (signing in is the way forward, not Reconnect).
 */
const FINAL = new Set([4001, 4003, 4014]);

/**
 * What the page says once a session websocket closed: one message, in words,
 * and whether a Reconnect button can help. `serverMessage` is the gateway's
 * `error` text, if any; it is added only where it tells more than the code
 * (why provisioning failed, why the computer is unreachable), never echoed for
 * codes whose words already say it all ("you do not have access to x").
 */
export function closeOutcome(code: number, serverMessage: string | null): { message: string; retry: boolean } {
  const words = CLOSE_REASONS[code];
  const retry = !FINAL.has(code);
  if (!words) return { message: serverMessage ? sentence(serverMessage) : `The connection closed (code ${code}).`, retry };
  if (code === 1000 && serverMessage) return { message: sentence(serverMessage), retry };
  if ((code === 4010 || code === 4011) && serverMessage) return { message: `${words} ${sentence(serverMessage)}`, retry };
  return { message: words, retry };
}

function sentence(s: string): string {
  const t = s.trim();
  const up = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(up) ? up : `${up}.`;
}
