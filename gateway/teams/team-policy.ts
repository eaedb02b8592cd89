import { z } from 'zod';
import type { Role } from '../auth/principal.js';

/**
 * Teams, labels and grants by team × label selector: pure rules, tested
 * table-driven in team-policy.test.ts across organizations and roles.
 *
 * - A team belongs to one organization; its members are people of that
 *   organization only.
 * - A team grant (selector `env=prod,customer=acme`) gives the team's
 *   technicians what a person × computer grant gives for one computer:
 *   every computer of the team's organization whose labels hold every pair
 *   of the selector. A team or a label of organization A never grants
 *   anything in organization B, whatever the rows say (a person moved, a
 *   computer moved, a stale row): each decision compares the three
 *   organizations again.
 * - Org admins manage the teams of their organization, global admins all;
 *   auditors read them in their scope; technicians see only the names of
 *   their own teams (through /auth/me-like views, not the admin API).
 */

export type Labels = Readonly<Record<string, string>>;

/** Keys: lower case, like Kubernetes label names (`env`, `customer`, `os`, `site.region`). */
const LABEL_KEY = /^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/;
/** Values: letters, digits, dot, dash, underscore; compared exactly. */
const LABEL_VALUE = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
export const MAX_LABELS = 20;

const labelKey = z.string().regex(LABEL_KEY, 'a label key: lower-case letters, digits, dot, dash, slash or underscore (at most 63 characters)');
const labelValue = z.string().regex(LABEL_VALUE, 'a label value: letters, digits, dot, dash or underscore (at most 63 characters)');

/** Labels of a computer: at most MAX_LABELS pairs. */
export const labelsSchema = z
  .record(labelKey, labelValue)
  .refine((l) => Object.keys(l).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`);

/** A grant's selector: at least one pair (an empty selector would match every computer of the organization). */
export const selectorSchema = labelsSchema.refine((l) => Object.keys(l).length > 0, 'at least one label, key=value');

/** `env=prod, customer=acme` → `{env: 'prod', customer: 'acme'}`; null when any part is not key=value. */
export function parseLabelText(text: string): Record<string, string> | null {
  const out: Record<string, string> = {};
  for (const part of text.split(/[,\s]+/).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0 || eq === part.length - 1) return null;
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

/** `{env: 'prod', customer: 'acme'}` → `customer=acme, env=prod` (sorted, stable for display and audit). */
export function formatLabels(l: Labels): string {
  return Object.keys(l)
    .sort()
    .map((k) => `${k}=${l[k]}`)
    .join(', ');
}

/** Every pair of the selector is among the labels (an empty selector matches nothing). */
export function selectorMatches(selector: Labels, labels: Labels): boolean {
  const keys = Object.keys(selector);
  return keys.length > 0 && keys.every((k) => Object.prototype.hasOwnProperty.call(labels, k) && labels[k] === selector[k]);
}

/** What the rules need of a person as a grantee or a member. */
export interface MemberRef {
  role: Role;
  organizationId: string | null;
}

/** A team grant as loaded for one person: the team's organization and the selector. */
export interface TeamGrantRef {
  teamOrganizationId: string;
  selector: Labels;
}

/** What the rules need of a computer. */
export interface LabelledComputerRef {
  organizationId: string;
  labels: Labels;
}

/**
 * Whether one of `grants` (of teams the person is in) covers `computer`.
 * Only technicians hold grants (admins reach their organization anyway,
 * auditors never connect), and only inside their own organization.
 */
export function grantedByTeams(person: MemberRef, grants: readonly TeamGrantRef[], computer: LabelledComputerRef): boolean {
  if (person.role !== 'technician' || person.organizationId === null) return false;
  if (person.organizationId !== computer.organizationId) return false;
  return grants.some((g) => g.teamOrganizationId === computer.organizationId && selectorMatches(g.selector, computer.labels));
}

// ---- administration ----

// Who manages and reads teams: canManageTeams and canSeeTeams in access-policy.ts, beside the other access rules
// (access-policy.ts reads team grants through team-grants.ts, so this module does not import it).

/** Whether `person` may be a member of a team of `teamOrganizationId`: people of that organization only. */
export function canBeMember(person: MemberRef, teamOrganizationId: string): boolean {
  return person.organizationId !== null && person.organizationId === teamOrganizationId;
}

// ---- sync from identity-provider groups ----

/** A team as the sync sees it. */
export interface SyncTeam {
  id: string;
  organizationId: string;
  syncGroups: readonly string[];
}

/** A membership the person holds now. */
export interface HeldMembership {
  teamId: string;
  teamOrganizationId: string;
  source: 'manual' | 'sync';
}

export interface TeamSyncPlan {
  /** Teams to join (source 'sync'). */
  add: string[];
  /** Memberships to end. */
  remove: string[];
}

/**
 * What a sign-in changes in the person's teams, given the groups the
 * provider or directory says they are in now. Group names compare without
 * case (AD does; DNs differ in case between tools).
 *
 * - Joins every team of the person's organization one of whose sync groups
 *   they are in (a team of another organization never, whatever its groups).
 * - Leaves synced memberships whose groups they are no longer in.
 * - Leaves every membership (manual ones too) in teams of another
 *   organization: the person moved.
 * - Keeps manual memberships of their organization: an admin added them.
 */
export function planTeamSync(person: MemberRef, groups: readonly string[], teams: readonly SyncTeam[], held: readonly HeldMembership[]): TeamSyncPlan {
  const have = new Set(groups.map((g) => g.toLowerCase()));
  const want = new Set(
    teams
      .filter((t) => canBeMember(person, t.organizationId) && t.syncGroups.some((g) => have.has(g.toLowerCase())))
      .map((t) => t.id),
  );
  const heldIds = new Set(held.map((h) => h.teamId));
  const remove = held
    .filter((h) => !canBeMember(person, h.teamOrganizationId) || (h.source === 'sync' && !want.has(h.teamId)))
    .map((h) => h.teamId);
  const add = [...want].filter((id) => !heldIds.has(id));
  return { add: add.sort(), remove: remove.sort() };
}
