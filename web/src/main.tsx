import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import './styles.css';
import { get, post, setCsrf, type Me } from './api.js';
import { navigate, useLocation } from './router.js';
import { Session, can, routeNeeds } from './session.js';
import { Link, Page, ROLE_LABEL } from './ui.js';
import { SignInPage, SetupPage } from './pages/sign-in.js';
import { SessionsPage } from './pages/sessions.js';
import { SessionDesk, isSessionPath } from './session-desk.js';
import { ComputersPage } from './pages/computers.js';
import { StoresPage } from './pages/stores.js';
import { PeoplePage } from './pages/people.js';
import { OrganizationsPage } from './pages/organizations.js';
import { SignInsPage } from './pages/sign-ins.js';
import { LivePage } from './pages/live.js';
import { RecordingsPage } from './pages/recordings.js';
import { AuditPage } from './pages/audit.js';
import { SearchPage } from './pages/search.js';
import { AccountPage } from './pages/account.js';
import { InvitePage } from './pages/invite.js';
import { ChangePasswordPage } from './pages/change-password.js';
import { RequestsPage, useRequestsNav } from './pages/requests.js';
import { TeamsPage } from './pages/teams.js';
import type { ComponentChildren } from 'preact';

function Nav({ me, onSignOut }: { me: Me; onSignOut: () => void }) {
  const { path } = useLocation();
  const p = me.person;
  const requests = useRequestsNav(p);
  // at mobile width the links fold behind a Menu button (styles.css .nav-toggle); closed again on every page change
  const [open, setOpen] = useState(false);
  useEffect(() => setOpen(false), [path]);
  const items: [string, ComponentChildren, boolean][] = [
    ['/', 'Sessions', can(p, 'connect')],
    ['/admin/computers', 'Computers', can(p, 'admin')],
    ['/admin/stores', 'Account stores', can(p, 'admin')],
    ['/admin/people', 'People', can(p, 'admin')],
    ['/admin/teams', 'Teams', can(p, 'admin')],
    ['/admin/organizations', 'Organizations', can(p, 'admin')],
    ['/admin/sign-ins', 'Sign-ins', can(p, 'admin')],
    ['/requests', requests.label, requests.show],
    ['/live', 'Live sessions', can(p, 'live')],
    ['/recordings', 'Recordings', can(p, 'audit')],
    ['/search', 'Search', can(p, 'audit')],
    ['/audit', 'Audit', can(p, 'audit')],
    ['/account', 'My account', true],
  ];
  return (
    <header class="topbar">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <span class="brand">jitgate</span>
      {/* The Requests badge is folded with the links: its count rides on the button (shown only at mobile width).
          Named by its content ("Menu 2 requests waiting"), not aria-label, so the name holds the visible text (WCAG 2.5.3). */}
      <button type="button" class="nav-toggle" aria-expanded={open} aria-controls="main-nav" onClick={() => setOpen((o) => !o)}>
        Menu
        {requests.waiting > 0 && (
          <>
            <span class="badge warn" data-testid="menu-requests-waiting">
              {requests.waiting}
            </span>
            <span class="sr-only">{requests.waiting === 1 ? ' request waiting' : ' requests waiting'}</span>
          </>
        )}
      </button>
      <nav aria-label="Main" id="main-nav" class={open ? 'open' : undefined}>
        <ul>
          {items
            .filter(([, , show]) => show)
            .map(([href, label]) => (
              <li key={href}>
                <Link href={href} aria-current={path === href || (href !== '/' && path.startsWith(href)) ? 'page' : undefined}>
                  {label}
                </Link>
              </li>
            ))}
        </ul>
      </nav>
      <span class="who">
        {p?.displayName || p?.login}
        <button type="button" class="link" onClick={onSignOut}>
          Sign out
        </button>
      </span>
    </header>
  );
}

/** A typed or bookmarked address the person's role cannot use: said in words, with the way home. */
function NotAvailable({ role }: { role: string }) {
  return (
    <Page title="Not available for your role">
      <p data-testid="not-available">
        This page is for other roles: as {/^[AEIOU]/.test(role) ? 'an' : 'a'} {role.toLowerCase()} you cannot use it. Ask an administrator if you need it.{' '}
        <Link href="/">Go to your home page</Link>.
      </p>
    </Page>
  );
}

