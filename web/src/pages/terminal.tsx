import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, post, wsUrl } from '../api.js';
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
  const [now, setNow] = useState(Date.now());
  const [extending, setExtending] = useState(false);
  const [extendError, setExtendError] = useState<string | null>(null);

  async function extend(ready: Extract<Status, { kind: 'ready' }>): Promise<void> {
    setExtending(true);
    setExtendError(null);
    try {
      const r = await post<{ leaseExpiresAt: string }>(`/sessions/${encodeURIComponent(ready.sessionId)}/extend`, { minutes: 30 });
      setStatus({ ...ready, leaseExpiresAt: Date.parse(r.leaseExpiresAt) });
      setNow(Date.now());
    } catch (err) {
      setExtendError(err instanceof ApiError ? err.message : 'could not extend the session');
    } finally {
      setExtending(false);
    }
  }

  // The lease clock in the status bar: minutes left, a warning in the last five.
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 15_000);
    return () => clearInterval(t);
  }, []);

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
        setNow(Date.now());
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
            {status.leaseExpiresAt !== null && <LeaseClock until={status.leaseExpiresAt} now={now} />}
            {status.leaseExpiresAt !== null && (
              <>
                {' '}
                <button type="button" class="link" data-testid="extend" disabled={extending} onClick={() => void extend(status)}>
                  Extend 30 min
                </button>
              </>
            )}
            {extendError && <span class="error-text" role="alert"> {extendError}</span>}
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

const WARN_MS = 5 * 60_000;

/** "until 14:32 (47 min left)"; in the last five minutes a warning the screen reader announces (the bar is aria-live). */
function LeaseClock({ until, now }: { until: number; now: number }) {
  const left = Math.max(0, until - now);
  const at = new Date(until).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const mins = Math.ceil(left / 60_000);
  if (left <= WARN_MS) {
    return (
      <span class="lease-warning" data-testid="lease-clock">
        {' '}· session ends at {at} ({mins <= 1 ? 'less than a minute' : `${mins} minutes`} left): save your work
      </span>
    );
  }
  return (
    <span class="muted" data-testid="lease-clock">
      {' '}· until {at} ({mins >= 120 ? `${Math.floor(mins / 60)} h` : `${mins} min`} left)
    </span>
  );
}
