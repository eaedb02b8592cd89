import { useEffect, useRef, useState } from 'preact/hooks';
import { wsUrl } from '../api.js';
import { LeaseBar } from '../lease.js';
import { CLOSE_REASONS } from '../close-reasons.js';

type Status =
  | { kind: 'connecting'; step: string }
  | { kind: 'ready'; account: string; computer: string; sessionId: string; leaseExpiresAt: number | null }
  | { kind: 'error'; message: string }
  | { kind: 'closed'; message: string };

/** Browser SSH terminal over the /terminal websocket: live provisioning progress, resize, errors in words. */
export function TerminalPage({ computerId }: { computerId: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState<Status>({ kind: 'connecting', step: 'connecting to the gateway…' });
  const [progress, setProgress] = useState<string[]>([]);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    document.title = `Terminal · jitgate`;
    let cleanup: (() => void) | null = null;
    let cancelled = false;
    // xterm.js is loaded with this page only, keeping the sign-in page small
    void import('../term.js').then(({ createTerminal }) => {
      if (cancelled) return;
      cleanup = connect(createTerminal(host.current!));
    });
    return () => {
      cancelled = true;
      cleanup?.();
    };
  }, [computerId, attempt]);

  function connect({ term, fit, dispose }: ReturnType<typeof import('../term.js').createTerminal>): () => void {
    setProgress([]);
    setStatus({ kind: 'connecting', step: 'connecting to the gateway…' });
    const accountType = new URLSearchParams(location.search).get('accountType') ?? undefined;
    fit.fit();
    const ws = new WebSocket(wsUrl('/terminal', { computer: computerId, accountType, cols: term.cols, rows: term.rows }));
    ws.binaryType = 'arraybuffer';
    let lastError: string | null = null;
    const enc = new TextEncoder();

    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') {
        term.write(new Uint8Array(ev.data as ArrayBuffer));
        return;
      }
      let msg: { type: string; step?: string; sessionId?: string; account?: string; computer?: string; code?: string; message?: string; reason?: string; leaseExpiresAt?: string };
      try {
        msg = JSON.parse(ev.data) as typeof msg;
      } catch {
        return;
      }
      if (msg.type === 'progress' && msg.step) {
        const step = msg.step;
        setProgress((p) => [...p, step]);
        setStatus({ kind: 'connecting', step });
        term.write(`\x1b[2m› ${step}\x1b[0m\r\n`);
      } else if (msg.type === 'ready') {
        const lease = msg.leaseExpiresAt ? Date.parse(msg.leaseExpiresAt) : NaN;
        setStatus({ kind: 'ready', account: msg.account ?? '', computer: msg.computer ?? computerId, sessionId: msg.sessionId ?? '', leaseExpiresAt: Number.isFinite(lease) ? lease : null });
        document.title = `${msg.computer ?? 'Terminal'} · jitgate`;
        term.focus();
      } else if (msg.type === 'error') {
        lastError = msg.message ?? msg.code ?? 'error';
        setStatus({ kind: 'error', message: lastError });
        term.write(`\r\n\x1b[31m${lastError}\x1b[0m\r\n`);
      } else if (msg.type === 'closed') {
        lastError = lastError ?? (msg.reason ? `The session ended: ${msg.reason}.` : null);
      }
    };
    ws.onclose = (ev) => {
      const words = CLOSE_REASONS[ev.code] ?? `The connection closed (code ${ev.code}).`;
      const message = ev.code === 1000 ? (lastError ?? words) : lastError && ev.code >= 4000 ? `${words} ${lastError}` : words;
      setStatus({ kind: 'closed', message });
      term.options.disableStdin = true;
      term.write(`\r\n\x1b[33m[${message}]\x1b[0m\r\n`);
    };
    const onData = term.onData((d) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
    });
    const onResize = term.onResize(({ cols, rows }) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
    });
    return () => {
      onData.dispose();
      onResize.dispose();
      ws.onclose = null;
      ws.close(1000);
      dispose();
    };
  }

  return (
    <section class="session-page">
      <div class="session-bar" role="status" aria-live="polite" data-testid="terminal-status">
        {status.kind === 'connecting' && <span>Preparing session: {status.step}</span>}
        {status.kind === 'ready' && (
          <span>
            Connected to <strong>{status.computer}</strong> as <strong data-testid="jit-account">{status.account}</strong>
            {status.leaseExpiresAt !== null && <LeaseBar sessionId={status.sessionId} leaseExpiresAt={status.leaseExpiresAt} />}
          </span>
        )}
        {status.kind === 'error' && <span class="error-text">{status.message}</span>}
        {status.kind === 'closed' && (
          <>
            <span>{status.message}</span>
            <button type="button" onClick={() => setAttempt((n) => n + 1)}>
              Reconnect
            </button>
          </>
        )}
        {progress.length > 0 && status.kind === 'connecting' && <span class="muted"> ({progress.length} steps)</span>}
      </div>
      <div class="terminal-host" ref={host} data-testid="terminal" />
    </section>
  );
}

