import type { ComponentChildren } from 'preact';
import { createContext } from 'preact';
import { useContext, useEffect, useId, useRef, useState } from 'preact/hooks';
import { Link } from './ui.js';

/**
 * What the terminal and remote desktop pages share: a focused layout (no main
 * navigation, an explicit End session button, a side menu for what the
 * computer's policy allows), their tab in the session desk (which asks before
 * leaving live sessions), and a marker on the history entry so Back/Forward to
 * a page whose session already ran does not silently provision a new JIT account.
 */
/** What a session page tells the desk around it (session-desk.tsx): its tab's words and whether it is live. */
export interface DeskReport {
  title: string;
  live: boolean;
}

/** The desk's side of one tab: whether it is the one shown, and where its page reports. */
export const DeskTab = createContext<{ active: boolean; report: (r: DeskReport) => void } | null>(null);

/** Report this page's title and liveness to its tab; true while its tab is the one shown (always, outside a desk). */
export function useDeskTab(title: string, live: boolean): boolean {
  const tab = useContext(DeskTab);
  useEffect(() => tab?.report({ title, live }), [title, live]);
  return tab?.active ?? true;
}

interface EntryState {
  jgSession?: boolean;
}

/** Whether this history entry already ran a session (read once, when the page mounts). */
export function useEntryUsed(): boolean {
  const [used] = useState(() => (history.state as EntryState | null)?.jgSession === true);
  return used;
}

/** Mark the current history entry: a later Back/Forward here offers a new session instead of starting one. */
export function markEntryUsed(): void {
  history.replaceState({ ...((history.state as EntryState | null) ?? {}), jgSession: true }, '');
}

/**
 * The focused session page: brand, what this is, an End session button, then
 * the page; `menu` (clipboard, files: only what the computer's policy allows)
 * opens beside it from the header, and is left out when there is nothing in it.
 */
export function SessionFrame(props: {
  title: string;
  live: boolean;
  onEnd: () => void;
  menu?: ComponentChildren;
  /** The menu is there but has nothing in it yet (filled from outside, as the remote desktop's): no button, hidden. */
  menuShown?: boolean;
  children: ComponentChildren;
}) {
  const { title, live, onEnd, menu, children } = props;
  const shown = menu !== undefined && props.menuShown !== false;
  const [open, setOpen] = useState(false);
  const menuId = useId();
  const toggle = useRef<HTMLButtonElement>(null);
  const side = useRef<HTMLElement>(null);
  // Opened: the keys go to its first control. Escape closes it and gives the focus back to its button (WAI-ARIA APG, disclosure).
  useEffect(() => {
    if (!open || !shown) return;
    const first = side.current?.querySelector<HTMLElement>('button, textarea, input, select, a[href]');
    (first ?? side.current)?.focus();
  }, [open]);
  const onKey = (e: KeyboardEvent): void => {
    if (e.key !== 'Escape') return;
    e.preventDefault();
    e.stopPropagation();
    setOpen(false);
    toggle.current?.focus();
  };
  return (
    <section class="session-page focused">
      <header class="session-head">
        <span class="brand">jitgate</span> <h1 class="session-title">{title}</h1>{' '}
        {shown && (
          <button ref={toggle} type="button" aria-expanded={open} aria-controls={menuId} data-testid="session-menu-toggle" onClick={() => setOpen((o) => !o)}>
            Clipboard and files
          </button>
        )}{' '}
        {live ? (
          <button type="button" class="danger" data-testid="end-session" onClick={onEnd}>
            End session
          </button>
        ) : (
          <Link href="/">Back to sessions</Link>
        )}
      </header>
      <div class="session-body">
        <div class="session-main">{children}</div>
        {menu !== undefined && (
          <aside ref={side} id={menuId} class="session-side" aria-label="Clipboard and files" hidden={!open || !shown} data-testid="session-menu" tabIndex={-1} onKeyDown={onKey}>
            {menu}
          </aside>
        )}
      </div>
    </section>
  );
}

/** Shown instead of connecting when Back/Forward returns to a page whose session already ran. */
export function SessionEnded({ onStart }: { onStart: () => void }) {
  return (
    <div class="session-ended" role="status" data-testid="session-ended">
      <p>This session has ended. Start a new one? A new session creates a new just-in-time account.</p>
      <button type="button" onClick={onStart}>
        Start a new session
      </button>{' '}
      <Link href="/">Back to sessions</Link>
    </div>
  );
}
