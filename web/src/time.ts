/**
 * Dates and times as a person reads them: in their own time zone (the
 * browser's), with how long ago or how soon ("5 min ago", "in 2 h").
 * One helper for every page so that the same moment reads the same way.
 */

/** "5 min ago", "in 2 h", "just now"; `now` for tests. */
export function relativeTime(at: Date, now: Date = new Date()): string {
  const s = Math.round((at.getTime() - now.getTime()) / 1000);
  const a = Math.abs(s);
  if (a < 45) return 'just now';
  let n: number;
  let unit: string;
  if (a < 3600) [n, unit] = [Math.round(a / 60), 'min'];
  else if (a < 86_400) [n, unit] = [Math.round(a / 3600), 'h'];
  else if (a < 86_400 * 45) [n, unit] = [Math.round(a / 86_400), 'day'];
  else [n, unit] = [Math.round(a / (86_400 * 30.44)), 'month'];
  if (n !== 1 && (unit === 'day' || unit === 'month')) unit += 's';
  return s < 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

/** The person's time zone, e.g. "Europe/Berlin" (shown in titles so the absolute time is unambiguous). */
export function timeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
}

/** Absolute date and time in the person's time zone and locale. */
export function absoluteTime(at: Date): string {
  return at.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** "5 Dec 2026, 06:09 (5 min ago)"; "—" for nothing, the input for something unreadable. */
export function fmtWhen(v: string | null | undefined, now: Date = new Date()): string {
  if (!v) return '—';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? v : `${absoluteTime(d)} (${relativeTime(d, now)})`;
}

/** A duration in words: "45 s", "12 min", "1 h 5 min". */
export function fmtDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
}
