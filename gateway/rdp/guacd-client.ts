import net from 'node:net';
import { JitgateError } from '../../core/errors.js';
import { RdpErrors } from './errors.js';
import { ByteStreamParser, encodeInstruction, type Instruction } from './guac-protocol.js';

/**
 * The gateway's side of a guacd connection: TCP, the Guacamole handshake
 * (protocol reference, "Handshake phase"), then instructions both ways.
 * Credentials go to guacd in the `connect` instruction and nowhere else.
 */

export interface GuacdAddress {
  host: string;
  port: number;
}

/** The newest protocol version this gateway speaks. */
export const OUR_VERSION = 'VERSION_1_5_0';
const VERSIONS = ['VERSION_1_0_0', 'VERSION_1_1_0', 'VERSION_1_3_0', 'VERSION_1_5_0'];

export interface HandshakeOptions {
  protocol: 'rdp';
  /** Parameter values by name; names guacd does not list in `args` are a problem only when in `required`. */
  params: Readonly<Record<string, string>>;
  /** Names that guacd must accept (security-relevant: refusing beats silently ignoring them). */
  required: ReadonlySet<string>;
  /** For the error message when a required name is missing. */
  computerName: string;
  size: { width: number; height: number; dpi: number };
  audio?: string[];
  video?: string[];
  image?: string[];
  timezone?: string;
  timeoutMs?: number;
}

export interface GuacdConnection {
  readonly connectionId: string;
  /** The version agreed (the lower of guacd's and ours), e.g. VERSION_1_5_0. */
  readonly version: string;
  /** guacd's `args` list in its order (for tests and diagnostics; names only). */
  readonly argNames: readonly string[];
  /**
   * Start receiving instructions after the handshake (instructions that
   * arrived with `ready` are delivered first). `onClose` fires once.
   */
  start(onInstructions: (batch: Instruction[]) => void, onClose: (err?: Error) => void): void;
  send(opcode: string, ...args: string[]): void;
  /** Stop reading (backpressure) / resume. */
  pause(): void;
  resume(): void;
  /** Send `disconnect` and close. Idempotent. */
  close(): void;
}

function unreachable(addr: GuacdAddress, reason: string): JitgateError {
  return new JitgateError(RdpErrors.JIT_ERR_RDP_GUACD_UNREACHABLE, { address: `${addr.host}:${addr.port}`, reason });
}

function handshakeError(reason: string): JitgateError {
  return new JitgateError(RdpErrors.JIT_ERR_RDP_GUACD_HANDSHAKE, { reason });
}

function connectTcp(addr: GuacdAddress, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: addr.host, port: addr.port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(unreachable(addr, 'timeout'));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.off('error', onError);
      resolve(sock);
    });
    const onError = (err: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      reject(unreachable(addr, err.code ?? 'error'));
    };
    sock.once('error', onError);
  });
}

/** Read instructions until `until` returns a value; rejects on close, error or timeout. */
function readUntil<T>(
  sock: net.Socket,
  parser: ByteStreamParser,
  timeoutMs: number,
  until: (ins: Instruction) => T | undefined,
  leftovers: Instruction[],
): Promise<T> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (fn: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.off('error', onError);
      fn();
    };
    const timer = setTimeout(() => finish(() => reject(handshakeError('guacd did not answer in time'))), timeoutMs);
    const onData = (chunk: Buffer): void => {
      let batch: Instruction[];
      try {
        batch = parser.push(chunk);
      } catch (err) {
        finish(() => reject(err));
        return;
      }
      for (let i = 0; i < batch.length; i++) {
        const ins = batch[i] as Instruction;
        if (ins[0] === 'error') {
          const [, message = '', status = ''] = ins;
          finish(() => reject(new JitgateError(RdpErrors.JIT_ERR_RDP_GUACD_ERROR, { status, reason: message })));
          return;
        }
        let r: T | undefined;
        try {
          r = until(ins);
        } catch (err) {
          finish(() => reject(err));
          return;
        }
        if (r !== undefined) {
          leftovers.push(...batch.slice(i + 1));
          sock.pause();
          finish(() => resolve(r));
          return;
        }
      }
    };
    const onClose = (): void => finish(() => reject(handshakeError('guacd closed the connection')));
    const onError = (err: NodeJS.ErrnoException): void => finish(() => reject(handshakeError(err.code ?? 'socket error')));
    sock.on('data', onData);
    sock.once('close', onClose);
    sock.once('error', onError);
    sock.resume();
  });
}

