import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { CoreErrors, JitgateError, type ErrorDetails } from '../../core/errors.js';
import type { Principal } from '../auth/principal.js';

/**
 * Small request helpers for the administration routes: guards on
 * `req.principal` (set by the auth plugin) and zod validation that answers
 * 400 with `details.fields: { path: message }`.
 */

/** The signed-in person, or 401 JIT_ERR_AUTH_REQUIRED. */
export function principalOf(req: FastifyRequest): Principal {
  const p = req.principal;
  if (!p) throw new JitgateError(CoreErrors.JIT_ERR_AUTH_REQUIRED);
  return p;
}

/** 403 JIT_ERR_FORBIDDEN unless `allowed`. */
export function ensure(allowed: boolean, action: string): void {
  if (!allowed) throw new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action });
}

export function notFound(what: string): JitgateError {
  return new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what });
}

export function conflict(reason: string): JitgateError {
  return new JitgateError(CoreErrors.JIT_ERR_CONFLICT, { reason });
}

/** JIT_ERR_VALIDATION whose JSON carries `details.fields` (path → message) for forms. */
export class FieldValidationError extends JitgateError {
  constructor(readonly fields: Record<string, string>) {
    super(CoreErrors.JIT_ERR_VALIDATION, { reason: Object.entries(fields).map(([k, v]) => `${k || '(body)'}: ${v}`).join('; ') });
  }

  override toJSON(): { code: string; message: string; details: ErrorDetails } {
    const base = super.toJSON();
    return { ...base, details: { ...base.details, fields: this.fields as unknown as string } };
  }
}

export function fieldsOf(error: z.ZodError): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const issue of error.issues) {
    const unknownKeys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    if (unknownKeys.length) {
      for (const k of unknownKeys) fields[[...issue.path, k].join('.')] = 'unknown field';
      continue;
    }
    const path = issue.path.map(String).join('.');
    fields[path] ??= issue.message;
  }
  return fields;
}

export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const r = schema.safeParse(body ?? {});
  if (!r.success) throw new FieldValidationError(fieldsOf(r.error));
  return r.data;
}

/** Query strings: same, but field names are the query parameters. */
export const parseQuery = parseBody;

/** PostgreSQL unique violation (both pg and PGlite expose SQLSTATE as `code`). */
export function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

/**
 * PostgreSQL foreign-key violation: 23503, or 23001 restrict_violation,
 * which PostgreSQL 16+ raises for ON DELETE RESTRICT (PGlite is 17).
 */
export function isForeignKeyViolation(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return code === '23503' || code === '23001';
}

type R = Record<string, unknown>;
export const iso = (v: unknown): string | null => (v === null || v === undefined ? null : (v instanceof Date ? v : new Date(String(v))).toISOString());
export const json = (v: unknown): unknown => (typeof v === 'string' ? JSON.parse(v) : v);
export type { R as Row };
