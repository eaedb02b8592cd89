import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../core/logging.js';
import { RedisLiveSessions, scrollbackTail, type WatchersChange } from '../gateway/sessions/live-sessions.js';

/**
 * Issue 17 defect 8 on real Redis with two gateways (one holds the session,
 * the other serves the watcher): a new watcher starts with the session's
 * recent output, the holder learns who starts and stops watching (the
 * watched person is told), and a terminated session is off the live list by
 * the time `terminate` resolves, even when the holder is slow to close it.
 */
const redisSocket = inject('redisSocket');

async function until<T>(what: string, fn: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function info(login: string) {
  return { sessionId: randomUUID(), personLogin: login, computerName: 'web01', protocol: 'ssh' as const, account: `${login}_abc123`, startedAt: new Date().toISOString(), cols: 100, rows: 30 };
}

describe('scrollbackTail', () => {
  it('keeps everything under the limit and cuts after a line break otherwise', () => {
    expect(scrollbackTail([Buffer.from('ab'), Buffer.from('c\n')], 10).toString()).toBe('abc\n');
    expect(scrollbackTail([Buffer.from('xxxx\nyyy\nzz')], 8).toString()).toBe('yyy\nzz');
    expect(scrollbackTail([Buffer.from('abcdefghij')], 4).toString()).toBe('ghij');
  });
});

describe.skipIf(!redisSocket)('live watch on real Redis', () => {
  const prefix = `jgt-watch-${randomBytes(4).toString('hex')}:live`;
  const log = silentLogger();
  const holder = new RedisLiveSessions({ redis: { path: redisSocket }, prefix, heartbeatMs: 300, scrollbackBytes: 4096, log });
  const other = new RedisLiveSessions({ redis: { path: redisSocket }, prefix, heartbeatMs: 300, log });
  beforeAll(async () => {
    await holder.start();
    await other.start();
  });
  afterAll(async () => {
    await holder.close();
    await other.close();
  });

  it('replays the recent output to a new watcher, once, at the session size, and tells the holder who watches', async () => {
    const changes: WatchersChange[] = [];
    const s = info('alice');
    const reg = await holder.register(s, () => undefined, (c) => changes.push(c));
    // more than the 4 KiB kept: only the tail is replayed, cut after a line break
    for (let i = 0; i < 200; i++) reg.output(Buffer.from(`line-${i} ${'.'.repeat(40)}\r\n`));
    reg.resize(120, 40);

    const first: { data: string; sizes: string[] } = { data: '', sizes: [] };
    const stop1 = await other.watchFrames(s.sessionId, { onData: (d) => (first.data += d.toString()), onResize: (c, r) => first.sizes.push(`${c}x${r}`), onEnd: () => undefined }, 'ada');
    await until('the scrollback', () => (first.data.includes('line-199') ? true : undefined));
    expect(first.sizes[0]).toBe('120x40');
    expect(first.data.length).toBeLessThanOrEqual(4096);
    expect(first.data.startsWith('line-')).toBe(true);
    expect(first.data).not.toContain('line-0 ');
    expect(await until('the join', () => changes[0])).toEqual({ count: 1, event: 'joined', by: 'ada' });

    // live output reaches the watcher after its scrollback
    reg.output(Buffer.from('after-join\r\n'));
    await until('live output', () => (first.data.includes('after-join') ? true : undefined));

    // a second watcher gets its own scrollback; the first sees it no second time
    let second = '';
    const stop2 = await other.watchFrames(s.sessionId, { onData: (d) => (second += d.toString()), onResize: () => undefined, onEnd: () => undefined }, 'bob');
    await until('the second scrollback', () => (second.includes('after-join') ? true : undefined));
    expect(await until('the second join', () => changes[1])).toEqual({ count: 2, event: 'joined', by: 'bob' });
    reg.output(Buffer.from('marker-2\r\n'));
    await until('both to see marker-2', () => (first.data.includes('marker-2') && second.includes('marker-2') ? true : undefined));
    expect(first.data.split('after-join').length - 1).toBe(1);
    expect(second.split('after-join').length - 1).toBe(1);

    await stop2();
    expect(await until('bob leaving', () => changes[2])).toEqual({ count: 1, event: 'left', by: 'bob' });
    await stop1();
    expect(await until('ada leaving', () => changes[3])).toEqual({ count: 0, event: 'left', by: 'ada' });
    await reg.unregister();
  });

  it('takes a terminated session off the live list before terminate resolves, even if the holder is slow to close it', async () => {
    const s = info('carol');
    let terminatedBy = '';
    // the holder only notes the request (closing the connection and recording takes a while in real life)
    const reg = await holder.register(s, (_reason, by) => (terminatedBy = by), () => undefined);
    expect((await other.list()).some((l) => l.sessionId === s.sessionId)).toBe(true);
    let ended = false;
    await other.watchFrames(s.sessionId, { onData: () => undefined, onResize: () => undefined, onEnd: () => (ended = true) }, 'ada');
    expect(await other.terminate(s.sessionId, 'ada')).toBe(true);
    expect((await other.list()).some((l) => l.sessionId === s.sessionId)).toBe(false);
    expect(terminatedBy).toBe('ada');
    await until('the watcher to be told it ended', () => (ended ? true : undefined));
    // the next heartbeat does not bring it back
    await new Promise((r) => setTimeout(r, 700));
    expect((await other.list()).some((l) => l.sessionId === s.sessionId)).toBe(false);
    await reg.unregister();
  });
});
