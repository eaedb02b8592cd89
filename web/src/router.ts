import { useEffect, useState } from 'preact/hooks';

/** History routing: paths like /admin/computers; the gateway answers index.html for every non-/api path. */
const listeners = new Set<() => void>();

/** A page that must not be left silently (a live session): asked before in-app navigation and Back/Forward. */
let leaveGuard: { ask: () => boolean; url: string } | null = null;

/** Install `ask` (true = may leave) for the current address; returns its remover. */
export function guardLeaving(ask: () => boolean): () => void {
  const g = { ask, url: location.pathname + location.search };
  leaveGuard = g;
  return () => {
    if (leaveGuard === g) leaveGuard = null;
  };
}

export function navigate(to: string, replace = false): void {
  if (leaveGuard && !leaveGuard.ask()) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  for (const l of listeners) l();
  window.scrollTo(0, 0);
}

window.addEventListener('popstate', () => {
  // Back/Forward already moved the address: staying means putting the guarded page back.
  if (leaveGuard && location.pathname + location.search !== leaveGuard.url && !leaveGuard.ask()) {
    history.pushState(history.state, '', leaveGuard.url);
    return;
  }
  for (const l of listeners) l();
});

export function useLocation(): { path: string; search: URLSearchParams; hash: string } {
  const [, force] = useState(0);
  useEffect(() => {
    const l = () => force((n) => n + 1);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return { path: location.pathname, search: new URLSearchParams(location.search), hash: location.hash };
}

/** Click handler for in-app links: keeps new-tab/modifier clicks native. */
export function linkClick(e: MouseEvent): void {
  const a = e.currentTarget as HTMLAnchorElement;
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || a.target) return;
  e.preventDefault();
  navigate(a.getAttribute('href') ?? '/');
}
