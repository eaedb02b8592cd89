import type { Connection } from 'ssh2';

/**
 * Two SSH messages ssh2's server API does not let us send with our own text,
 * written through its protocol object (ssh2 1.x internals; both degrade to
 * ssh2's plain behaviour if those change, and test/ssh-front-door.test.ts
 * checks what the real OpenSSH client shows):
 * - SSH_MSG_USERAUTH_BANNER (RFC 4252 §5.4) at any point of authentication
 *   (ssh2 only sends its static `banner` once, before the user name is known),
 * - SSH_MSG_CHANNEL_OPEN_FAILURE with reason 1 "administratively prohibited"
 *   and a description (RFC 4254 §5.1; ssh2's `reject()` sends "connect failed").
 */
interface ProtocolInternals {
  _packetRW?: { write?: { allocStart: number; alloc(n: number): Buffer; finalize(p: Buffer): Buffer } };
  _kexinit?: unknown;
  _queue?: Buffer[];
  _cipher?: { encrypt(p: Buffer): void };
  channelOpenFail?: (recipient: number, reason: number, description: string) => void;
}

const USERAUTH_BANNER = 53;
/** RFC 4254 §5.1 SSH_OPEN_ADMINISTRATIVELY_PROHIBITED. */
export const OPEN_ADMINISTRATIVELY_PROHIBITED = 1;

function internals(conn: Connection): ProtocolInternals | null {
  const proto = (conn as unknown as { _protocol?: ProtocolInternals })._protocol;
  return proto && typeof proto === 'object' ? proto : null;
}

/** Send an authentication banner now (OpenSSH prints it on stderr). False when it could not be sent. */
export function sendAuthBanner(conn: Connection, text: string): boolean {
  const proto = internals(conn);
  const w = proto?._packetRW?.write;
  if (!proto || !w || !proto._cipher || typeof w.alloc !== 'function' || typeof w.finalize !== 'function') return false;
  const msg = Buffer.from(text.endsWith('\r\n') ? text : `${text.replace(/\n?$/, '')}\r\n`, 'utf8');
  const p = w.allocStart;
  const packet = w.alloc(1 + 4 + msg.length + 4);
  packet[p] = USERAUTH_BANNER;
  packet.writeUInt32BE(msg.length, p + 1);
  msg.copy(packet, p + 5);
  packet.writeUInt32BE(0, p + 5 + msg.length); // empty language tag
  const out = w.finalize(packet);
  // As ssh2's sendPacket: while a key exchange runs, packets wait in its queue.
  if (proto._kexinit !== undefined) (proto._queue ??= []).push(out);
  else proto._cipher.encrypt(out);
  return true;
}

/**
 * Refuse a channel open (ssh2's `reject` for the pending request) with
 * "administratively prohibited" and `description` instead of ssh2's
 * "connect failed" without one.
 */
export function rejectProhibited(conn: Connection, reject: () => void, description: string): void {
  const proto = internals(conn);
  const original = proto?.channelOpenFail;
  if (!proto || typeof original !== 'function') return reject();
  // reject() calls channelOpenFail synchronously; swap the reason for that one call.
  proto.channelOpenFail = (recipient: number) => original.call(proto, recipient, OPEN_ADMINISTRATIVELY_PROHIBITED, description);
  try {
    reject();
  } finally {
    delete proto.channelOpenFail;
    if (proto.channelOpenFail !== original) proto.channelOpenFail = original;
  }
}
