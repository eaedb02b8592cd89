import { useEffect, useRef, useState } from 'preact/hooks';
import { watchersWords } from '../watch-words.js';
import { csrf } from '../api.js';
import { LeaseBar } from '../lease.js';
import { loadRdpView } from '../rdp-loader.js';
import { SessionEnded, SessionFrame, markEntryUsed, useDeskTab, useEntryUsed } from '../session-page.js';
import { StepUpPrompt } from '../passkeys.js';

/**
 * Remote desktop in the browser (the view itself is src/rdp/rdp-view.ts); its clipboard and file controls,
 * only those the computer's policy allows, go to the session page's side menu.
 * `accountType`: as asked in the address (`?accountType=`), given by the session desk.
 */
export function RdpPage({ computerId, accountType: askedType }: { computerId: string; accountType?: string }) {
  const host = useRef<HTMLDivElement>(null);
  const menuHost = useRef<HTMLDivElement>(null);
  const [menu, setMenu] = useState(false);
  const [computer, setComputer] = useState('');
  const [status, setStatus] = useState('Preparing session…');
  const [watched, setWatched] = useState<string | null>(null);
  const [moderation, setModeration] = useState<{ state: string; message: string } | null>(null);
  const [closed, setClosed] = useState<string | null>(null);
  // false after a close that connecting again cannot fix (no access): no button that only repeats the refusal
  const [retry, setRetry] = useState(true);
  const [attempt, setAttempt] = useState(0);
  const [stepUp, setStepUp] = useState<string | null>(null);
  const [lease, setLease] = useState<{ sessionId: string; leaseExpiresAt: number } | null>(null);

  const endRef = useRef<(() => void) | null>(null);
  // Back/Forward to an entry whose session already ran: ask, never open a new JIT account silently.
  const used = useEntryUsed();
  const idle = used && attempt === 0;
  const title = computer ? `Remote desktop · ${computer}` : 'Remote desktop';
  const active = useDeskTab(title, !idle && closed === null);
  // the tab shown again: the desktop takes the keys
  useEffect(() => {
    if (active) host.current?.querySelector<HTMLElement>('.jitgate-rdp')?.focus();
  }, [active]);
  useEffect(() => {
    if (idle) return;
    markEntryUsed();
    let handle: { disconnect(): void } | null = null;
    let cancelled = false;
    setClosed(null);
    setRetry(true);
    setLease(null);
    setStepUp(null);
    setStatus('Preparing session…');
    setWatched(null);
    setModeration(null);
    setMenu(false);
    const asked = askedType ?? new URLSearchParams(location.search).get('accountType');
    const accountType = asked === 'domain' || asked === 'local' ? asked : undefined;
    loadRdpView().then(
      (mod) => {
        if (cancelled) return;
        if (!mod) return setClosed('Remote desktop is not available in this build.');
        handle = mod.mountRdp(host.current!, { computerId, accountType, csrf: csrf(), menuHost: menuHost.current ?? undefined, onStatus: setStatus, onClosed: (r, again) => {
            setRetry(again);
            setClosed(r || 'The session ended.');
          },
          onStepUp: (m) => {
            setRetry(false);
            setClosed('Confirm it is you to connect.');
            setStepUp(m);
          },
          onWatchers: (w) => setWatched(watchersWords(w)),
          onModeration: setModeration,
          onReady: (i) => {
            setLease(i.leaseExpiresAt !== null ? { sessionId: i.sessionId, leaseExpiresAt: i.leaseExpiresAt } : null);
            setComputer(i.computer);
            setMenu(i.menu === true);
          },
        });
        endRef.current = () => {
          handle?.disconnect();
          setClosed('You ended the session.');
        };
      },
      (err: unknown) => setClosed(`Remote desktop could not load: ${String(err)}`),
    );
    return () => {
      cancelled = true;
      endRef.current = null;
      handle?.disconnect();
    };
  }, [computerId, attempt]);

  const end = () => {
    if (confirm('End this session? The just-in-time account is removed.')) endRef.current?.();
  };
  if (idle)
    return (
      <SessionFrame title={title} live={false} onEnd={end}>
        <SessionEnded onStart={() => setAttempt((n) => n + 1)} />
      </SessionFrame>
    );
  return (
    <SessionFrame title={title} live={closed === null} onEnd={end} menu={<div ref={menuHost} class="rdp-side" />} menuShown={menu && closed === null}>
      <div class="session-bar" role="status" aria-live="polite">
        {closed ? (
          <>
            <span data-testid="close-reason">{closed}</span>
            {retry && (
              <button type="button" onClick={() => setAttempt((n) => n + 1)}>
                Start a new session
              </button>
            )}
          </>
        ) : (
          <span>
            {status}
            {lease && <LeaseBar sessionId={lease.sessionId} leaseExpiresAt={lease.leaseExpiresAt} />}
          </span>
        )}
      </div>
      {moderation && closed === null && (
        <p class="watch-banner" role="status" aria-live="polite" data-testid="moderation-banner" data-state={moderation.state}>
          {moderation.message}
        </p>
      )}
      {watched && closed === null && (
        <p class="watch-banner" role="alert" data-testid="watch-banner">
          {watched}
        </p>
      )}
      {stepUp !== null && <StepUpPrompt message={stepUp} onDone={() => setAttempt((n) => n + 1)} />}
      <div class="rdp-host" ref={host} />
    </SessionFrame>
  );
}
