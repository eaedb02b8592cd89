/**
 * Live sessions across every gateway sharing one Redis.
 *
 * Redis layout (all under `<prefix>:`):
 * - hash `live`: session id → JSON {LiveSessionInfo, cols, rows, heartbeat}.
 *   Each gateway rewrites its own entries every `heartbeatMs`; an entry whose
 *   heartbeat is older than `staleMs` belongs to a dead gateway and is dropped
 *   by whoever lists it (the account itself is torn down by the provisioner's
 *   lease-expiry job and the reconciler, not here).
 * - key `alive:<gateway id>`: set on every heartbeat with a time-to-live of
 *   `staleMs` (Redis's own clock, so no skew between machines): while it
 *   exists the gateway holds its sessions; once it is gone the reconciler
 *   tears them down (gateway/sessions/gateway-liveness.ts).
 * - channel `gw:<gateway id>`: JSON control messages for the gateway holding
 *   a session (`terminate`, `watch`, `unwatch`).
 * - channel `watch:<session id>`: the session's output, published only while
 *   somebody is subscribed (checked with PUBSUB NUMSUB on every heartbeat).
 *   Frames: one type byte (1 data, 2 end, 3 resize JSON, 4 scrollback) then
 *   the payload.
 *
 * Watching: the holder keeps the last `scrollbackBytes` of each session's
 * output in memory. A watcher subscribes, then sends `watch` with its own id;
 * the holder answers with a scrollback frame addressed to that id (id length,
 * id, cols and rows as 16-bit big-endian, then the bytes), so a new watcher
 * starts with what is on the screen rather than a blank terminal, and drops
 * data frames until its own scrollback arrives (they are already in it).
 * Watchers repeat `watch` on every heartbeat and send `unwatch` when they
 * stop; the holder tells the watched person (the `onWatchers` callback of
 * `register`) whenever one joins or leaves, and forgets a watcher whose
 * keep-alive stopped (its gateway died).
 *
 * Terminating: the holder removes the session from the live list as soon as
 * the request reaches it, and `terminate` waits (bounded) for that, so a list
 * read after `terminate` resolved no longer shows the session.
 */
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../../core/logging.js';
import { JitgateError } from '../../core/errors.js';
import type { LiveSessionInfo, LiveSessions } from '../contracts.js';
import { SessionErrors } from './errors.js';

export type TerminateReason = 'terminated' | 'lease-expired';

/** Somebody started or stopped watching a session; `count` is how many watch now. */
export interface WatchersChange {
  count: number;
  event: 'joined' | 'left';
  /** Login of the watcher who joined or left. */
  by: string;
  /** The watcher's person id, when its gateway said (a moderator's eligibility is checked on it). */
  personId?: string;
}

/** What the gateway holding a session feeds to watchers. */
export interface LiveTap {
  output(chunk: Uint8Array): void;
  resize(cols: number, rows: number): void;
}

export interface LiveRegistration extends LiveTap {
  /** Remove the session from the live list and tell watchers it ended. Idempotent. */
  unregister(): Promise<void>;
  /** RDP: note guacd's connection id in the entry (watchers join it read-only). */
  setGuacdConnection(id: string): Promise<void>;
}

export interface LiveEntry extends LiveSessionInfo {
  cols: number;
  rows: number;
  /** Last heartbeat (ms since the epoch) and how old it may get before the entry counts as dead. */
  heartbeat: number;
  staleMs: number;
  /** RDP: guacd's connection id (`$<uuid>`), so a watcher's gateway can join it read-only (gateway/rdp/rdp-watch.ts). */
  guacdConnection?: string;
}

export interface RedisLiveSessionsOptions {
  redis: RedisOptions;
  /** Key/channel prefix shared by every gateway of one installation. */
  prefix: string;
  /** This gateway's id; default random. */
  gatewayId?: string;
  heartbeatMs?: number;
  /** Entries not refreshed for this long are dead; default 4 × heartbeat. */
  staleMs?: number;
  /** Output kept per live session and replayed to a new watcher; default 64 KiB. */
  scrollbackBytes?: number;
  /** Longest wait of `terminate` for the holder to drop the session from the list; default 3 s. */
  terminateWaitMs?: number;
  log: Logger;
}

const FRAME_DATA = 1;
const FRAME_END = 2;
const FRAME_RESIZE = 3;
const FRAME_SCROLLBACK = 4;
/** How long a watcher waits for its scrollback before showing live output anyway (a holder that sends none). */
const SCROLLBACK_WAIT_MS = 3000;