function Routes({ me }: { me: Me }) {
  const { path } = useLocation();
  const p = me.person;
  const needs = routeNeeds(path);
  if (needs && !can(p, needs)) return <NotAvailable role={ROLE_LABEL[p?.role ?? ''] ?? p?.role ?? ''} />;
  let m: RegExpExecArray | null;
  // the session desk (App renders it): one for every terminal and remote desktop of this window
  if (isSessionPath(path)) return null;
  if ((m = /^\/live\/([^/]+)\/watch$/.exec(path))) return <LivePage watch={decodeURIComponent(m[1]!)} />;
  if ((m = /^\/requests\/([^/]+)$/.exec(path))) return <RequestsPage id={decodeURIComponent(m[1]!)} />;
  if ((m = /^\/recordings\/([^/]+)$/.exec(path))) return <RecordingsPage replay={decodeURIComponent(m[1]!)} />;
  switch (path) {
    case '/admin/computers':
      return <ComputersPage />;
    case '/admin/stores':
      return <StoresPage />;
    case '/admin/people':
      return <PeoplePage />;
    case '/admin/teams':
      return <TeamsPage />;
    case '/admin/organizations':
      return <OrganizationsPage />;
    case '/admin/sign-ins':
      return <SignInsPage />;
    case '/live':
      return <LivePage />;
    case '/recordings':
      return <RecordingsPage />;
    case '/audit':
      return <AuditPage />;
    case '/search':
      return <SearchPage />;
    case '/requests':
      return <RequestsPage />;
    case '/account':
      return <AccountPage />;
    case '/':
      return can(p, 'connect') ? <SessionsPage /> : <RecordingsPage />;
    default:
      return (
        <section class="page">
          <h1>Not found</h1>
          <p>
            There is no page at <code>{path}</code>. <Link href="/">Go home</Link>.
          </p>
        </section>
      );
  }
}

function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [bootError, setBootError] = useState<string | null>(null);
  const { path } = useLocation();
  const deskKept = useRef(false);

  const refresh = useCallback(async () => {
    const m = await get<Me>('/auth/me');
    setCsrf(m.csrfToken);
    setMe(m);
    return m;
  }, []);

  useEffect(() => {
    refresh().catch((e: unknown) => setBootError(e instanceof Error ? e.message : String(e)));
  }, [refresh]);

  const signOut = useCallback(async () => {
    try {
      await post('/auth/sign-out');
    } finally {
      await refresh().catch(() => undefined);
      navigate('/sign-in', true);
    }
  }, [refresh]);

  if (bootError)
    return (
      <main id="main" class="center">
        <div class="card">
          <h1>jitgate</h1>
          <p class="error" role="alert">
            {bootError}
          </p>
          <button type="button" onClick={() => location.reload()}>
            Retry
          </button>
        </div>
      </main>
    );
  if (!me) return <main id="main" class="center" aria-busy="true" />;

  const ctx = { me, refresh };
  if (path === '/setup')
    return (
      <Session.Provider value={ctx}>
        <SetupPage />
      </Session.Provider>
    );
  if (path === '/invite' && !me.person)
    return (
      <Session.Provider value={ctx}>
        <InvitePage />
      </Session.Provider>
    );
  if (!me.person) {
    if (path !== '/sign-in') {
      const back = path + location.search;
      history.replaceState(null, '', `/sign-in${back !== '/' ? `?next=${encodeURIComponent(back)}` : ''}`);
    }
    return (
      <Session.Provider value={ctx}>
        <SignInPage />
      </Session.Provider>
    );
  }
  if (path === '/sign-in') {
    const next = new URLSearchParams(location.search).get('next');
    history.replaceState(null, '', next && next.startsWith('/') && !next.startsWith('//') ? next : '/');
  }
  // An admin set the password: the gateway refuses everything else until it is changed.
  if (me.person.mustChangePassword)
    return (
      <Session.Provider value={ctx}>
        <ChangePasswordPage onSignOut={() => void signOut()} />
      </Session.Provider>
    );
  // Session pages are focused: no main navigation to click away from a live session by accident.
  const focused = isSessionPath(path);
  const desk = focused && can(me.person, 'connect');
  // The desk stays mounted on the Sessions home page ("/"), its sessions connected, while another computer is picked there.
  deskKept.current = desk || (deskKept.current && path === '/');
  return (
    <Session.Provider value={ctx}>
      {!focused && <Nav me={me} onSignOut={() => void signOut()} />}
      <main id="main" class={focused ? 'focused' : undefined}>
        {deskKept.current && <SessionDesk />}
        {!desk && <Routes me={me} />}
      </main>
    </Session.Provider>
  );
}

render(<App />, document.getElementById('app')!);
