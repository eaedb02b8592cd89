import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import '../app/all-errors.js';
import { allErrorDefs } from './errors.js';
import { renderErrorsDoc } from './errors-doc.js';

describe('error codes', () => {
  it('are all documented in docs/errors.md (regenerate with `jitgate errors > docs/errors.md`)', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
    const missing = allErrorDefs().filter((d) => !doc.includes(`\`${d.code}\``)).map((d) => d.code);
    expect(missing).toEqual([]);
    expect(doc).toBe(renderErrorsDoc());
  });

  it('have unique codes and sane HTTP statuses', () => {
    const defs = allErrorDefs();
    expect(new Set(defs.map((d) => d.code)).size).toBe(defs.length);
    for (const d of defs) expect(d.status >= 400 && d.status < 600).toBe(true);
  });
});
