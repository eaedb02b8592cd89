import { useEffect, useRef, useState } from 'preact/hooks';
import { csrf } from '../api.js';
import { LeaseBar } from '../lease.js';
import { loadRdpView } from '../rdp-loader.js';

/** Remote desktop in the browser (the view itself is src/rdp/rdp-view.ts). */
export function RdpPage({ computerId }: { computerId: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState('Preparing session…');
  const [closed, setClosed] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);
  const [lease, setLease] = useState<{ sessionId: string; leaseExpiresAt: number } | null>(null);

  useEffect(() => {
    document.title = 'Remote desktop · jitgate';
    let handle: { disconnect(): void } | null = null;
    let cancelled = false;
    setClosed(null);
    setLease(null);
    setStatus('Preparing session…');
    const asked = new URLSearchParams(location.search).get('accountType');
    const accountType = asked === 'domain' || asked === 'local' ? asked : undefined;
    loadRdpView().then(
      (mod) => {
        if (cancelled) return;
        if (!mod) return setClosed('Remote desktop is not available in this build.');
        handle = mod.mountRdp(host.current!, { computerId, accountType, csrf: csrf(), onStatus: setStatus, onClosed: (r) => setClosed(r || 'The session ended.'),
          onReady: (i) => setLease(i.leaseExpiresAt !== null ? { sessionId: i.sessionId, leaseExpiresAt: i.leaseExpiresAt } : null),
        });
      },
      (err: unknown) => setClosed(`Remote desktop could not load: ${String(err)}`),
    );
    return () => {
      cancelled = true;
      handle?.disconnect();
    };
  }, [computerId, attempt]);

  return (
    <section class="session-page">
      <div class="session-bar" role="status" aria-live="polite">
        {closed ? (
          <>
            <span>{closed}</span>
            <button type="button" onClick={() => setAttempt((n) => n + 1)}>
              Reconnect
            </button>
          </>
        ) : (
          <span>
            {status}
            {lease && <LeaseBar sessionId={lease.sessionId} leaseExpiresAt={lease.leaseExpiresAt} />}
          </span>
        )}
      </div>
      <div class="rdp-host" ref={host} />
    </section>
  );
}
