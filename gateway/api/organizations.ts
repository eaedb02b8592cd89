import { randomInt, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { canSeeOrganization, canWriteOrganizations, isUuid, readScope } from '../access-policy.js';
import type { ApiDeps } from './deps.js';
import { conflict, ensure, FieldValidationError, isForeignKeyViolation, isUniqueViolation, notFound, parseBody, principalOf } from './http.js';

const name = z.string().min(1, 'required').max(63, 'at most 63 characters').regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'letters, digits, space, dot, dash, underscore, starting with a letter or digit');
const sharedCode = z.string().regex(/^[0-9]{4,8}$/, '4-8 digits');
/** requirePasskeys: its people complete a sign-in with a passkey only (phishing-resistant MFA, docs/auth.md). */
const requirePasskeys = z.boolean({ error: 'true or false' });
const createBody = z.strictObject({ name, sharedCode: sharedCode.optional(), requirePasskeys: requirePasskeys.optional() });
const patchBody = z.strictObject({ name: name.optional(), sharedCode: sharedCode.optional(), requirePasskeys: requirePasskeys.optional() });

type OrgRow = { id: string; name: string; shared_code: string; require_passkeys: boolean };
const out = (r: OrgRow) => ({ id: r.id, name: r.name, sharedCode: r.shared_code, requirePasskeys: r.require_passkeys });
const COLS = 'id, name, shared_code, require_passkeys';

export function organizationRoutes(deps: ApiDeps) {
  const { db, audit } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/organizations', async (req) => {
      const p = principalOf(req);
      const scope = readScope(p);
      if (scope.kind === 'none') return [];
      const rows =
        scope.kind === 'all'
          ? await db.query<OrgRow>(`SELECT ${COLS} FROM organizations ORDER BY name`)
          : await db.query<OrgRow>(`SELECT ${COLS} FROM organizations WHERE id = $1`, [scope.organizationId]);
      return rows.map(out);
    });

    app.post('/organizations', async (req, reply) => {
      const p = principalOf(req);
      ensure(canWriteOrganizations(p), 'create organizations');
      const b = parseBody(createBody, req.body);
      const id = randomUUID();
      try {
        const rows = await db.query<OrgRow>(`INSERT INTO organizations (id, name, shared_code, require_passkeys) VALUES ($1,$2,$3,$4) RETURNING ${COLS}`, [
          id, b.name, b.sharedCode ?? String(randomInt(10_000_000, 100_000_000)), b.requirePasskeys ?? false,
        ]);
        await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'organization.created', id, name: b.name, organizationId: id } });
        return reply.status(201).send(out(rows[0]!));
      } catch (err) {
        if (isUniqueViolation(err)) throw conflict('an organization with this name or shared code exists');
        throw err;
      }
    });

    app.patch<{ Params: { id: string } }>('/organizations/:id', async (req) => {
      const p = principalOf(req);
      const { id } = req.params;
      if (!isUuid(id) || !canSeeOrganization(p, id)) throw notFound('organization');
      ensure(canWriteOrganizations(p), 'change organizations');
      const b = parseBody(patchBody, req.body);
      if (b.name === undefined && b.sharedCode === undefined && b.requirePasskeys === undefined) throw new FieldValidationError({ '': 'nothing to change' });
      try {
        const rows = await db.query<OrgRow>(
          `UPDATE organizations SET name = coalesce($2, name), shared_code = coalesce($3, shared_code), require_passkeys = coalesce($4, require_passkeys) WHERE id = $1 RETURNING ${COLS}`,
          [id, b.name ?? null, b.sharedCode ?? null, b.requirePasskeys ?? null],
        );
        if (!rows[0]) throw notFound('organization');
        await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'organization.changed', id, organizationId: id, fields: Object.keys(b) } });
        return out(rows[0]);
      } catch (err) {
        if (isUniqueViolation(err)) throw conflict('an organization with this name or shared code exists');
        throw err;
      }
    });

    app.delete<{ Params: { id: string } }>('/organizations/:id', async (req, reply) => {
      const p = principalOf(req);
      const { id } = req.params;
      if (!isUuid(id) || !canSeeOrganization(p, id)) throw notFound('organization');
      ensure(canWriteOrganizations(p), 'delete organizations');
      try {
        const rows = await db.query<OrgRow>(`DELETE FROM organizations WHERE id = $1 RETURNING ${COLS}`, [id]);
        if (!rows[0]) throw notFound('organization');
        await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'organization.deleted', id, name: rows[0].name, organizationId: id } });
        return reply.status(204).send();
      } catch (err) {
        if (isForeignKeyViolation(err)) throw conflict('the organization still has computers or people');
        throw err;
      }
    });
  };
}
