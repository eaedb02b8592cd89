import { z } from 'zod';

/** RDP clipboard directions: remote→local is copying out of the remote desktop, local→remote is pasting into it. */
export const CLIPBOARD_MODES = ['off', 'remote-to-local', 'local-to-remote', 'both'] as const;
export type ClipboardMode = (typeof CLIPBOARD_MODES)[number];
/** RDP file transfer through the redirected drive: upload is local→remote, download remote→local. */
export const DRIVE_MODES = ['off', 'upload', 'download', 'both'] as const;
export type DriveMode = (typeof DRIVE_MODES)[number];

/** guacd's own clipboard bounds (libguac GUAC_COMMON_CLIPBOARD_MIN/MAX_LENGTH: 256 KiB … 50 MiB); the relay enforces any smaller limit. */
export const CLIPBOARD_MAX_BYTES_LIMIT = 50 * 1024 * 1024;
export const FILE_MAX_BYTES_LIMIT = 2 ** 40;

/**
 * An IANA time zone name (`Europe/Berlin`, `UTC`) as the runtime's ICU
 * knows it. The character check comes first: the value reaches guacd's
 * `timezone` parameter and FreeRDP's zone lookup.
 */
export function isIanaTimeZone(tz: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$/.test(tz)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Earlier policies stored on/off booleans: `true` keeps meaning "both directions". */
const directions = <T extends readonly [string, ...string[]]>(modes: T, words: string) =>
  z.union([z.boolean().transform((b) => (b ? modes[modes.length - 1] : modes[0]) as T[number]), z.enum(modes)], { error: words });

/**
 * Per-computer session policy, stored in `computers.policy` (jsonb) and
 * read by the SSH and RDP proxies. Everything that widens what a session can
 * do is off by default; admins turn it on per computer.
 */
export const computerPolicySchema = z.strictObject({
  /** Record keystrokes too (off: they can capture typed secrets). SSH: input in the asciicast; RDP: guacd's `recording-include-keys`. */
  recordInput: z.boolean().default(false),
  /** Allow SFTP subsystem / file transfer (SSH). */
  sftp: z.boolean().default(false),
  /** Allow SSH port forwarding (local and remote). */
  portForwarding: z.boolean().default(false),
  /** RDP clipboard direction (a stored `true`/`false` reads as both/off). */
  clipboard: directions(CLIPBOARD_MODES, 'off, remote-to-local, local-to-remote or both').default('off'),
  /** Largest clipboard content in bytes, each direction; the gateway cuts a longer one at this size. */
  clipboardMaxBytes: z.number({ error: 'a number of bytes' }).int('a whole number of bytes').min(1, 'at least 1 byte').max(CLIPBOARD_MAX_BYTES_LIMIT, 'at most 52428800 bytes (50 MiB)').default(262_144),
  /** RDP drive redirection and which way files may go (a stored `true`/`false` reads as both/off). */
  drive: directions(DRIVE_MODES, 'off, upload, download or both').default('off'),
  /** Largest file in bytes, each transfer; the gateway stops a longer one. */
  fileMaxBytes: z.number({ error: 'a number of bytes' }).int('a whole number of bytes').min(1, 'at least 1 byte').max(FILE_MAX_BYTES_LIMIT, 'at most 1 TiB').default(100 * 1024 * 1024),
  printing: z.boolean().default(false),
  /** Pinned SSH host key of the computer (`SHA256:…`, as `ssh-keygen -l` prints); set on first use when empty. */
  sshHostKeySha256: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, 'an OpenSSH SHA256 fingerprint (SHA256:…)').optional(),
  /** RDP security negotiation, as guacd's `security` parameter. */
  rdpSecurity: z.enum(['nla', 'tls', 'rdp', 'any'], { error: 'nla, tls, rdp or any' }).default('nla'),
  /** Accept any RDP server certificate (guacd `ignore-cert`); prefer a pinned fingerprint. */
  rdpIgnoreCert: z.boolean().default(false),
  /** Expected SHA-256 fingerprint of the RDP server certificate (hex, colons optional). */
  rdpCertFingerprint: z
    .string()
    .regex(/^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/, 'a SHA-256 fingerprint: 64 hex digits, colons optional')
    .optional(),
  /** How the remote display follows the browser window (guacd `resize-method`; none: fixed at the size when connecting). */
  rdpResizeMethod: z.enum(['display-update', 'reconnect', 'none'], { error: 'display-update, reconnect or none' }).default('display-update'),
  /** Colour depth in bits (guacd `color-depth`); absent: guacd's choice. */
  rdpColorDepth: z.union([z.literal(8), z.literal(16), z.literal(24), z.literal(32)], { error: '8, 16, 24 or 32' }).optional(),
  /** Time zone of the remote session (guacd `timezone`), an IANA name; absent: the browser's. */
  rdpTimezone: z.string().refine(isIanaTimeZone, 'an IANA time zone name such as Europe/Berlin or UTC').optional(),
  /** Step-up: connecting needs a passkey or TOTP confirmation this recent, in minutes (gateway/auth/step-up.ts); absent: the sign-in suffices. */
  stepUpMinutes: z.number({ error: 'a number of minutes' }).int('a whole number of minutes').min(1, 'at least 1 minute').max(1440, 'at most 1440 minutes (a day)').optional(),
  // Access requests (docs/access-requests.md); absent reads as the defaults of gateway/access-requests/approval-rules.ts.
  /** Sessions start only inside the window of an approved access request. */
  requireApproval: z.boolean().optional(),
  /** Roles of the computer's organization whose people approve (never the requester); default org_admin. */
  approverRoles: z.array(z.enum(['org_admin', 'technician', 'auditor'], { error: 'org_admin, technician or auditor' })).max(3).refine((a) => new Set(a).size === a.length, 'each role once').optional(),
  /** Named approvers: logins of people of the computer's organization. */
  approverLogins: z.array(z.string().regex(/^[a-z][a-z0-9._-]{0,31}$/, 'a login')).max(50).optional(),
  /** Approvals needed ("2 of 3"); default 1. */
  approvalsRequired: z.number({ error: 'a number' }).int('a whole number').min(1, 'at least 1').max(10, 'at most 10').optional(),
  /** Break-glass: a person may open a window without approval, with a reason; every approver is alerted. */
  breakGlass: z.boolean().optional(),
  // Four-eyes sessions (docs/access-requests.md); moderators are the computer's approvers (approverRoles, approverLogins).
  /** SSH and RDP sessions connect only while an approver of the organization (never the person) watches as moderator. */
  requireModerator: z.boolean().optional(),
  /** After the last moderator left: seconds the paused session waits for one to rejoin before it ends; default 60. */
  moderatorGraceSeconds: z.number({ error: 'a number of seconds' }).int('whole seconds').min(5, 'at least 5 seconds').max(3600, 'at most 3600 seconds').optional(),
  /** How long a new session waits for its first moderator before it is given up; default 15 minutes. */
  moderatorWaitMinutes: z.number({ error: 'a number of minutes' }).int('whole minutes').min(1, 'at least 1 minute').max(240, 'at most 240 minutes').optional(),
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

/**
 * The policy settings that differ between two policies, as `key: before → after`
 * (audited with `computer.changed`, so a security team sees e.g. that the
 * clipboard went from off to both). The SSH host-key pin has its own events.
 */
export function policyChanges(before: unknown, after: unknown): string[] {
  const a = effectivePolicy(before) as Record<string, unknown>;
  const b = effectivePolicy(after) as Record<string, unknown>;
  const show = (v: unknown): string => (v === undefined ? '(none)' : Array.isArray(v) ? `[${v.join(', ')}]` : String(v));
  return Object.keys(computerPolicySchema.shape)
    // JSON: list settings (approvers) compare by content.
    .filter((k) => k !== 'sshHostKeySha256' && JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((k) => `${k}: ${show(a[k])} → ${show(b[k])}`);
}
