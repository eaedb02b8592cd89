import type { FastifyInstance } from 'fastify';
import type { AccountStoreConfig } from '../../config/schema.js';
import { storeScopeOf } from '../../provisioner/store-scope.js';
import { canListStores, canTestStores } from '../access-policy.js';
import type { ApiDeps, StoreInfo } from './deps.js';
import { ensure, notFound, principalOf } from './http.js';
import { storesFor } from './store-access.js';

/** The configured account stores as the API shows them: name, type, where and who may use them; never credentials. */
export function storeInfos(stores: readonly AccountStoreConfig[]): StoreInfo[] {
  return stores.map((s) => {
    const scope = { ...storeScopeOf(s), elevationAccountName: s.elevation.accountName };
    if (s.type === 'ldap') return { ...scope, type: s.type, url: s.url };
    if (s.type === 'ssh') return { ...scope, type: s.type, url: `ssh://${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}` };
    return { ...scope, type: s.type, url: s.endpoint };
  });
}

export function storeRoutes(deps: ApiDeps) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/account-stores', async (req) => {
      const p = principalOf(req);
      ensure(canListStores(p), 'list account stores');
      // Filtered here, not in the page: an organization admin never learns of other customers' stores.
      return (await storesFor(deps.db, deps.stores, p)).map((s) => ({
        name: s.name, type: s.type, url: s.url, organizations: s.organizations, groups: s.groups, allowedContainers: s.allowedContainers,
      }));
    });

    app.post<{ Params: { name: string } }>('/account-stores/:name/test', async (req) => {
      const p = principalOf(req);
      ensure(canTestStores(p), 'test account stores');
      if (!deps.stores.some((s) => s.name === req.params.name)) throw notFound(`account store ${req.params.name}`);
      const r = await deps.checkStore(req.params.name);
      // timeBoundMembership: the directory removes memberships by itself at lease end (AD Privileged Access Management); absent where no store can.
      if (r.ok) return r.timeBoundMembership === undefined ? { ok: true } : { ok: true, timeBoundMembership: r.timeBoundMembership };
      return { ok: false, error: r.error ?? 'unreachable' };
    });
  };
}