function agreeVersion(theirs: string): string {
  const i = VERSIONS.indexOf(theirs);
  // A version newer than ours (not in our list but VERSION_*) → ours.
  return i === -1 ? OUR_VERSION : (VERSIONS[Math.min(i, VERSIONS.indexOf(OUR_VERSION))] as string);
}

/**
 * Connect to guacd and perform the handshake: `select`, read `args`, send
 * `size`/`audio`/`video`/`image`/`timezone`, `connect` with one value per
 * name in `args` order (VERSION first), wait for `ready`.
 */
export async function openGuacd(addr: GuacdAddress, opts: HandshakeOptions): Promise<GuacdConnection> {
  return preconnectGuacd(addr, { protocol: opts.protocol, ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) }).complete(opts);
}

/** What `complete` needs: everything but the protocol (chosen by `select`) and the timeout (the preconnect's). */
export type CompleteOptions = Omit<HandshakeOptions, 'protocol' | 'timeoutMs'>;

/**
 * A guacd connection opened while the JIT account is still being
 * provisioned: TCP, `select` and guacd's `args` happen now; everything that
 * carries parameters (credentials, recording path) waits for `complete`.
 * Nothing names an account before then.
 */
export interface PendingGuacd {
  /**
   * Send `size`…`connect` with parameters built now, wait for `ready`. When
   * guacd dropped the early connection meanwhile (its own handshake timeout,
   * 15 s in guacd 1.5/1.6, can be shorter than provisioning), a fresh one is
   * made once. A failure of the early connection itself is reported here.
   */
  complete(opts: CompleteOptions): Promise<GuacdConnection>;
  /** Drop the early connection (provisioning failed, the person left). Idempotent; no-op once `complete` was called. */
  abort(): void;
  /** Resolves true once `args` is in and the connection waits for `complete`; false when it failed first. */
  waiting(): Promise<boolean>;
}

interface Selected {
  sock: net.Socket;
  parser: ByteStreamParser;
  leftovers: Instruction[];
  argNames: string[];
  /** guacd closed, errored or spoke while the connection waited for `complete`. */
  lost(): boolean;
  /** When `args` arrived (monotonic ms). */
  readonly selectedAt: number;
  /** Stop watching (the handshake goes on); the socket is left paused. */
  take(): void;
}

/** TCP, `select`, read `args`; then watch the idle connection so a close by guacd is noticed. */
async function selectProtocol(addr: GuacdAddress, protocol: string, timeoutMs: number): Promise<Selected> {
  const sock = await connectTcp(addr, timeoutMs);
  sock.setNoDelay(true);
  const parser = new ByteStreamParser();
  const leftovers: Instruction[] = [];
  let argNames: string[];
  try {
    sock.write(encodeInstruction('select', protocol));
    argNames = await readUntil(sock, parser, timeoutMs, (ins) => (ins[0] === 'args' ? ins.slice(1) : undefined), leftovers);
  } catch (err) {
    sock.destroy();
    throw err;
  }
  // guacd sends nothing between `args` and `ready`: any data (its `error`), an end or an error means it gave up on us.
  let lost = false;
  const onLost = (): void => {
    lost = true;
    sock.destroy();
  };
  sock.on('data', onLost);
  sock.on('end', onLost);
  sock.on('close', onLost);
  sock.on('error', onLost);
  sock.resume();
  return {
    sock, parser, leftovers, argNames, selectedAt: performance.now(),
    lost: () => lost || sock.destroyed,
    take: () => {
      sock.pause();
      sock.off('data', onLost);
      sock.off('end', onLost);
      sock.off('close', onLost);
      sock.off('error', onLost);
    },
  };
}

