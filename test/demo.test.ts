import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { redisAvailable } from './harness/redis.js';
import { sshHostAvailable } from './harness/ssh-host.js';
import { processesMentioning, spawnCli } from './harness/cli.js';

const redis = redisAvailable();
const ssh = sshHostAvailable();

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!redis.ok || !ssh.ok)(`jitgate demo${ssh.ok ? '' : ` (skipped: ${ssh.reason ?? ''})`}`, () => {
  it('starts a demo computer and the gateway with a one-time setup link; Ctrl-C removes everything it created', async () => {
    const child = spawnCli(['demo', '--port', '0', '--ssh-port', '0'], { JITGATE_LOG__LEVEL: 'warn' });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    await waitFor(() => /data directory \((\S+)\)/.test(out) || child.exitCode !== null, 120_000, `demo to start (${err})`);
    const dataDir = /data directory \((\S+)\)/.exec(out)?.[1];
    const url = /running on (http:\/\/\S+)/.exec(out)?.[1];
    const setup = /open (http:\/\/\S+\/setup#(\S+)) /.exec(out);
    expect(dataDir, out + err).toBeTruthy();
    expect(url).toBeTruthy();
    expect(setup).toBeTruthy();

    // The demo computer is a real sshd in its own network namespace, pinned in the inventory.
    const env = JSON.parse(readFileSync(join(dataDir!, 'demo-host', 'env.json'), 'utf8')) as { netns: string };
    expect(existsSync(`/run/netns/${env.netns}`)).toBe(true);
    expect((await fetch(`${url!}/readyz`)).status).toBe(200);
    expect((await fetch(`${url!}/`)).status).toBe(200);
    const check = (await (await fetch(`${url!}/api/v1/auth/bootstrap/${setup![2]!}`)).json()) as { valid: boolean };
    expect(check.valid).toBe(true);

    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(existsSync(`/run/netns/${env.netns}`)).toBe(false);
    expect(existsSync(dataDir!)).toBe(false);
    await waitFor(() => processesMentioning(dataDir!).length === 0, 10_000, 'demo children to exit');
  }, 240_000);
});
