import type { FastifyInstance } from 'fastify';
import YAML from 'yaml';
import { CoreErrors, JitgateError } from '../../core/errors.js';
import { applyInventory, parseInventory } from '../inventory.js';
import { exportInventoryTeams } from '../teams/team-inventory.js';
import { canUseInventory } from '../access-policy.js';
import { computerPolicySchema, effectivePolicy } from './computer-policy.js';
import type { ApiDeps } from './deps.js';
import { auditUnpinned } from './host-keys.js';
import { ensure, FieldValidationError, fieldsOf, json, principalOf } from './http.js';

type Row = Record<string, unknown>;

/** Organizations and computers as the YAML `jitgate apply -f` reads (global admins). */
export function inventoryRoutes(deps: ApiDeps) {
  const { db, audit } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    for (const type of ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml', 'text/plain']) {
      app.addContentTypeParser(type, { parseAs: 'string' }, (_req, body, done) => done(null, body));
    }

    app.get('/inventory/export', async (req, reply) => {
      ensure(canUseInventory(principalOf(req)), 'export the inventory');
      const orgs = await db.query<{ id: string; name: string; shared_code: string }>('SELECT id, name, shared_code FROM organizations ORDER BY name');
      const byId = new Map(orgs.map((o) => [o.id, o.name]));
      const computers = await db.query<Row>('SELECT * FROM computers ORDER BY name, id');
      const doc = {
        organizations: orgs.map((o) => ({ name: o.name, sharedCode: o.shared_code })),
        computers: computers.map((c) => ({
          organization: byId.get(String(c.organization_id)),
          name: c.name, address: c.address, protocols: c.protocols, sshPort: Number(c.ssh_port), rdpPort: Number(c.rdp_port),
          domainStore: c.domain_store ?? null, localStore: c.local_store ?? null, jit: json(c.jit), policy: effectivePolicy(json(c.policy)), restricted: Boolean(c.restricted),
          labels: json(c.labels) ?? {},
        })),
        accountMappings: (await db.query<{ person: string; store: string; account: string }>(
          'SELECT p.login AS person, m.store, m.account_name AS account FROM person_accounts m JOIN people p ON p.id = m.person_id ORDER BY p.login, m.store',
        )).map((m) => ({ person: m.person, store: m.store, account: m.account })),
        teams: await exportInventoryTeams(db),
      };
      reply.header('content-type', 'application/yaml; charset=utf-8').header('content-disposition', 'attachment; filename="jitgate-inventory.yaml"');
      return YAML.stringify(doc);
    });

    app.post('/inventory/import', async (req) => {
      const p = principalOf(req);
      ensure(canUseInventory(p), 'import an inventory');
      let doc: unknown;
      try {
        doc = typeof req.body === 'string' ? YAML.parse(req.body) : req.body;
      } catch (err) {
        throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `not valid YAML: ${(err as Error).message.split('\n')[0]}` });
      }
      // Store ownership, groups and containers are checked per computer (global admins: unowned stores allowed).
      const inv = parseInventory(doc ?? {}, new Map(deps.stores.map((s) => [s.name, s])));
      const fields: Record<string, string> = {};
      inv.computers.forEach((c, i) => {
        const r = computerPolicySchema.safeParse(c.policy);
        if (!r.success) for (const [k, v] of Object.entries(fieldsOf(r.error))) fields[`computers.${i}.policy.${k}`] = v;
        else c.policy = r.data;
      });
      if (Object.keys(fields).length) throw new FieldValidationError(fields);
      const { unpinned, pinned, ...result } = await applyInventory(db, inv, new Map(deps.stores.map((s) => [s.name, s])));
      await audit.record({ type: 'admin.changed', actor: p.login, outcome: 'success', data: { action: 'inventory.imported', ...result } });
      for (const u of unpinned) await auditUnpinned(audit, p.login, u, u.previous, 'address changed');
      // A pin stated in the document is a trust decision like a scan + confirm: on the record.
      for (const k of pinned) {
        await audit.record({ type: 'computer.host_key_pinned', actor: p.login, outcome: 'success', computer: k.name, data: { organizationId: k.organizationId, fingerprint: k.fingerprint, via: 'stated in an import (not scanned)' } });
      }
      return { ...result, unpinned: unpinned.map((u) => u.name), pinned: pinned.map((k) => k.name) };
    });
  };
}
