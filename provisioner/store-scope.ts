import type { AccountStoreConfig } from '../config/schema.js';
import { JitgateError, type ErrorDef, type ErrorDetails } from '../core/errors.js';
import { StoreErrors } from './errors.js';
import { isDnWithin } from './stores/ldap-escape.js';

/**
 * Which computers may use an account store, and with which groups and
 * containers: the rules that keep one customer's admins out of another
 * customer's directory. Pure; the API checks them when a computer is
 * created, changed or imported, and the JIT engine again before it
 * provisions (defence in depth against rows written around the API).
 */

/** What a store allows, as configured (`accountStores[]`). */
export interface StoreScope {
  name: string;
  /** Organizations (by name) whose computers may use the store; null: unowned, assignable by global admins only. */
  organizations: string[] | null;
  /** Group names configured on the store (`groups` keys): the only valid `jit.adminGroups` entries. */
  groups: string[];
  /** LDAP: DNs `jit.container` must equal or lie inside. null: the store has no containers (SSH, WinRM). */
  allowedContainers: string[] | null;
}

export function storeScopeOf(cfg: AccountStoreConfig): StoreScope {
  return {
    name: cfg.name,
    organizations: cfg.organizations ? [...cfg.organizations] : null,
    // Object.keys: own properties only, so `constructor` or `__proto__` are never "configured groups".
    groups: Object.keys(cfg.groups),
    allowedContainers: cfg.type === 'ldap' ? [...(cfg.allowedContainers ?? [cfg.accountsContainer])] : null,
  };
}

export interface StoreUse {
  /** Name of the organization that owns the computer. */
  organizationName: string;
  /** `jit.adminGroups` the account joins in this store. */
  adminGroups: readonly string[];
  /** `jit.container`, when set (only meaningful for LDAP stores). */
  container?: string | null;
  /**
   * Whether a global admin assigns the store. Only they may use a store
   * without owners. The engine passes true at provisioning time: it cannot
   * know who configured the computer, and the API already refused others.
   */
  byGlobalAdmin: boolean;
}

/** Why `use` of the store is refused, or null when allowed. Checks ownership, then groups, then container. */
export function checkStoreScope(scope: StoreScope, use: StoreUse): JitgateError | null {
  // An org admin is told only "not yours": whether the store is unowned or whose it is is not theirs to learn.
  const notOurs = (globalReason: string) =>
    new JitgateError(StoreErrors.JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG, {
      store: scope.name, organization: use.organizationName, reason: use.byGlobalAdmin ? globalReason : "it is not one of the organization's stores",
    });
  if (scope.organizations === null) {
    if (!use.byGlobalAdmin) return notOurs('');
  } else if (!scope.organizations.includes(use.organizationName)) {
    // Also for global admins: a store owned by other organizations would create accounts in their directory.
    return notOurs("the organization is not among the store's organizations (accountStores[].organizations)");
  }
  for (const group of use.adminGroups) {
    if (!scope.groups.includes(group)) return new JitgateError(StoreErrors.JIT_ERR_STORE_GROUP_UNKNOWN, { store: scope.name, group });
  }
  if (use.container && scope.allowedContainers !== null && !scope.allowedContainers.some((allowed) => isDnWithin(use.container!, allowed))) {
    return new JitgateError(StoreErrors.JIT_ERR_STORE_CONTAINER_NOT_ALLOWED, { store: scope.name, container: use.container });
  }
  return null;
}

/** What the computer-level check needs of a computer. */
export interface ComputerStores {
  domainStore: string | null;
  localStore: string | null;
  jit: { enabled: boolean; accountType: 'domain' | 'local' | 'choose'; adminGroups: readonly string[]; container?: string | undefined };
}

/** A refusal and the computer field it is about (for forms). */
export interface StoreScopeProblem {
  field: 'domainStore' | 'localStore' | 'jit.adminGroups' | 'jit.container';
  error: JitgateError;
}

/**
 * Check both stores of a computer. Each named store must be usable by the
 * computer's organization (even one the account type does not use: it
 * would be one setting away); the admin groups must be configured on each
 * store a session may provision in, and the container inside the domain
 * store's allowed containers. Unknown store names are the caller's
 * validation (null scope → skipped here).
 */
export function checkComputerStores(
  scopeOf: (name: string) => StoreScope | undefined,
  c: ComputerStores,
  use: Omit<StoreUse, 'adminGroups' | 'container'>,
): StoreScopeProblem | null {
  const kind = c.jit.accountType;
  for (const [field, name, usedForAccounts] of [
    ['domainStore', c.domainStore, kind === 'domain' || kind === 'choose'],
    ['localStore', c.localStore, kind === 'local' || kind === 'choose'],
  ] as const) {
    const scope = name === null ? undefined : scopeOf(name);
    if (!scope) continue;
    const provisions = c.jit.enabled && usedForAccounts;
    const error = checkStoreScope(scope, {
      ...use,
      adminGroups: provisions ? c.jit.adminGroups : [],
      container: provisions && field === 'domainStore' ? c.jit.container : undefined,
    });
    if (error) {
      const f = error.code === StoreErrors.JIT_ERR_STORE_GROUP_UNKNOWN.code ? 'jit.adminGroups' : error.code === StoreErrors.JIT_ERR_STORE_CONTAINER_NOT_ALLOWED.code ? 'jit.container' : field;
      return { field: f, error };
    }
  }
  return null;
}

/** The definition behind a refusal of this module (to rebuild it with more details). */
export function storeScopeErrorDef(error: JitgateError): ErrorDef {
  const def = [StoreErrors.JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG, StoreErrors.JIT_ERR_STORE_GROUP_UNKNOWN, StoreErrors.JIT_ERR_STORE_CONTAINER_NOT_ALLOWED].find((d) => d.code === error.code);
  if (!def) throw new Error(`${error.code} is not a store-scope refusal`);
  return def;
}

/** The refusal again with more details, e.g. which entry of an import document it is about. */
export function withDetails(error: JitgateError, extra: ErrorDetails): JitgateError {
  return new JitgateError(storeScopeErrorDef(error), { ...error.details, ...extra });
}