interface LocalSession {
  entry: LiveEntry;
  onTerminate: (reason: TerminateReason, by: string) => void;
  onWatchers: ((change: WatchersChange) => void) | undefined;
  watched: boolean;
  /** Recent output, oldest first; at most `scrollbackBytes` plus one chunk. */
  scrollback: Buffer[];
  scrollbackLength: number;
  /** Watcher id → who and when their last keep-alive came. */
  watchers: Map<string, { by: string; personId: string | undefined; seen: number }>;
  /** Take the session off the live list now and end its watchers (what `unregister` does). */
  drop: () => Promise<void>;
}

type ControlMessage =
  | { type: 'terminate'; sessionId: string; by: string }
  | { type: 'watch'; sessionId: string; watcherId?: string; by?: string; personId?: string }
  | { type: 'unwatch'; sessionId: string; watcherId: string };

/** The last `max` bytes of `chunks`, starting after a line break when cut, so a replay does not begin inside an escape sequence. */
export function scrollbackTail(chunks: readonly Buffer[], max: number): Buffer {
  const all = Buffer.concat(chunks);
  if (all.length <= max) return all;
  const tail = all.subarray(all.length - max);
  const nl = tail.indexOf(0x0a);
  return nl >= 0 && nl < tail.length / 2 ? tail.subarray(nl + 1) : tail;
}

/** The payload of a scrollback frame: id length, id, cols, rows (16-bit big-endian), bytes. */
function scrollbackPayload(watcherId: string, cols: number, rows: number, data: Buffer): Buffer {
  const id = Buffer.from(watcherId, 'latin1');
  const head = Buffer.alloc(1 + id.length + 4);
  head[0] = id.length;
  id.copy(head, 1);
  head.writeUInt16BE(cols, 1 + id.length);
  head.writeUInt16BE(rows, 3 + id.length);
  return Buffer.concat([head, data]);
}

function parseScrollback(p: Buffer): { watcherId: string; cols: number; rows: number; data: Buffer } | null {
  if (p.length < 1) return null;
  const n = p[0]!;
  if (p.length < 1 + n + 4) return null;
  return { watcherId: p.subarray(1, 1 + n).toString('latin1'), cols: p.readUInt16BE(1 + n), rows: p.readUInt16BE(3 + n), data: p.subarray(5 + n) };
}

