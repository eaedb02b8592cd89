/**
 * RDP sizing (issue 18): gateway CPU per session-minute (idle and active
 * desktops) → sessions per core, and memory per RDP session, through the real
 * websocket tunnel with recording on, to set beside Guacamole's published
 * sizing (about 25 connections per core, 2 GB per 25).
 *
 *   node --import tsx bench/rdp-sizing.bench.ts [--sessions 25] [--window 30] [--active-kib 200]
 *
 * Three processes, so the gateway is measured alone (CPU and RSS from
 * /proc/<pid>, heap after a forced GC inside it):
 *   - the gateway (bench/rdp-sizing-gateway.ts): rdp-tunnel.ts under
 *     buildServer, the real recorder on PGlite (slot, seal, manifest);
 *   - the browsers (bench/rdp-sizing-clients.ts): N websocket clients that
 *     ping, acknowledge every frame and, while active, move the mouse and type;
 *   - this process: the Guacamole-protocol test peer in guacd's place
 *     (test/harness/guacd-peer.ts, writing each session's recording file as
 *     guacd does), driving every session with a synthetic office-desktop
 *     stream (bench/lib/rdp-stream.ts: stated frame rate and image sizes).
 * With GUACD_HOST set (GUACD_PORT, RDP_HOST, RDP_USER, RDP_PASSWORD,
 * RDP_SECURITY as in rdp-first-frame.bench.ts; GUACD_RECORDING_DIR when guacd
 * sees the recordings directory elsewhere) the sessions go to that real guacd
 * and its RDP target instead: the stream is then whatever the desktop draws
 * (the clients' input is the only activity), and its measured rate is printed.
 *
 * The peer does no RDP: Guacamole's 25 per core includes guacd and FreeRDP
 * (RDP decoding, image encoding), which dominate; these figures are the
 * gateway's own cost on top of guacd. Bounded: a hard deadline stops
 * everything (children exit with this process).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startGuacdPeer, type GuacdPeer, type PeerConnection } from '../test/harness/guacd-peer.js';
import type { ClientRequest, ClientStats } from './rdp-sizing-clients.js';
import type { GatewayCounts, GatewayRequest } from './rdp-sizing-gateway.js';
import type { MemPoint } from './lib/memory.js';
import { perSession } from './lib/memory.js';
import { cpuPerSessionMinute, procCpuSeconds, procRssBytes, sessionsPerCore } from './lib/proc-usage.js';
import { DesktopStream, KEEP_ALIVE_MS, NOP, officeDesktop, wireBytesPerSecond, type DesktopProfile } from './lib/rdp-stream.js';
import { runBench } from './lib/run.js';

const { values: opts } = parseArgs({
  options: {
    sessions: { type: 'string', default: '25' },
    steps: { type: 'string', default: '5' },
    window: { type: 'string', default: '30' },
    baseline: { type: 'string', default: '10' },
    'active-kib': { type: 'string', default: '200' },
    fps: { type: 'string', default: '10' },
    'deadline-min': { type: 'string', default: '12' },
  },
});
const N = Number(opts.sessions);
const STEPS = Math.max(1, Math.min(N, Number(opts.steps)));
const WINDOW_S = Number(opts.window);
const BASELINE_S = Number(opts.baseline);
const FPS = Number(opts.fps);
const PROFILE: DesktopProfile = officeDesktop(Number(opts['active-kib']) * 1024, FPS);
const real = process.env.GUACD_HOST;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const kib = (b: number): string => `${(b / 1024).toFixed(1)} KiB`;
const mib = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;

/** A forked bench process answering one message at a time. */
class Child<Req> {
  readonly proc: ChildProcess;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #first: Promise<unknown>;
  constructor(file: string, env: Record<string, string>) {
    this.proc = fork(new URL(file, import.meta.url), [], { execArgv: ['--import', 'tsx'], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#first = this.#next(120_000);
  }
  get pid(): number {
    return this.proc.pid!;
  }
  #next<T>(timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.pid}: no answer within ${timeoutMs} ms`)), timeoutMs);
      const onExit = (code: number | null): void => reject(new Error(`bench child exited (${String(code)})`));
      this.proc.once('exit', onExit);
      this.proc.once('message', (m: { ok: boolean; result?: T; error?: string }) => {
        clearTimeout(timer);
        this.proc.off('exit', onExit);
        if (m.ok) resolve(m.result as T);
        else reject(new Error(m.error));
      });
    });
  }
  ready<T>(): Promise<T> {
    return this.#first as Promise<T>;
  }
  call<T>(req: Req, timeoutMs = 300_000): Promise<T> {
    const p = this.#queue.then(() => {
      const answer = this.#next<T>(timeoutMs);
      this.proc.send(req as object);
      return answer;
    });
    this.#queue = p.catch(() => undefined);
    return p;
  }
  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

