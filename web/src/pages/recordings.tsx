import { useEffect, useRef, useState } from 'preact/hooks';
import { API, get, listOf, qs, type Recording } from '../api.js';
import { loadRdpReplay } from '../rdp-loader.js';
import { ErrorBox, Link, Page, fmtBytes, useLoad } from '../ui.js';
import { navigate } from '../router.js';
import { endReasonWords } from '../audit-words.js';
import { fmtDuration, fmtWhen } from '../time.js';
import { CommandTimeline } from './search.js';
import { SessionEvidence } from './evidence.js';

const SPEEDS = [0.5, 1, 2, 4, 8];

function duration(r: Recording): string {
  if (!r.endedAt) return r.state === 'recording' ? 'still running' : '—';
  return fmtDuration(Date.parse(r.endedAt) - Date.parse(r.startedAt));
}

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
  const [speed, setSpeed] = useState(1);
  // `?t=` seconds into the recording: the audit trail links a session's event to this moment
  const startAt = Number(new URLSearchParams(location.search).get('t') ?? '') || 0;
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
        const h = mod.mountRdpReplay(el, { url, startAtMs: startAt * 1000 });
        dispose = () => h.dispose();
      }, setErr);
    } else {
      void Promise.all([import('asciinema-player'), import('asciinema-player/dist/bundle/asciinema-player.css')]).then(([AsciinemaPlayer]) => {
        if (cancelled) return;
        // Idle time is shortened only when no moment was asked for: a shortened timeline would put `t` elsewhere.
        const p = AsciinemaPlayer.create({ url, fetchOpts: { credentials: 'same-origin' } }, el, {
          fit: 'width', controls: true, autoPlay: startAt > 0, speed, ...(startAt > 0 ? { startAt: Math.floor(startAt) } : { idleTimeLimit: 2 }),
        });
        dispose = () => p.dispose();
      }, setErr);
    }
    return () => {
      cancelled = true;
      dispose?.();
    };
  }, [rec, speed, startAt]);
  const terminalReplay = rec !== undefined && hasFile(rec) && rec.kind !== 'exec' && rec.kind !== 'sftp' && rec.kind !== 'rdp' && rec.kind !== 'guac';
  return (
    <Page title="Replay" actions={<Link href="/recordings">Back to recordings</Link>}>
      <ErrorBox error={error ?? err} />
      {rec && (
        <p>
          <strong>{rec.personLogin}</strong> on <strong>{rec.computerName}</strong> as <code>{rec.account ?? '—'}</code>, {fmtWhen(rec.startedAt)}, {duration(rec)}, ended:{' '}
          <span data-testid="end-reason">{endReasonWords(rec.endReason)}</span> <IntegrityBadge r={rec} />
        </p>
      )}
      {terminalReplay && (
        <p class="row">
          <label for="replay-speed">Playback speed</label>{' '}
          <select id="replay-speed" value={String(speed)} onChange={(e) => setSpeed(Number((e.currentTarget as HTMLSelectElement).value))}>
            {SPEEDS.map((x) => (
              <option key={x} value={String(x)}>
                {x}×
              </option>
            ))}
          </select>
          {startAt > 0 && <span class="muted"> starting {fmtDuration(startAt * 1000)} in, at the audit event you chose</span>}
        </p>
      )}
      {rec && !hasFile(rec) && (
        <p class="muted" data-state="never_started">
          This session never started (the connection was refused before anything was shown), so there is nothing to replay.
        </p>
      )}
      {rec && hasFile(rec) && (
        <p>
          <a href={`${API}/recordings/${encodeURIComponent(rec.id)}/file?download=1`} download>
            Download the recording
          </a>
        </p>
      )}
      {rec && <SessionEvidence sessionId={rec.sessionId} />}
      {streamText !== null && <pre class="stream-log">{streamText}</pre>}
      <div class="replay-with-timeline">
        <div class="player" ref={host} data-testid="player" />
        {rec && hasFile(rec) && rec.kind !== 'rdp' && rec.kind !== 'guac' && <CommandTimeline sessionId={rec.sessionId} recordingId={rec.id} />}
      </div>
    </Page>
  );
}

export function RecordingsPage({ replay }: { replay?: string }) {
  // from the audit trail: one session's recordings, and the moment of the event (`at`)
  const linked = new URLSearchParams(location.search);
  const session = replay ? '' : (linked.get('session') ?? '');
  const at = linked.get('at');
  const [filters, setFilters] = useState({ computer: '', person: '', from: '', to: '' });
  const [applied, setApplied] = useState(filters);
  const [pages, setPages] = useState<string[]>([]);
  const before = pages[pages.length - 1];
  const { data: page, error } = useLoad(async () => {
    const r = await get<{ recordings: Recording[]; next?: string } | Recording[]>(
      `/recordings${qs({ ...applied, session, from: applied.from && new Date(applied.from).toISOString(), to: applied.to && new Date(applied.to).toISOString(), limit: 50, before })}`,
    );
    return { items: listOf<Recording>(r, 'recordings'), next: Array.isArray(r) ? undefined : r.next };
  }, [applied, before, session]);
  const data = page?.items;
  const replayHref = (r: Recording) => {
    const t = at ? Math.max(0, Math.floor((Date.parse(at) - Date.parse(r.startedAt)) / 1000)) : 0;
    return `/recordings/${encodeURIComponent(r.id)}${t > 0 ? `?t=${t}` : ''}`;
  };
  // One recording of the linked session: straight to it, at the moment of the event.
  const only = session && data?.length === 1 && hasFile(data[0]!) ? data[0] : undefined;
  useEffect(() => {
    if (only) navigate(replayHref(only), true);
  }, [only?.id]);
  if (replay) return <Replay id={replay} />;
  const set = (k: keyof typeof filters) => (e: Event) => setFilters({ ...filters, [k]: (e.currentTarget as HTMLInputElement).value });
  return (
    <Page title="Recordings">
      {session && (
        <p>
          Recordings of one session. <Link href="/recordings">Show all recordings</Link>
        </p>
      )}
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
            <th scope="col">Duration</th>
            <th scope="col">Ended</th>
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
              <td data-label="When">{fmtWhen(r.startedAt)}</td>
              <td data-label="Who">{r.personLogin}</td>
              <td data-label="Computer">{r.computerName}</td>
              <td data-label="Account">
                <code>{r.account ?? '—'}</code>
              </td>
              <td data-label="Kind">{r.kind}</td>
              <td data-label="Duration">{duration(r)}</td>
              <td data-label="Ended" data-testid="end-reason">
                {r.state === 'recording' ? 'live' : endReasonWords(r.endReason)}
              </td>
              <td data-label="Size">{r.sizeBytes === null ? '—' : fmtBytes(r.sizeBytes)}</td>
              <td data-label="Integrity">
                <IntegrityBadge r={r} />
              </td>
              <td class="row-actions">
                {hasFile(r) ? (
                  <>
                    <Link href={replayHref(r)}>Replay</Link>{' '}
                    <a href={`${API}/recordings/${encodeURIComponent(r.id)}/file?download=1`} download>
                      Download
                    </a>
                  </>
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
              <td colSpan={10} class="muted">
                No recordings match. Every SSH and remote desktop session is recorded: clear a filter or widen the dates, or open a session from Sessions.
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
