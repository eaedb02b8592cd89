/**
 * Labels on computers (`env=prod`, `customer=acme`), as people type and read
 * them. The server validates (gateway/teams/team-policy.ts labelsSchema);
 * this only turns text into pairs and back.
 */

export type Labels = Record<string, string>;

/** `env=prod, customer=acme` → pairs; null when a part is not key=value. */
export function parseLabels(text: string): Labels | null {
  const out: Labels = {};
  for (const part of text.split(/[,\s]+/).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0 || eq === part.length - 1) return null;
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** Pairs → `customer=acme, env=prod` (sorted). */
export function labelText(l: Labels | undefined): string {
  return labelPairs(l).join(', ');
}

/** Pairs → sorted `key=value` strings. */
export function labelPairs(l: Labels | undefined): string[] {
  return Object.keys(l ?? {})
    .sort()
    .map((k) => `${k}=${l![k]}`);
}

/** Labels as small badges. */
export function LabelChips({ labels }: { labels: Labels | undefined }) {
  const pairs = labelPairs(labels);
  if (!pairs.length) return null;
  return (
    <ul class="labels" aria-label="Labels">
      {pairs.map((p) => (
        <li key={p} class="badge label">
          {p}
        </li>
      ))}
    </ul>
  );
}
