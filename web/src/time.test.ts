import { describe, expect, it } from 'vitest';
import { fmtDuration, fmtWhen, relativeTime } from './time.js';

const now = new Date('2026-12-05T06:00:00Z');
const ago = (s: number) => new Date(now.getTime() - s * 1000);

describe('relativeTime', () => {
  it.each<[number, string]>([
    [10, 'just now'],
    [-10, 'just now'],
    [5 * 60, '5 min ago'],
    [-10 * 60, 'in 10 min'],
    [3 * 3600, '3 h ago'],
    [86_400, '1 day ago'],
    [3 * 86_400, '3 days ago'],
    [90 * 86_400, '3 months ago'],
  ])('%i s before now reads %s', (s, words) => {
    expect(relativeTime(ago(s), now)).toBe(words);
  });
});

describe('fmtWhen and fmtDuration', () => {
  it('adds the relative time to the absolute one, and keeps what it cannot read', () => {
    expect(fmtWhen(ago(300).toISOString(), now)).toMatch(/\(5 min ago\)$/);
    expect(fmtWhen(null)).toBe('—');
    expect(fmtWhen('garbage')).toBe('garbage');
  });
  it.each<[number, string]>([
    [45_000, '45 s'],
    [12 * 60_000, '12 min'],
    [65 * 60_000, '1 h 5 min'],
    [120 * 60_000, '2 h'],
  ])('%i ms is %s', (ms, words) => expect(fmtDuration(ms)).toBe(words));
});
