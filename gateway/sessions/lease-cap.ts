import type { Computer, SessionRecord } from '../../core/domain.js';
import { jitSettingsSchema } from '../../provisioner/jit-settings.js';

/**
 * The latest a session's lease can be extended to: its creation plus the
 * computer's maximum session length (the rule `JitAccountService.extendLease`
 * enforces). Null when the computer's JIT settings do not parse (the engine
 * refuses then anyway).
 */
export function leaseMaxAt(session: Pick<SessionRecord, 'createdAt'>, computer: Pick<Computer, 'jit'>): Date | null {
  const r = jitSettingsSchema.safeParse(computer.jit);
  return r.success ? new Date(session.createdAt.getTime() + r.data.maxSessionMinutes * 60_000) : null;
}
