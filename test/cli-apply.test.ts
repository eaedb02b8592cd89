import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './harness/cli.js';

/**
 * `jitgate apply` refuses a computer policy the API's import would refuse, in
 * words, and stores nothing (bad input changes nothing).
 */
describe('jitgate apply', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jgt-apply-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = join(dir, 'jitgate.yaml');
  writeFileSync(cfg, `dataDir: ${join(dir, 'data')}\nlog: { level: warn }\n`);
  const doc = (policy: string) =>
    `organizations:\n  - { name: acme, sharedCode: "0042" }\ncomputers:\n  - organization: acme\n    name: win01\n    address: 10.0.0.9\n    protocols: [rdp]\n    jit: { enabled: false }\n    policy: ${policy}\n`;

  it('refuses an invalid policy value with its path and stores nothing; a valid document applies', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, doc('{ rdpSecurity: sometimes }'));
    const r = await runCli(['apply', '-f', bad, '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('JIT_ERR_VALIDATION');
    expect(r.stderr).toContain('computers.0.policy.rdpSecurity');
    const list = await runCli(['computers', 'list', '--config', cfg]);
    expect(list.stdout).not.toContain('win01');

    const good = join(dir, 'good.yaml');
    writeFileSync(good, doc('{ rdpSecurity: tls }'));
    const ok = await runCli(['apply', '-f', good, '--config', cfg]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('applied 1 organization(s), 1 computer(s)');
  }, 180_000);
});