/**
 * guacd's side for every session of the peer: the office-desktop stream while
 * active (frames on a clock, so a late timer catches up instead of lowering
 * the rate; a frame is skipped while 1 MiB waits unread, as guacd combines
 * updates for a slow client), libguac's `nop` every 5 s while idle.
 */
class DesktopDriver {
  active = false;
  sentBytes = 0;
  skippedFrames = 0;
  readonly #state = new Map<PeerConnection, { stream: DesktopStream; nextFrame: number; nextNop: number }>();
  readonly #timer: NodeJS.Timeout;
  constructor(readonly peer: GuacdPeer, readonly profile: DesktopProfile) {
    const period = 1000 / profile.fps;
    this.#timer = setInterval(() => {
      const now = Date.now();
      for (const c of peer.connections) {
        if (c.closed || c.hungUp || !c.recordingFile) continue;
        let st = this.#state.get(c);
        if (!st) this.#state.set(c, (st = { stream: new DesktopStream(profile), nextFrame: now + Math.random() * period, nextNop: now + KEEP_ALIVE_MS }));
        if (!this.active) {
          if (now >= st.nextNop) {
            c.sendEncoded(NOP);
            this.sentBytes += NOP.length;
            st.nextNop = now + KEEP_ALIVE_MS;
          }
          st.nextFrame = now + Math.random() * period;
          continue;
        }
        if (now - st.nextFrame > 1000) st.nextFrame = now; // more than a second late: the machine stalled, do not burst
        while (now >= st.nextFrame) {
          st.nextFrame += period;
          if (c.backlog() > 1 << 20) {
            this.skippedFrames++;
            continue;
          }
          const frame = Buffer.from(st.stream.next(Date.now()), 'latin1');
          c.sendEncoded(frame);
          this.sentBytes += frame.length;
        }
        st.nextNop = now + KEEP_ALIVE_MS;
      }
      for (const c of this.#state.keys()) if (c.closed) this.#state.delete(c);
    }, Math.min(20, period / 2));
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) total += statSync(join(e.parentPath, e.name)).size;
  return total;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'jg-bench-rdpsize-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const load0 = loadavg();
  const peer = real ? null : await startGuacdPeer({ writeRecordings: true });
  const driver = peer ? new DesktopDriver(peer, PROFILE) : null;
  const guacd = real ? { host: real, port: process.env.GUACD_PORT ?? '4822' } : { host: peer!.host, port: String(peer!.port) };
  const gw = new Child<GatewayRequest>('./rdp-sizing-gateway.ts', { BENCH_GUACD_HOST: guacd.host, BENCH_GUACD_PORT: guacd.port, BENCH_DIR: dir });
  const clients = new Child<ClientRequest>('./rdp-sizing-clients.ts', {});
  const rows: [string, string][] = [];
  const row = (k: string, v: string): void => {
    rows.push([k, v]);
    console.error(`  ${k}: ${v}`);
  };
  try {
    const { wsUrl } = await gw.ready<{ wsUrl: string }>();
    await clients.ready();
    const source = real
      ? `real guacd ${guacd.host}:${guacd.port}, RDP target ${process.env.RDP_HOST ?? '127.0.0.1'}`
      : 'Guacamole-protocol test peer in guacd\'s place (no FreeRDP)';
    console.error(`rdp-sizing: ${source}; ${N} sessions in ${STEPS} steps; windows ${WINDOW_S} s; load average ${load0.map((l) => l.toFixed(2)).join(' ')}`);
    if (!real) {
      const p = PROFILE;
      console.error(
        `active desktop: ${p.fps} frames/s, ${p.smallRects} × ${p.smallBytes} B PNG per frame, a ${kib(p.largeBytes)} JPEG region every ${p.largeEvery} frames ` +
          `→ ${kib(wireBytesPerSecond(p))}/s of guacd output per session`,
      );
    }
    const cpu = (): number => procCpuSeconds(gw.pid);
    const waitEnded = async (what: string): Promise<GatewayCounts> => {
      for (let i = 0; i < 600; i++) {
        const c = await gw.call<GatewayCounts>({ op: 'counts' });
        if (c.ended === c.opened) return c;
        await sleep(100);
      }
      throw new Error(`${what}: sessions not torn down within 60 s`);
    };

    // Warm-up: code paths loaded, capability probe cached, PGlite's first writes done.
    await clients.call({ op: 'open', wsUrl, count: 2, parallel: 2 });
    await sleep(1000);
    await clients.call({ op: 'close' });
    await waitEnded('warm-up');
    await gw.call({ op: 'forget' });

    // 1. The gateway with no session: its own timers and GC (subtracted from the windows below).
    const rest = await gw.call<MemPoint>({ op: 'sample', n: 0 });
    const b0 = cpu();
    const tb0 = performance.now();
    await sleep(BASELINE_S * 1000);
    const baselinePerSecond = (cpu() - b0) / ((performance.now() - tb0) / 1000);
    row(
      'gateway with no session (subtracted below)',
      `${(baselinePerSecond * 60).toFixed(2)} CPU-s per minute; ${mib(rest.live)} heap+external, RSS ${mib(rest.rss)} (embedded PGlite included)`,
    );

    // 2. Memory per idle session: N sessions opened in STEPS batches and held; after each, the median of 5 samples
    // after a forced GC inside the gateway; the figure is the slope over sessions held (bench/lib/memory.ts).
    const points: MemPoint[] = [await gw.call<MemPoint>({ op: 'sample', n: 0 })];
    for (let s = 1; s <= STEPS; s++) {
      const target = Math.round((N * s) / STEPS);
      const now = (await clients.call<ClientStats>({ op: 'stats' })).open;
      await clients.call({ op: 'open', wsUrl, count: target - now, parallel: 5 }, 600_000);
      await sleep(1000);
      points.push(await gw.call<MemPoint>({ op: 'sample', n: target }));
      console.error(`  ${target} sessions held`);
    }
    const idleTop = points[points.length - 1]!;
    const m = perSession(points);

    // 3. CPU while idle (screen unchanged: guacd's keep-alive, the browsers' pings).
    await clients.call<ClientStats>({ op: 'stats' });
    let sent0 = driver?.sentBytes ?? 0;
    let c0 = cpu();
    let t0 = performance.now();
    await sleep(WINDOW_S * 1000);
    let c1 = cpu();
    let secs = (performance.now() - t0) / 1000;
    let st = await clients.call<ClientStats>({ op: 'stats' });
    if (st.open !== N) throw new Error(`${N - st.open} sessions closed during the idle window`);
    const idlePerMin = cpuPerSessionMinute({ cpuSeconds: c1 - c0, seconds: secs, sessions: N }, baselinePerSecond);
    // Idle sessions cost less than the noise of the no-session base: the raw window (base not subtracted) is the
    // upper bound, and sessions per core are counted from it.
    const idleRaw = cpuPerSessionMinute({ cpuSeconds: c1 - c0, seconds: secs, sessions: N });
    row(
      `idle desktop (no screen change: guacd's nop every 5 s, browser ping every 500 ms), ${N} sessions, ${secs.toFixed(0)} s`,
      `${(idlePerMin * 1000).toFixed(1)} CPU-ms per session-minute above the base, at most ${(idleRaw * 1000).toFixed(1)} with it → ` +
        `at least ${sessionsPerCore(idleRaw).toFixed(0)} sessions per core ` +
        `(guacd → browser ${(st.bytes / N / st.seconds).toFixed(0)} B/s per session)`,
    );

    // 4. CPU while active (the office-desktop stream; the browsers ack each frame, move the mouse, type).
    if (driver) driver.active = true;
    await clients.call({ op: 'mode', active: true });
    await sleep(5000);
    await clients.call<ClientStats>({ op: 'stats' });
    sent0 = driver?.sentBytes ?? 0;
    const skipped0 = driver?.skippedFrames ?? 0;
    const rec0 = dirBytes(join(dir, 'recordings'));
    c0 = cpu();
    t0 = performance.now();
    await sleep(WINDOW_S * 1000);
    c1 = cpu();
    secs = (performance.now() - t0) / 1000;
    st = await clients.call<ClientStats>({ op: 'stats' });
    const recRate = (dirBytes(join(dir, 'recordings')) - rec0) / N / (secs / 60);
    const rssActive = procRssBytes(gw.pid);
    if (st.open !== N) throw new Error(`${N - st.open} sessions closed during the active window`);
    const sentRate = driver ? (driver.sentBytes - sent0) / N / secs : Number.NaN;
    const gotRate = st.bytes / N / st.seconds;
    const activePerMin = cpuPerSessionMinute({ cpuSeconds: c1 - c0, seconds: secs, sessions: N }, baselinePerSecond);
    row(
      `active desktop (${real ? 'the real desktop\'s own output' : `office desktop, ${kib(wireBytesPerSecond(PROFILE))}/s of guacd output`}; browser: 10 mouse moves + 5 keys/s, every frame acknowledged), ${N} sessions, ${secs.toFixed(0)} s`,
      `${(activePerMin * 1000).toFixed(0)} CPU-ms per session-minute → ${sessionsPerCore(activePerMin).toFixed(0)} sessions per core ` +
        `(relayed ${kib(gotRate)}/s per session${driver ? ` of ${kib(sentRate)}/s sent; ${driver.skippedFrames - skipped0} frames skipped for backlog` : ''}; ` +
        `${(((c1 - c0) / secs) * 100).toFixed(0)} % of one core for all ${N}; ${((c1 - c0 - baselinePerSecond * secs) / ((st.bytes || 1) / 1073741824)).toFixed(1)} CPU-s per GiB relayed)`,
    );
    const activeMem = await gw.call<MemPoint>({ op: 'sample', n: N });
    row(`memory per idle session (${m.method})`, m.text);
    row(
      `memory per active session, extra over idle (${N} held, after a forced GC)`,
      `${kib((activeMem.live - idleTop.live) / N)} heap+external (in-flight frames and parser buffers), RSS ` +
        // As in bench/lib/memory.ts: RSS below the idle point is the allocator handing memory back, not a figure.
        `${activeMem.rss >= idleTop.rss ? kib((activeMem.rss - idleTop.rss) / N) : 'within the allocator\'s noise'} (gateway RSS with ${N} active, no GC: ${mib(rssActive)})`,
    );
    if (!real) row('recording written by guacd (here the peer) per active session-minute', mib(recRate));

    // 5. Teardown: every session ended, every recording sealed (hashed, signed, indexed).
    if (driver) driver.active = false;
    await clients.call({ op: 'close' });
    const end = await waitEnded('teardown');
    for (let i = 0; i < 100 && !real; i++) {
      const c = await gw.call<GatewayCounts>({ op: 'counts' });
      if (c.sealed >= end.opened) break;
      await sleep(100);
    }
    const fin = await gw.call<GatewayCounts>({ op: 'counts' });
    row('recordings sealed / sessions (warm-up included)', `${fin.sealed} / ${fin.opened}${fin.unsealed ? ` (${fin.unsealed} unsealed)` : ''}`);

    const load1 = loadavg();
    const per25 = 25 * activePerMin;
    console.log(`\nRDP sizing through jitgate's tunnel, ${source}; recording on; ${availableParallelism()} cores; load average ${load0[0]!.toFixed(2)} → ${load1[0]!.toFixed(2)}\n`);
    console.log('| measurement | figure |\n| --- | --- |');
    for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
    console.log(
      `\nGuacamole's published sizing: about 25 connections per core and 2 GB per 25 (≈ 82 MiB per connection), for guacd with FreeRDP.` +
        `\njitgate's own share here: 25 active sessions ≈ ${(per25 / 60).toFixed(2)} of a core and ${mib(25 * Math.max(0, m.live * 1024))} of heap+external` +
        `${real ? '' : '; the peer does no RDP decoding or image encoding, so guacd\'s cost (the 25/core) comes on top, on guacd\'s machine'}.`,
    );
  } finally {
    driver?.stop();
    clients.kill();
    gw.kill();
    await peer?.close();
  }
}

runBench(main, Number(opts['deadline-min']) * 60_000);
