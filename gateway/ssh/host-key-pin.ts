import type { Computer } from '../../core/domain.js';
import { JitgateError } from '../../core/errors.js';
import { SshGatewayErrors } from './errors.js';

/**
 * The pinned SSH host key of a computer (`policy.sshHostKeySha256`,
 * `SHA256:<43 base64 characters>` as `ssh-keygen -l` prints it), or
 * JIT_ERR_SSH_HOST_KEY_NOT_PINNED.
 *
 * There is no trust on first use: the gateway sends a JIT password only to a
 * host whose key an admin confirmed (gateway/api/host-keys.ts, `jitgate
 * computers pin-host-key`). Called by the browser terminal and the front door
 * when access is granted, before anything is provisioned, and again by
 * upstream.ts before it connects.
 */
export function pinnedHostKey(computer: Pick<Computer, 'name' | 'policy'>): string {
  const pin = computer.policy.sshHostKeySha256;
  const m = typeof pin === 'string' ? PIN.exec(pin.trim()) : null;
  if (!m?.[1]) throw new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_NOT_PINNED, { computer: computer.name });
  return `SHA256:${m[1]}`;
}

const PIN = /^SHA256:([A-Za-z0-9+/]{43})=?$/;
