import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { get, listOf, type Computer } from './api.js';
import { guardLeaving, navigate, useLocation } from './router.js';
import { DeskTab, type DeskReport } from './session-page.js';
import { ErrorBox, Link, useLoad } from './ui.js';
import { sessionHref } from './pages/sessions.js';
import { TerminalPage } from './pages/terminal.js';
import { RdpPage } from './pages/rdp.js';

/**
 * Several sessions in tabs of one window (issue 17, what technicians miss):
 * every terminal or remote desktop opened in this window stays mounted, and
 * connected, while another one is shown; the strip on top switches between
 * them without ending any. The Sessions home page ("/") is part of the desk:
 * its Connect buttons add a tab here, and while it is shown the sessions stay
 * connected behind it (main.tsx keeps the desk mounted there). Leaving the desk
 * (another page, Back to a page that is not a session or home, closing the
 * window) ends them all, so it asks first while one is live; switching tabs
 * and going home ask nothing.
 */
const SESSION_PATH = /^\/(terminal|rdp)\/([^/?]+)/;

/** The Sessions home page: the sessions of the window stay connected while it is shown. */
const HOME = '/';

export function isSessionPath(path: string): boolean {
  return SESSION_PATH.test(path);
}

function leaveText(live: number): string {
  return live > 1 ? `Leaving this page ends your ${live} live sessions. Leave anyway?` : 'Leaving this page ends the session. Leave anyway?';
}

/** While `live` sessions run: the browser asks before unload, in-app navigation and Back/Forward away from the desk ask with confirm(). */
function useLeaveGuard(live: number): void {
  const any = live > 0;
  const count = useRef(live);
  count.current = live;
  useEffect(() => {
    if (!any) return;
    const onUnload = (e: BeforeUnloadEvent) => {
      e.preventDefault();
      // Chromium shows its own text; returnValue must be set for the dialog to appear
      e.returnValue = leaveText(count.current);
    };
    window.addEventListener('beforeunload', onUnload);
    const remove = guardLeaving((to) => isSessionPath(to) || to === HOME || confirm(leaveText(count.current)));
    return () => {
      window.removeEventListener('beforeunload', onUnload);
      remove();
    };
  }, [any]);
}

/** Computers this person may open, each protocol a link that opens a tab here. */
function OpenAnother() {
  const { data, error } = useLoad(async () => listOf<Computer>(await get('/computers'), 'computers'));
  const [q, setQ] = useState('');
  const shown = (data ?? []).filter((c) => c.canConnect && c.name.toLowerCase().includes(q.trim().toLowerCase()));
  return (
    <div class="desk-open" role="region" aria-label="Open another session" data-testid="open-another">
      <label for="desk-search" class="sr-only">
        Search computers
      </label>
      <input id="desk-search" type="search" placeholder="Search computers" value={q} onInput={(e) => setQ((e.currentTarget as HTMLInputElement).value)} />
      <ErrorBox error={error} />
      <ul>
        {shown.map((c) => (
          <li key={c.id} data-computer={c.name}>
            <span>{c.name}</span>
            {c.protocols.map((p) => (
              <Link key={p} href={sessionHref(c, p)} class="button" aria-label={`Open ${c.name} with ${p.toUpperCase()} in a tab here`}>
                {p.toUpperCase()}
              </Link>
            ))}
          </li>
        ))}
        {data && shown.length === 0 && <li class="muted">No computer matches.</li>}
      </ul>
    </div>
  );
}

/** The terminal and remote desktop pages of this window, one shown, the others kept connected behind it. */
export function SessionDesk() {
  const { path, search } = useLocation();
  const qs = search.toString();
  // on the home page no tab is shown (current matches none)
  const home = !isSessionPath(path);
  const current = home ? '' : path + (qs ? `?${qs}` : '');
  // The addresses opened in this window, in the order they were opened; a tab leaves only when closed.
  const tabs = useRef<string[]>([]);
  if (!home && !tabs.current.includes(current)) tabs.current.push(current);
  const [reports, setReports] = useState<Record<string, DeskReport>>({});
  const [, redraw] = useState(0);
  const [opening, setOpening] = useState(false);
  const reporters = useMemo(() => new Map<string, (r: DeskReport) => void>(), []);
  const reporter = (url: string) => {
    let f = reporters.get(url);
    if (!f) {
      f = (r: DeskReport) => setReports((all) => (all[url]?.title === r.title && all[url]?.live === r.live ? all : { ...all, [url]: r }));
      reporters.set(url, f);
    }
    return f;
  };
  const live = tabs.current.filter((u) => reports[u]?.live !== false).length;
  useLeaveGuard(live);
  const title = reports[current]?.title;
  useEffect(() => {
    if (!home) document.title = `${title ?? 'Session'} · jitgate`;
  }, [title, home]);
  // a tab opened from the list: the list has done its job
  useEffect(() => setOpening(false), [current]);

  const close = (url: string) => {
    const at = tabs.current.indexOf(url);
    tabs.current = tabs.current.filter((u) => u !== url);
    reporters.delete(url);
    setReports(({ [url]: _gone, ...rest }) => rest);
    if (url === current) navigate(tabs.current[Math.min(at, tabs.current.length - 1)] ?? HOME, true);
    else redraw((n) => n + 1);
  };

  if (home && tabs.current.length === 0) return null;
  return (
    <div class={home ? 'session-desk home' : 'session-desk'}>
      <nav class="session-strip" aria-label="Sessions in this window" data-testid="session-strip">
        <Link href={HOME} class="desk-home" aria-current={home ? 'page' : undefined}>
          All computers
        </Link>
        <ul>
          {tabs.current.map((url) => {
            const r = reports[url];
            const kind = url.startsWith('/rdp/') ? 'Remote desktop' : 'SSH terminal';
            return (
              <li key={url} class={url === current ? 'current' : undefined} data-tab={url}>
                <Link href={url} aria-current={url === current ? 'page' : undefined}>
                  {r?.title ?? kind}
                  {r && !r.live && <span class="tab-state"> (ended)</span>}
                </Link>
                {r && !r.live && (
                  <button type="button" class="link" aria-label={`Close ${r.title}`} onClick={() => close(url)}>
                    ×
                  </button>
                )}
              </li>
            );
          })}
        </ul>
        {!home && (
          <button type="button" aria-expanded={opening} data-testid="open-another-toggle" onClick={() => setOpening((o) => !o)}>
            Open another session
          </button>
        )}
      </nav>
      {opening && !home && <OpenAnother />}
      {tabs.current.map((url) => {
        const m = SESSION_PATH.exec(url)!;
        const id = decodeURIComponent(m[2]!);
        const accountType = new URL(url, location.origin).searchParams.get('accountType') ?? undefined;
        return (
          <div key={url} class="desk-pane" hidden={url !== current}>
            <DeskTab.Provider value={{ active: url === current, report: reporter(url) }}>
              {m[1] === 'terminal' ? <TerminalPage computerId={id} accountType={accountType} /> : <RdpPage computerId={id} accountType={accountType} />}
            </DeskTab.Provider>
          </div>
        );
      })}
    </div>
  );
}
