import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { RedisGatewayLiveness } from '../gateway/sessions/gateway-liveness.js';
import { gatewayHolder } from '../provisioner/holder-liveness.js';
import { ROOT } from './harness/cli.js';

/**
 * Issue 12 item 4: a session's holder is a gateway process; when that process
 * dies (SIGKILL, no goodbye) its alive key expires and the reconciler sees it
 * gone, on real Redis with real processes.
 */
const redisSocket = inject('redisSocket');
const HEARTBEAT_MS = 200; // stale after 4 × heartbeat = 800 ms

function startGateway(prefix: string): Promise<{ child: ChildProcess; id: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/live-gateway-child.ts', redisSocket, prefix, String(HEARTBEAT_MS)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready (\S+)\n/.exec(out);
      if (m) resolve({ child, id: m[1]! });
    });
    child.on('exit', (code) => reject(new Error(`gateway child exited early (${String(code)})`)));
  });
}

async function until(what: string, fn: () => Promise<boolean>, ms = 15_000): Promise<number> {
  const start = Date.now();
  while (!(await fn())) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - start;
}

describe.skipIf(!redisSocket)('gateway liveness on real Redis', () => {
  const prefix = `jgt-live-${randomBytes(4).toString('hex')}:live`;
  const liveness = new RedisGatewayLiveness({ path: redisSocket }, prefix, 4 * HEARTBEAT_MS);
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await liveness.close();
  });

  it('a running gateway is alive; SIGKILLed, it is reported gone within its stale window; a clean stop at once', async () => {
    const a = await startGateway(prefix);
    const b = await startGateway(prefix);
    children.push(a.child, b.child);
    const ha = gatewayHolder(a.id);
    const hb = gatewayHolder(b.id);
    // several heartbeats later both are still alive (the key is refreshed, not merely set once)
    await new Promise((r) => setTimeout(r, 4 * HEARTBEAT_MS));
    expect([...(await liveness.deadHolders([ha, hb]))]).toEqual([]);

    a.child.kill('SIGKILL');
    const took = await until('the killed gateway to be reported gone', async () => (await liveness.deadHolders([ha, hb])).has(ha));
    expect(took).toBeLessThan(10_000); // stale after 800 ms; generous for a loaded machine
    expect((await liveness.deadHolders([hb])).size).toBe(0);

    b.child.kill('SIGTERM');
    await new Promise((r) => b.child.once('exit', r));
    expect([...(await liveness.deadHolders([hb]))]).toEqual([hb]);
  });

  it('a Redis that lost its data (no key at all yet): nobody is reported gone before one stale window has passed', async () => {
    const fresh = new RedisGatewayLiveness({ path: redisSocket }, `jgt-live-${randomBytes(4).toString('hex')}:live`, 1500);
    try {
      const t0 = Date.now();
      expect([...(await fresh.deadHolders([gatewayHolder('gw-lost')]))]).toEqual([]);
      const took = await until('the holder to be reported gone once the window passed', async () => (await fresh.deadHolders([gatewayHolder('gw-lost')])).size === 1);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
      expect(took).toBeLessThan(10_000);
    } finally {
      await fresh.close();
    }
  });

  it('a holder that never heart-beat is gone; a holder that is not a gateway is never reported', async () => {
    const dead = await liveness.deadHolders([gatewayHolder('gw-never'), 'cli:1234']);
    expect([...dead]).toEqual([gatewayHolder('gw-never')]);
  });
});
