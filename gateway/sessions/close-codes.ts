/**
 * Websocket close codes of a session page, the same for the browser terminal
 * and the remote desktop tunnel (docs/api.md).
 */
export const SESSION_CLOSE = {
  normal: 1000,
  notSignedIn: 4001,
  accessDenied: 4003,
  provisioningFailed: 4010,
  hostUnreachable: 4011,
  terminated: 4012,
  leaseExpired: 4013,
  badRequest: 4014,
} as const;
