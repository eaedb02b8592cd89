import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { AuditEventInput } from '../../core/audit.js';
import type { AccountType, Computer } from '../../core/domain.js';
import { CoreErrors, JitgateError, isJitgateError } from '../../core/errors.js';
import type { Logger } from '../../core/logging.js';
import type { RdpRecordingSlot, SessionRecorder } from '../../recorder/recorder.js';
import type { OpenedSession, SessionBroker, SessionGate } from '../contracts.js';
import { moderationPolicyOf } from '../access-requests/moderation.js';
import type { Principal } from '../auth/principal.js';
import { RdpErrors } from './errors.js';
import { GUAC_STATUS, RDP_CLOSE, openGuacTunnel, publicError } from './guac-websocket.js';
import { InstructionParser, encodeInstructionUtf16, type Instruction } from './guac-protocol.js';
import { GuacdCapabilities } from './guacd-capabilities.js';
import { preconnectGuacd, type GuacdConnection, type PendingGuacd } from './guacd-client.js';
import { guacdFailure, parseGuacStatus, statusLabel } from './guacd-status.js';
import { buildRdpParams, guacdParamsNeeded, parseRdpPolicy, rdpLogin, type RdpPolicy } from './rdp-params.js';
import { StreamGuard, type TransferEvent } from './rdp-streams.js';

/**
 * `GET /api/v1/rdp?computer=&accountType=&width=&height=&dpi=&csrf=`: a
 * websocket ↔ guacd relay speaking guacamole-common-js's WebSocketTunnel
 * protocol (subprotocol "guacamole", one text frame = whole instructions).
 *
 * The server does the guacd handshake itself with parameters built after
 * provisioning, so the browser never holds credentials or a token. Before
 * guacd is connected the browser gets `jitgate` instructions (ignored by
 * Guacamole.Client, which looks handlers up by opcode; rdp-view.ts reads
 * them by wrapping `tunnel.oninstruction`):
 *   jitgate,progress,<text>   jitgate,ready,<sessionId>,<computer>,<clipboard 0|1>,<lease end, ISO 8601>,<clipboard mode>,<policy JSON (RdpViewPolicy)>
 *   jitgate,error,<code>,<message>   jitgate,closed,<reason>
 *   jitgate,watchers,<count>,<joined|left>,<by>   jitgate,moderation,<state>,<message>,<moderators>,<grace end>
 * There is no idle timeout: the browser's 500 ms pings (`0.,4.ping,<ts>;`)
 * are echoed, its `nop`/`sync` go to guacd, and guacd's own timeouts apply.
 */

export interface RdpDeps {
  log: Logger;
  broker: SessionBroker;
  recorder: SessionRecorder;
  /** CSRF check of the upgrade request (query parameter `csrf`), e.g. `checkCsrfQuery` from gateway/auth. */
  checkCsrf: (req: FastifyRequest) => boolean;
  /** Step-up beside the access check (gateway/auth/step-up.ts): throws when the computer wants a fresher passkey/TOTP confirmation. */
  stepUp?: (principal: Principal, computer: Computer) => Promise<void>;
  /** config.guacd */
  guacd: { host: string; port: number };
  /** What that guacd supports (cached probe), shared with the computers API; default: one made for `guacd`. */
  capabilities?: GuacdCapabilities;
  /** guacd's directory for redirected drives (when a computer's policy allows them); default /var/lib/guacd/drives. */
  driveRoot?: string;
  /** Time zone passed to the remote desktop (IANA name); default: the browser does not say, so none. */
  timezone?: string;
  /** Handshake timeout; default 15 s. */
  guacdTimeoutMs?: number;
  /** Pause reading guacd while this many bytes wait to go to the browser; default 1 MiB. */
  highWaterBytes?: number;
  /** Where file transfers are audited (rdp.file.upload / rdp.file.download); absent: logged only. */
  audit?: { record(e: AuditEventInput): Promise<unknown> };
}

/** guacd's directory for redirected drives unless configured (docker/compose.yaml mounts a volume there). */
export const DEFAULT_DRIVE_ROOT = '/var/lib/guacd/drives';

