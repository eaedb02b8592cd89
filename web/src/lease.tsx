import { useEffect, useState } from 'preact/hooks';
import { ApiError, post } from './api.js';

const WARN_MS = 5 * 60_000;

/** Lengths offered in the Extend menu; only those that fit under the computer's maximum are shown. */
const CHOICES = [15, 30, 60, 120, 240, 480, 1440];

/** Minutes Extend can add now: whole minutes up to the cap (the API takes 1–1440). */
export function extendChoices(until: number, maxAt: number | null): number[] {
  if (maxAt === null) return CHOICES;
  const room = Math.min(1440, Math.floor((maxAt - until) / 60_000));
  if (room < 1) return [];
  const fit = CHOICES.filter((m) => m < room);
  return [...fit, room];
}

const words = (m: number) => (m % 60 === 0 && m >= 60 ? `${m / 60} h` : `${m} min`);

/**
 * The lease clock of a live session (terminal and remote desktop bars):
 * "until 14:32 (47 min left)", a warning in the last five minutes (the bar is
 * aria-live, so screen readers announce it), and Extend with a length the
 * person picks (`POST /sessions/:id/extend`) — offered only while the lease is
 * below the computer's maximum (`maxAt`), and only lengths that fit.
 */
export function LeaseBar({ sessionId, leaseExpiresAt, maxAt = null }: { sessionId: string; leaseExpiresAt: number; maxAt?: number | null }) {
  const [until, setUntil] = useState(leaseExpiresAt);
  const [now, setNow] = useState(Date.now());
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [minutes, setMinutes] = useState<number | null>(null);
  useEffect(() => setUntil(leaseExpiresAt), [leaseExpiresAt]);
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 15_000);
    return () => clearInterval(t);
  }, []);
  const choices = extendChoices(until, maxAt);
  const picked = minutes !== null && choices.includes(minutes) ? minutes : (choices.includes(30) ? 30 : choices[choices.length - 1] ?? null);

  async function extend(): Promise<void> {
    if (picked === null) return;
    setBusy(true);
    setError(null);
    try {
      const r = await post<{ leaseExpiresAt: string }>(`/sessions/${encodeURIComponent(sessionId)}/extend`, { minutes: picked });
      setUntil(Date.parse(r.leaseExpiresAt));
      setNow(Date.now());
      setMinutes(null);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'could not extend the session');
    } finally {
      setBusy(false);
    }
  }

  const left = Math.max(0, until - now);
  const at = new Date(until).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const mins = Math.ceil(left / 60_000);
  return (
    <>
      {left <= WARN_MS ? (
        <span class="lease-warning" data-testid="lease-clock">
          {' '}· session ends at {at} ({mins <= 1 ? 'less than a minute' : `${mins} minutes`} left): save your work
        </span>
      ) : (
        <span class="muted" data-testid="lease-clock">
          {' '}· until {at} ({mins >= 120 ? `${Math.floor(mins / 60)} h` : `${mins} min`} left)
        </span>
      )}{' '}
      {picked === null ? (
        <span class="muted" data-testid="extend-max">
          (the computer&rsquo;s maximum session length)
        </span>
      ) : (
        <span class="extend" data-testid="extend-controls">
          <label class="sr-only" for={`extend-${sessionId}`}>
            Extend by
          </label>
          <select id={`extend-${sessionId}`} data-testid="extend-minutes" value={String(picked)} onChange={(e) => setMinutes(Number((e.currentTarget as HTMLSelectElement).value))}>
            {choices.map((m) => (
              <option key={m} value={String(m)}>
                {words(m)}
              </option>
            ))}
          </select>{' '}
          <button type="button" class="link" data-testid="extend" disabled={busy} onClick={() => void extend()}>
            Extend
          </button>
        </span>
      )}
      {error && (
        <span class="error-text" role="alert">
          {' '}
          {error}
        </span>
      )}
    </>
  );
}
