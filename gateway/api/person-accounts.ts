import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { JitgateError } from '../../core/errors.js';
import type { ExistingAccount } from '../../provisioner/account-store.js';
import { JitErrors } from '../../provisioner/jit-errors.js';
import { canManagePerson, isUuid } from '../access-policy.js';
import { existingAccountName } from '../inventory.js';
import type { Principal } from '../auth/principal.js';
import type { ApiDeps, StoreInfo } from './deps.js';
import { ensure, iso, notFound, parseBody, principalOf } from './http.js';
import { organizationName, storesFor } from './store-access.js';

/**
 * A person's existing accounts, per account store: which account a
 * computer in elevation mode (`jit.mode: elevate`) raises for them
 * (docs/jit-engine.md "Create or elevate"). Without a mapping the store's
 * rule applies (`accountStores[].elevation.accountName`, `{login}` by
 * default; AD finds the name as sAMAccountName or UPN).
 *
 * Who: the admins who manage the person (global admins; an organization
 * admin for the people of their organization), and only for stores the
 * person's computers may use: an organization admin sees and sets only
 * their organization's stores, as everywhere else in the API; another
 * customer's store answers 404 like one that does not exist.
 */

const putBody = z.strictObject({ accountName: existingAccountName });

type PersonRow = { id: string; login: string; role: 'global_admin' | 'org_admin' | 'technician' | 'auditor'; organization_id: string | null };
type MappingRow = { store: string; account_name: string; updated_at: Date | string };

/** The store's rule applied to a login (what the engine elevates when no mapping is set). */
export function defaultAccountName(store: Pick<StoreInfo, 'elevationAccountName'>, login: string): string {
  return (store.elevationAccountName ?? '{login}').replaceAll('{login}', login);
}

export function personAccountRoutes(deps: ApiDeps) {
  const { db, audit } = deps;

  /** The person, when `p` manages them; 404 otherwise (a person one may not manage is not one to learn about here). */
  async function managed(p: Principal, id: string): Promise<PersonRow> {
    if (!isUuid(id)) throw notFound('person');
    const r = (await db.query<PersonRow>('SELECT id, login, role, organization_id FROM people WHERE id = $1', [id]))[0];
    if (!r) throw notFound('person');
    if (!canManagePerson(p, { id: r.id, role: r.role, organizationId: r.organization_id })) {
      // The person may read their own mappings; everyone else is refused as for any other person they do not manage.
      if (r.id === p.personId) return r;
      throw notFound('person');
    }
    return r;
  }

  /** Stores `p` sees that the person's computers may use: owned by the person's organization, or unowned (global admins' computers). */
  async function storesOf(p: Principal, person: PersonRow): Promise<StoreInfo[]> {
    const visible = await storesFor(db, deps.stores, p);
    const org = person.organization_id === null ? null : await organizationName(db, person.organization_id);
    return visible.filter((s) => org === null || s.organizations === null || s.organizations.includes(org));
  }

  async function storeFor(p: Principal, person: PersonRow, name: string): Promise<StoreInfo> {
    const s = (await storesOf(p, person)).find((x) => x.name === name);
    if (!s) throw notFound(`account store ${name}`);
    return s;
  }

  const out = (s: StoreInfo, person: PersonRow, m: MappingRow | undefined) => ({
    store: s.name, type: s.type,
    /** The admin's mapping, or null (the rule applies). */
    accountName: m?.account_name ?? null,
    /** What the store's rule gives for this person. */
    defaultAccountName: defaultAccountName(s, person.login),
    /** What elevation uses now. */
    effective: m?.account_name ?? defaultAccountName(s, person.login),
    updatedAt: m ? iso(m.updated_at) : null,
  });

  return async (app: FastifyInstance): Promise<void> => {
    app.get<{ Params: { id: string } }>('/people/:id/accounts', async (req) => {
      const p = principalOf(req);
      const person = await managed(p, req.params.id);
      const stores = await storesOf(p, person);
      const rows = await db.query<MappingRow>('SELECT store, account_name, updated_at FROM person_accounts WHERE person_id = $1', [person.id]);
      return stores.map((s) => out(s, person, rows.find((r) => r.store === s.name)));
    });

    app.put<{ Params: { id: string; store: string } }>('/people/:id/accounts/:store', async (req) => {
      const p = principalOf(req);
      const person = await managed(p, req.params.id);
      ensure(canManagePerson(p, { id: person.id, role: person.role, organizationId: person.organization_id }), `map ${person.login} to an account`);
      const store = await storeFor(p, person, req.params.store);
      const { accountName } = parseBody(putBody, req.body);
      // Refused now, in the words the engine would use at session start, when the store can be asked.
      if (deps.findExistingAccount) refuseUnusable(await deps.findExistingAccount(store.name, accountName), { person: person.login, name: accountName, store: store.name });
      const rows = await db.query<MappingRow>(
        `INSERT INTO person_accounts (person_id, store, account_name) VALUES ($1,$2,$3)
         ON CONFLICT (person_id, store) DO UPDATE SET account_name = EXCLUDED.account_name, updated_at = now()
         RETURNING store, account_name, updated_at`,
        [person.id, store.name, accountName],
      );
      await audit.record({
        type: 'admin.changed', actor: p.login, outcome: 'success', account: accountName,
        data: { action: 'person.account_mapped', id: person.id, login: person.login, store: store.name, accountName, organizationId: person.organization_id },
      });
      return out(store, person, rows[0]);
    });

    app.delete<{ Params: { id: string; store: string } }>('/people/:id/accounts/:store', async (req, reply) => {
      const p = principalOf(req);
      const person = await managed(p, req.params.id);
      ensure(canManagePerson(p, { id: person.id, role: person.role, organizationId: person.organization_id }), `change the accounts of ${person.login}`);
      const store = await storeFor(p, person, req.params.store);
      const gone = await db.query<{ account_name: string }>('DELETE FROM person_accounts WHERE person_id = $1 AND store = $2 RETURNING account_name', [person.id, store.name]);
      if (gone[0]) {
        await audit.record({
          type: 'admin.changed', actor: p.login, outcome: 'success', account: gone[0].account_name,
          data: { action: 'person.account_unmapped', id: person.id, login: person.login, store: store.name, organizationId: person.organization_id },
        });
      }
      return reply.status(204).send();
    });
  };
}

/** The engine's refusals (missing, disabled, protected), raised when the mapping is saved. */
function refuseUnusable(found: ExistingAccount | null, words: { person: string; name: string; store: string }): void {
  if (!found) throw new JitgateError(JitErrors.JIT_ERR_JIT_ELEVATE_NO_ACCOUNT, words);
  if (!found.enabled) throw new JitgateError(JitErrors.JIT_ERR_JIT_ELEVATE_DISABLED, words);
  if (found.protectedReason) throw new JitgateError(JitErrors.JIT_ERR_JIT_ELEVATE_PROTECTED, { ...words, reason: found.protectedReason });
}
