import type { Database } from '../../core/db/database.js';
import { JitgateError, type ErrorDetails } from '../../core/errors.js';
import { checkComputerStores, storeScopeErrorDef, type ComputerStores, type StoreScopeProblem } from '../../provisioner/store-scope.js';
import type { Principal } from '../auth/principal.js';
import type { StoreInfo } from './deps.js';
import { FieldValidationError } from './http.js';

/**
 * Which account stores a person may put on a computer: the API side of
 * provisioner/store-scope.ts. Stores belong to organizations in the
 * configuration; every route that writes a computer's stores, groups or
 * container goes through `authorizeComputerStores`, and the store listing
 * through `storesFor`, so what an organization admin can choose and what
 * they can save are the same set.
 */

export async function organizationName(db: Database, organizationId: string): Promise<string | null> {
  const rows = await db.query<{ name: string }>('SELECT name FROM organizations WHERE id = $1', [organizationId]);
  return rows[0]?.name ?? null;
}

/** A store-scope refusal with its own code, and `details.fields` naming the computer field (as forms read it). */
export class StoreScopeRefusal extends JitgateError {
  readonly field: string;
  constructor(problem: StoreScopeProblem) {
    super(storeScopeErrorDef(problem.error), { ...problem.error.details, field: problem.field });
    this.field = problem.field;
  }

  override toJSON(): { code: string; message: string; details: ErrorDetails } {
    const base = super.toJSON();
    return { ...base, details: { ...base.details, fields: { [this.field]: this.message } as unknown as string } };
  }
}

/**
 * Throw unless `p` may give the computer (as it would be saved) its
 * domain/local stores, admin groups and container, in its organization.
 */
export async function authorizeComputerStores(db: Database, stores: readonly StoreInfo[], p: Principal, c: ComputerStores & { organizationId: string }): Promise<void> {
  const org = await organizationName(db, c.organizationId);
  if (org === null) throw new FieldValidationError({ organizationId: 'no such organization' });
  const problem = checkComputerStores((name) => stores.find((s) => s.name === name), c, { organizationName: org, byGlobalAdmin: p.role === 'global_admin' });
  if (problem) throw new StoreScopeRefusal(problem);
}

/**
 * The stores `p` may see: all for global admins; for an organization
 * admin only the stores owned by their organization, with the owner list
 * cut to that organization (other customers' names are not theirs to see).
 */
export async function storesFor(db: Database, stores: readonly StoreInfo[], p: Principal): Promise<StoreInfo[]> {
  if (p.role === 'global_admin') return [...stores];
  const org = p.organizationId === null ? null : await organizationName(db, p.organizationId);
  if (org === null) return [];
  return stores.filter((s) => s.organizations?.includes(org)).map((s) => ({ ...s, organizations: [org] }));
}
