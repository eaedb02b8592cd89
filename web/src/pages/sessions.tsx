import { useEffect, useMemo, useState } from 'preact/hooks';
import { get, listOf, type AccountType, type Computer } from '../api.js';
import { preloadRdpView } from '../rdp-loader.js';
import { ErrorBox, Page, useLoad } from '../ui.js';

function sessionHref(c: Computer, protocol: 'ssh' | 'rdp', accountType?: AccountType): string {
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
        <a key={p} class="button primary" href={sessionHref(c, p, kind || undefined)} onPointerDown={p === 'rdp' ? preloadRdpView : undefined} target="_blank" rel="noopener" aria-label={`Connect to ${c.name} with ${p.toUpperCase()}`}>
          {p.toUpperCase()}
        </a>
      ))}
    </div>
  );
}

/** Home for technicians: the computers they may reach, with connect buttons. */
export function SessionsPage() {
  const { data, error, loading } = useLoad(async () => listOf<Computer>(await get('/computers'), 'computers'));
  // Fetch the RDP code (guacamole-common-js) once the list shows an RDP computer: its hashed chunk is cached as
  // immutable, so the tab a click opens finds it in the cache instead of loading it cold before connecting.
  const hasRdp = (data ?? []).some((c) => c.canConnect && c.protocols.includes('rdp'));
  useEffect(() => {
    if (!hasRdp) return;
    const idle = window.requestIdleCallback ?? ((f: () => void) => window.setTimeout(f, 200));
    idle(() => preloadRdpView());
  }, [hasRdp]);
  const [q, setQ] = useState('');
  const shown = useMemo(() => {
    const needle = q.trim().toLowerCase();
    return (data ?? []).filter((c) => !needle || c.name.toLowerCase().includes(needle) || c.address.toLowerCase().includes(needle));
  }, [data, q]);
  return (
    <Page title="Sessions">
      <div class="toolbar">
        <label for="computer-search" class="sr-only">
          Search computers
        </label>
        <input id="computer-search" type="search" placeholder="Search computers by name or address" value={q} onInput={(e) => setQ((e.currentTarget as HTMLInputElement).value)} />
      </div>
      <ErrorBox error={error} />
      <table class="list">
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
                {q ? 'No computer matches.' : 'No computers are shared with you yet.'}
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </Page>
  );
}
