import { JitgateError } from '../../core/errors.js';
import type { ComputerPolicy } from '../api/computer-policy.js';
import { RdpErrors } from './errors.js';

/**
 * Why guacd gave up before the first frame, in words for the person.
 *
 * guacd reports failures with an `error,<message>,<status>;` instruction
 * (Guacamole protocol reference, "Status codes"; the status is decimal on
 * the wire). guacd 1.5 sends `ready` before FreeRDP even connects, so an
 * RDP-level refusal arrives after `ready` and before the first `sync`
 * (src/protocols/rdp/error.c `guac_rdp_client_abort`): 1.5.x maps a failed
 * security negotiation to UPSTREAM_NOT_FOUND ("Security negotiation failed
 * (wrong security type?)"), 1.6 to CLIENT_UNAUTHORIZED. So the hint depends
 * on the status *and* the computer's RDP security mode, never on guacd's
 * message text (which is shown, not interpreted).
 */

/** Guacamole protocol status codes (protocol reference; guacamole-common-js `Guacamole.Status.Code`). */
export const GUAC_STATUS_NAMES: Readonly<Record<number, string>> = {
  0x0000: 'SUCCESS',
  0x0100: 'UNSUPPORTED',
  0x0200: 'SERVER_ERROR',
  0x0201: 'SERVER_BUSY',
  0x0202: 'UPSTREAM_TIMEOUT',
  0x0203: 'UPSTREAM_ERROR',
  0x0204: 'RESOURCE_NOT_FOUND',
  0x0205: 'RESOURCE_CONFLICT',
  0x0206: 'RESOURCE_CLOSED',
  0x0207: 'UPSTREAM_NOT_FOUND',
  0x0208: 'UPSTREAM_UNAVAILABLE',
  0x0209: 'SESSION_CONFLICT',
  0x020a: 'SESSION_TIMEOUT',
  0x020b: 'SESSION_CLOSED',
  0x0300: 'CLIENT_BAD_REQUEST',
  0x0301: 'CLIENT_UNAUTHORIZED',
  0x0303: 'CLIENT_FORBIDDEN',
  0x0308: 'CLIENT_TIMEOUT',
  0x030d: 'CLIENT_OVERRUN',
  0x030f: 'CLIENT_BAD_TYPE',
  0x031d: 'CLIENT_TOO_MANY',
};

type Kind = 'login' | 'connect' | 'guacd' | 'session';

const WORDS: Readonly<Record<number, { kind: Kind; words: string }>> = {
  0x0100: { kind: 'guacd', words: 'guacd does not support what was asked' },
  0x0200: { kind: 'guacd', words: 'guacd failed internally' },
  0x0201: { kind: 'guacd', words: 'guacd is too busy' },
  0x0202: { kind: 'connect', words: 'the computer did not answer in time' },
  0x0203: { kind: 'connect', words: 'the computer broke off the connection' },
  0x0204: { kind: 'guacd', words: 'guacd could not find a resource it needed' },
  0x0205: { kind: 'guacd', words: 'a resource guacd needed is in use' },
  0x0206: { kind: 'guacd', words: 'guacd closed the connection' },
  0x0207: { kind: 'connect', words: 'the computer could not be reached or refused the security negotiation' },
  0x0208: { kind: 'connect', words: 'the computer refused the connection' },
  0x0209: { kind: 'session', words: 'another connection took over the remote session' },
  0x020a: { kind: 'session', words: 'the remote session timed out' },
  0x020b: { kind: 'session', words: 'the computer ended the remote session' },
  0x0300: { kind: 'guacd', words: 'guacd rejected the connection parameters' },
  0x0301: { kind: 'login', words: 'the computer refused the credentials' },
  0x0303: { kind: 'login', words: 'the account may not sign in there' },
  0x0308: { kind: 'guacd', words: 'the connection to guacd timed out' },
  0x030d: { kind: 'guacd', words: 'guacd received too much data' },
  0x030f: { kind: 'guacd', words: 'guacd received data of an unexpected type' },
  0x031d: { kind: 'guacd', words: 'guacd has too many connections' },
};

const NLA_HINT = 'This computer may not support NLA: ask an admin to set RDP security to TLS.';

function hint(kind: Kind, security: ComputerPolicy['rdpSecurity']): string {
  switch (kind) {
    case 'login':
      // guacd 1.6 reports a failed NLA negotiation as CLIENT_UNAUTHORIZED too.
      return security === 'nla'
        ? 'If it keeps happening, this computer may not support NLA: ask an admin to set RDP security to TLS, or to check that the account may sign in through Remote Desktop there.'
        : 'If it keeps happening, ask an admin to check that the account may sign in through Remote Desktop there.';
    case 'connect':
      return security === 'nla'
        ? NLA_HINT
        : 'Ask an admin to check that Remote Desktop is enabled on it and reachable from guacd, and that its certificate is trusted or pinned.';
    case 'session':
      return 'Try again.';
    default:
      return "Try again; if it keeps happening, ask an admin to look at guacd's log.";
  }
}

/** `0x0207 UPSTREAM_NOT_FOUND`. */
export function statusLabel(status: number): string {
  return `0x${status.toString(16).padStart(4, '0').toUpperCase()} ${GUAC_STATUS_NAMES[status] ?? 'UNKNOWN'}`;
}

/** The `error` instruction's status element (decimal) as a number; null when it is not one. */
export function parseGuacStatus(s: string | undefined): number | null {
  return s !== undefined && /^[0-9]{1,5}$/.test(s) ? Number(s) : null;
}

/** guacd's own text, shown after ours: one line, bounded (it is guacd's, but the page is ours). */
function guacdText(message: string | undefined): string {
  const m = (message ?? '').replace(/[\u0000-\u001f\u007f]+/g, ' ').trim().slice(0, 160);
  return m ? `, "${m}"` : '';
}

/**
 * The error the person sees when guacd ends the connection before the first
 * frame: `status` from guacd's `error` instruction, or null when guacd closed
 * without one. JIT_ERR_RDP_LOGIN_REFUSED for refused credentials, else
 * JIT_ERR_RDP_REMOTE_FAILED; details carry the status for logs and audit.
 */
export function guacdFailure(input: {
  computer: string;
  security: ComputerPolicy['rdpSecurity'];
  status: number | null;
  message?: string;
}): JitgateError {
  const { computer, security, status } = input;
  if (status === null) {
    return new JitgateError(RdpErrors.JIT_ERR_RDP_REMOTE_FAILED, {
      computer, words: 'the connection closed before anything was shown', hint: hint('connect', security), guacd: 'closed without a reason', status: null,
    });
  }
  const known = WORDS[status] ?? { kind: 'connect' as const, words: 'the remote desktop reported an error' };
  const guacd = `${statusLabel(status)}${guacdText(input.message)}`;
  if (known.kind === 'login') {
    return new JitgateError(RdpErrors.JIT_ERR_RDP_LOGIN_REFUSED, { computer, words: known.words, hint: hint('login', security), guacd, status });
  }
  return new JitgateError(RdpErrors.JIT_ERR_RDP_REMOTE_FAILED, { computer, words: known.words, hint: hint(known.kind, security), guacd, status });
}
