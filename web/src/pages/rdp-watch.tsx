import { useEffect, useRef, useState } from 'preact/hooks';
import { csrf } from '../api.js';
import { loadRdpView } from '../rdp-loader.js';
import { Link, Page } from '../ui.js';

/** An admin or auditor watching a live RDP session, read-only (gateway/rdp/rdp-watch.ts). */
export function RdpWatch({ id }: { id: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState('connecting…');
  useEffect(() => {
    let handle: { disconnect(): void } | null = null;
    let cancelled = false;
    loadRdpView().then(
      (mod) => {
        if (cancelled) return;
        if (!mod) return setState('Remote desktop is not available in this build.');
        handle = mod.watchRdp(host.current!, { sessionId: id, csrf: csrf(), onStatus: setState, onClosed: setState });
      },
      (err: unknown) => setState(`Remote desktop could not load: ${String(err)}`),
    );
    return () => {
      cancelled = true;
      handle?.disconnect();
    };
  }, [id]);
  return (
    <Page title="Watching a remote desktop" actions={<Link href="/live">Back to live sessions</Link>}>
      <p role="status" aria-live="polite">
        {state}
      </p>
      <div class="rdp-host watch" ref={host} />
    </Page>
  );
}
