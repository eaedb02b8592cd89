import { useEffect, useState } from 'preact/hooks';
import { ApiError, post } from './api.js';

const WARN_MS = 5 * 60_000;

/**
 * The lease clock of a live session (terminal and remote desktop bars):
 * "until 14:32 (47 min left)", a warning in the last five minutes (the bar is
 * aria-live, so screen readers announce it), and an Extend button
 * (`POST /sessions/:id/extend`, refused in words at the computer's maximum).
 */
export function LeaseBar({ sessionId, leaseExpiresAt }: { sessionId: string; leaseExpiresAt: number }) {
  const [until, setUntil] = useState(leaseExpiresAt);
  const [now, setNow] = useState(Date.now());
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setUntil(leaseExpiresAt), [leaseExpiresAt]);
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 15_000);
    return () => clearInterval(t);
  }, []);

  async function extend(): Promise<void> {
    setBusy(true);
    setError(null);
    try {
      const r = await post<{ leaseExpiresAt: string }>(`/sessions/${encodeURIComponent(sessionId)}/extend`, { minutes: 30 });
      setUntil(Date.parse(r.leaseExpiresAt));
      setNow(Date.now());
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
      <button type="button" class="link" data-testid="extend" disabled={busy} onClick={() => void extend()}>
        Extend 30 min
      </button>
      {error && (
        <span class="error-text" role="alert">
          {' '}
          {error}
        </span>
      )}
    </>
  );
}
