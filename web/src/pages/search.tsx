import { useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { get, qs } from '../api.js';
import { ErrorBox, Link, Page, useLoad } from '../ui.js';
import { fmtWhen } from '../time.js';

/** One hit of GET /search (docs/api.md "Search"). */
export interface SearchHit {
  sessionId: string;
  recordingId: string;
  recordingKind: string;
  person: string;
  computer: string;
  account: string | null;
  organizationId: string | null;
  protocol: string;
  kind: 'output' | 'input' | 'exec' | 'sftp' | 'keys' | 'key' | 'clipboard';
  line: string;
  before: string[];
  after: string[];
  atMs: number;
  at: string;
}

interface TimelineEntry {
  recordingId: string;
  atMs: number;
  kind: 'input' | 'exec' | 'sftp' | 'keys' | 'key' | 'clipboard';
  text: string;
  masked: boolean;
}

const KIND_WORDS: Record<SearchHit['kind'], string> = {
  output: 'printed',
  input: 'typed',
  exec: 'command (exec)',
  sftp: 'file transfer',
  keys: 'typed (remote desktop)',
  key: 'key (remote desktop)',
  clipboard: 'clipboard',
};

/** An offset into a recording as a player shows it: `m:ss`, `h:mm:ss`. */
export function fmtOffset(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh > 0 ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/**
 * The player at the moment of a line: `?t=` is whole seconds into the
 * recording (recordings.tsx), rounded up so the line (complete at `atMs`) is on screen.
 */
export function momentHref(recordingId: string, atMs: number): string {
  const t = Math.ceil(atMs / 1000);
  return `/recordings/${encodeURIComponent(recordingId)}${t > 0 ? `?t=${t}` : ''}`;
}

/** The query's words marked in a line (case-insensitive, whole text; what the index matched is by token). */
function Marked({ text, q }: { text: string; q: string }) {
  const words = [...new Set(q.toLowerCase().match(/[\p{L}\p{N}_./:@-]+/gu) ?? [])].filter((w) => w !== 'or' && w.length > 1);
  if (!words.length) return <>{text}</>;
  const re = new RegExp(`(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`, 'gi');
  const parts: ComponentChildren[] = text.split(re).map((part, i) => (i % 2 === 1 ? <mark key={i}>{part}</mark> : part));
  return <>{parts}</>;
}

const EMPTY = { q: '', person: '', computer: '', account: '', protocol: '', from: '', to: '' };

/** Search across sessions: who ran what, where, with which account; each hit opens the player at that moment. */
export function SearchPage() {
  const [filters, setFilters] = useState(EMPTY);
  const [applied, setApplied] = useState<typeof EMPTY | null>(null);
  const [offset, setOffset] = useState(0);
  const { data, error, loading } = useLoad(async () => {
    if (!applied) return null;
    return get<{ hits: SearchHit[]; next?: number }>(
      `/search${qs({
        ...applied,
        from: applied.from && new Date(applied.from).toISOString(),
        to: applied.to && new Date(applied.to).toISOString(),
        limit: 50,
        offset: offset || undefined,
      })}`,
    );
  }, [applied, offset]);
  const set = (k: keyof typeof EMPTY) => (e: Event) => setFilters({ ...filters, [k]: (e.currentTarget as HTMLInputElement).value });
  const [formError, setFormError] = useState('');
  return (
    <Page title="Search">
      <p class="muted">
        Searches what sessions printed, the commands entered, exec commands and file transfers, in every session you may see. Passwords typed at hidden prompts are
        never indexed. A session is searchable a few seconds after it ends.
      </p>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          if (!filters.q.trim()) return setFormError('Type what to search for: a command, a file name, a word the session printed.');
          setFormError('');
          setOffset(0);
          setApplied({ ...filters, q: filters.q.trim() });
        }}
      >
        <div class="filter search-q">
          <label for="s-q">Search for</label>
          <input id="s-q" type="search" value={filters.q} onInput={set('q')} placeholder='systemctl restart, "rm -rf", /etc/sudoers' maxLength={200} />
        </div>
        <div class="filter">
          <label for="s-person">Person</label>
          <input id="s-person" value={filters.person} onInput={set('person')} />
        </div>
        <div class="filter">
          <label for="s-computer">Computer</label>
          <input id="s-computer" value={filters.computer} onInput={set('computer')} />
        </div>
        <div class="filter">
          <label for="s-account">Account</label>
          <input id="s-account" value={filters.account} onInput={set('account')} />
        </div>
        <div class="filter">
          <label for="s-protocol">Protocol</label>
          <select id="s-protocol" value={filters.protocol} onChange={set('protocol')}>
            <option value="">any</option>
            <option value="ssh">SSH</option>
            <option value="rdp">Remote desktop</option>
          </select>
        </div>
        <div class="filter">
          <label for="s-from">From</label>
          <input id="s-from" type="datetime-local" value={filters.from} onInput={set('from')} />
        </div>
        <div class="filter">
          <label for="s-to">To</label>
          <input id="s-to" type="datetime-local" value={filters.to} onInput={set('to')} />
        </div>
        <button type="submit">Search</button>
      </form>
      {formError && (
        <p class="error" role="alert">
          {formError}
        </p>
      )}
      <ErrorBox error={error} />
      {applied && loading && <p class="muted">Searching…</p>}
      {data && data.hits.length === 0 && (
        <p class="muted" data-testid="no-hits">
          Nothing matches <strong>{applied?.q}</strong>{offset > 0 ? ' on this page' : ''}. Words match whole: try a shorter word, fewer filters or wider dates. Sessions still
          running are searchable once they end.
        </p>
      )}
      {data && data.hits.length > 0 && (
        <ol class="hits" data-testid="hits">
          {data.hits.map((h) => (
            <li key={`${h.recordingId}-${h.atMs}-${h.line}`} class="hit" data-session={h.sessionId}>
              <div class="hit-head">
                <Link href={momentHref(h.recordingId, h.atMs)}>
                  <strong>{h.person}</strong> on <strong>{h.computer}</strong>
                  {h.account ? <> as <code>{h.account}</code></> : null}, {fmtWhen(h.at)}
                </Link>{' '}
                <span class="muted">
                  {KIND_WORDS[h.kind] ?? h.kind} at {fmtOffset(h.atMs)}
                </span>
              </div>
              {/* scrolls sideways inside its box: focusable and named, so a keyboard can scroll it too (axe scrollable-region-focusable) */}
              <pre class="hit-context" tabIndex={0} aria-label={`Context of the hit on ${h.computer}`}>
                {h.before.map((l, i) => (
                  <span key={`b${i}`} class="muted">
                    {l}
                    {'\n'}
                  </span>
                ))}
                <span class="hit-line">
                  <Marked text={h.line} q={applied?.q ?? ''} />
                  {'\n'}
                </span>
                {h.after.map((l, i) => (
                  <span key={`a${i}`} class="muted">
                    {l}
                    {'\n'}
                  </span>
                ))}
              </pre>
            </li>
          ))}
        </ol>
      )}
      {data && (offset > 0 || data.next) && (
        <div class="row">
          <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - 50))}>
            Previous
          </button>
          <button type="button" disabled={!data.next} onClick={() => data.next && setOffset(data.next)}>
            Next
          </button>
        </div>
      )}
    </Page>
  );
}

