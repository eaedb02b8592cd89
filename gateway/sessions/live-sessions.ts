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
 *   a session (`terminate`, `watch`).
 * - channel `watch:<session id>`: the session's output, published only while
 *   somebody is subscribed (checked with PUBSUB NUMSUB on every heartbeat).
 *   Frames: one type byte (1 data, 2 end, 3 resize JSON) then the payload.
 */
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../../core/logging.js';
import { JitgateError } from '../../core/errors.js';
import type { LiveSessionInfo, LiveSessions } from '../contracts.js';
import { SessionErrors } from './errors.js';

export type TerminateReason = 'terminated' | 'lease-expired';

/** What the gateway holding a session feeds to watchers. */
export interface LiveTap {
  output(chunk: Uint8Array): void;
  resize(cols: number, rows: number): void;
}

export interface LiveRegistration extends LiveTap {
  /** Remove the session from the live list and tell watchers it ended. Idempotent. */
  unregister(): Promise<void>;
}

export interface LiveEntry extends LiveSessionInfo {
  cols: number;
  rows: number;
  /** Last heartbeat (ms since the epoch) and how old it may get before the entry counts as dead. */
  heartbeat: number;
  staleMs: number;
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
  log: Logger;
}

const FRAME_DATA = 1;
const FRAME_END = 2;
const FRAME_RESIZE = 3;

interface LocalSession {
  entry: LiveEntry;
  onTerminate: (reason: TerminateReason, by: string) => void;
  watched: boolean;
}

type ControlMessage = { type: 'terminate'; sessionId: string; by: string } | { type: 'watch'; sessionId: string };

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
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(opts: RedisLiveSessionsOptions) {
    this.#o = opts;
    this.gatewayId = opts.gatewayId ?? `gw-${randomBytes(6).toString('hex')}`;
    this.#heartbeatMs = opts.heartbeatMs ?? 5000;
    this.#staleMs = opts.staleMs ?? this.#heartbeatMs * 4;
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
      local.onTerminate('terminated', msg.by);
    } else if (msg.type === 'watch') {
      local.watched = true;
      this.#publishFrame(msg.sessionId, FRAME_RESIZE, Buffer.from(JSON.stringify({ cols: local.entry.cols, rows: local.entry.rows })));
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
      // Stop publishing output nobody reads.
      for (const [id, l] of this.#local) {
        if (!l.watched) continue;
        const r = (await this.#cmd.pubsub('NUMSUB', this.#key(`watch:${id}`))) as [string, number];
        if (Number(r[1]) === 0) l.watched = false;
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

  /** Announce a session this gateway holds; `onTerminate` runs when an admin terminates it anywhere. */
  async register(info: Omit<LiveSessionInfo, 'gateway'> & { cols?: number; rows?: number }, onTerminate: (reason: TerminateReason, by: string) => void): Promise<LiveRegistration> {
    const entry: LiveEntry = { ...info, gateway: this.gatewayId, cols: info.cols ?? 80, rows: info.rows ?? 24, heartbeat: Date.now(), staleMs: this.#staleMs };
    const local: LocalSession = { entry, onTerminate, watched: false };
    this.#local.set(info.sessionId, local);
    await this.#cmd.hset(this.#key('live'), info.sessionId, JSON.stringify(entry));
    let gone = false;
    return {
      output: (chunk) => {
        if (local.watched && !gone) this.#publishFrame(info.sessionId, FRAME_DATA, chunk);
      },
      resize: (cols, rows) => {
        if (entry.cols === cols && entry.rows === rows) return;
        entry.cols = cols;
        entry.rows = rows;
        // New watchers read the size from the entry: write it now, not at the next heartbeat.
        if (!gone && !this.#closed) this.#cmd.hset(this.#key('live'), info.sessionId, JSON.stringify(entry)).catch(() => undefined);
        if (local.watched && !gone) this.#publishFrame(info.sessionId, FRAME_RESIZE, Buffer.from(JSON.stringify({ cols, rows })));
      },
      unregister: async () => {
        if (gone) return;
        gone = true;
        if (this.#local.get(info.sessionId) === local) this.#local.delete(info.sessionId);
        if (this.#closed) return;
        await this.#cmd.hdel(this.#key('live'), info.sessionId).catch(() => undefined);
        this.#publishFrame(info.sessionId, FRAME_END, Buffer.alloc(0));
      },
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
    return receivers > 0;
  }

  async watch(sessionId: string, onData: (chunk: Buffer) => void, onEnd: () => void): Promise<() => void> {
    const stop = await this.watchFrames(sessionId, { onData, onEnd, onResize: () => undefined });
    return () => void stop();
  }

  /** `watch` with resize notifications (for the watch websocket's header and resizes). */
  async watchFrames(sessionId: string, h: { onData: (chunk: Buffer) => void; onResize: (cols: number, rows: number) => void; onEnd: () => void }): Promise<() => Promise<void>> {
    const e = await this.get(sessionId);
    if (!e) throw new JitgateError(SessionErrors.JIT_ERR_SESSION_NOT_LIVE, { session: sessionId });
    let ended = false;
    let poll: NodeJS.Timeout | null = null;
    let unsubscribe: (() => Promise<void>) | null = null;
    const stop = async (): Promise<void> => {
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
      if (type === FRAME_DATA) h.onData(payload);
      else if (type === FRAME_END) end();
      else if (type === FRAME_RESIZE) {
        try {
          const { cols, rows } = JSON.parse(payload.toString('utf8')) as { cols: number; rows: number };
          h.onResize(cols, rows);
        } catch {
          // ignore a malformed frame
        }
      }
    });
    const msg: ControlMessage = { type: 'watch', sessionId };
    await this.#cmd.publish(this.#key(`gw:${e.gateway}`), JSON.stringify(msg));
    // The holding gateway may die without saying so: end when its entry goes stale.
    poll = setInterval(() => {
      void this.get(sessionId).then((x) => {
        if (!x) end();
      }, () => undefined);
    }, this.#heartbeatMs);
    poll.unref();
    return async () => {
      ended = true;
      await stop();
    };
  }
}