/** The rest of the handshake on a selected connection: check `required`, send size…connect, wait for `ready`. */
async function finishHandshake(s: Selected, opts: CompleteOptions, timeoutMs: number): Promise<GuacdConnection> {
  const { sock, parser, leftovers, argNames } = s;
  const write = (opcode: string, ...args: string[]): void => {
    sock.write(encodeInstruction(opcode, ...args));
  };
  try {
    const first = argNames[0] ?? '';
    const versioned = first.startsWith('VERSION_');
    const version = versioned ? agreeVersion(first) : 'VERSION_1_0_0';
    const names = versioned ? argNames.slice(1) : argNames;
    for (const r of opts.required) {
      if (!names.includes(r)) {
        throw new JitgateError(RdpErrors.JIT_ERR_RDP_GUACD_UNSUPPORTED, { param: r, computer: opts.computerName });
      }
    }
    const { width, height, dpi } = opts.size;
    write('size', String(width), String(height), String(dpi));
    write('audio', ...(opts.audio ?? []));
    write('video', ...(opts.video ?? []));
    write('image', ...(opts.image ?? ['image/png', 'image/jpeg', 'image/webp']));
    // `timezone` exists from protocol 1.1.0 on (guacamole-common ConfiguredGuacamoleSocket does the same check).
    if (version !== 'VERSION_1_0_0' && opts.timezone) write('timezone', opts.timezone);
    const values = names.map((n) => opts.params[n] ?? '');
    if (versioned) write('connect', version, ...values);
    else write('connect', ...values);
    const connectionId = await readUntil(sock, parser, timeoutMs, (ins) => (ins[0] === 'ready' ? (ins[1] ?? '') : undefined), leftovers);
    return new Connection(sock, parser, connectionId, version, names, leftovers);
  } catch (err) {
    sock.destroy();
    throw err;
  }
}

/**
 * An early connection older than this is replaced rather than used: guacd
 * (1.5/1.6) drops a connection that sends nothing for 15 s after `args`, and
 * a drop already on its way when `connect` is written would fail the session.
 */
export const STALE_EARLY_MS = 10_000;

/**
 * What `select` names: a protocol to start a new connection, or an existing
 * connection's id (`$<uuid>`, from its `ready`) to join it (protocol
 * reference, "Handshake phase": "the ID of an existing connection… to join").
 * guacd answers a join with the same `args` as the protocol's.
 */
export type GuacdSelect = 'rdp' | `$${string}`;

/** Start `select` → `args` now; send the parameters once `complete` is called (see PendingGuacd). */
export function preconnectGuacd(addr: GuacdAddress, opts: { protocol: GuacdSelect; timeoutMs?: number; staleMs?: number }): PendingGuacd {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const staleMs = opts.staleMs ?? STALE_EARLY_MS;
  const early = selectProtocol(addr, opts.protocol, timeoutMs);
  // A failure before `complete` is kept for it (and must not go unhandled meanwhile).
  early.catch(() => undefined);
  let aborted = false;
  let completing = false;
  return {
    async complete(h) {
      if (completing) throw new Error('complete called twice');
      completing = true;
      if (aborted) throw handshakeError('connection aborted');
      let s = await early;
      s.take();
      if (s.lost() || performance.now() - s.selectedAt > staleMs) {
        // Lost (or about to be) while waiting (guacd's handshake timeout, a restart): nothing was sent but `select`; start over once.
        s.sock.destroy();
        s = await selectProtocol(addr, opts.protocol, timeoutMs);
        s.take();
      }
      return finishHandshake(s, h, timeoutMs);
    },
    abort() {
      if (aborted || completing) return;
      aborted = true;
      void early.then((s) => s.sock.destroy(), () => undefined);
    },
    waiting() {
      return early.then(() => true, () => false);
    },
  };
}

class Connection implements GuacdConnection {
  #closed = false;
  constructor(
    readonly sock: net.Socket,
    readonly parser: ByteStreamParser,
    readonly connectionId: string,
    readonly version: string,
    readonly argNames: readonly string[],
    readonly leftovers: Instruction[],
  ) {}

