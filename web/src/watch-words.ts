/**
 * What the watched person reads when somebody starts or stops watching their
 * session live (SSH terminal and remote desktop alike; docs/api.md `watchers`).
 */
export function watchersWords(change: { watchers: number; event: string | undefined; by: string | undefined }): string {
  const who = change.by ?? 'someone';
  const now = change.watchers === 1 ? '1 person is' : `${change.watchers} people are`;
  if (change.event === 'left') {
    return change.watchers > 0 ? `${who} stopped watching; ${now} still watching this session live (read-only).` : `${who} stopped watching. Nobody is watching this session now.`;
  }
  return `${who} started watching this session live (read-only)${change.watchers > 1 ? `; ${now} watching` : ''}.`;
}
