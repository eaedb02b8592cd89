import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Computer } from '../../core/domain.js';
import { JIT_PRESETS, jitSettingsSchema } from '../../provisioner/jit-settings.js';
import { toComputer } from '../../provisioner/jit-repository.js';
import { canConnect, canEditComputer, canSeeComputer, canSeePerson, isUuid, readScope } from '../access-policy.js';
import type { Principal, Role } from '../auth/principal.js';
import { computerPolicySchema, effectivePolicy, policyChanges } from './computer-policy.js';
import type { ApiDeps } from './deps.js';
import { conflict, ensure, FieldValidationError, fieldsOf, isForeignKeyViolation, isUniqueViolation, iso, notFound, principalOf } from './http.js';
import { authorizeComputerStores } from './store-access.js';
import { checkCertPinning } from './guacd-pinning.js';
import { auditUnpinned, pinAcrossEdit } from './host-keys.js';
import { labelsSchema } from '../teams/team-policy.js';
import { grantsOf } from '../teams/team-grants.js';

const hostname = z.string().regex(/^[A-Za-z0-9.:_-]{1,253}$/, 'a host name or IP address');
// Checked in this order; the form shows the first failing one ("required" for an empty name, the unit with the limit).
const computerName = z.string().min(1, 'required').max(63, 'at most 63 characters').regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, dot, dash and underscore, starting with a letter or digit');
const port = z.number().int().min(1).max(65535);

/** A whole computer as stored; PATCH merges onto the stored one and validates the result. */
const computerSchema = z.strictObject({
  organizationId: z.uuid(),
  name: computerName,
  address: hostname,
  protocols: z.array(z.enum(['ssh', 'rdp'])).min(1).refine((a) => new Set(a).size === a.length, 'each protocol once'),
  sshPort: port.default(22),
  rdpPort: port.default(3389),
  domainStore: z.string().min(1).nullable().default(null),
  localStore: z.string().min(1).nullable().default(null),
  jit: jitSettingsSchema,
  policy: computerPolicySchema.prefault({}),
  restricted: z.boolean().default(false),
  labels: labelsSchema.default({}),
});
type ComputerInput = z.output<typeof computerSchema>;

const PATCHABLE = ['organizationId', 'name', 'address', 'protocols', 'sshPort', 'rdpPort', 'domainStore', 'localStore', 'jit', 'policy', 'restricted', 'labels'] as const;

function view(c: Computer) {
  return {
    id: c.id, organizationId: c.organizationId, name: c.name, address: c.address, protocols: c.protocols, sshPort: c.sshPort, rdpPort: c.rdpPort,
    domainStore: c.domainStore, localStore: c.localStore, jit: c.jit, policy: effectivePolicy(c.policy), restricted: c.restricted,
    labels: c.labels ?? {},
  };
}

/**
 * What a technician needs to pick a computer and connect: no store names,
 * group names, container DNs, pinned keys or other policy. The address
 * stays: the Sessions page shows and searches it, and the technician
 * reaches that host anyway.
 */
function technicianView(c: Computer) {
  const s = jitSettingsSchema.safeParse(c.jit);
  return {
    id: c.id, organizationId: c.organizationId, name: c.name, address: c.address, protocols: c.protocols, labels: c.labels ?? {},
    jit: s.success ? { enabled: s.data.enabled, accountType: s.data.accountType, maxSessionMinutes: s.data.maxSessionMinutes } : null,
  };
}

/** The computer as `p` may read it: admins and auditors everything, technicians what they connect with. */
function viewFor(p: Principal, c: Computer) {
  return p.role === 'technician' ? technicianView(c) : view(c);
}

/** Account types a person may pick for this computer (what the UI offers). */
export function accountTypesOf(c: Computer): ('domain' | 'local')[] {
  const parsed = jitSettingsSchema.safeParse(c.jit);
  const kind = parsed.success ? parsed.data.accountType : 'domain';
  const out: ('domain' | 'local')[] = [];
  if ((kind === 'domain' || kind === 'choose') && c.domainStore) out.push('domain');
  if ((kind === 'local' || kind === 'choose') && c.localStore) out.push('local');
  return out;
}