  start(onInstructions: (batch: Instruction[]) => void, onClose: (err?: Error) => void): void {
    let closed = false;
    const close = (err?: Error): void => {
      if (closed) return;
      closed = true;
      this.#closed = true;
      onClose(err);
    };
    if (this.leftovers.length > 0) onInstructions(this.leftovers.splice(0));
    this.sock.on('data', (chunk: Buffer) => {
      let batch: Instruction[];
      try {
        batch = this.parser.push(chunk);
      } catch (err) {
        this.sock.destroy();
        close(err as Error);
        return;
      }
      if (batch.length > 0) onInstructions(batch);
    });
    this.sock.on('error', (err) => close(err));
    this.sock.on('close', () => close());
    this.sock.resume();
  }

  send(opcode: string, ...args: string[]): void {
    if (this.#closed || this.sock.destroyed) return;
    this.sock.write(encodeInstruction(opcode, ...args));
  }

  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  close(): void {
    if (this.sock.destroyed) return;
    this.#closed = true;
    this.sock.end(encodeInstruction('disconnect'));
    // guacd closes its side on `disconnect`; do not wait for it forever.
    setTimeout(() => this.sock.destroy(), 2000).unref();
  }
}

/** What guacd offers for RDP: its protocol version and the parameter names of its `args` instruction. */
export interface GuacdRdpArgs {
  /** e.g. VERSION_1_5_0; null for a guacd older than 1.1 (no version element). */
  version: string | null;
  names: readonly string[];
}

/**
 * Ask guacd which RDP parameters it understands without starting a
 * session: `select rdp`, read `args`, close (protocol reference,
 * "Handshake phase": guacd sends `args` before anything is configured).
 * Throws JIT_ERR_RDP_GUACD_UNREACHABLE / _HANDSHAKE / _ERROR.
 */
export async function probeRdpArgs(addr: GuacdAddress, timeoutMs = 3000): Promise<GuacdRdpArgs> {
  const sock = await connectTcp(addr, timeoutMs);
  try {
    sock.write(encodeInstruction('select', 'rdp'));
    const args = await readUntil(sock, new ByteStreamParser(), timeoutMs, (ins) => (ins[0] === 'args' ? ins.slice(1) : undefined), []);
    const first = args[0] ?? '';
    return first.startsWith('VERSION_') ? { version: first, names: args.slice(1) } : { version: null, names: args };
  } finally {
    sock.destroy();
  }
}

export interface GuacdCheck {
  ok: boolean;
  address: string;
  version?: string;
  protocols?: string[];
  error?: string;
}

const PROBED = ['rdp', 'ssh', 'vnc', 'telnet', 'kubernetes'];

/** Whether guacd answers `select <protocol>` with `args` (offered) or with an error / close (not offered). */
async function probe(addr: GuacdAddress, protocol: string, timeoutMs: number): Promise<{ offered: boolean; version?: string }> {
  const sock = await connectTcp(addr, timeoutMs);
  const parser = new ByteStreamParser();
  try {
    sock.write(encodeInstruction('select', protocol));
    const args = await readUntil(sock, parser, timeoutMs, (ins) => (ins[0] === 'args' ? ins.slice(1) : undefined), []);
    const v = args[0]?.startsWith('VERSION_') ? args[0] : undefined;
    return v ? { offered: true, version: v } : { offered: true };
  } catch (err) {
    if (err instanceof JitgateError && err.code === RdpErrors.JIT_ERR_RDP_GUACD_UNREACHABLE.code) throw err;
    return { offered: false };
  } finally {
    sock.destroy();
  }
}

/**
 * For `jitgate check`: is guacd reachable, which version, which protocols.
 * `ok` means reachable and offering rdp.
 */
export async function checkGuacd(addr: GuacdAddress, timeoutMs = 5000): Promise<GuacdCheck> {
  const address = `${addr.host}:${addr.port}`;
  try {
    const results = await Promise.all(PROBED.map(async (p) => ({ p, r: await probe(addr, p, timeoutMs) })));
    const protocols = results.filter((x) => x.r.offered).map((x) => x.p);
    const version = results.find((x) => x.r.version)?.r.version;
    const ok = protocols.includes('rdp');
    return {
      ok,
      address,
      ...(version ? { version } : {}),
      protocols,
      ...(ok ? {} : { error: 'guacd does not offer rdp' }),
    };
  } catch (err) {
    return { ok: false, address, error: err instanceof JitgateError ? err.message : 'unreachable' };
  }
}
