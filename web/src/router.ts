import { useEffect, useState } from 'preact/hooks';

/** History routing: paths like /admin/computers; the gateway answers index.html for every non-/api path. */
const listeners = new Set<() => void>();

/**
 * A page that must not be left silently (live sessions): asked before in-app
 * navigation and Back/Forward, with the address about to open (`/terminal/…`
 * and `/rdp/…` stay in the session desk, so switching tabs asks nothing).
 */
let leaveGuard: ((to: string) => boolean) | null = null;
/** The address the app shows, to put back when Back/Forward is refused. */
let shown = location.pathname + location.search;

/** Install `ask` (true = may go to `to`); returns its remover. */
export function guardLeaving(ask: (to: string) => boolean): () => void {
  const g = ask;
  leaveGuard = g;
  shown = location.pathname + location.search;
  return () => {
    if (leaveGuard === g) leaveGuard = null;
  };
}

export function navigate(to: string, replace = false): void {
  const target = new URL(to, location.href);
  if (leaveGuard && !leaveGuard(target.pathname + target.search)) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  shown = location.pathname + location.search;
  for (const l of listeners) l();
  window.scrollTo(0, 0);
}

window.addEventListener('popstate', () => {
  // Back/Forward already moved the address: staying means putting the guarded page back.
  const to = location.pathname + location.search;
  if (leaveGuard && to !== shown && !leaveGuard(to)) {
    history.pushState(history.state, '', shown);
    return;
  }
  shown = to;
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