export { RDP_CLOSE } from './guac-websocket.js';

/** Instructions from the browser never forwarded: credentials and parameters are the server's (`argv` could change them). */
const ALWAYS_BLOCKED = new Set(['select', 'connect', 'argv', 'args', 'required']);
/**
 * What the person sends that acts on the computer (keys, pointer, touch,
 * clipboard, uploads): held back while a four-eyes session is paused. Frame
 * acknowledgements, keep-alives and display size still pass, so guacd keeps
 * the connection and the person keeps seeing the screen.
 */
const INPUT_OPCODES = new Set(['key', 'mouse', 'touch', 'clipboard', 'file', 'pipe', 'blob', 'end']);

const DIM = /^[0-9]{1,5}$/;
function num(v: unknown, dflt: number, min: number, max: number): number | null {
  if (v === undefined || v === '') return dflt;
  if (typeof v !== 'string' || !DIM.test(v)) return null;
  const n = Number(v);
  return n >= min && n <= max ? n : null;
}


function closeCodeFor(err: unknown, phase: 'open' | 'connect'): number {
  if (!isJitgateError(err)) return phase === 'open' ? RDP_CLOSE.provisioningFailed : RDP_CLOSE.hostUnreachable;
  switch (err.code) {
    case CoreErrors.JIT_ERR_ACCESS_DENIED.code:
    case CoreErrors.JIT_ERR_FORBIDDEN.code:
    case CoreErrors.JIT_ERR_NOT_FOUND.code:
    case 'JIT_ERR_AUTH_STEP_UP_REQUIRED':
    case 'JIT_ERR_APPROVAL_REQUIRED': // no approved access-request window (gateway/access-requests)
      return RDP_CLOSE.accessDenied;
    case CoreErrors.JIT_ERR_AUTH_REQUIRED.code:
      return RDP_CLOSE.notSignedIn;
    case CoreErrors.JIT_ERR_VALIDATION.code:
    case RdpErrors.JIT_ERR_RDP_BAD_REQUEST.code:
    case 'JIT_ERR_JIT_CHOOSE_ACCOUNT_TYPE':
    case 'JIT_ERR_JIT_ACCOUNT_TYPE_NOT_ALLOWED':
      return RDP_CLOSE.badRequest;
    // guacd refused before provisioning (capability check): the remote side is what failed.
    case RdpErrors.JIT_ERR_RDP_GUACD_UNREACHABLE.code:
    case RdpErrors.JIT_ERR_RDP_GUACD_UNSUPPORTED.code:
    case RdpErrors.JIT_ERR_RDP_GUACD_HANDSHAKE.code:
    case RdpErrors.JIT_ERR_RDP_GUACD_ERROR.code:
      return RDP_CLOSE.hostUnreachable;
    default:
      return phase === 'open' ? RDP_CLOSE.provisioningFailed : RDP_CLOSE.hostUnreachable;
  }
}

/**
 * guacd ended the connection before the first frame: its `error` (status,
 * message) or a bare close (null), in words with a hint for the person
 * (gateway/rdp/guacd-status.ts), and the end reason audited with
 * `session.ended`: the error code and guacd's status.
 */
function explainedFailure(computer: string, storedPolicy: unknown, status: number | null, message?: string): { error: JitgateError; reason: string } {
  const error = guacdFailure({ computer, security: parseRdpPolicy(storedPolicy).security, status, ...(message !== undefined ? { message } : {}) });
  return { error, reason: `connection failed (${error.code}, guacd ${status === null ? 'closed without a reason' : statusLabel(status)})` };
}

/**
 * The effective policy as the browser's side menu needs it (the 8th `ready`
 * argument, JSON): it offers exactly the controls the relay would let
 * through (StreamGuard), nothing the gateway would refuse.
 */
export interface RdpViewPolicy {
  clipboard: 'off' | 'remote-to-local' | 'local-to-remote' | 'both';
  clipboardMaxBytes: number;
  upload: boolean;
  download: boolean;
  fileMaxBytes: number;
  printing: boolean;
  recordKeys: boolean;
}

