import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Me, Person, Role } from './api.js';

export interface SessionCtx {
  me: Me;
  /** Re-read GET /auth/me (after sign-in steps, sign-out). */
  refresh: () => Promise<Me>;
}

export const Session = createContext<SessionCtx | null>(null);

export function useSession(): SessionCtx {
  const s = useContext(Session);
  if (!s) throw new Error('no session context');
  return s;
}

/**
 * What the UI offers each role. Only for hiding what a person cannot do —
 * the gateway checks every request itself.
 */
export function can(person: Person | null, what: 'connect' | 'admin' | 'globalAdmin' | 'audit' | 'live'): boolean {
  if (!person) return false;
  const r: Role = person.role;
  switch (what) {
    case 'connect':
      return r !== 'auditor';
    case 'admin':
      return r === 'global_admin' || r === 'org_admin';
    case 'globalAdmin':
      return r === 'global_admin';
    case 'audit':
    case 'live':
      return r === 'global_admin' || r === 'org_admin' || r === 'auditor';
  }
}

export type Capability = Parameters<typeof can>[1];

/**
 * What a page needs, by address: the route guard shows "not available for
 * your role" instead of a page whose every button the gateway would refuse.
 * Same table as the navigation (main.tsx), so what is linked is what opens.
 */
export function routeNeeds(path: string): Capability | null {
  if (path.startsWith('/admin/')) return 'admin';
  if (path === '/live' || path.startsWith('/live/')) return 'live';
  if (path === '/recordings' || path.startsWith('/recordings/') || path === '/audit') return 'audit';
  if (path === '/search') return 'audit';
  if (path.startsWith('/terminal/') || path.startsWith('/rdp/')) return 'connect';
  return null;
}
