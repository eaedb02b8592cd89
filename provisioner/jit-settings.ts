import { z } from 'zod';

/**
 * Per-computer JIT settings, edited by admins and stored in
 * `computers.jit`. Validated here once, wherever they come from (API, YAML
 * import, CLI).
 */
export const jitSettingsSchema = z
  .strictObject({
    /** Off: people use an existing account; nothing is created. */
    enabled: z.boolean().default(true),
    /**
     * `create`: a JIT account is created for the session (or a kept one re-enabled).
     * `elevate`: nothing is created; the person's existing account on the store
     * (person_accounts, else the store's `elevation.accountName` rule) joins
     * `adminGroups` for the lease and leaves them at teardown, unless it was
     * a member before (docs/jit-engine.md "Create or elevate").
     */
    mode: z.enum(['create', 'elevate']).default('create'),
    /** Delete the JIT-created account when the session ends. */
    deleteOnCheckIn: z.boolean().default(true),
    /** When not deleting: reuse the same person's account next time (re-enabled, password rotated). */
    reuseExistingAccount: z.boolean().default(false),
    /** Groups the account joins for the session, by the names configured on the account store. */
    adminGroups: z.array(z.string().min(1).max(256)).max(16).default([]),
    accountMode: z.enum(['named', 'shared']).default('named'),
    accountType: z.enum(['domain', 'local', 'choose']).default('domain'),
    maxSessionMinutes: z.number().int().min(1).max(24 * 60).default(480),
    /** OU/container DN for created accounts (LDAP), overriding the store's default. */
    container: z.string().min(1).max(1024).optional(),
  })
  .superRefine((s, ctx) => {
    if (s.enabled && s.adminGroups.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['adminGroups'], message: 'at least one JIT admin group is needed when JIT is enabled' });
    }
    if (s.deleteOnCheckIn && s.reuseExistingAccount) {
      ctx.addIssue({ code: 'custom', path: ['reuseExistingAccount'], message: 'cannot reuse an account that is deleted on check-in' });
    }
    if (s.mode === 'elevate' && s.accountMode === 'shared') {
      ctx.addIssue({ code: 'custom', path: ['accountMode'], message: 'elevation raises each person\'s own account; a shared account is only for mode create' });
    }
    if (s.mode === 'elevate' && s.container !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['container'], message: 'elevation creates no account, so a container has no use; remove it' });
    }
    if (s.accountMode === 'shared' && s.deleteOnCheckIn) {
      ctx.addIssue({ code: 'custom', path: ['deleteOnCheckIn'], message: 'a shared account is kept (disabled) between sessions; turn off delete on check-in' });
    }
  });

export type JitSettings = z.output<typeof jitSettingsSchema>;
export type JitSettingsInput = z.input<typeof jitSettingsSchema>;

/** The recommended presets the admin UI offers. */
export const JIT_PRESETS = {
  /** Create a fresh account for every session and delete it afterwards. */
  maximumSecurity: { enabled: true, deleteOnCheckIn: true, reuseExistingAccount: false, accountMode: 'named' },
  /** One account per person, disabled with a rotated password between sessions. */
  balanced: { enabled: true, deleteOnCheckIn: false, reuseExistingAccount: true, accountMode: 'named' },
} as const satisfies Record<string, Partial<JitSettingsInput>>;

/** Whether sessions share a long-lived account (kept between sessions). */
export function usesPersistentAccount(s: JitSettings): boolean {
  if (s.mode === 'elevate') return false;
  return s.accountMode === 'shared' || (!s.deleteOnCheckIn && s.reuseExistingAccount);
}
