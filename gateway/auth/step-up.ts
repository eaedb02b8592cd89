import type { Database } from '../../core/db/database.js';
import type { Computer } from '../../core/domain.js';
import { JitgateError } from '../../core/errors.js';
import { effectivePolicy } from '../api/computer-policy.js';
import { AuthErrors } from './errors.js';
import type { Principal } from './principal.js';

/**
 * Whether a second factor proved at `confirmedAt` is fresh enough for a
 * computer asking for one within `minutes` (its policy's stepUpMinutes;
 * undefined: no step-up, the sign-in suffices).
 */
export function stepUpSatisfied(minutes: number | undefined, confirmedAt: Date | null, now: Date): boolean {
  if (minutes === undefined) return true;
  if (!confirmedAt) return false;
  const age = now.getTime() - confirmedAt.getTime();
  // A confirmation stamped a little ahead (another gateway's clock) counts as now.
  return age <= minutes * 60_000;
}

/**
 * The step-up check beside the access check of the browser terminal and
 * the RDP tunnel (their broker `admit`): refuses with
 * JIT_ERR_AUTH_STEP_UP_REQUIRED, before anything is provisioned, when the
 * computer requires a fresh confirmation and the sign-in's last passkey/TOTP
 * (auth_sessions.step_up_at: at sign-in or POST /auth/step-up) is older.
 * Read at the moment of connecting, from the database, not from the
 * request's snapshot. SSH front-door connections ask for a TOTP code on
 * every connection, so they are fresh by construction and not checked here.
 */
export function stepUpCheck(db: Database, now: () => Date = () => new Date()): (principal: Principal, computer: Computer) => Promise<void> {
  return async (principal, computer) => {
    const minutes = effectivePolicy(computer.policy).stepUpMinutes;
    if (minutes === undefined) return;
    const rows = await db.query<{ step_up_at: Date | string | null }>('SELECT step_up_at FROM auth_sessions WHERE id::text = $1 AND revoked_at IS NULL', [principal.authSessionId]);
    const at = rows[0]?.step_up_at;
    const confirmedAt = at === null || at === undefined ? null : at instanceof Date ? at : new Date(at);
    if (!stepUpSatisfied(minutes, confirmedAt, now())) throw new JitgateError(AuthErrors.JIT_ERR_AUTH_STEP_UP_REQUIRED, { computer: computer.name, minutes });
  };
}
