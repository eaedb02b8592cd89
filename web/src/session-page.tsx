import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { guardLeaving } from './router.js';
import { Link } from './ui.js';

/**
 * What the terminal and remote desktop pages share: a focused layout (no main
 * navigation, an explicit End session button), a confirmation before leaving a
 * live session, and a marker on the history entry so Back/Forward to a page
 * whose session already ran does not silently provision a new JIT account.
 */
const LEAVE_TEXT = 'Leaving this page ends the session. Leave anyway?';

/** While `live`: the browser asks before unload, in-app navigation and Back/Forward ask with confirm(). */
export function useLeaveGuard(live: boolean): void {
  useEffect(() => {
    if (!live) return;
    const onUnload = (e: BeforeUnloadEvent) => {
      e.preventDefault();
      // Chromium shows its own text; returnValue must be set for the dialog to appear
      e.returnValue = LEAVE_TEXT;
    };
    window.addEventListener('beforeunload', onUnload);
    const remove = guardLeaving(() => confirm(LEAVE_TEXT));
    return () => {
      window.removeEventListener('beforeunload', onUnload);
      remove();
    };
  }, [live]);
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

/** The focused session page: brand, what this is, an End session button, then the page. */
export function SessionFrame({ title, live, onEnd, children }: { title: string; live: boolean; onEnd: () => void; children: ComponentChildren }) {
  return (
    <section class="session-page focused">
      <header class="session-head">
        <span class="brand">jitgate</span> <h1 class="session-title">{title}</h1>{' '}
        {live ? (
          <button type="button" class="danger" data-testid="end-session" onClick={onEnd}>
            End session
          </button>
        ) : (
          <Link href="/">Back to sessions</Link>
        )}
      </header>
      {children}
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