export const PRESET_DESCRIPTIONS = {
  maximumSecurity: 'A fresh account is created for every session and deleted when it ends.',
  balanced: 'One account per person, re-enabled with a new password for each session and disabled with a random password nobody knows in between.',
} as const;

export function computerRoutes(deps: ApiDeps) {
  const { db, audit, access } = deps;

  function validate(input: Record<string, unknown>): ComputerInput {
    const r = computerSchema.safeParse(input);
    const fields = r.success ? {} : fieldsOf(r.error);
    for (const k of ['domainStore', 'localStore'] as const) {
      const v = input[k];
      if (typeof v === 'string' && v !== '' && !deps.stores.some((s) => s.name === v)) fields[k] ??= `no account store named ${v} in the configuration`;
    }
    if (r.success) {
      const kind = r.data.jit.accountType;
      if (r.data.jit.enabled && kind === 'domain' && !r.data.domainStore) fields.domainStore ??= 'a domain account needs a domain store';
      if (r.data.jit.enabled && kind === 'local' && !r.data.localStore) fields.localStore ??= 'a local account needs a local store';
      if (r.data.jit.enabled && kind === 'choose' && !r.data.domainStore && !r.data.localStore) fields.domainStore ??= 'choose needs a domain or a local store';
    }
    if (!r.success || Object.keys(fields).length) throw new FieldValidationError(fields);
    return r.data;
  }

  async function granted(p: Principal, c: Computer): Promise<boolean> {
    return c.restricted && p.role === 'technician' ? access.hasGrant(c.id, p.personId) : false;
  }

  async function load(p: Principal, id: string): Promise<Computer> {
    if (!isUuid(id)) throw notFound('computer');
    const rows = await db.query('SELECT * FROM computers WHERE id = $1', [id]);
    const c = rows[0] ? toComputer(rows[0]) : null;
    if (!c || !canSeeComputer(p, c, await granted(p, c))) throw notFound('computer');
    return c;
  }

  const dbError = (err: unknown) => {
    if (isUniqueViolation(err)) return conflict('the organization already has a computer with this name');
    if (isForeignKeyViolation(err)) return new FieldValidationError({ organizationId: 'no such organization' });
    return err;
  };

  return async (app: FastifyInstance): Promise<void> => {
    app.get('/jit-presets', async (req) => {
      principalOf(req);
      return {
        maximumSecurity: { ...JIT_PRESETS.maximumSecurity, description: PRESET_DESCRIPTIONS.maximumSecurity },
        balanced: { ...JIT_PRESETS.balanced, description: PRESET_DESCRIPTIONS.balanced },
      };
    });

    app.get('/computers', async (req) => {
      const p = principalOf(req);
      const scope = readScope(p);
      if (scope.kind === 'none') return [];
      const rows =
        scope.kind === 'all'
          ? await db.query('SELECT * FROM computers ORDER BY name, id')
          : await db.query('SELECT * FROM computers WHERE organization_id = $1 ORDER BY name, id', [scope.organizationId]);
      // Person × computer and team × label grants (gateway/teams/team-policy.ts): read once, matched per computer.
      const granted = await grantsOf(db, p);
      return rows
        .map(toComputer)
        .filter((c) => canSeeComputer(p, c, granted(c)))
        .map((c) => ({ ...viewFor(p, c), canConnect: canConnect(p, c, granted(c)), accountTypes: accountTypesOf(c) }));
    });

    app.get<{ Params: { id: string } }>('/computers/:id', async (req) => {
      const p = principalOf(req);
      const c = await load(p, req.params.id);
      const g = await access.hasGrant(c.id, p.personId);
      return { ...viewFor(p, c), canConnect: canConnect(p, c, g), accountTypes: accountTypesOf(c) };
    });

    app.post('/computers', async (req, reply) => {
      const p = principalOf(req);
      ensure(p.role === 'global_admin' || p.role === 'org_admin', 'create computers');
      const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
      const input = { ...body, organizationId: body.organizationId ?? p.organizationId ?? undefined };
      const c = validate(input);
      ensure(canEditComputer(p, c), 'create computers in this organization');
      await authorizeComputerStores(db, deps.stores, p, c);
      const id = randomUUID();
      const warnings = await checkCertPinning(deps.guacd, c, null);
      let rows;
      try {
        rows = await db.query(
          `INSERT INTO computers (id, organization_id, name, address, protocols, ssh_port, rdp_port, domain_store, local_store, jit, policy, restricted, labels)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING *`,
          [id, c.organizationId, c.name, c.address, c.protocols, c.sshPort, c.rdpPort, c.domainStore, c.localStore, JSON.stringify(c.jit), JSON.stringify(c.policy), c.restricted, JSON.stringify(c.labels)],
        );
      } catch (err) {
        throw dbError(err);
      }
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', computer: c.name, data: { action: 'computer.created', id, organizationId: c.organizationId, policy: policyChanges({}, c.policy) } });
      const stated = typeof c.policy.sshHostKeySha256 === 'string' ? c.policy.sshHostKeySha256 : null;
      if (stated) {
        // A pin stated at creation (read from the host's console) is a trust decision like a scan + confirm: on the record.
        await audit.record({
          type: 'computer.host_key_pinned', actor: p.login, outcome: 'success', computer: c.name,
          data: { fingerprint: stated, address: c.address, sshPort: c.sshPort, via: 'stated at creation (not scanned)' },
        });
      }
      return reply.status(201).send({ ...view(toComputer(rows[0]!)), ...(warnings.length ? { warnings } : {}) });
    });

    app.patch<{ Params: { id: string } }>('/computers/:id', async (req) => {
      const p = principalOf(req);
      const cur = await load(p, req.params.id);
      ensure(canEditComputer(p, cur), `change ${cur.name}`);
      const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
      const unknown = Object.keys(body).filter((k) => !(PATCHABLE as readonly string[]).includes(k));
      if (unknown.length) throw new FieldValidationError(Object.fromEntries(unknown.map((k) => [k, 'unknown field'])));
      const merged: Record<string, unknown> = { ...view(cur), ...body };
      delete merged.id;
      // jit and policy merge field by field, so a form can send only what changed.
      if (body.jit && typeof body.jit === 'object' && cur.jit && typeof cur.jit === 'object') merged.jit = { ...(cur.jit as object), ...(body.jit as object) };
      if (body.policy && typeof body.policy === 'object') merged.policy = { ...effectivePolicy(cur.policy), ...(body.policy as object) };
      const c = validate(merged);
      // The host-key pin belongs to the address it was confirmed at: a new address or port drops it.
      const { dropped } = pinAcrossEdit(cur, c, body.policy);
      if (c.organizationId !== cur.organizationId) ensure(canEditComputer(p, c), `move ${cur.name} to that organization`);
      // Every save re-checks stores, groups and container as they would be stored (also after a move to another organization).
      await authorizeComputerStores(db, deps.stores, p, c);
      const warnings = await checkCertPinning(deps.guacd, c, cur);
      let rows;
      try {
        rows = await db.query(
          // The pin is written only by the host-key routes: a save keeps the pin the row holds NOW (a confirm may have
          // landed since this request read the computer) unless the address or port changes, which drops it.
          `UPDATE computers SET organization_id = $2, name = $3, address = $4, protocols = $5, ssh_port = $6, rdp_port = $7, domain_store = $8,
             local_store = $9, jit = $10,
             policy = ($11::jsonb - 'sshHostKeySha256') || CASE
               WHEN computers.address = $4 AND computers.ssh_port = $6 AND computers.policy ? 'sshHostKeySha256'
               THEN jsonb_build_object('sshHostKeySha256', computers.policy->'sshHostKeySha256') ELSE '{}'::jsonb END,
             restricted = $12, labels = $13, updated_at = now() WHERE id = $1 RETURNING *`,
          [cur.id, c.organizationId, c.name, c.address, c.protocols, c.sshPort, c.rdpPort, c.domainStore, c.localStore, JSON.stringify(c.jit), JSON.stringify(c.policy), c.restricted, JSON.stringify(c.labels)],
        );
      } catch (err) {
        throw dbError(err);
      }
      if (!rows[0]) throw notFound('computer');
      // Grants name technicians of the old organization: they do not travel with the computer.
      if (c.organizationId !== cur.organizationId) await db.query('DELETE FROM grants WHERE computer_id = $1', [cur.id]);
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', computer: c.name, data: { action: 'computer.changed', id: cur.id, organizationId: c.organizationId, fields: Object.keys(body), policy: policyChanges(cur.policy, c.policy) } });
      if (dropped) await auditUnpinned(audit, p.login, { id: cur.id, name: c.name, organizationId: c.organizationId }, dropped, 'address changed');
      return { ...view(toComputer(rows[0])), ...(warnings.length ? { warnings } : {}) };
    });

    app.delete<{ Params: { id: string } }>('/computers/:id', async (req, reply) => {
      const p = principalOf(req);
      const cur = await load(p, req.params.id);
      ensure(canEditComputer(p, cur), `delete ${cur.name}`);
      const live = await db.query("SELECT 1 FROM sessions WHERE computer_id = $1 AND state IN ('pending','provisioning','active','ending') LIMIT 1", [cur.id]);
      if (live.length) throw conflict(`${cur.name} has live sessions; terminate them first`);
      await db.query('DELETE FROM computers WHERE id = $1', [cur.id]);
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', computer: cur.name, data: { action: 'computer.deleted', id: cur.id, organizationId: cur.organizationId } });
      return reply.status(204).send();
    });

    // ---- grants: share a restricted computer with named technicians ----
    type GrantRow = { person_id: string; login: string; display_name: string; role: Role; organization_id: string | null; created_at: Date | string };
    app.get<{ Params: { id: string } }>('/computers/:id/grants', async (req) => {
      const p = principalOf(req);
      const c = await load(p, req.params.id);
      ensure(canEditComputer(p, c), `see who ${c.name} is shared with`);
      const rows = await db.query<GrantRow>(
        'SELECT g.person_id, p.login, p.display_name, p.role, p.organization_id, g.created_at FROM grants g JOIN people p ON p.id = g.person_id WHERE g.computer_id = $1 ORDER BY p.login',
        [c.id],
      );
      return rows.map((r) => ({ personId: r.person_id, login: r.login, displayName: r.display_name, createdAt: iso(r.created_at) }));
    });

    async function grantTarget(p: Principal, c: Computer, personId: string) {
      if (!isUuid(personId)) throw notFound('person');
      const rows = await db.query<{ id: string; login: string; role: Role; organization_id: string | null }>('SELECT id, login, role, organization_id FROM people WHERE id = $1', [personId]);
      const t = rows[0];
      if (!t || !canSeePerson(p, { id: t.id, role: t.role, organizationId: t.organization_id })) throw notFound('person');
      return t;
    }

    app.put<{ Params: { id: string; personId: string } }>('/computers/:id/grants/:personId', async (req) => {
      const p = principalOf(req);
      const c = await load(p, req.params.id);
      ensure(canEditComputer(p, c), `share ${c.name}`);
      const t = await grantTarget(p, c, req.params.personId);
      if (t.role !== 'technician' || t.organization_id !== c.organizationId) {
        throw new FieldValidationError({ personId: `only technicians of the computer's organization get grants (${t.login} is a ${t.role})` });
      }
      await db.query('INSERT INTO grants (computer_id, person_id) VALUES ($1,$2) ON CONFLICT DO NOTHING', [c.id, t.id]);
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', computer: c.name, data: { action: 'grant.added', id: c.id, person: t.login, organizationId: c.organizationId } });
      return { personId: t.id, login: t.login, computerId: c.id };
    });

    app.delete<{ Params: { id: string; personId: string } }>('/computers/:id/grants/:personId', async (req, reply) => {
      const p = principalOf(req);
      const c = await load(p, req.params.id);
      ensure(canEditComputer(p, c), `unshare ${c.name}`);
      const t = await grantTarget(p, c, req.params.personId);
      const rows = await db.query('DELETE FROM grants WHERE computer_id = $1 AND person_id = $2 RETURNING person_id', [c.id, t.id]);
      if (!rows.length) throw notFound('grant');
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', computer: c.name, data: { action: 'grant.removed', id: c.id, person: t.login, organizationId: c.organizationId } });
      // Unsharing also ends what the grant allowed: their live sessions on this computer, on every gateway.
      for (const l of await deps.liveSessions.list()) {
        if (l.personLogin === t.login && l.computerName === c.name) await deps.liveSessions.terminate(l.sessionId, p.login);
      }
      return reply.status(204).send();
    });
  };
}
