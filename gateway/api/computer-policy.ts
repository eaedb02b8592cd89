import { z } from 'zod';

/**
 * Per-computer session policy, stored in `computers.policy` (jsonb) and
 * read by the SSH and RDP proxies. Everything that widens what a session can
 * do is off by default; admins turn it on per computer.
 */
export const computerPolicySchema = z.strictObject({
  /** Record keystrokes too (off: they can capture typed secrets). */
  recordInput: z.boolean().default(false),
  /** Allow SFTP subsystem / file transfer (SSH). */
  sftp: z.boolean().default(false),
  /** Allow SSH port forwarding (local and remote). */
  portForwarding: z.boolean().default(false),
  /** RDP clipboard, drive redirection and printing. */
  clipboard: z.boolean().default(false),
  drive: z.boolean().default(false),
  printing: z.boolean().default(false),
  /** Pinned SSH host key of the computer (`SHA256:…`, as `ssh-keygen -l` prints); set on first use when empty. */
  sshHostKeySha256: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, 'an OpenSSH SHA256 fingerprint (SHA256:…)').optional(),
  /** RDP security negotiation, as guacd's `security` parameter. */
  rdpSecurity: z.enum(['nla', 'tls', 'any']).default('nla'),
  /** Accept any RDP server certificate (guacd `ignore-cert`); prefer a pinned fingerprint. */
  rdpIgnoreCert: z.boolean().default(false),
  /** Expected SHA-256 fingerprint of the RDP server certificate (hex, colons optional). */
  rdpCertFingerprint: z
    .string()
    .regex(/^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/, 'a SHA-256 fingerprint: 64 hex digits, colons optional')
    .optional(),
});

export type ComputerPolicy = z.output<typeof computerPolicySchema>;
export type ComputerPolicyInput = z.input<typeof computerPolicySchema>;

/**
 * The effective policy of a stored computer. A stored value that no longer
 * validates (hand-edited row) falls back to the defaults field by field:
 * never to something more permissive than the default.
 */
export function effectivePolicy(stored: unknown): ComputerPolicy {
  const r = computerPolicySchema.safeParse(stored ?? {});
  if (r.success) return r.data;
  const base = computerPolicySchema.parse({});
  const src = (stored && typeof stored === 'object' ? stored : {}) as Record<string, unknown>;
  const out: Record<string, unknown> = { ...base };
  for (const key of Object.keys(computerPolicySchema.shape) as (keyof typeof computerPolicySchema.shape)[]) {
    const one = computerPolicySchema.shape[key].safeParse(src[key]);
    if (one.success && one.data !== undefined) out[key] = one.data;
  }
  return out as ComputerPolicy;
}
