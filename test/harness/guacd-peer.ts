import { randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import type { Computer, SessionRecord } from '../../core/domain.js';
import { silentLogger } from '../../core/logging.js';
import type { Principal } from '../../gateway/auth/principal.js';
import type { OpenSessionRequest, OpenedSession, ProgressFn, SessionBroker } from '../../gateway/contracts.js';
import { createMetrics } from '../../gateway/metrics.js';
import type { GuacdCapabilities } from '../../gateway/rdp/guacd-capabilities.js';
import { rdpRoutes, type RdpDeps } from '../../gateway/rdp/rdp-tunnel.js';
import { buildServer } from '../../gateway/server.js';
import type { Credentials } from '../../provisioner/jit-account.service.js';
import type { RdpRecordingSlot, RecordingMeta, SessionRecorder, StreamRecording, TerminalRecording } from '../../recorder/recorder.js';

/**
 * A Guacamole-protocol test peer standing in for guacd (not packaged for
 * Debian; no Docker engine here): a TCP server on 127.0.0.1 that speaks the
 * real handshake (protocol reference, "Handshake phase"):
 *   ← select <protocol>
 *   → args VERSION_1_5_0,<names…>         (unknown protocol: close, like guacd)
 *   ← size, audio, video, image, [timezone], [name]
 *   ← connect <version>,<one value per name, in args order>
 *   → ready $<connection id>
 *   → size 0,W,H · img · blob · end · sync   (draws a small PNG)
 * and joining an existing connection (guacd's screen sharing):
 *   ← select $<connection id>              (unknown id: close, like guacd)
 *   → args (the same as the protocol's) · ← size … connect (with `read-only`)
 *   → ready $<the same id> · the current screen · sync, then every update
 *     the session sends; the joined users are ended when the owner leaves.
 * It records what it received and notes every protocol violation in
 * `problems` (answering with `error` and closing, as guacd does).
 *
 * Its parser is independent of gateway/rdp/guac-protocol.ts on purpose: it
 * works on bytes and counts UTF-8 lead bytes, so a length bug in the
 * gateway's encoder does not cancel out.
 */

/**
 * RDP argument names modelled on guacd 1.6's `GUAC_RDP_CLIENT_ARGS`
 * (src/protocols/rdp/settings.c): same names, same kind of order; guacd
 * refuses a `connect` whose value count differs from this list.
 */
export const GUACD_RDP_ARGS: readonly string[] = [
  'hostname', 'port', 'timeout', 'domain', 'username', 'password', 'width', 'height', 'dpi', 'initial-program',
  'color-depth', 'disable-audio', 'enable-printing', 'printer-name', 'enable-drive', 'drive-name', 'drive-path',
  'create-drive-path', 'disable-download', 'disable-upload', 'console', 'console-audio', 'server-layout', 'security',
  'ignore-cert', 'cert-tofu', 'cert-fingerprints', 'disable-auth', 'remote-app', 'remote-app-dir', 'remote-app-args',
  'static-channels', 'client-name', 'enable-wallpaper', 'enable-theming', 'enable-font-smoothing',
  'enable-full-window-drag', 'enable-desktop-composition', 'enable-menu-animations', 'disable-bitmap-caching',
  'disable-offscreen-caching', 'disable-glyph-caching', 'preconnection-id', 'preconnection-blob', 'timezone',
  'enable-sftp', 'sftp-hostname', 'sftp-host-key', 'sftp-port', 'sftp-username', 'sftp-password', 'sftp-private-key',
  'sftp-passphrase', 'sftp-directory', 'sftp-root-directory', 'sftp-server-alive-interval', 'sftp-disable-download',
  'sftp-disable-upload', 'recording-path', 'recording-name', 'recording-exclude-output', 'recording-exclude-mouse',
  'recording-exclude-touch', 'recording-include-keys', 'create-recording-path', 'resize-method', 'enable-audio-input',
  'enable-touch', 'read-only', 'gateway-hostname', 'gateway-port', 'gateway-domain', 'gateway-username',
  'gateway-password', 'load-balance-info', 'disable-copy', 'disable-paste', 'wol-send-packet', 'wol-mac-addr',
  'wol-broadcast-addr', 'wol-udp-port', 'wol-wait-time', 'force-lossless', 'normalize-clipboard', 'clipboard-buffer-size',
];

/**
 * What guacd 1.5.x advertises: no certificate pinning (`cert-tofu` and
 * `cert-fingerprints` arrived in 1.6.0, GUACAMOLE-1585), same protocol version.
 */
export const GUACD_1_5_RDP_ARGS: readonly string[] = GUACD_RDP_ARGS.filter((a) => a !== 'cert-tofu' && a !== 'cert-fingerprints' && a !== 'clipboard-buffer-size');

export interface PeerConnection {
  readonly id: string;
  selected: string | null;
  /** Version the client answered with (first `connect` value). */
  version: string | null;
  /** Handshake instructions between `args` and `connect`, in order. */
  handshake: string[][];
  /** `connect` values by argument name. */
  args: Record<string, string>;
  /** Instructions received after `ready`. */
  received: string[][];
  /** The connection this one joined (`select $<id>`), or null for a connection of its own. */
  joined: string | null;
  problems: string[];
  /** The recording file written (writeRecordings). */
  recordingFile: string | null;
  /** The peer has ended its side (after `disconnect`, like guacd), possibly before its `close` event. */
  hungUp: boolean;
  closed: boolean;
  /** Send an instruction to the gateway (after ready). */
  send(...elements: string[]): void;
  /**
   * Send instructions already encoded (benchmarks: whole frames of large
   * blobs without re-encoding them). Recorded and relayed to joined users
   * like `send`, but not kept as the screen replayed to later joiners.
   */
  sendEncoded(data: string | Buffer): void;
  /** Bytes written by the peer that the gateway has not read yet (beyond the kernel buffers). */
  backlog(): number;
  /** Give up on the connection and ignore anything that still arrives, like guacd when its handshake times out (15 s after `args`). */
  hangUp(): void;
}

export interface GuacdPeerOptions {
  protocols?: string[];
  version?: string | null;
  rdpArgs?: readonly string[];
  /** Solid-colour image drawn after `ready`. */
  image?: { width: number; height: number; rgb: [number, number, number] };
  /** Write everything in slices of this many bytes (exercises split UTF-8 and instructions). */
  chunkBytes?: number;
  /** Instructions sent right after the drawing. */
  extra?: string[][];
  /** Answer `connect` with this error instead of `ready`. */
  failConnect?: { message: string; status: number };
  /**
   * Like guacd 1.5 when FreeRDP cannot connect or log in: answer `ready`,
   * then this `error` (no drawing, no `sync`) and close. `status: null`
   * closes after `ready` without any error.
   */
  failAfterReady?: { message: string; status: number | null };
  /**
   * Write a session recording like guacd: every instruction sent after
   * `ready` goes to `<recording-path>/<recording-name>` (directory created
   * when `create-recording-path` is "true"), and with `recording-include-keys`
   * the user's key events as guacd records them; the file is closed before
   * the connection closes.
   */
  writeRecordings?: boolean;
}

export interface GuacdPeer {
  readonly host: string;
  readonly port: number;
  /** Connections that went on after `args` (sessions), and any not yet known to be a probe. */
  readonly connections: PeerConnection[];
  /** Users that joined an existing connection (`select $<id>`), in order. */
  readonly joins: PeerConnection[];
  /**
   * Capability probes: connections closed right after `select` → `args` (or
   * after selecting a protocol this guacd does not offer), moved here from
   * `connections` when they end, so `connections[0]` is the first session.
   */
  readonly probes: PeerConnection[];
  /** Poll until `fn` returns a value that is not undefined/false. */
  waitFor<T>(fn: () => T | undefined | false | null, timeoutMs?: number, what?: string): Promise<T>;
  close(): Promise<void>;
}

function elem(s: string): string {
  return `${[...s].length}.${s}`;
}
export function peerEncode(...elements: string[]): string {
  return elements.map(elem).join(',') + ';';
}

/** Bytes taken by `n` UTF-8 characters starting at `from`, or -1 if `buf` ends first. */
function utf8Span(buf: Buffer, from: number, n: number): number {
  let i = from;
  for (let k = 0; k < n; k++) {
    if (i >= buf.length) return -1;
    const b = buf[i] as number;
    const size = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
    i += size;
  }
  return i > buf.length ? -1 : i;
}

/** Byte-level instruction parser (code-point lengths). Throws on malformed input. */
export class PeerParser {
  #buf = Buffer.alloc(0);
  push(chunk: Buffer): string[][] {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    const out: string[][] = [];
    let pos = 0;
    for (;;) {
      const elements: string[] = [];
      let p = pos;
      let complete = false;
      for (;;) {
        const dot = this.#buf.indexOf(0x2e, p);
        if (dot === -1) break;
        const lenText = this.#buf.subarray(p, dot).toString('latin1');
        if (!/^\d+$/.test(lenText)) throw new Error(`bad length ${JSON.stringify(lenText)}`);
        const end = utf8Span(this.#buf, dot + 1, Number(lenText));
        if (end === -1 || end >= this.#buf.length) break;
        elements.push(this.#buf.subarray(dot + 1, end).toString('utf8'));
        const t = this.#buf[end];
        if (t === 0x3b) {
          complete = true;
          pos = end + 1;
          break;
        }
        if (t !== 0x2c) throw new Error(`bad terminator ${String(t)}`);
        p = end + 1;
      }
      if (!complete) break;
      out.push(elements);
    }
    this.#buf = this.#buf.subarray(pos);
    return out;
  }
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = (CRC_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** A solid-colour RGB PNG (RFC 2083). */
export function solidPng(width: number, height: number, rgb: [number, number, number]): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) row.set(rgb, 1 + x * 3);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

export async function startGuacdPeer(opts: GuacdPeerOptions = {}): Promise<GuacdPeer> {
  const protocols = opts.protocols ?? ['rdp'];
  const version = opts.version === undefined ? 'VERSION_1_5_0' : opts.version;
  const rdpArgs = opts.rdpArgs ?? GUACD_RDP_ARGS;
  const image = opts.image ?? { width: 64, height: 48, rgb: [200, 30, 60] as [number, number, number] };
  const connections: PeerConnection[] = [];
  const probes: PeerConnection[] = [];
  const joins: PeerConnection[] = [];
  const sockets = new Set<net.Socket>();
  /** Running connections that can be joined: their args, what is on screen (drawing instructions, encoded) and who joined. */
  interface Shared {
    names: string[];
    screen: string[];
    joiners: Set<{ write(s: string | Buffer): void; end(): void }>;
  }
  const shared = new Map<string, Shared>();
  /** What changes the screen (replayed to a user joining later, like guacd duplicating its display). */
  const DRAWING = new Set(['size', 'img', 'blob', 'end', 'rect', 'cfill', 'copy', 'png', 'cursor', 'dispose', 'move', 'shade']);

  const server = net.createServer((sock) => {
    sockets.add(sock);
    const parser = new PeerParser();
    let phase: 'select' | 'handshake' | 'ready' | 'done' = 'select';
    let names: string[] = [];
    let queue = Promise.resolve();
    let recordingFd: number | null = null;
    const write = (s: string | Buffer): void => {
      const buf = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
      if (recordingFd !== null) writeSync(recordingFd, buf);
      const n = opts.chunkBytes;
      if (!n) {
        sock.write(buf);
        return;
      }
      queue = queue.then(async () => {
        for (let i = 0; i < buf.length && !sock.destroyed; i += n) {
          sock.write(buf.subarray(i, i + n));
          await new Promise((r) => setImmediate(r));
        }
      });
    };
    const conn: PeerConnection = {
      id: `$${randomUUID()}`,
      selected: null,
      version: null,
      handshake: [],
      args: {},
      received: [],
      joined: null,
      problems: [],
      recordingFile: null,
      hungUp: false,
      closed: false,
      send: (...elements) => {
        const text = peerEncode(...elements);
        write(text);
        const sh = shared.get(conn.id);
        if (!sh) return;
        if (DRAWING.has(elements[0] ?? '')) sh.screen.push(text);
        for (const j of sh.joiners) j.write(text);
      },
      sendEncoded: (data) => {
        write(data);
        for (const j of shared.get(conn.id)?.joiners ?? []) j.write(data);
      },
      backlog: () => sock.writableLength,
      hangUp: () => {
        phase = 'done';
        sock.end();
      },
    };
    connections.push(conn);
    let probeOnly = true;
    const endedAsProbe = (): void => {
      if (!probeOnly || !conn.selected) return;
      probeOnly = false;
      const i = connections.indexOf(conn);
      if (i !== -1) connections.splice(i, 1);
      probes.push(conn);
    };
    const fail = (problem: string): void => {
      conn.problems.push(problem);
      write(peerEncode('error', problem, '768'));
      phase = 'done';
      void queue.then(() => sock.end());
    };
    const onInstruction = (ins: string[]): void => {
      const [opcode = '', ...args] = ins;
      switch (phase) {
        case 'select': {
          if (opcode !== 'select' || args.length !== 1) return fail(`expected select, got ${opcode}`);
          conn.selected = args[0] as string;
          if (conn.selected.startsWith('$')) {
            // Join: guacd routes to the running connection, or logs "Connection … does not exist" and closes.
            const sh = shared.get(conn.selected);
            connections.splice(connections.indexOf(conn), 1);
            joins.push(conn);
            probeOnly = false;
            if (!sh) {
              phase = 'done';
              sock.end();
              return;
            }
            conn.joined = conn.selected;
            names = [...sh.names];
            write(peerEncode('args', ...(version ? [version] : []), ...names));
            phase = 'handshake';
            return;
          }
          if (!protocols.includes(conn.selected)) {
            // guacd logs "Protocol ... is not supported" and closes the connection.
            phase = 'done';
            endedAsProbe();
            sock.end();
            return;
          }
          names = conn.selected === 'rdp' ? [...rdpArgs] : ['hostname', 'port'];
          write(peerEncode('args', ...(version ? [version] : []), ...names));
          phase = 'handshake';
          return;
        }
        case 'handshake': {
          probeOnly = false;
          if (opcode !== 'connect') {
            const expected = ['size', 'audio', 'video', 'image', 'timezone', 'name'];
            if (!expected.includes(opcode)) return fail(`unexpected ${opcode} during handshake`);
            if (opcode === 'size' && !(args.length === 3 && args.every((a) => /^\d+$/.test(a)))) return fail('size needs width,height,dpi');
            conn.handshake.push(ins);
            return;
          }
          const seen = conn.handshake.map((h) => h[0]);
          const order = ['size', 'audio', 'video', 'image', 'timezone', 'name'].filter((o) => seen.includes(o));
          if (seen.join() !== order.join() || !['size', 'audio', 'video', 'image'].every((o) => seen.includes(o))) {
            return fail(`handshake order ${seen.join(',')}`);
          }
          let values = args;
          if (version) {
            const v = args[0] ?? '';
            if (!/^VERSION_\d+_\d+_\d+$/.test(v)) return fail('connect must start with the protocol version');
            conn.version = v;
            values = args.slice(1);
          }
          if (values.length !== names.length) return fail(`connect has ${values.length} values for ${names.length} args`);
          names.forEach((n, i) => {
            conn.args[n] = values[i] as string;
          });
          if (conn.joined) {
            const sh = shared.get(conn.joined);
            if (!sh) {
              phase = 'done';
              sock.end();
              return;
            }
            phase = 'ready';
            write(peerEncode('ready', conn.joined));
            write(sh.screen.join('') + peerEncode('sync', String(Date.now())));
            const j = { write, end: () => void queue.then(() => sock.end()) };
            sh.joiners.add(j);
            sock.once('close', () => sh.joiners.delete(j));
            return;
          }
          if (opts.failConnect) {
            write(peerEncode('error', opts.failConnect.message, String(opts.failConnect.status)));
            phase = 'done';
            void queue.then(() => sock.end());
            return;
          }
          phase = 'ready';
          const recPath = conn.args['recording-path'];
          const recName = conn.args['recording-name'];
          write(peerEncode('ready', conn.id));
          const late = opts.failAfterReady;
          if (late) {
            if (late.status !== null) write(peerEncode('error', late.message, String(late.status)));
            phase = 'done';
            void queue.then(() => sock.end());
            return;
          }
          if (opts.writeRecordings && recPath && recName) {
            if (conn.args['create-recording-path'] === 'true') mkdirSync(recPath, { recursive: true });
            conn.recordingFile = join(recPath, recName);
            recordingFd = openSync(conn.recordingFile, 'wx', 0o640);
          }
          const png = solidPng(image.width, image.height, image.rgb).toString('base64');
          const screen = [
            peerEncode('size', '0', String(image.width), String(image.height)),
            peerEncode('img', '1', '14', '0', 'image/png', '0', '0'),
            peerEncode('blob', '1', png),
            peerEncode('end', '1'),
          ];
          shared.set(conn.id, { names, screen, joiners: new Set() });
          write(screen.join('') + peerEncode('sync', String(Date.now())));
          for (const e of opts.extra ?? []) write(peerEncode(...e));
          return;
        }
        case 'ready': {
          conn.received.push(ins);
          // guacd with recording-include-keys writes each key event the user sends into the recording only
          // (guac_recording_report_key → `key,<keysym>,<pressed>,<timestamp ms>`), never back to the user.
          if (opcode === 'key' && recordingFd !== null && conn.args['recording-include-keys'] === 'true') {
            writeSync(recordingFd, Buffer.from(peerEncode('key', args[0] ?? '', args[1] ?? '', String(Date.now())), 'utf8'));
          }
          if (opcode === 'disconnect') {
            phase = 'done';
            closeRecording();
            conn.hungUp = true;
            sock.end();
          }
          return;
        }
        default:
          return;
      }
    };
    sock.on('data', (chunk: Buffer) => {
      let batch: string[][];
      try {
        batch = parser.push(chunk);
      } catch (err) {
        fail(`malformed: ${(err as Error).message}`);
        return;
      }
      for (const ins of batch) onInstruction(ins);
    });
    const closeRecording = (): void => {
      if (recordingFd !== null) closeSync(recordingFd);
      recordingFd = null;
    };
    // The client hung up after `args` without a handshake instruction: a capability probe.
    const maybeProbe = (): void => {
      if (phase === 'handshake') endedAsProbe();
    };
    sock.on('end', maybeProbe);
    sock.on('error', maybeProbe);
    sock.on('close', () => {
      // The owner left: guacd stops the connection and every joined user with it.
      const sh = conn.joined ? undefined : shared.get(conn.id);
      if (sh) {
        shared.delete(conn.id);
        for (const j of sh.joiners) j.end();
      }
      maybeProbe();
      closeRecording();
      conn.closed = true;
      sockets.delete(sock);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  return {
    host: '127.0.0.1',
    port,
    connections,
    probes,
    joins,
    async waitFor<T>(fn: () => T | undefined | false | null, timeoutMs = 20_000, what = 'condition'): Promise<T> {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const v = fn();
        if (v !== undefined && v !== false && v !== null) return v;
        if (Date.now() > until) throw new Error(`guacd peer: timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------
// The gateway side for RDP tests: buildServer + rdpRoutes with a broker that
// returns fixed credentials through the SessionBroker interface and a
// recorder that hands out slots in a temp directory. Provisioning itself is
// tested elsewhere (jobs, jit-ad); here what matters is what the tunnel does
// with what the broker gives it.

export interface TestOpened extends OpenedSession {
  readonly ended: string[];
  readonly loggedInCalls: number;
  fireTerminate(reason: 'terminated' | 'lease-expired', by: string): void;
}

export class FixedBroker implements SessionBroker {
  readonly requests: OpenSessionRequest[] = [];
  readonly opened: TestOpened[] = [];
  /** Steps reported through onProgress, as a real broker relays them from the provision job. */
  steps = ['creating account', 'adding to JIT Admins'];
  failWith: Error | null = null;
  /** Thrown as the access check would: before `admit` and `onAccessGranted` (no guacd traffic at all). */
  denyWith: Error | null = null;
  /** Resolve `open` only when this promise resolves (closing the browser mid-provisioning). */
  gate: Promise<void> | null = null;
  /** Called with the new session record (e.g. to insert its row for a real recorder). */
  onSession: ((s: SessionRecord) => Promise<void>) | null = null;

  constructor(
    readonly computer: Computer,
    readonly credentials: Credentials,
  ) {}

  /** Credentials for `accountType: 'local'` sessions (default: `credentials`). */
  localCredentials: Credentials | null = null;
  /** Sessions provisioned (past `admit`), as the real broker would have created rows and accounts. */
  provisioned = 0;

  async open(req: OpenSessionRequest, onProgress: ProgressFn): Promise<OpenedSession> {
    this.requests.push(req);
    if (this.denyWith) throw this.denyWith;
    // Like the real broker: `admit` after the access check, before anything is provisioned, then `onAccessGranted`.
    await req.admit?.(this.computer);
    req.onAccessGranted?.(this.computer);
    this.provisioned++;
    for (const s of this.steps) onProgress(s);
    if (this.gate) await this.gate;
    if (this.failWith) throw this.failWith;
    const id = randomUUID();
    const now = new Date();
    const session: SessionRecord = {
      id, personId: 'p1', personLogin: req.principal.login, computerId: this.computer.id, computerName: this.computer.name, protocol: 'rdp',
      accountType: req.accountType ?? 'domain', accountId: 'a1', accountName: this.credentials.username, store: 'ad', state: 'active',
      leaseExpiresAt: new Date(now.getTime() + 3600_000), groups: ['JIT Admins'], createdAt: now, startedAt: now, endedAt: null, endReason: null, errorCode: null, holder: null,
    };
    const cbs: ((reason: 'terminated' | 'lease-expired', by: string) => void)[] = [];
    const ended: string[] = [];
    let loggedInCalls = 0;
    const credentials = req.accountType === 'local' && this.localCredentials ? this.localCredentials : this.credentials;
    const o: TestOpened = {
      session, computer: this.computer, credentials, ended,
      get loggedInCalls() {
        return loggedInCalls;
      },
      onTerminate: (cb) => void cbs.push(cb),
      loggedIn: async () => void loggedInCalls++,
      end: async (reason) => void ended.push(reason),
      fireTerminate: (reason, by) => cbs.forEach((cb) => cb(reason, by)),
    };
    await this.onSession?.(session);
    this.opened.push(o);
    return o;
  }
}

export class SlotRecorder implements SessionRecorder {
  readonly slots: { meta: RecordingMeta; guacdPath: string; guacdName: string; closedAt: number | null; peerClosedAtClose: boolean | null; neverStarted: string | null }[] = [];
  failWith: Error | null = null;
  constructor(
    readonly dir: string,
    readonly peerClosed: () => boolean = () => true,
  ) {}
  async startTerminal(): Promise<TerminalRecording> {
    throw new Error('not used by RDP');
  }
  async startStream(): Promise<StreamRecording> {
    throw new Error('not used by RDP');
  }
  async startRdp(meta: RecordingMeta): Promise<RdpRecordingSlot> {
    if (this.failWith) throw this.failWith;
    const entry = {
      meta, guacdPath: `${this.dir}/${meta.sessionId.slice(0, 2)}`, guacdName: `${meta.sessionId}.guac`,
      closedAt: null as number | null, peerClosedAtClose: null as boolean | null, neverStarted: null as string | null,
    };
    this.slots.push(entry);
    return {
      recordingId: `rec-${meta.sessionId}`,
      guacdPath: entry.guacdPath,
      guacdName: entry.guacdName,
      close: async () => {
        entry.closedAt = Date.now();
        entry.peerClosedAtClose = this.peerClosed();
        return null;
      },
      neverStarted: async (reason) => {
        entry.closedAt = Date.now();
        entry.peerClosedAtClose = this.peerClosed();
        entry.neverStarted = reason;
        return null;
      },
    };
  }
}

export const TEST_PRINCIPAL: Principal = {
  personId: 'p1', login: 'alice', displayName: 'Alice', role: 'technician', organizationId: 'o1', authSessionId: 'auth-1',
};

/**
 * A gateway serving /api/v1/rdp (and optional static files): `x-test-anon: 1`
 * or `?anon=1` → no principal; CSRF token is `good`.
 */
export async function startRdpTestApp(opts: {
  broker: SessionBroker;
  recorder: SessionRecorder;
  guacd: { host: string; port: number };
  staticDir?: string;
  guacdTimeoutMs?: number;
  /** guacd's capabilities as the tunnel sees them (default: probed from `guacd`). */
  capabilities?: GuacdCapabilities;
  /** Receives the tunnel's audit events (file transfers). */
  audit?: RdpDeps['audit'];
  /** Who is signed in for `?as=<key>` or cookie `as=<key>` (default: TEST_PRINCIPAL). */
  principals?: Record<string, Principal>;
  /** More routes under /api/v1 (e.g. rdpWatchRoutes). */
  apiPlugins?: ((app: FastifyInstance) => Promise<void>)[];
  /** More root routes (e.g. the built web app, gateway/web-static.ts). */
  rootPlugins?: ((app: FastifyInstance) => Promise<void>)[];
}): Promise<{ app: FastifyInstance; url: string; wsUrl: string }> {
  const app = await buildServer({
    log: silentLogger(), metrics: createMetrics(), version: 'test', readiness: [],
    rootPlugins: [
      async (a) => {
        a.addHook('onRequest', async (req) => {
          const q = req.query as Record<string, unknown> | undefined;
          // `?as=<key>` or a cookie `as=<key>` (a browser's websocket tunnel cannot add query parameters of its own).
          const key = typeof q?.as === 'string' ? q.as : /(?:^|; )as=([\w-]+)/.exec(req.headers.cookie ?? '')?.[1];
          const as = key ? opts.principals?.[key] : undefined;
          req.principal = req.headers['x-test-anon'] === '1' || q?.anon === '1' ? null : (as ?? TEST_PRINCIPAL);
        });
        const dir = opts.staticDir;
        if (dir) {
          a.get('/rdp-test/*', async (req, reply) => {
            const name = (req.params as Record<string, string>)['*'] ?? '';
            if (!/^[\w.-]+$/.test(name)) return reply.status(404).send();
            const type = name.endsWith('.js') ? 'text/javascript' : name.endsWith('.html') ? 'text/html' : 'application/octet-stream';
            return reply.type(type).send(await readFile(`${dir}/${name}`));
          });
        }
      },
      ...(opts.rootPlugins ?? []),
    ],
    apiPlugins: [
      rdpRoutes({
        log: silentLogger(), broker: opts.broker, recorder: opts.recorder, guacd: opts.guacd,
        checkCsrf: (req) => (req.query as Record<string, unknown>).csrf === 'good',
        ...(opts.guacdTimeoutMs ? { guacdTimeoutMs: opts.guacdTimeoutMs } : {}),
        ...(opts.capabilities ? { capabilities: opts.capabilities } : {}),
        ...(opts.audit ? { audit: opts.audit } : {}),
      }),
      ...(opts.apiPlugins ?? []),
    ],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as net.AddressInfo).port;
  return { app, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/api/v1/rdp` };
}