export function viewPolicy(pol: RdpPolicy): RdpViewPolicy {
  return {
    clipboard: pol.copy && pol.paste ? 'both' : pol.copy ? 'remote-to-local' : pol.paste ? 'local-to-remote' : 'off',
    clipboardMaxBytes: pol.clipboardMaxBytes,
    upload: pol.drive && pol.upload,
    download: pol.drive && pol.download,
    fileMaxBytes: pol.fileMaxBytes,
    printing: pol.printing,
    recordKeys: pol.recordKeys,
  };
}

/** Fastify plugin (register under /api/v1 via apiPlugins): the RDP websocket tunnel. */
export function rdpRoutes(deps: RdpDeps): (app: FastifyInstance) => Promise<void> {
  const capabilities = deps.capabilities ?? new GuacdCapabilities(deps.guacd);
  const full = { ...deps, capabilities };
  return async (app) => {
    app.get('/rdp', { websocket: true, schema: { hide: true } }, (ws, req) => {
      void runTunnel(ws, req, full).catch((err: unknown) => {
        deps.log.error({ err }, 'rdp tunnel failed');
        if (ws.readyState === ws.OPEN) ws.close(RDP_CLOSE.hostUnreachable, String(GUAC_STATUS[RDP_CLOSE.hostUnreachable]));
      });
    });
  };
}

