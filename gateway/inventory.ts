import { randomInt, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Database, Queryable } from '../core/db/database.js';
import { CoreErrors, JitgateError } from '../core/errors.js';
import { jitSettingsSchema } from '../provisioner/jit-settings.js';
import { checkComputerStores, withDetails, type StoreScope } from '../provisioner/store-scope.js';
import { applyInventoryTeams, inventoryTeamSchema } from './teams/team-inventory.js';
import { labelsSchema } from './teams/team-policy.js';

/**
 * Organizations and computers as a declarative document (`jitgate apply -f`):
 * validated as a whole first, then applied in one transaction, so bad input
 * changes nothing.
 */
const hostname = z.string().regex(/^[A-Za-z0-9.:_-]{1,253}$/, 'a host name or IP address');
const computerName = z.string().min(1, 'required').max(63, 'at most 63 characters').regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, dot, dash and underscore, starting with a letter or digit');

/** A person's existing account as typed into a directory: no control characters, no blanks at the ends. */
export const existingAccountName = z
  .string()
  .trim()
  .min(1, 'required')
  .max(256, 'at most 256 characters')
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'no control characters');

export const inventorySchema = z.strictObject({
  organizations: z
    .array(
      z.strictObject({
        name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$/, 'letters, digits, space, dot, dash, underscore'),
        sharedCode: z.string().regex(/^[0-9]{4,8}$/, '4-8 digits').optional(),
      }),
    )
    .default([]),
  computers: z
    .array(
      z.strictObject({
        organization: z.string().min(1),
        name: computerName,
        address: hostname,
        protocols: z.array(z.enum(['ssh', 'rdp'])).min(1).default(['ssh']),
        sshPort: z.number().int().min(1).max(65535).default(22),
        rdpPort: z.number().int().min(1).max(65535).default(3389),
        domainStore: z.string().nullable().default(null),
        localStore: z.string().nullable().default(null),
        jit: jitSettingsSchema,
        policy: z.record(z.string(), z.unknown()).default({}),
        restricted: z.boolean().default(false),
        /** Absent: the labels the computer has stay (a document older than labels does not erase them). */
        labels: labelsSchema.optional(),
      }),
    )
    .default([]),
  /** Teams with their manual members and grants by label (gateway/teams/team-inventory.ts). */
  teams: z.array(inventoryTeamSchema).default([]),
  /** A person's existing account on a store, for computers in elevation mode (`jit.mode: elevate`); null account: the store's rule applies. */
  accountMappings: z
    .array(
      z.strictObject({
        person: z.string().min(1).max(64),
        store: z.string().min(1),
        account: existingAccountName.nullable(),
      }),
    )
    .default([]),
});

export type Inventory = z.output<typeof inventorySchema>;

/**
 * Validate a document against the configured stores: names exist, each
 * store belongs to the computer's organization (or has no owners: the
 * inventory is applied by global admins and operators only), admin groups
 * are configured on the store, containers lie inside its allowed ones.
 */
export function parseInventory(doc: unknown, stores: ReadonlyMap<string, StoreScope>): Inventory {
  const r = inventorySchema.safeParse(doc);
  if (!r.success) {
    throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
  }
  const problems: string[] = [];
  r.data.computers.forEach((c, i) => {
    for (const [k, v] of [['domainStore', c.domainStore], ['localStore', c.localStore]] as const) {
      if (v !== null && !stores.has(v)) problems.push(`computers.${i}.${k}: no account store named ${v} in the configuration`);
    }
  });
  r.data.accountMappings.forEach((m, i) => {
    if (!stores.has(m.store)) problems.push(`accountMappings.${i}.store: no account store named ${m.store} in the configuration`);
  });
  if (problems.length) throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: problems.join('; ') });
  r.data.computers.forEach((c, i) => {
    const problem = checkComputerStores((name) => stores.get(name), c, { organizationName: c.organization, byGlobalAdmin: true });
    if (problem) throw withDetails(problem.error, { field: `computers.${i}.${problem.field}` });
  });
  return r.data;
}

/** A computer whose host-key pin an import dropped (its address or SSH port changed): the caller audits it. */
export interface UnpinnedByImport {
  id: string;
  name: string;
  organizationId: string;
  previous: string;
}

/** A computer whose document states a host-key pin it did not have (read from the host's console, not scanned): the caller audits it. */
export interface PinnedByImport {
  name: string;
  organizationId: string;
  fingerprint: string;
}

