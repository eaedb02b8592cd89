import { existsSync, readFileSync } from 'node:fs';

/** The package version, read from the sources (repo root) or from dist/ without loading anything else. */
function packageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    const p = new URL(rel, import.meta.url);
    if (existsSync(p)) return (JSON.parse(readFileSync(p, 'utf8')) as { version: string }).version;
  }
  return '0.0.0';
}
export const VERSION = packageVersion();
