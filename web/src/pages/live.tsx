import { useEffect, useRef, useState } from 'preact/hooks';
import { get, listOf, post, wsUrl, type LiveSession } from '../api.js';
import { can, useSession } from '../session.js';
import { ErrorBox, Link, Page, useLoad } from '../ui.js';
import { fmtWhen } from '../time.js';
import { RdpWatch } from './rdp-watch.js';

const sid = (s: LiveSession) => s.sessionId ?? s.id ?? '';

function Watch({ id }: { id: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState('connecting…');
  const wsRef = useRef<WebSocket | null>(null);
  useEffect(() => {
    let stop: (() => void) | null = null;
    let cancelled = false;
    void import('../term.js').then(({ createTerminal }) => {
      if (!cancelled) stop = watch(createTerminal(host.current!, { readOnly: true }));
    });
    return () => {
      cancelled = true;
      stop?.();
    };
  }, [id]);

  function watch({ term, dispose }: ReturnType<typeof import('../term.js').createTerminal>): () => void {
    const ws = new WebSocket(wsUrl(`/sessions/${encodeURIComponent(id)}/watch`, {}));
    wsRef.current = ws;
    ws.binaryType = 'arraybuffer';
    // The watched terminal keeps the person's size (their lines wrap there): shrink the font until it fits the box.
    const fitFont = () => {
      const el = host.current;
      const screen = el?.querySelector<HTMLElement>('.xterm-screen');
      if (!el || !screen) return;
      const avail = el.clientWidth - 8;
      let size = term.options.fontSize ?? 14;
      for (let i = 0; i < 12 && screen.offsetWidth > avail && size > 6; i++) {
        size = Math.max(6, Math.floor((size * avail) / screen.offsetWidth));
        term.options.fontSize = size;
      }
    };
    const size = (cols: number, rows: number) => {
      term.options.fontSize = 14;
      term.resize(cols, rows);
      requestAnimationFrame(fitFont);
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        try {
          const h = JSON.parse(ev.data) as { type: string; cols?: number; rows?: number };
          if ((h.type === 'header' || h.type === 'resize') && h.cols && h.rows) size(h.cols, h.rows);
          if (h.type === 'header') setState('watching (read-only)');
        } catch {
          // ignore
        }
        return;
      }
      term.write(new Uint8Array(ev.data as ArrayBuffer));
    };
    ws.onclose = (ev) => setState(ev.code === 1000 ? 'the session ended' : `watching stopped (code ${ev.code})`);
    return () => {
      ws.onclose = null;
      ws.close(1000);
      dispose();
    };
  }
  return (
    <Page
      title="Watching a session"
      actions={
        <>
          {/* a moderator (or an admin) ends the session from here: refused by the gateway for anyone else */}
          <button type="button" class="danger" onClick={() => confirm('Terminate this session? The person is disconnected and the account torn down.') && wsRef.current?.send(JSON.stringify({ type: 'terminate' }))}>
            Terminate
          </button>{' '}
          <Link href="/live">Back to live sessions</Link>
        </>
      }
    >
      <p role="status" aria-live="polite">
        {state}
      </p>
      <div class="terminal-host watch" ref={host} />
    </Page>
  );
}

export function LivePage({ watch }: { watch?: string }) {
  const { me } = useSession();
  const { data, error, reload } = useLoad(async () => listOf<LiveSession>(await get('/sessions?state=live'), 'sessions'));
  // Four-eyes sessions this person moderates (docs/access-requests.md): a session waits until one of them watches.
  const moderate = useLoad(async () => get<LiveSession[]>('/moderation/sessions').catch(() => [] as LiveSession[]));
  const [err, setErr] = useState<unknown>(null);
  const [gone, setGone] = useState<string[]>([]);
  useEffect(() => {
    if (watch) return;
    const t = setInterval(() => {
      reload();
      moderate.reload();
    }, 5000);
    return () => clearInterval(t);
  }, [watch, reload, moderate.reload]);
  if (watch) return new URLSearchParams(location.search).get('protocol') === 'rdp' ? <RdpWatch id={watch} /> : <Watch id={watch} />;
  const extend = async (s: LiveSession) => {
    try {
      await post(`/sessions/${sid(s)}/extend`, { minutes: 30 });
      reload();
    } catch (e) {
      setErr(e);
    }
  };
  const terminate = async (s: LiveSession) => {
    if (!confirm(`Terminate ${s.personLogin}'s session on ${s.computerName}? Both sides are closed and the account is torn down.`)) return;
    try {
      await post(`/sessions/${sid(s)}/terminate`);
      // Gone from the list at once (the gateway has dropped it by now; the reload confirms).
      setGone((g) => [...g, sid(s)]);
      reload();
    } catch (e) {
      setErr(e);
    }
  };
  const rows = (data ?? []).filter((s) => !gone.includes(sid(s)));
  return (
    <Page title="Live sessions">
      <ErrorBox error={error ?? err} />
      {(moderate.data ?? []).length > 0 && (
        <section aria-label="Sessions to moderate" data-testid="moderation-list">
          <h2>Sessions to moderate</h2>
          <p class="muted">These sessions connect only while a moderator watches: open one to let it run; closing the watch pauses it.</p>
          <ul>
            {(moderate.data ?? []).map((s) => (
              <li key={sid(s)}>
                {s.personLogin} on {s.computerName} <span class="badge">{s.protocol.toUpperCase()}</span>{' '}
                <Link href={`/live/${encodeURIComponent(sid(s))}/watch${s.protocol === 'rdp' ? '?protocol=rdp' : ''}`}>Moderate</Link>
              </li>
            ))}
          </ul>
        </section>
      )}
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Who</th>
            <th scope="col">Where</th>
            <th scope="col">Account</th>
            <th scope="col">Since</th>
            <th scope="col">Until</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((s) => (
            <tr key={sid(s)}>
              <td data-label="Who">{s.personLogin}</td>
              <td data-label="Where">
                {s.computerName} <span class="badge">{s.protocol.toUpperCase()}</span>
              </td>
              <td data-label="Account">
                <code>{s.account ?? s.accountName ?? '—'}</code>
              </td>
              <td data-label="Since">{fmtWhen(s.startedAt)}</td>
              <td data-label="Until">{fmtWhen(s.leaseExpiresAt)}</td>
              <td class="row-actions">
                {s.protocol === 'ssh' && <Link href={`/live/${encodeURIComponent(sid(s))}/watch`}>Watch</Link>}
                {s.protocol === 'rdp' && <Link href={`/live/${encodeURIComponent(sid(s))}/watch?protocol=rdp`}>Watch</Link>}{' '}
                {s.canExtend && (
                  <button type="button" onClick={() => void extend(s)} aria-label={`Extend 30 min: ${s.personLogin}'s session on ${s.computerName}`}>
                    Extend 30 min
                  </button>
                )}{' '}
                {(s.canTerminate ?? can(me.person, 'admin')) && (
                  <button type="button" class="danger" onClick={() => void terminate(s)}>
                    Terminate
                  </button>
                )}
              </td>
            </tr>
          ))}
          {data !== undefined && rows.length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                Nobody is connected right now. Sessions appear here as soon as someone connects; this list refreshes every few seconds.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </Page>
  );
}
