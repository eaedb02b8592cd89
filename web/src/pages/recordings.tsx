import { useEffect, useRef, useState } from 'preact/hooks';
import { API, get, listOf, qs, type Recording } from '../api.js';
import { loadRdpReplay } from '../rdp-loader.js';
import { ErrorBox, Link, Page, fmtBytes, fmtTime, useLoad } from '../ui.js';

const INTEGRITY: Record<Recording['integrity'], [string, string]> = {
  ok: ['ok', 'integrity verified'],
  mismatch: ['bad', 'modified: hash mismatch'],
  unsigned: ['warn', 'not signed'],
  missing: ['bad', 'file missing'],
};

export function IntegrityBadge({ r }: { r: Recording }) {
  const [cls, text] = INTEGRITY[r.integrity] ?? ['warn', r.integrity];
  return (
    <span class={`badge ${cls}`} title={r.sha256 ? `SHA-256 ${r.sha256}` : undefined} data-integrity={r.integrity}>
      {text}
    </span>
  );
}

/** A recording whose session never ran has no file: nothing to replay or download. */
function hasFile(r: Recording): boolean {
  return r.state !== 'never_started';
}

function Replay({ id }: { id: string }) {
  const host = useRef<HTMLDivElement>(null);
  const { data: rec, error } = useLoad(() => get<Recording>(`/recordings/${encodeURIComponent(id)}`), [id]);
  const [err, setErr] = useState<unknown>(null);
  const [streamText, setStreamText] = useState<string | null>(null);
  useEffect(() => {
    if (!rec || !host.current || !hasFile(rec)) return;
    const el = host.current;
    const url = `${API}/recordings/${encodeURIComponent(rec.id)}/file`;
    let dispose: (() => void) | null = null;
    let cancelled = false;
    if (rec.kind === 'exec' || rec.kind === 'sftp') {
      // a JSON-lines log of the command's streams or the file operations, not a screen
      fetch(url, { credentials: 'same-origin' })
        .then(async (r) => {
          if (!r.ok) throw new Error(`the recording could not be read (${r.status})`);
          const text = await r.text();
          if (!cancelled) setStreamText(text.length > 1_000_000 ? `${text.slice(0, 1_000_000)}\n… (truncated; download the file for the rest)` : text);
        })
        .catch(setErr);
    } else if (rec.kind === 'rdp' || rec.kind === 'guac') {
      loadRdpReplay().then((mod) => {
        if (cancelled) return;
        if (!mod) return setErr(new Error('Remote desktop replay is not available in this build.'));
        const h = mod.mountRdpReplay(el, { url });
        dispose = () => h.dispose();
      }, setErr);
    } else {
      void Promise.all([import('asciinema-player'), import('asciinema-player/dist/bundle/asciinema-player.css')]).then(([AsciinemaPlayer]) => {
        if (cancelled) return;
        const p = AsciinemaPlayer.create({ url, fetchOpts: { credentials: 'same-origin' } }, el, { fit: 'width', idleTimeLimit: 2, controls: true, autoPlay: false });
        dispose = () => p.dispose();
      }, setErr);
    }
    return () => {
      cancelled = true;
      dispose?.();
    };
  }, [rec]);
  return (
    <Page title="Replay" actions={<Link href="/recordings">Back to recordings</Link>}>
      <ErrorBox error={error ?? err} />
      {rec && (
        <p>
          <strong>{rec.personLogin}</strong> on <strong>{rec.computerName}</strong> as <code>{rec.account ?? '—'}</code>, {fmtTime(rec.startedAt)} – {fmtTime(rec.endedAt)} <IntegrityBadge r={rec} />
        </p>
      )}
      {rec && !hasFile(rec) && (
        <p class="muted" data-state="never_started">
          This session never started (the connection was refused before anything was shown), so there is nothing to replay.
        </p>
      )}
      {rec && hasFile(rec) && (
        <p>
          <a href={`${API}/recordings/${encodeURIComponent(rec.id)}/file`} download>
            Download the recording
          </a>
        </p>
      )}
      {streamText !== null && <pre class="stream-log">{streamText}</pre>}
      <div class="player" ref={host} data-testid="player" />
    </Page>
  );
}

export function RecordingsPage({ replay }: { replay?: string }) {
  const [filters, setFilters] = useState({ computer: '', person: '', from: '', to: '' });
  const [applied, setApplied] = useState(filters);
  const [pages, setPages] = useState<string[]>([]);
  const before = pages[pages.length - 1];
  const { data: page, error } = useLoad(async () => {
    const r = await get<{ recordings: Recording[]; next?: string } | Recording[]>(
      `/recordings${qs({ ...applied, from: applied.from && new Date(applied.from).toISOString(), to: applied.to && new Date(applied.to).toISOString(), limit: 50, before })}`,
    );
    return { items: listOf<Recording>(r, 'recordings'), next: Array.isArray(r) ? undefined : r.next };
  }, [applied, before]);
  const data = page?.items;
  if (replay) return <Replay id={replay} />;
  const set = (k: keyof typeof filters) => (e: Event) => setFilters({ ...filters, [k]: (e.currentTarget as HTMLInputElement).value });
  return (
    <Page title="Recordings">
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setPages([]);
          setApplied(filters);
        }}
      >
        <div class="filter">
          <label for="f-computer">Computer</label>
          <input id="f-computer" value={filters.computer} onInput={set('computer')} />
        </div>
        <div class="filter">
          <label for="f-person">Person</label>
          <input id="f-person" value={filters.person} onInput={set('person')} />
        </div>
        <div class="filter">
          <label for="f-from">From</label>
          <input id="f-from" type="datetime-local" value={filters.from} onInput={set('from')} />
        </div>
        <div class="filter">
          <label for="f-to">To</label>
          <input id="f-to" type="datetime-local" value={filters.to} onInput={set('to')} />
        </div>
        <button type="submit">Filter</button>
      </form>
      <ErrorBox error={error} />
      <table class="list">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Who</th>
            <th scope="col">Computer</th>
            <th scope="col">Account</th>
            <th scope="col">Kind</th>
            <th scope="col">Size</th>
            <th scope="col">Integrity</th>
            <th scope="col">
              <span class="sr-only">Replay</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {(data ?? []).map((r) => (
            <tr key={r.id} data-recording={r.id}>
              <td data-label="When">{fmtTime(r.startedAt)}</td>
              <td data-label="Who">{r.personLogin}</td>
              <td data-label="Computer">{r.computerName}</td>
              <td data-label="Account">
                <code>{r.account ?? '—'}</code>
              </td>
              <td data-label="Kind">{r.kind}</td>
              <td data-label="Size">{r.sizeBytes === null ? '—' : fmtBytes(r.sizeBytes)}</td>
              <td data-label="Integrity">
                <IntegrityBadge r={r} />
              </td>
              <td class="row-actions">
                {hasFile(r) ? (
                  <Link href={`/recordings/${encodeURIComponent(r.id)}`}>Replay</Link>
                ) : (
                  <span class="muted" data-state="never_started" title="the connection was refused before the session started: nothing was recorded">
                    never started
                  </span>
                )}
              </td>
            </tr>
          ))}
          {data?.length === 0 && (
            <tr>
              <td colSpan={8} class="muted">
                No recordings match.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      <div class="row">
        <button type="button" disabled={pages.length === 0} onClick={() => setPages(pages.slice(0, -1))}>
          Newer
        </button>
        <button type="button" disabled={!page?.next} onClick={() => page?.next && setPages([...pages, page.next])}>
          Older
        </button>
      </div>
    </Page>
  );
}
