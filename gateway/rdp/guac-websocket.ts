import { randomUUID } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { CoreErrors, isJitgateError } from '../../core/errors.js';
import type { Principal } from '../auth/principal.js';
import { SESSION_CLOSE } from '../sessions/close-codes.js';
import { encodeInstructionUtf16 } from './guac-protocol.js';

/** Websocket close codes: the browser terminal's (docs/api.md). */
export const RDP_CLOSE = SESSION_CLOSE;

/**
 * guacamole-common-js takes the close *reason* as a Guacamole status code
 * (WebSocketTunnel `onclose`: `parseInt(event.reason)`), so the reason is
 * the matching status (protocol reference, "Status codes").
 */
export const GUAC_STATUS: Readonly<Record<number, number>> = {
  1000: 0x0000, // SUCCESS
  4001: 0x0301, // CLIENT_UNAUTHORIZED
  4003: 0x0303, // CLIENT_FORBIDDEN
  4010: 0x0200, // SERVER_ERROR
  4011: 0x0208, // UPSTREAM_UNAVAILABLE
  4012: 0x020b, // SESSION_CLOSED
  4013: 0x020a, // SESSION_TIMEOUT
  4014: 0x0300, // CLIENT_BAD_REQUEST
};

export function publicError(err: unknown): { code: string; message: string } {
  if (isJitgateError(err)) return { code: err.code, message: err.message };
  return { code: 'JIT_ERR_INTERNAL', message: 'internal error' };
}

/** One Guacamole tunnel websocket as the browser sees it (the person's `/rdp` and a watcher's `/rdp/watch`). */
export interface GuacTunnel {
  /** Send one instruction (UTF-16 lengths, as guacamole-common-js counts). */
  send(opcode: string, ...args: string[]): void;
  /** Optionally tell the browser why in `jitgate` instructions, then close with `code` (reason: the matching Guacamole status). */
  close(code: number, error?: { code: string; message: string }, reason?: string): void;
}

/**
 * Open the tunnel on the browser side (its UUID is the first instruction,
 * internal opcode "") and check the caller: signed in and the CSRF token of
 * the upgrade. Returns the tunnel and the principal, or null after closing
 * the websocket with the reason.
 */
export function openGuacTunnel(ws: WebSocket, req: FastifyRequest, checkCsrf: (req: FastifyRequest) => boolean): { tunnel: GuacTunnel; principal: Principal } | null {
  const send = (opcode: string, ...args: string[]): void => {
    if (ws.readyState === ws.OPEN) ws.send(encodeInstructionUtf16(opcode, ...args));
  };
  const close = (code: number, error?: { code: string; message: string }, reason?: string): void => {
    if (error) send('jitgate', 'error', error.code, error.message);
    if (reason) send('jitgate', 'closed', reason);
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, String(GUAC_STATUS[code] ?? 0x0200));
  };
  const tunnel = { send, close };
  send('', randomUUID());
  const principal = req.principal;
  if (!principal) {
    close(RDP_CLOSE.notSignedIn, { code: CoreErrors.JIT_ERR_AUTH_REQUIRED.code, message: 'sign in first' });
    return null;
  }
  if (!checkCsrf(req)) {
    close(RDP_CLOSE.accessDenied, { code: 'JIT_ERR_AUTH_CSRF', message: 'missing or wrong CSRF token (x-csrf-token from GET /auth/me)' });
    return null;
  }
  return { tunnel, principal };
}
