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