/** The command timeline of a session, beside its player: each entry seeks the player to its moment. */
export function CommandTimeline({ sessionId, recordingId }: { sessionId: string; recordingId: string }) {
  const { data, error } = useLoad(() => get<{ recordings: { id: string; indexed: boolean }[]; entries: TimelineEntry[] }>(`/sessions/${encodeURIComponent(sessionId)}/timeline`), [sessionId]);
  const entries = data?.entries.filter((e) => e.recordingId === recordingId) ?? [];
  const indexed = data?.recordings.find((r) => r.id === recordingId)?.indexed;
  return (
    <aside class="timeline" aria-label="Command timeline" data-testid="command-timeline">
      <h2>Commands</h2>
      <ErrorBox error={error} />
      {data && indexed === false && <p class="muted">Not indexed yet: the timeline appears a few seconds after the session ends.</p>}
      {data && indexed && entries.length === 0 && <p class="muted">No commands in this recording (nothing typed at a shell prompt, no exec or file transfer).</p>}
      {entries.length > 0 && (
        <ol>
          {entries.map((e, i) => (
            <li key={i}>
              <Link href={momentHref(e.recordingId, e.atMs)}>
                <span class="muted">{fmtOffset(e.atMs)}</span> {e.masked ? <em class="muted">hidden input (typed at a password prompt)</em> : <code>{e.text}</code>}
              </Link>
            </li>
          ))}
        </ol>
      )}
    </aside>
  );
}
