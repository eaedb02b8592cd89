/**
 * Typed errors with stable codes. Every area declares its codes with
 * `defineErrors`; callers branch on `err.code`, never on message text.
 * A code once retired is never reused; `docs/errors.md` documents each one
 * (checked by core/errors.test.ts).
 */

export interface ErrorDef {
  readonly code: string;
  readonly status: number;
  /** Message template; `{name}` is replaced by `details.name`. */
  readonly message: string;
  /** Whether retrying the same operation may succeed (network, lock, timeout). */
  readonly transient: boolean;
}

const registry = new Map<string, ErrorDef>();

/** All error codes declared so far (for the documentation check). */
export function allErrorDefs(): ErrorDef[] {
  return [...registry.values()];
}

export function defineErrors<K extends string>(
  defs: Record<K, { status: number; message: string; transient?: boolean }>,
): Record<K, ErrorDef> {
  const out = {} as Record<K, ErrorDef>;
  for (const code of Object.keys(defs) as K[]) {
    const d = defs[code];
    if (!/^JIT_ERR_[A-Z0-9_]+$/.test(code)) throw new Error(`bad error code ${code}`);
    const def: ErrorDef = { code, status: d.status, message: d.message, transient: d.transient ?? false };
    const prev = registry.get(code);
    if (prev && (prev.message !== def.message || prev.status !== def.status)) {
      throw new Error(`error code ${code} declared twice`);
    }
    registry.set(code, def);
    out[code] = def;
  }
  return out;
}

export type ErrorDetails = Record<string, string | number | boolean | null | undefined>;

function render(template: string, details: ErrorDetails): string {
  return template.replace(/\{(\w+)\}/g, (_m, k: string) => {
    const v = details[k];
    return v === undefined || v === null ? `{${k}}` : String(v);
  });
}

export class JitgateError extends Error {
  readonly code: string;
  readonly status: number;
  readonly transient: boolean;
  readonly details: ErrorDetails;

  constructor(def: ErrorDef, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(render(def.message, details), options);
    this.name = 'JitgateError';
    this.code = def.code;
    this.status = def.status;
    this.transient = def.transient;
    this.details = details;
  }

  /** Shape safe to send to API clients and to log (no cause chain, no stack). */
  toJSON(): { code: string; message: string; details: ErrorDetails } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isJitgateError(err: unknown, def?: ErrorDef): err is JitgateError {
  return err instanceof JitgateError && (def === undefined || err.code === def.code);
}

/** An error that collects per-item failures of a sweep that kept going. */
export class AggregateFailure extends Error {
  constructor(
    message: string,
    readonly failures: { item: string; error: unknown }[],
  ) {
    super(`${message}: ${failures.length} item(s) failed`);
    this.name = 'AggregateFailure';
  }
}

export const CoreErrors = defineErrors({
  JIT_ERR_INTERNAL: { status: 500, message: 'internal error' },
  JIT_ERR_VALIDATION: { status: 400, message: 'invalid input: {reason}' },
  JIT_ERR_NOT_FOUND: { status: 404, message: '{what} not found' },
  JIT_ERR_CONFLICT: { status: 409, message: '{reason}' },
  JIT_ERR_AUTH_REQUIRED: { status: 401, message: 'sign in first' },
  JIT_ERR_FORBIDDEN: { status: 403, message: 'you are not allowed to {action}' },
  JIT_ERR_ACCESS_DENIED: { status: 403, message: 'you do not have access to {computer}' },
  JIT_ERR_DB_UNREACHABLE: { status: 503, message: 'database unreachable: {reason}', transient: true },
  JIT_ERR_REDIS_UNREACHABLE: { status: 503, message: 'redis unreachable: {reason}', transient: true },
  JIT_ERR_SECRET_DECRYPT: { status: 500, message: 'stored secret cannot be decrypted (wrong key or tampered)' },
  JIT_ERR_AUDIT_SIGNING_KEY: { status: 500, message: 'audit signing key is unusable: {reason}' },
  JIT_ERR_AUDIT_CHECKPOINT_FILE: { status: 500, message: 'audit checkpoint file is unusable: {reason}' },
  JIT_ERR_DB_NOT_MIGRATED: { status: 503, message: '{state}: run `jitgate migrate` (or start the gateway with `jitgate serve`, which migrates)' },
});
