import type { Role } from './principal.js';

/**
 * Who a person signed in by an identity provider is in jitgate: role from
 * their groups, organization from a claim, a mapped value or their e-mail
 * domain. Pure: the same rules decide at every sign-in, so a person whose
 * groups no longer map to any role is refused (and disabled by the caller).
 */
export interface RoleRule {
  group: string;
  role: Role;
}

export interface OrganizationRule {
  claim?: string | undefined;
  values: Readonly<Record<string, string>>;
  emailDomains: Readonly<Record<string, string>>;
  default?: string | undefined;
}

export interface MappingRules {
  roles: readonly RoleRule[];
  organization: OrganizationRule;
}

/** What the provider said about the person, already read out of its claims or directory entry. */
export interface ExternalProfile {
  groups: readonly string[];
  /** Only an address the provider asserts as verified (email_verified) counts for the domain rule. */
  verifiedEmail: string | null;
  /** The raw claims, for `organization.claim`. */
  claims: Readonly<Record<string, unknown>>;
}

export type MappingResult =
  | { ok: true; role: Role; organizationName: string | null }
  | { ok: false; reason: 'no-role' | 'no-organization' };

/** Roles that need a home organization (gateway/access-policy.ts roleNeedsOrganization). */
const NEEDS_ORG: ReadonlySet<Role> = new Set(['org_admin', 'technician']);

function claimString(v: unknown): string | null {
  if (typeof v === 'string' && v.length > 0) return v;
  if (Array.isArray(v) && v.length === 1 && typeof v[0] === 'string') return v[0];
  return null;
}

export function mapExternalIdentity(rules: MappingRules, who: ExternalProfile): MappingResult {
  // Group names compare case-insensitively: directories (AD) do, and DNs differ in case between tools.
  const groups = new Set(who.groups.map((g) => g.toLowerCase()));
  const rule = rules.roles.find((r) => groups.has(r.group.toLowerCase()));
  if (!rule) return { ok: false, reason: 'no-role' };
  const o = rules.organization;
  let org: string | null = null;
  if (o.claim !== undefined) {
    const v = claimString(who.claims[o.claim]);
    if (v !== null) org = Object.keys(o.values).length > 0 ? (o.values[v] ?? null) : v;
  }
  if (org === null && who.verifiedEmail) {
    const domain = who.verifiedEmail.slice(who.verifiedEmail.lastIndexOf('@') + 1).toLowerCase();
    org = o.emailDomains[domain] ?? null;
  }
  org ??= o.default ?? null;
  if (org === null && NEEDS_ORG.has(rule.role)) return { ok: false, reason: 'no-organization' };
  return { ok: true, role: rule.role, organizationName: org };
}

/**
 * OIDC `amr` values (RFC 8176) that mean the provider itself asked for a
 * second factor: `mfa`, `otp`, `hwk` (hardware key). `pwd` alone does not.
 */
export function providerAssertedMfa(amr: unknown): boolean {
  return Array.isArray(amr) && amr.some((v) => v === 'mfa' || v === 'otp' || v === 'hwk');
}

/** Groups from a claim that may be a list or a single string; other shapes count as none. */
export function groupsFromClaim(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}