export async function applyInventory(
  db: Database, inv: Omit<Inventory, 'accountMappings' | 'teams'> & Partial<Pick<Inventory, 'accountMappings' | 'teams'>>, stores?: ReadonlyMap<string, StoreScope>,
): Promise<{ organizations: number; computers: number; accountMappings: number; teams: number; unpinned: UnpinnedByImport[]; pinned: PinnedByImport[] }> {
  const unpinned: UnpinnedByImport[] = [];
  const pinned: PinnedByImport[] = [];
  return db.transaction(async (tx) => {
    for (const o of inv.organizations) {
      const code = o.sharedCode ?? String(randomInt(1000, 10000));
      await tx.query(
        'INSERT INTO organizations (id, name, shared_code) VALUES ($1,$2,$3) ON CONFLICT (name) DO UPDATE SET shared_code = CASE WHEN $4 THEN EXCLUDED.shared_code ELSE organizations.shared_code END',
        [randomUUID(), o.name, code, o.sharedCode !== undefined],
      );
    }
    for (const c of inv.computers) {
      const org = await tx.query<{ id: string }>('SELECT id FROM organizations WHERE name = $1', [c.organization]);
      if (!org[0]) throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `computer ${c.name}: no organization named ${c.organization}` });
      // A host-key pin belongs to the address and port it was confirmed at: moving the computer drops it, whatever the document says.
      const was = await tx.query<{ id: string; address: string; ssh_port: number; pin: string | null }>(
        "SELECT id, address, ssh_port, policy->>'sshHostKeySha256' AS pin FROM computers WHERE organization_id = $1 AND lower(name) = lower($2) FOR UPDATE",
        [org[0].id, c.name],
      );
      if (was[0] && (was[0].address !== c.address || Number(was[0].ssh_port) !== c.sshPort)) {
        if (was[0].pin) unpinned.push({ id: was[0].id, name: c.name, organizationId: org[0].id, previous: was[0].pin });
        const { sshHostKeySha256: _dropped, ...rest } = c.policy as Record<string, unknown>;
        c.policy = rest;
      }
      const stated = (c.policy as Record<string, unknown>).sshHostKeySha256;
      if (typeof stated === 'string' && stated !== was[0]?.pin) pinned.push({ name: c.name, organizationId: org[0].id, fingerprint: stated });
      await tx.query(
        `INSERT INTO computers (id, organization_id, name, address, protocols, ssh_port, rdp_port, domain_store, local_store, jit, policy, restricted, labels)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,coalesce($13::jsonb, '{}'::jsonb))
         ON CONFLICT (organization_id, lower(name)) DO UPDATE SET address = EXCLUDED.address, protocols = EXCLUDED.protocols, ssh_port = EXCLUDED.ssh_port,
           rdp_port = EXCLUDED.rdp_port, domain_store = EXCLUDED.domain_store, local_store = EXCLUDED.local_store, jit = EXCLUDED.jit,
           policy = EXCLUDED.policy, restricted = EXCLUDED.restricted, labels = coalesce($13::jsonb, computers.labels), updated_at = now()`,
        [randomUUID(), org[0].id, c.name, c.address, c.protocols, c.sshPort, c.rdpPort, c.domainStore, c.localStore, JSON.stringify(c.jit), JSON.stringify(c.policy), c.restricted, c.labels ? JSON.stringify(c.labels) : null],
      );
    }
    const mappings = inv.accountMappings ?? [];
    await applyAccountMappings(tx, mappings, stores);
    // After account mappings: members are people, who exist before the document is applied.
    const teams = await applyInventoryTeams(tx, inv.teams ?? []);
    return { organizations: inv.organizations.length, computers: inv.computers.length, accountMappings: mappings.length, teams, unpinned, pinned };
  });
}

/**
 * Person → existing account per store (after organizations, in the same
 * transaction). A store a person's organization may not use is refused,
 * as in the API: a mapping onto another customer's directory has no use
 * and would name their accounts.
 */
async function applyAccountMappings(tx: Queryable, mappings: Inventory['accountMappings'], stores?: ReadonlyMap<string, StoreScope>): Promise<void> {
  for (const [i, m] of mappings.entries()) {
    const person = (await tx.query<{ id: string; org: string | null }>(
      'SELECT p.id, o.name AS org FROM people p LEFT JOIN organizations o ON o.id = p.organization_id WHERE lower(p.login) = lower($1)',
      [m.person],
    ))[0];
    if (!person) throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `accountMappings.${i}.person: no person with login ${m.person}` });
    const owners = stores?.get(m.store)?.organizations;
    if (owners && person.org !== null && !owners.includes(person.org)) {
      throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `accountMappings.${i}.store: ${m.store} is not a store of ${m.person}'s organization` });
    }
    if (m.account === null) await tx.query('DELETE FROM person_accounts WHERE person_id = $1 AND store = $2', [person.id, m.store]);
    else {
      await tx.query(
        `INSERT INTO person_accounts (person_id, store, account_name) VALUES ($1,$2,$3)
         ON CONFLICT (person_id, store) DO UPDATE SET account_name = EXCLUDED.account_name, updated_at = now()`,
        [person.id, m.store, m.account],
      );
    }
  }
}