async function runTunnel(ws: WebSocket, req: FastifyRequest, deps: RdpDeps & { capabilities: GuacdCapabilities }): Promise<void> {
  const opened0 = openGuacTunnel(ws, req, deps.checkCsrf);
  if (!opened0) return;
  const { principal } = opened0;
  const { send, close } = opened0.tunnel;
  const q = (req.query ?? {}) as Record<string, unknown>;
  const computerRef = typeof q.computer === 'string' ? q.computer : '';
  const accountType = q.accountType;
  const width = num(q.width, 1024, 64, 8192);
  const height = num(q.height, 768, 64, 8192);
  const dpi = num(q.dpi, 96, 48, 480);
  if (!computerRef || computerRef.length > 256 || width === null || height === null || dpi === null || (accountType !== undefined && accountType !== 'domain' && accountType !== 'local')) {
    const e = new JitgateError(RdpErrors.JIT_ERR_RDP_BAD_REQUEST, { reason: 'computer is required; width/height 64-8192; dpi 48-480; accountType domain or local' });
    return close(RDP_CLOSE.badRequest, publicError(e));
  }
  const log = deps.log.child({ component: 'rdp', person: principal.login, computerRef });

  // Browser side: echo pings always; forward to guacd only once it is ready.
  const fromBrowser = new InstructionParser('utf16');
  let guacd: GuacdConnection | null = null;
  const blocked = ALWAYS_BLOCKED;
  /** The clipboard and file-transfer policy on the streams (rdp-streams.ts); set once guacd is connected. */
  let guard: StreamGuard | null = null;
  let clientGone = false;
  let gate: SessionGate | null = null;
  let finish: ((reason: string, code?: number, error?: { code: string; message: string }) => Promise<void>) | null = null;
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    if (isBinary) return;
    const text = (Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8');
    let batch: Instruction[];
    try {
      batch = fromBrowser.push(text);
    } catch (err) {
      log.warn({ code: isJitgateError(err) ? err.code : undefined }, 'malformed instruction from the browser');
      if (finish) void finish('protocol error', RDP_CLOSE.badRequest, publicError(err));
      else close(RDP_CLOSE.badRequest, publicError(err));
      return;
    }
    for (const ins of batch) {
      const [opcode, ...args] = ins;
      if (opcode === '') {
        if (args[0] === 'ping') send('', ...args);
        continue;
      }
      if (opcode === 'disconnect') {
        if (finish) void finish('closed by the person', RDP_CLOSE.normal);
        else ws.close(RDP_CLOSE.normal, '0');
        return;
      }
      if (!guacd || blocked.has(opcode)) continue;
      // Four-eyes: no input reaches the computer while no moderator watches.
      if (gate && !gate.inputAllowed() && INPUT_OPCODES.has(opcode)) continue;
      const v = guard ? guard.fromBrowser(ins) : { forward: [ins], reply: [] };
      for (const f of v.forward) guacd.send(...f);
      for (const r of v.reply) send(...r);
    }
  });
  const closedByClient = new Promise<void>((resolve) =>
    ws.once('close', () => {
      clientGone = true;
      resolve();
    }),
  );

  // 1. Access check, guacd's capabilities, then JIT provisioning. guacd is
  // asked in `admit`: after access is granted (the refusal names the
  // computer's policy, and a denied person causes no guacd traffic), before
  // anything is provisioned. Usually a cache hit (guacd-capabilities.ts).
  // Once admitted, the guacd connection starts (TCP, `select rdp`, `args`)
  // while the account is provisioned, as the SSH path overlaps its key
  // exchange: only `select` is sent, the parameters (credentials, recording
  // path) go in `connect` once the account and the recording slot exist.
  const timeouts = deps.guacdTimeoutMs ? { timeoutMs: deps.guacdTimeoutMs } : {};
  let early: PendingGuacd | null = null;
  // The person left during provisioning: drop the early connection now (guacd holds a process for it).
  void closedByClient.then(() => (early as PendingGuacd | null)?.abort());
  let opened: OpenedSession;
  try {
    opened = await deps.broker.open(
      {
        principal, computerRef, protocol: 'rdp', via: 'web', ...(accountType ? { accountType: accountType as AccountType } : {}),
        admit: async (c) => {
          await deps.stepUp?.(principal, c);
          await deps.capabilities.assertSupports(guacdParamsNeeded(c.policy), c.name);
        },
        onAccessGranted: (c) => {
          // guacd drops a handshake left waiting (about 15 s): a four-eyes session connects once its moderator is there.
          if (!moderationPolicyOf(c.policy).required) early = preconnectGuacd(deps.guacd, { protocol: 'rdp', ...timeouts });
        },
      },
      (step) => send('jitgate', 'progress', `${step}…`),
    );
  } catch (err) {
    (early as PendingGuacd | null)?.abort();
    log.info({ code: isJitgateError(err) ? err.code : undefined, err: isJitgateError(err) ? undefined : err }, 'session not opened');
    return close(closeCodeFor(err, 'open'), publicError(err));
  }
  const { session, computer, credentials } = opened;
  const slog = log.child({ sessionId: session.id, computer: computer.name, account: credentials.username });

  let slot: RdpRecordingSlot | null = null;
  /** guacd completed the handshake (`ready`): from then on it may write the recording. */
  let accepted = false;
  /** The handshake while it runs: a finish during it waits, to know whether guacd accepted. */
  let handshake: Promise<unknown> = Promise.resolve();
  let finished = false;
  let guacdClosed: Promise<void> = Promise.resolve();
  finish = async (reason, code, error) => {
    if (finished) return;
    finished = true;
    if (code !== undefined) close(code, error, reason);
    // Never completed (recording failed, the person left): drop the early connection; a no-op once used.
    (early as PendingGuacd | null)?.abort();
    if (guacd) guacd.close();
    guard?.close();
    // guacd finishes its recording file when the connection is gone.
    await guacdClosed;
    await handshake;
    if (slot) {
      const s = slot;
      // Refused before `ready`: guacd never started the session, so no file is expected (not an integrity gap).
      await (accepted ? s.close() : s.neverStarted(reason)).catch((err: unknown) => slog.error({ err }, 'recording could not be indexed'));
    }
    await opened.end(reason).catch((err: unknown) => slog.error({ err }, 'ending the session failed'));
    slog.info({ reason }, 'rdp session ended');
  };
  const end = finish;
  opened.onTerminate((reason, by) => {
    slog.info({ reason, by }, 'session closed from outside');
    const lease = reason === 'lease-expired';
    void end(lease ? 'lease expired' : `terminated by ${by}`, lease ? RDP_CLOSE.leaseExpired : RDP_CLOSE.terminated);
  });
  void closedByClient.then(() => end('client disconnected'));
  if (clientGone) return void end('client disconnected');

  // The person is told whenever somebody starts or stops watching (`jitgate,watchers,<count>,<joined|left>,<by>`).
  opened.onWatchers?.((w) => send('jitgate', 'watchers', String(w.count), w.event, w.by));

  // 2. Four-eyes: no credentials go to guacd until a moderator watches; the person sees why
  // (`jitgate,moderation,<state>,<message>,<moderators>,<grace end>`).
  gate = opened.moderation ?? null;
  if (gate) {
    gate.onStatus((st) => send('jitgate', 'moderation', st.state, st.message, st.moderators.join(','), st.graceEndsAt ?? ''));
    const admitted = await gate.admitted();
    if (finished) return;
    if (!admitted) return void end('no moderator', RDP_CLOSE.terminated);
  }

  // 3. Recording slot: no recording, no session.
  try {
    slot = await deps.recorder.startRdp({
      sessionId: session.id, personLogin: principal.login, computerName: computer.name, account: credentials.username, protocol: 'rdp', startedAt: new Date(),
      // Break-glass window, moderators' presence so far (recordings.metadata).
      metadata: await opened.recordingMetadata?.(),
    });
  } catch (err) {
    slog.error({ err }, 'recording could not start');
    return void end('recording failed', RDP_CLOSE.hostUnreachable, publicError(err));
  }
  if (finished) return;

  // 4. guacd handshake with server-built parameters.
  send('jitgate', 'progress', `connecting to ${computer.name}…`);
  let conn: GuacdConnection;
  let built: ReturnType<typeof buildRdpParams>;
  try {
    built = buildRdpParams({
      computer, credentials, sessionId: session.id,
      recording: { path: slot.guacdPath, name: slot.guacdName },
      driveRoot: deps.driveRoot ?? DEFAULT_DRIVE_ROOT,
    });
    // A broker without the onAccessGranted hook: connect now (same handshake, no overlap).
    const pending = (early as PendingGuacd | null) ?? preconnectGuacd(deps.guacd, { protocol: 'rdp', ...timeouts });
    early = pending;
    const opening = pending.complete({
      params: built.params, required: built.required, computerName: computer.name,
      size: { width, height, dpi }, image: ['image/png', 'image/jpeg', 'image/webp'],
      ...(deps.timezone ? { timezone: deps.timezone } : {}),
    });
    handshake = opening.then(() => (accepted = true), () => undefined);
    conn = await opening;
    accepted = true;
  } catch (err) {
    if (isJitgateError(err, RdpErrors.JIT_ERR_RDP_GUACD_ERROR)) {
      // guacd refused during the handshake with a status: say why in words.
      const f = explainedFailure(computer.name, computer.policy, parseGuacStatus(String(err.details.status ?? '')), String(err.details.reason ?? ''));
      slog.warn({ code: f.error.code, guacdStatus: err.details.status }, 'guacd refused the connection');
      return void end(f.reason, RDP_CLOSE.hostUnreachable, publicError(f.error));
    }
    slog.warn({ code: isJitgateError(err) ? err.code : undefined }, 'guacd connection failed');
    return void end('connection failed', closeCodeFor(err, 'connect'), publicError(err));
  }
  if (finished) return void conn.close();
  const pol = built.policy;
  const audited = (e: TransferEvent): void => {
    slog.info({ direction: e.direction, bytes: e.bytes, outcome: e.outcome, reason: e.reason }, 'rdp file transfer');
    void deps.audit
      ?.record({
        type: e.direction === 'upload' ? 'rdp.file.upload' : 'rdp.file.download', actor: principal.login, outcome: e.outcome,
        sessionId: session.id, computer: computer.name, account: credentials.username,
        data: { name: e.name, bytes: e.bytes, mimetype: e.mimetype, limit: pol.fileMaxBytes, ...(e.reason ? { reason: e.reason } : {}) },
      })
      .catch((err: unknown) => slog.error({ err }, 'file transfer could not be audited'));
  };
  guard = new StreamGuard(pol, audited);
  guacd = conn;
  slog.info({ connectionId: conn.connectionId, version: conn.version }, 'guacd connected');
  // Watchers join this connection read-only by its id (rdp-watch.ts): publish it in the live list.
  void opened.setGuacdConnection?.(conn.connectionId).catch((err: unknown) => slog.warn({ err }, 'could not publish the guacd connection for watchers'));
  const clipboardMode = pol.copy && pol.paste ? 'both' : pol.copy ? 'remote-to-local' : pol.paste ? 'local-to-remote' : 'off';
  // The 7th argument names the account to sign in as with the person's own password (elevate: nothing injected), else empty.
  send('jitgate', 'ready', session.id, computer.name, pol.copy || pol.paste ? '1' : '0', session.leaseExpiresAt.toISOString(), clipboardMode, JSON.stringify(viewPolicy(pol)), credentials.password === null ? rdpLogin(credentials).username : '');

  // 5. Relay guacd → browser, re-encoded for UTF-16 lengths, with backpressure.
  const highWater = deps.highWaterBytes ?? 1 << 20;
  let inFlight = 0;
  let paused = false;
  let loggedIn = false;
  guacdClosed = new Promise<void>((resolve) => {
    conn.start(
      (batch) => {
        let frame = '';
        for (const ins of batch) {
          const [opcode, ...args] = ins;
          if (opcode === 'sync' && !loggedIn) {
            // The first frame drawn: the RDP login went through, the engine may forget the password.
            loggedIn = true;
            void opened.loggedIn().catch((err: unknown) => slog.warn({ err }, 'could not release credentials'));
          }
          if (opcode === 'error' && !loggedIn) {
            // guacd 1.5 sends `ready` before FreeRDP connects, so a refused security negotiation or login arrives
            // here. Guacamole.Client would show guacd's bare message and drop the tunnel before ours arrives:
            // the person gets words and a hint instead, the end reason carries the code (audited).
            const f = explainedFailure(computer.name, computer.policy, parseGuacStatus(args[1]), args[0]);
            slog.warn({ code: f.error.code, guacdStatus: args[1] }, 'guacd ended the connection before the first frame');
            void end(f.reason, RDP_CLOSE.hostUnreachable, publicError(f.error));
            return;
          }
          if (opcode === 'required') {
            // guacd asks for credentials interactively (protocol 1.3+): ours were refused. Never ask the person.
            // Without injected credentials (the person's own account) NLA asks before any Windows login screen exists.
            slog.warn({ params: args }, 'guacd asked for credentials; the computer refused the session account');
            const reason = credentials.password === null
              ? 'the computer requires NLA, which needs the password before the Windows login; jitgate holds none for your own account: an admin sets the computer\'s RDP security to TLS so the Windows login asks you'
              : 'the computer did not accept the session account';
            const e = new JitgateError(RdpErrors.JIT_ERR_RDP_GUACD_ERROR, { status: 'required', reason });
            void end('login refused', RDP_CLOSE.hostUnreachable, publicError(e));
            return;
          }
          const v = guard ? guard.fromGuacd(ins) : { forward: [ins], reply: [] };
          for (const f of v.forward) frame += encodeInstructionUtf16(...f);
          for (const r of v.reply) conn.send(...r);
        }
        if (!frame || ws.readyState !== ws.OPEN) return;
        const bytes = Buffer.byteLength(frame);
        inFlight += bytes;
        ws.send(frame, () => {
          inFlight -= bytes;
          if (paused && inFlight < highWater / 2) {
            paused = false;
            conn.resume();
          }
        });
        if (!paused && inFlight > highWater) {
          paused = true;
          conn.pause();
        }
      },
      (err) => {
        resolve();
        if (err) slog.warn({ code: isJitgateError(err) ? err.code : undefined }, 'guacd connection error');
        if (!loggedIn) {
          // Closed before anything was drawn and without an `error`: still not "the session ended".
          const f = explainedFailure(computer.name, computer.policy, null);
          slog.warn({ code: f.error.code }, 'guacd closed before the first frame');
          void end(f.reason, RDP_CLOSE.hostUnreachable, publicError(f.error));
          return;
        }
        void end('remote desktop closed', RDP_CLOSE.normal);
      },
    );
  });
}