export class RedisLiveSessions implements LiveSessions {
  readonly gatewayId: string;
  readonly #o: RedisLiveSessionsOptions;
  readonly #cmd: Redis;
  readonly #sub: Redis;
  readonly #log: Logger;
  readonly #local = new Map<string, LocalSession>();
  readonly #channelHandlers = new Map<string, Set<(msg: Buffer) => void>>();
  readonly #heartbeatMs: number;
  readonly #staleMs: number;
  readonly #scrollbackBytes: number;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(opts: RedisLiveSessionsOptions) {
    this.#o = opts;
    this.gatewayId = opts.gatewayId ?? `gw-${randomBytes(6).toString('hex')}`;
    this.#heartbeatMs = opts.heartbeatMs ?? 5000;
    this.#staleMs = opts.staleMs ?? this.#heartbeatMs * 4;
    this.#scrollbackBytes = opts.scrollbackBytes ?? 64 * 1024;
    this.#log = opts.log.child({ component: 'live-sessions', gateway: this.gatewayId });
    this.#cmd = new Redis({ ...opts.redis, lazyConnect: true, maxRetriesPerRequest: 3 });
    this.#sub = new Redis({ ...opts.redis, lazyConnect: true });
    this.#cmd.on('error', (err) => this.#log.warn({ err }, 'redis error'));
    this.#sub.on('error', (err) => this.#log.warn({ err }, 'redis subscriber error'));
    this.#sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      const handlers = this.#channelHandlers.get(channel.toString());
      if (handlers) for (const h of handlers) h(message);
    });
  }

  #key(name: string): string {
    return `${this.#o.prefix}:${name}`;
  }

  /** Connect, listen for control messages addressed to this gateway, start heartbeats. */
  async start(): Promise<void> {
    await Promise.all([this.#cmd.connect(), this.#sub.connect()]);
    // Alive before the first session can name this gateway as its holder.
    await this.#cmd.set(this.#key(`alive:${this.gatewayId}`), String(Date.now()), 'PX', this.#staleMs);
    await this.#subscribe(this.#key(`gw:${this.gatewayId}`), (msg) => this.#onControl(msg));
    this.#timer = setInterval(() => void this.#tick(), this.#heartbeatMs);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    const ids = [...this.#local.keys()];
    if (ids.length > 0) await this.#cmd.hdel(this.#key('live'), ...ids).catch(() => undefined);
    // Closing on purpose: sessions still held (none after a clean shutdown) are the reconciler's at once.
    await this.#cmd.del(this.#key(`alive:${this.gatewayId}`)).catch(() => undefined);
    this.#local.clear();
    this.#cmd.disconnect();
    this.#sub.disconnect();
  }

  async #subscribe(channel: string, handler: (msg: Buffer) => void): Promise<() => Promise<void>> {
    let set = this.#channelHandlers.get(channel);
    if (!set) {
      set = new Set();
      this.#channelHandlers.set(channel, set);
      await this.#sub.subscribe(channel);
    }
    set.add(handler);
    return async () => {
      const s = this.#channelHandlers.get(channel);
      if (!s) return;
      s.delete(handler);
      if (s.size === 0) {
        this.#channelHandlers.delete(channel);
        if (!this.#closed) await this.#sub.unsubscribe(channel).catch(() => undefined);
      }
    };
  }

  #onControl(raw: Buffer): void {
    let msg: ControlMessage;
    try {
      msg = JSON.parse(raw.toString('utf8')) as ControlMessage;
    } catch {
      return;
    }
    const local = this.#local.get(msg.sessionId);
    if (!local) return;
    if (msg.type === 'terminate') {
      this.#log.info({ sessionId: msg.sessionId, by: msg.by }, 'terminate requested');
      // Off the live list at once (the terminating admin's next read must not show it), then close it.
      void local.drop();
      local.onTerminate('terminated', msg.by);
    } else if (msg.type === 'watch') {
      local.watched = true;
      const id = typeof msg.watcherId === 'string' ? msg.watcherId.slice(0, 64) : null;
      if (id === null) {
        this.#publishFrame(msg.sessionId, FRAME_RESIZE, Buffer.from(JSON.stringify({ cols: local.entry.cols, rows: local.entry.rows })));
        return;
      }
      const known = local.watchers.get(id);
      if (known) {
        known.seen = Date.now();
        return;
      }
      const by = typeof msg.by === 'string' && msg.by ? msg.by.slice(0, 200) : 'someone';
      const personId = typeof msg.personId === 'string' && msg.personId ? msg.personId.slice(0, 64) : undefined;
      local.watchers.set(id, { by, personId, seen: Date.now() });
      const data = scrollbackTail(local.scrollback, this.#scrollbackBytes);
      this.#publishFrame(msg.sessionId, FRAME_SCROLLBACK, scrollbackPayload(id, local.entry.cols, local.entry.rows, data));
      this.#watchersChanged(local, 'joined', by, personId);
    } else if (msg.type === 'unwatch') {
      const w = local.watchers.get(msg.watcherId);
      if (!w) return;
      local.watchers.delete(msg.watcherId);
      this.#watchersChanged(local, 'left', w.by, w.personId);
    }
  }

  #watchersChanged(local: LocalSession, event: WatchersChange['event'], by: string, personId?: string): void {
    try {
      local.onWatchers?.({ count: local.watchers.size, event, by, ...(personId ? { personId } : {}) });
    } catch (err) {
      this.#log.warn({ err, sessionId: local.entry.sessionId }, 'watchers callback failed');
    }
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    const now = Date.now();
    const multi = this.#cmd.multi();
    multi.set(this.#key(`alive:${this.gatewayId}`), String(now), 'PX', this.#staleMs);
    for (const [id, l] of this.#local) {
      l.entry.heartbeat = now;
      multi.hset(this.#key('live'), id, JSON.stringify(l.entry));
    }
    try {
      await multi.exec();
      // Forget watchers whose keep-alive stopped (their gateway died without an `unwatch`).
      for (const l of this.#local.values()) {
        for (const [wid, w] of l.watchers) {
          if (now - w.seen <= this.#staleMs) continue;
          l.watchers.delete(wid);
          this.#watchersChanged(l, 'left', w.by, w.personId);
        }
      }
      // Stop publishing output nobody reads.
      for (const [id, l] of this.#local) {
        if (!l.watched) continue;
        const r = (await this.#cmd.pubsub('NUMSUB', this.#key(`watch:${id}`))) as [string, number];
        if (Number(r[1]) === 0) {
          l.watched = false;
          for (const [wid, w] of l.watchers) {
            l.watchers.delete(wid);
            this.#watchersChanged(l, 'left', w.by, w.personId);
          }
        }
      }
    } catch (err) {
      this.#log.warn({ err }, 'live session heartbeat failed');
    }
  }

  #publishFrame(sessionId: string, type: number, payload: Uint8Array): void {
    const frame = Buffer.allocUnsafe(1 + payload.length);
    frame[0] = type;
    frame.set(payload, 1);
    this.#cmd.publish(this.#key(`watch:${sessionId}`), frame).catch(() => undefined);
  }

  /**
   * Announce a session this gateway holds; `onTerminate` runs when an admin
   * terminates it anywhere, `onWatchers` whenever somebody starts or stops
   * watching it.
   */
  async register(
    info: Omit<LiveSessionInfo, 'gateway'> & { cols?: number; rows?: number },
    onTerminate: (reason: TerminateReason, by: string) => void,
    onWatchers?: (change: WatchersChange) => void,
  ): Promise<LiveRegistration> {
    const entry: LiveEntry = { ...info, gateway: this.gatewayId, cols: info.cols ?? 80, rows: info.rows ?? 24, heartbeat: Date.now(), staleMs: this.#staleMs };
    let gone = false;
    const drop = async (): Promise<void> => {
      if (gone) return;
      gone = true;
      local.scrollback = [];
      local.watchers.clear();
      if (this.#local.get(info.sessionId) === local) this.#local.delete(info.sessionId);
      if (this.#closed) return;
      await this.#cmd.hdel(this.#key('live'), info.sessionId).catch(() => undefined);
      this.#publishFrame(info.sessionId, FRAME_END, Buffer.alloc(0));
    };
    const local: LocalSession = { entry, onTerminate, onWatchers, watched: false, scrollback: [], scrollbackLength: 0, watchers: new Map(), drop };
    this.#local.set(info.sessionId, local);
    await this.#cmd.hset(this.#key('live'), info.sessionId, JSON.stringify(entry));
    return {
      output: (chunk) => {
        if (gone) return;
        // Kept whether or not anybody watches: a watcher who joins later starts from it.
        const copy = Buffer.from(chunk);
        local.scrollback.push(copy);
        local.scrollbackLength += copy.length;
        while (local.scrollback.length > 1 && local.scrollbackLength - local.scrollback[0]!.length >= this.#scrollbackBytes) {
          local.scrollbackLength -= local.scrollback.shift()!.length;
        }
        if (local.watched) this.#publishFrame(info.sessionId, FRAME_DATA, chunk);
      },
      resize: (cols, rows) => {
        if (entry.cols === cols && entry.rows === rows) return;
        entry.cols = cols;
        entry.rows = rows;
        // New watchers read the size from the entry: write it now, not at the next heartbeat.
        if (!gone && !this.#closed) this.#cmd.hset(this.#key('live'), info.sessionId, JSON.stringify(entry)).catch(() => undefined);
        if (local.watched && !gone) this.#publishFrame(info.sessionId, FRAME_RESIZE, Buffer.from(JSON.stringify({ cols, rows })));
      },
      setGuacdConnection: async (id) => {
        entry.guacdConnection = id;
        if (!gone && !this.#closed) await this.#cmd.hset(this.#key('live'), info.sessionId, JSON.stringify(entry)).catch(() => undefined);
      },
      unregister: drop,
    };
  }

  /** A live session's entry (fresh heartbeat only), or null. */
  async get(sessionId: string): Promise<LiveEntry | null> {
    const raw = await this.#cmd.hget(this.#key('live'), sessionId);
    if (!raw) return null;
    const e = JSON.parse(raw) as LiveEntry;
    return this.#isStale(e, Date.now()) ? null : e;
  }

  #isStale(e: LiveEntry, now: number): boolean {
    return now - e.heartbeat > (e.staleMs || this.#staleMs);
  }

  async list(): Promise<LiveSessionInfo[]> {
    const all = await this.#cmd.hgetall(this.#key('live'));
    const now = Date.now();
    const out: LiveSessionInfo[] = [];
    const stale: string[] = [];
    for (const [id, raw] of Object.entries(all)) {
      const e = JSON.parse(raw) as LiveEntry;
      if (this.#isStale(e, now)) {
        stale.push(id);
        continue;
      }
      out.push({
        sessionId: e.sessionId, personLogin: e.personLogin, computerName: e.computerName, protocol: e.protocol, account: e.account, startedAt: e.startedAt, gateway: e.gateway,
        ...(e.personId !== undefined ? { personId: e.personId } : {}),
        ...(e.authSessionId !== undefined ? { authSessionId: e.authSessionId } : {}),
      });
    }
    if (stale.length > 0) await this.#cmd.hdel(this.#key('live'), ...stale).catch(() => undefined);
    return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  /**
   * Ask the gateway holding the session to close it (it then ends the session,
   * which enqueues teardown). False when no live gateway holds it: the caller
   * should enqueue the teardown itself.
   */
  async terminate(sessionId: string, by: string): Promise<boolean> {
    const e = await this.get(sessionId);
    if (!e) return false;
    const msg: ControlMessage = { type: 'terminate', sessionId, by };
    const receivers = await this.#cmd.publish(this.#key(`gw:${e.gateway}`), JSON.stringify(msg));
    if (receivers === 0) return false;
    // The holder drops the entry on receipt: wait for it so that the caller's next list is current.
    const until = Date.now() + (this.#o.terminateWaitMs ?? 3000);
    while (Date.now() < until && (await this.#cmd.hexists(this.#key('live'), sessionId)) === 1) {
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  async watch(sessionId: string, onData: (chunk: Buffer) => void, onEnd: () => void): Promise<() => void> {
    const stop = await this.watchFrames(sessionId, { onData, onEnd, onResize: () => undefined });
    return () => void stop();
  }

  /**
   * `watch` with resize notifications (for the watch websocket's header and
   * resizes). Starts with the session's recent output (scrollback, after an
   * `onResize` to the size it was written at); `by` is the watcher's login,
   * shown to the watched person, `personId` the watcher's id (a four-eyes
   * session counts an eligible watcher as its moderator).
   */
  async watchFrames(
    sessionId: string,
    h: { onData: (chunk: Buffer) => void; onResize: (cols: number, rows: number) => void; onEnd: () => void },
    by = 'someone',
    personId?: string,
  ): Promise<() => Promise<void>> {
    const e = await this.get(sessionId);
    if (!e) throw new JitgateError(SessionErrors.JIT_ERR_SESSION_NOT_LIVE, { session: sessionId });
    const watcherId = randomBytes(9).toString('base64url');
    const control = (msg: ControlMessage) => this.#cmd.publish(this.#key(`gw:${e.gateway}`), JSON.stringify(msg)).catch(() => 0);
    let ended = false;
    let poll: NodeJS.Timeout | null = null;
    let unsubscribe: (() => Promise<void>) | null = null;
    // Live output is held back until this watcher's scrollback came (it already holds that output).
    let started = false;
    const fallback = setTimeout(() => (started = true), SCROLLBACK_WAIT_MS);
    fallback.unref();
    const stop = async (): Promise<void> => {
      clearTimeout(fallback);
      if (poll) clearInterval(poll);
      poll = null;
      await unsubscribe?.();
    };
    const end = (): void => {
      if (ended) return;
      ended = true;
      void stop();
      h.onEnd();
    };
    unsubscribe = await this.#subscribe(this.#key(`watch:${sessionId}`), (frame) => {
      if (ended || frame.length === 0) return;
      const type = frame[0];
      const payload = frame.subarray(1);
      if (type === FRAME_DATA) {
        if (started) h.onData(payload);
      } else if (type === FRAME_SCROLLBACK) {
        const sb = parseScrollback(payload);
        if (!sb || sb.watcherId !== watcherId || started) return;
        started = true;
        clearTimeout(fallback);
        h.onResize(sb.cols, sb.rows);
        if (sb.data.length > 0) h.onData(sb.data);
      } else if (type === FRAME_END) end();
      else if (type === FRAME_RESIZE) {
        try {
          const { cols, rows } = JSON.parse(payload.toString('utf8')) as { cols: number; rows: number };
          h.onResize(cols, rows);
        } catch {
          // ignore a malformed frame
        }
      }
    });
    const watchMsg: ControlMessage = { type: 'watch', sessionId, watcherId, by, ...(personId ? { personId } : {}) };
    await control(watchMsg);
    // The holding gateway may die without saying so: end when its entry goes stale.
    // Each round also tells the holder this watcher is still there.
    poll = setInterval(() => {
      void control(watchMsg);
      void this.get(sessionId).then((x) => {
        if (!x) end();
      }, () => undefined);
    }, this.#heartbeatMs);
    poll.unref();
    return async () => {
      const wasEnded = ended;
      ended = true;
      await stop();
      if (!wasEnded) await control({ type: 'unwatch', sessionId, watcherId });
    };
  }
}
