import { useEffect, useMemo, useState } from 'preact/hooks';
import { get, listOf, type AccountType, type Computer, type RecentComputer } from '../api.js';
import { LabelChips, labelPairs } from '../labels.js';
import { preloadRdpView } from '../rdp-loader.js';
import { linkClick } from '../router.js';
import { ErrorBox, Page, fmtTime, useLoad } from '../ui.js';

/** The address of a session page (the session desk opens it in a tab). */
export function sessionHref(c: Computer, protocol: 'ssh' | 'rdp', accountType?: AccountType): string {
  const q = accountType ? `?accountType=${accountType}` : '';
  return `/${protocol === 'ssh' ? 'terminal' : 'rdp'}/${encodeURIComponent(c.id)}${q}`;
}

/** Whether the person picks the account kind at connect time. */
function choices(c: Computer): AccountType[] {
  const types = c.accountTypes ?? [];
  return c.jit?.accountType === 'choose' || types.length > 1 ? types : [];
}

function ConnectButtons({ c }: { c: Computer }) {
  const opts = choices(c);
  const [kind, setKind] = useState<AccountType | ''>(opts.length ? opts[0]! : '');
  if (!c.canConnect) return <span class="muted">no access</span>;
  return (
    <div class="connect">
      {opts.length > 1 && (
        <select aria-label={`Account for ${c.name}`} value={kind} onChange={(e) => setKind((e.currentTarget as HTMLSelectElement).value as AccountType)}>
          {opts.map((o) => (
            <option key={o} value={o}>
              {o === 'domain' ? 'Domain account' : 'Local account'}
            </option>
          ))}
        </select>
      )}
      {c.protocols.map((p) => (
        // a tab of this window's session desk (issue 17); a middle, Ctrl or Shift click still opens another window, with its own desk
        <a key={p} class="button primary" href={sessionHref(c, p, kind || undefined)} onClick={linkClick} onPointerDown={p === 'rdp' ? preloadRdpView : undefined} aria-label={`Connect to ${c.name} with ${p.toUpperCase()}`}>
          {p.toUpperCase()}
        </a>
      ))}
    </div>
  );
}

/** The computers connected to lately, newest first, each with its connect buttons (issue 17: a home page with recent connections). */
function RecentConnections({ recent, computers }: { recent: RecentComputer[]; computers: Computer[] }) {
  const byId = new Map(computers.map((c) => [c.id, c]));
  const rows = recent.map((r) => ({ r, c: byId.get(r.computerId) })).filter((x): x is { r: RecentComputer; c: Computer } => x.c !== undefined);
  return (
    <section aria-labelledby="recent-title" class="recent">
      <h2 id="recent-title">Recent connections</h2>
      {rows.length === 0 ? (
        <p class="muted">Your recent connections appear here after your first session.</p>
      ) : (
        <ul class="recent-list">
          {rows.map(({ r, c }) => (
            <li key={c.id} data-recent={c.name}>
              <strong>{c.name}</strong> <span class="muted">last {r.protocol.toUpperCase()} session {fmtTime(r.lastConnectedAt)}</span>
              <ConnectButtons c={c} />
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Home for technicians: recent connections on top, then the computers they may reach, searchable and filtered by label. */
export function SessionsPage() {
  const { data, error, loading } = useLoad(async () => listOf<Computer>(await get('/computers'), 'computers'));
  const recent = useLoad(async () => listOf<RecentComputer>(await get('/computers/recent'), 'recent'));
  // Fetch the RDP code (guacamole-common-js) once the list shows an RDP computer: its hashed chunk is cached as
  // immutable, so the tab a click opens finds it in the cache instead of loading it cold before connecting.
  const hasRdp = (data ?? []).some((c) => c.canConnect && c.protocols.includes('rdp'));
  useEffect(() => {
    if (!hasRdp) return;
    const idle = window.requestIdleCallback ?? ((f: () => void) => window.setTimeout(f, 200));
    idle(() => preloadRdpView());
  }, [hasRdp]);
  const [q, setQ] = useState('');
  const [label, setLabel] = useState('');
  const allLabels = useMemo(() => [...new Set((data ?? []).flatMap((c) => labelPairs(c.labels)))].sort(), [data]);
  const shown = useMemo(() => {
    const needle = q.trim().toLowerCase();
    return (data ?? []).filter(
      (c) =>
        (!label || labelPairs(c.labels).includes(label)) &&
        (!needle || c.name.toLowerCase().includes(needle) || c.address.toLowerCase().includes(needle) || labelPairs(c.labels).some((l) => l.toLowerCase().includes(needle))),
    );
  }, [data, q, label]);
  return (
    <Page title="Sessions">
      {data && recent.data && <RecentConnections recent={recent.data} computers={data} />}
      <h2 id="computers-title">Computers</h2>
      <div class="toolbar">
        <label for="computer-search" class="sr-only">
          Search computers
        </label>
        <input id="computer-search" type="search" placeholder="Search computers by name, address or label" value={q} onInput={(e) => setQ((e.currentTarget as HTMLInputElement).value)} />
        {allLabels.length > 0 && (
          <>
            <label for="computer-label" class="sr-only">
              Filter by label
            </label>
            <select id="computer-label" value={label} onChange={(e) => setLabel((e.currentTarget as HTMLSelectElement).value)}>
              <option value="">All labels</option>
              {allLabels.map((l) => (
                <option key={l} value={l}>
                  {l}
                </option>
              ))}
            </select>
          </>
        )}
      </div>
      <ErrorBox error={error ?? recent.error} />
      <table class="list" aria-labelledby="computers-title">
        <thead>
          <tr>
            <th scope="col">Computer</th>
            <th scope="col">Address</th>
            <th scope="col">Account</th>
            <th scope="col">Connect</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((c) => (
            <tr key={c.id} data-computer={c.name}>
              <td data-label="Computer">
                <strong>{c.name}</strong>
                <LabelChips labels={c.labels} />
              </td>
              <td data-label="Address">{c.address}</td>
              <td data-label="Account">{c.jit?.enabled === false ? 'existing account' : `just-in-time (${c.jit?.accountType ?? 'domain'})`}</td>
              <td data-label="Connect">
                <ConnectButtons c={c} />
              </td>
            </tr>
          ))}
          {!loading && shown.length === 0 && (
            <tr>
              <td colSpan={4} class="muted">
                {q || label ? 'No computer matches.' : 'No computers are shared with you yet.'}
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </Page>
  );
}
