/**
 * Browser terminal: `GET /api/v1/terminal` (websocket) and live watching
 * `GET /api/v1/sessions/:id/watch` (docs/api.md "Sessions (websockets)").
 *
 * One websocket = one JIT session: the broker provisions the account
 * (progress frames), the gateway logs in to the computer with the injected
 * credentials (the person never sees them), opens a pty shell, and relays
 * bytes both ways, teeing output to the recorder and to live watchers.
 * Whatever ends it (shell exit, browser gone, admin terminate, lease end,
 * host gone) ends the session, which enqueues the teardown job.
 *
 * Host keys: a computer without a pinned `sshHostKeySha256` is refused when
 * access is granted, before any account is provisioned (4011,
 * JIT_ERR_SSH_HOST_KEY_NOT_PINNED, audited by the broker as session.failed):
 * no trust on first use, an admin confirms the key first
 * (gateway/api/host-keys.ts). Any key other than the pinned one aborts before
 * authentication (4011, audited as a failure) and the provisioned account is
 * torn down.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { ClientChannel, Client } from 'ssh2';
import type { AuditEventInput } from '../../core/audit.js';
import type { AccountType, Computer } from '../../core/domain.js';
import { CoreErrors, JitgateError, isJitgateError } from '../../core/errors.js';
import type { Logger } from '../../core/logging.js';
import type { SessionRecorder, TerminalRecording } from '../../recorder/recorder.js';
import { AuthErrors } from '../auth/errors.js';
import type { Principal } from '../auth/principal.js';
import type { OpenSessionRequest, OpenedSession, ProgressFn, SessionGate } from '../contracts.js';
import type { LiveEntry, LiveTap, RedisLiveSessions, WatchersChange } from '../sessions/live-sessions.js';
import { SshGatewayErrors } from './errors.js';
import { isBracketedPaste, terminalClipboard, type TerminalClipboard } from './terminal-clipboard.js';
import { pinnedHostKey } from './host-key-pin.js';
import { preconnectUpstream, type AskPerson, type PendingUpstream, type UpstreamTarget } from './upstream.js';
import { leaseMaxAt } from '../sessions/lease-cap.js';
import { moderationPolicyOf } from '../access-requests/moderation.js';
import { SESSION_CLOSE } from '../sessions/close-codes.js';

/** Websocket close codes (docs/api.md), shared with the remote desktop tunnel. */
export const CLOSE = SESSION_CLOSE;

export interface TerminalDeps {
  broker: { open(req: OpenSessionRequest, onProgress: ProgressFn): Promise<OpenedSession & { tap?: LiveTap; onWatchers?: (cb: (change: WatchersChange) => void) => void }> };
  recorder: SessionRecorder;
  audit: { record(e: AuditEventInput): Promise<unknown> };
  /** CSRF check of the upgrade request (query parameter `csrf`), e.g. `checkCsrfQuery` from gateway/auth. */
  checkCsrf: (req: FastifyRequest) => boolean;
  /** Step-up beside the access check (gateway/auth/step-up.ts): throws when the computer wants a fresher passkey/TOTP confirmation. */
  stepUp?: (principal: Principal, computer: Computer) => Promise<void>;
  log: Logger;
  /** Pause the ssh stream when the websocket buffers more than this; default 1 MiB. */
  highWaterBytes?: number;
  connectTimeoutMs?: number;
}

export interface WatchDeps {
  live: RedisLiveSessions;
  checkCsrf: (req: FastifyRequest) => boolean;
  /** Whether `principal` (admins, auditors, a four-eyes session's moderators) may watch this live session. */
  mayWatch: (principal: Principal, session: LiveEntry) => boolean | Promise<boolean>;
  /** Whether the watcher may end the session from the watch (`{"type":"terminate"}`): its moderators, admins of its organization. */
  mayTerminate?: (principal: Principal, session: LiveEntry) => boolean | Promise<boolean>;
  audit: { record(e: AuditEventInput): Promise<unknown> };
  log: Logger;
}

const DIMENSION = /^[0-9]{1,4}$/;
/** How long the person has to answer the computer's login prompt (their own password); sshd's LoginGraceTime is 120 s by default. */
const ANSWER_TIMEOUT_MS = 115_000;
/** How long to wait, after the computer closed the connection, for a terminate/lease notification. */
const HOST_GONE_GRACE_MS = 5000;

function dim(v: unknown, dflt: number, max: number): number | null {
  if (v === undefined || v === '') return dflt;
  if (typeof v !== 'string' || !DIMENSION.test(v)) return null;
  const n = Number(v);
  return n >= 1 && n <= max ? n : null;
}

function sendJson(ws: WebSocket, msg: object): void {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
}

/** Tell the person in words, then close with the code. */
function fail(ws: WebSocket, closeCode: number, err: { code: string; message: string }): void {
  sendJson(ws, { type: 'error', code: err.code, message: err.message });
  if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(closeCode, err.code.slice(0, 120));
}

function closeCodeFor(err: unknown, phase: 'open' | 'connect'): number {
  if (!isJitgateError(err)) return phase === 'open' ? CLOSE.provisioningFailed : CLOSE.hostUnreachable;
  switch (err.code) {
    case CoreErrors.JIT_ERR_ACCESS_DENIED.code:
    case CoreErrors.JIT_ERR_FORBIDDEN.code:
    case CoreErrors.JIT_ERR_NOT_FOUND.code:
    case AuthErrors.JIT_ERR_AUTH_STEP_UP_REQUIRED.code:
    case 'JIT_ERR_APPROVAL_REQUIRED': // no approved access-request window (gateway/access-requests)
      return CLOSE.accessDenied;
    case CoreErrors.JIT_ERR_AUTH_REQUIRED.code:
      return CLOSE.notSignedIn;
    case CoreErrors.JIT_ERR_VALIDATION.code:
    case 'JIT_ERR_JIT_CHOOSE_ACCOUNT_TYPE':
    case 'JIT_ERR_JIT_ACCOUNT_TYPE_NOT_ALLOWED':
      return CLOSE.badRequest;
    case SshGatewayErrors.JIT_ERR_SSH_HOST_UNREACHABLE.code:
    case SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_MISMATCH.code:
    case SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_NOT_PINNED.code:
    case SshGatewayErrors.JIT_ERR_SSH_CHANNEL.code:
      return CLOSE.hostUnreachable;
    default:
      return phase === 'open' ? CLOSE.provisioningFailed : CLOSE.hostUnreachable;
  }
}

function publicError(err: unknown): { code: string; message: string } {
  if (isJitgateError(err)) return { code: err.code, message: err.message };
  return { code: 'JIT_ERR_INTERNAL', message: 'internal error' };
}

function openShell(client: Client, cols: number, rows: number): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    client.shell({ term: 'xterm-256color', cols, rows }, { env: { LANG: 'C.UTF-8' } }, (err, stream) => (err ? reject(err) : resolve(stream)));
  });
}

/** Fastify plugin (register under /api/v1 via apiPlugins): the browser terminal websocket. */
export function terminalRoutes(deps: TerminalDeps): (app: FastifyInstance) => Promise<void> {
  const highWater = deps.highWaterBytes ?? 1 << 20;
  return async (app) => {
    app.get('/terminal', { websocket: true, schema: { hide: true } }, (ws, req) => {
      void runTerminal(ws, req, deps, highWater);
    });
  };
}

async function runTerminal(ws: WebSocket, req: FastifyRequest, deps: TerminalDeps, highWater: number): Promise<void> {
  const principal = req.principal;
  if (!principal) return fail(ws, CLOSE.notSignedIn, { code: CoreErrors.JIT_ERR_AUTH_REQUIRED.code, message: 'sign in first' });
  if (!deps.checkCsrf(req)) return fail(ws, CLOSE.accessDenied, { code: AuthErrors.JIT_ERR_AUTH_CSRF.code, message: AuthErrors.JIT_ERR_AUTH_CSRF.message });
  const q = (req.query ?? {}) as Record<string, unknown>;
  let cols = dim(q.cols, 80, 1000);
  let rows = dim(q.rows, 24, 1000);
  const computerRef = typeof q.computer === 'string' ? q.computer : '';
  const accountType = q.accountType;
  if (!computerRef || computerRef.length > 256 || cols === null || rows === null || (accountType !== undefined && accountType !== 'domain' && accountType !== 'local')) {
    const e = new JitgateError(SshGatewayErrors.JIT_ERR_SSH_BAD_REQUEST, { reason: 'computer is required; cols/rows 1-1000; accountType domain or local' });
    return fail(ws, CLOSE.badRequest, publicError(e));
  }
  const log = deps.log.child({ component: 'terminal', person: principal.login, computerRef });

  // Until the shell is up: remember resizes, drop keystrokes, notice a vanished client.
  let clientGone = false;
  /** Set while the computer's side has gone and we wait briefly to learn why. */
  let closing: NodeJS.Timeout | null = null;
  let shell: ClientChannel | null = null;
  let rec: TerminalRecording | null = null;
  let recordInput = false;
  /** The computer's clipboard policy, known once the session is open; nothing is relayed before. */
  let clipboard: TerminalClipboard = { copy: false, paste: false };
  let computerName = computerRef;
  const live: { tap?: LiveTap | undefined; gate?: SessionGate | null | undefined } = {};
  /** The login prompt waiting for the person's answer (their own password: relayed once, never logged, recorded or kept). */
  let answer: { n: number; resolve: (a: string[]) => void } | null = null;
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (isBinary) {
      // Four-eyes: nothing the person types reaches the computer while no moderator watches.
      if (!shell || closing || (live.gate && !live.gate.inputAllowed())) return;
      // A paste the clipboard policy forbids (the page offers none; this is for any other client): dropped whole, the person told.
      if (!clipboard.paste && isBracketedPaste(buf)) {
        log.info({ bytes: buf.length }, 'paste refused by the clipboard policy');
        const e = new JitgateError(SshGatewayErrors.JIT_ERR_SSH_PASTE_NOT_ALLOWED, { computer: computerName });
        return sendJson(ws, { type: 'refused', code: e.code, message: e.message });
      }
      shell.write(buf);
      if (recordInput) rec?.input(buf);
      return;
    }
    let msg: { type?: unknown; cols?: unknown; rows?: unknown; answers?: unknown };
    try {
      msg = JSON.parse(buf.toString('utf8')) as typeof msg;
    } catch {
      return;
    }
    if (msg.type === 'answer') {
      const a = msg.answers;
      const waiting = answer;
      if (waiting && Array.isArray(a) && a.length === waiting.n && a.every((x) => typeof x === 'string' && x.length <= 1024)) {
        answer = null;
        waiting.resolve(a as string[]);
      }
      return;
    }
    if (msg.type === 'resize' && Number.isInteger(msg.cols) && Number.isInteger(msg.rows)) {
      const c = msg.cols as number;
      const r = msg.rows as number;
      if (c < 1 || c > 1000 || r < 1 || r > 1000) return;
      cols = c;
      rows = r;
      shell?.setWindow(r, c, 0, 0);
      rec?.resize(c, r);
      live.tap?.resize(c, r);
    }
  });
  const closedByClient = new Promise<void>((resolve) => ws.once('close', () => {
    clientGone = true;
    resolve();
  }));

  // 1. Provision.
  let opened: Awaited<ReturnType<TerminalDeps['broker']['open']>>;
  // The connection to the computer starts once access is granted, in parallel with provisioning.
  let early: PendingUpstream | null = null;
  const upstreamTarget = (c: Computer, slog: Logger): UpstreamTarget => ({
    host: c.address, port: c.sshPort, computer: c.name, hostKeySha256: pinnedHostKey(c),
    readyTimeoutMs: deps.connectTimeoutMs ?? 20_000, log: slog,
  });
  try {
    opened = await deps.broker.open(
      {
        principal, computerRef, protocol: 'ssh', via: 'web', ...(accountType ? { accountType: accountType as AccountType } : {}),
        // No pinned host key, no session: refused before anything is provisioned (no trust on first use).
        // Then a fresh passkey/TOTP confirmation where the computer asks for one (step-up).
        admit: async (c) => {
          pinnedHostKey(c);
          await deps.stepUp?.(principal, c);
        },
        onAccessGranted: (c) => {
          // A four-eyes session may wait long for its moderator, past the computer's login grace time: connect when admitted.
          if (!moderationPolicyOf(c.policy).required) early = preconnectUpstream(upstreamTarget(c, log));
        },
      },
      (step) => sendJson(ws, { type: 'progress', step: `${step}…` }),
    );
  } catch (err) {
    (early as PendingUpstream | null)?.abort();
    if (isJitgateError(err, SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_NOT_PINNED)) {
      await deps.audit.record({ type: 'session.failed', actor: principal.login, outcome: 'failure', computer: String(err.details.computer ?? computerRef), data: { via: 'web', code: err.code } }).catch(() => undefined);
    }
    log.info({ code: isJitgateError(err) ? err.code : undefined, err: isJitgateError(err) ? undefined : err }, 'session not opened');
    return fail(ws, closeCodeFor(err, 'open'), publicError(err));
  }
  live.tap = opened.tap;
  const tap = opened.tap;
  const { session, computer, credentials } = opened;
  clipboard = terminalClipboard(computer.policy);
  computerName = computer.name;
  const slog = log.child({ sessionId: session.id, computer: computer.name, account: credentials.username });

  let upstream: Client | null = null;
  let finished = false;
  let endReason = 'ended';
  const finish = async (reason: string, close?: { code: number; reason: string; error?: { code: string; message: string } }): Promise<void> => {
    if (finished) return;
    finished = true;
    endReason = reason;
    if (closing) clearTimeout(closing);
    if (close) {
      if (close.error) sendJson(ws, { type: 'error', ...close.error });
      sendJson(ws, { type: 'closed', reason: close.reason });
      if (ws.readyState === ws.OPEN) ws.close(close.code, close.reason.slice(0, 120));
    }
    try {
      shell?.close();
    } catch {
      // already closed
    }
    upstream?.end();
    if (rec) {
      await rec.close().catch((err: unknown) => slog.error({ err }, 'recording close failed'));
    }
    await opened.end(endReason).catch((err: unknown) => slog.error({ err }, 'ending the session failed'));
    slog.info({ reason: endReason }, 'terminal session ended');
  };

  /**
   * The computer closed the connection. When the lease ran out or an admin
   * terminated the session, teardown (which kills the account's processes)
   * can beat the notification to this gateway: wait a few seconds for it so
   * the person is told the real reason (4012/4013), else report 4011.
   */
  const hostGone = (): void => {
    if (finished || closing) return;
    if (Date.now() >= session.leaseExpiresAt.getTime()) {
      void finish('lease expired', { code: CLOSE.leaseExpired, reason: 'lease-expired' });
      return;
    }
    closing = setTimeout(() => void finish('connection to the computer closed', { code: CLOSE.hostUnreachable, reason: 'host-closed' }), HOST_GONE_GRACE_MS);
  };

  // The person is told whenever somebody starts or stops watching (docs/api.md, `watchers`).
  opened.onWatchers?.((w) => sendJson(ws, { type: 'watchers', watchers: w.count, event: w.event, by: w.by }));
  opened.onTerminate((reason, by) => {
    slog.info({ reason, by }, 'session closed from outside');
    void finish(reason === 'lease-expired' ? 'lease expired' : `terminated by ${by}`, {
      code: reason === 'lease-expired' ? CLOSE.leaseExpired : CLOSE.terminated,
      reason: reason === 'lease-expired' ? 'lease-expired' : 'terminated',
    });
  });
  void closedByClient.then(() => {
    (early as PendingUpstream | null)?.abort();
    return finish('client disconnected');
  });
  if (clientGone) {
    (early as PendingUpstream | null)?.abort();
    return void finish('client disconnected');
  }

  // 2. Four-eyes: no login (no credentials reach the computer) until a moderator watches; the person sees why.
  const gate = opened.moderation ?? null;
  live.gate = gate;
  if (gate) {
    gate.onStatus((st) => sendJson(ws, { type: 'moderation', ...st }));
    const admitted = await gate.admitted();
    if (finished) return;
    if (!admitted) return void finish('no moderator', { code: CLOSE.terminated, reason: 'no-moderator' });
  }

  // 3. Log in to the computer with the injected credentials.
  sendJson(ws, { type: 'progress', step: `connecting to ${computer.name}…` });
  const pinned = typeof computer.policy.sshHostKeySha256 === 'string' ? computer.policy.sshHostKeySha256 : null;
  try {
    // No pin (removed meanwhile, or a broker without the hook): upstreamTarget throws; nothing is sent.
    const pending: PendingUpstream = (early as PendingUpstream | null) ?? preconnectUpstream(upstreamTarget(computer, slog));
    const up = await pending.login(credentials.username, credentials.password ?? askInBrowser(ws, computer.name, (w) => (answer = w)));
    upstream = up.client;
    if (finished) return void up.client.end();
    upstream.on('close', () => hostGone());
    await opened.loggedIn().catch((err: unknown) => slog.warn({ err }, 'could not release credentials'));
    shell = await openShell(upstream, cols, rows);
  } catch (err) {
    if (isJitgateError(err, SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_MISMATCH) || isJitgateError(err, SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_NOT_PINNED)) {
      await deps.audit.record({ type: 'session.failed', actor: principal.login, outcome: 'failure', sessionId: session.id, computer: computer.name, data: { code: err.code, expected: pinned } }).catch(() => undefined);
    }
    const e = isJitgateError(err) ? err : new JitgateError(SshGatewayErrors.JIT_ERR_SSH_CHANNEL, { host: computer.name, what: 'shell', reason: 'refused' });
    slog.warn({ code: e.code }, 'cannot connect to the computer');
    return void finish('connection failed', { code: closeCodeFor(e, 'connect'), reason: 'connect-failed', error: publicError(e) });
  }
  if (finished) return;

  // 4. Record and relay.
  recordInput = computer.policy.recordInput === true;
  try {
    // Break-glass window, moderators' presence so far: in the recording's metadata from the start.
    const metadata = await opened.recordingMetadata?.();
    rec = await deps.recorder.startTerminal(
      { sessionId: session.id, personLogin: principal.login, computerName: computer.name, account: credentials.username, protocol: 'ssh', startedAt: new Date(), metadata },
      { cols, rows, recordInput, term: 'xterm-256color' },
    );
  } catch (err) {
    // No recording, no session: an unrecorded privileged session is not allowed.
    slog.error({ err }, 'recording could not start');
    return void finish('recording failed', { code: CLOSE.hostUnreachable, reason: 'recording-failed', error: publicError(err) });
  }
  if (finished) return void rec.close();
  tap?.resize(cols, rows);
  const leaseMax = leaseMaxAt(session, computer);
  sendJson(ws, {
    type: 'ready', sessionId: session.id, account: credentials.username, computer: computer.name, leaseExpiresAt: session.leaseExpiresAt.toISOString(),
    // how far Extend can go (the computer's maximum session length): the page offers only what fits
    ...(leaseMax ? { leaseMaxAt: leaseMax.toISOString() } : {}),
    // the session page's side menu mentions file transfer only where the SSH front door allows it (front-door-policy.ts)
    fileTransfer: computer.policy.sftp === true,
    // the computer's clipboard policy: the side menu offers copy and paste only where allowed (a forbidden paste is refused here too)
    clipboard,
  });

  const sh = shell;
  const recording = rec;
  let paused = false;
  const resumeWhenDrained = async (): Promise<void> => {
    if (paused) return;
    paused = true;
    await recording.drained();
    while (ws.readyState === ws.OPEN && ws.bufferedAmount > highWater / 2) await new Promise((r) => setTimeout(r, 10));
    paused = false;
    if (!finished) sh.resume();
  };
  const onOutput = (chunk: Buffer): void => {
    if (ws.readyState === ws.OPEN) ws.send(chunk, { binary: true });
    const recOk = recording.output(chunk);
    tap?.output(chunk);
    if (!recOk || ws.bufferedAmount > highWater) {
      sh.pause();
      void resumeWhenDrained();
    }
  };
  sh.on('data', onOutput);
  sh.stderr.on('data', onOutput);
  let exit: { code: number | null } | null = null;
  sh.on('exit', (code: number | null) => (exit = { code: typeof code === 'number' ? code : null }));
  sh.on('close', () => {
    // A shell that exited with a status ended normally; one killed by a signal (or a dropped
    // connection) may be the account being removed: find out why first.
    if (exit && exit.code !== null) void finish('shell exited', { code: CLOSE.normal, reason: 'exited' });
    else hostGone();
  });
}

/**
 * The person's own account (elevate): the computer's login prompts go to the
 * page (`prompt` frame, docs/api.md) and the answers come back in an `answer`
 * frame, handed to the ssh login and dropped. Rejects when the page closes or
 * does not answer in time.
 */
function askInBrowser(ws: WebSocket, computer: string, wait: (w: { n: number; resolve: (a: string[]) => void } | null) => void): AskPerson {
  return (q) =>
    new Promise<string[]>((resolve, reject) => {
      if (ws.readyState !== ws.OPEN) return reject(new Error('the page is gone'));
      const done = (): void => {
        clearTimeout(timer);
        ws.off('close', gone);
        wait(null);
      };
      const gone = (): void => {
        done();
        reject(new Error('the page is gone'));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error('no answer in time'));
      }, ANSWER_TIMEOUT_MS);
      ws.once('close', gone);
      wait({
        n: q.prompts.length,
        resolve: (a) => {
          done();
          resolve(a);
        },
      });
      sendJson(ws, { type: 'prompt', account: q.account, computer, instructions: q.instructions, prompts: q.prompts, attempt: q.attempt });
    });
}

/** Fastify plugin: `GET /sessions/:id/watch` (websocket) for admins and auditors. */
export function watchRoutes(deps: WatchDeps): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    app.get('/sessions/:id/watch', { websocket: true, schema: { hide: true } }, (ws, req) => {
      void runWatch(ws, req, deps);
    });
  };
}

async function runWatch(ws: WebSocket, req: FastifyRequest, deps: WatchDeps): Promise<void> {
  const principal = req.principal;
  if (!principal) return fail(ws, CLOSE.notSignedIn, { code: CoreErrors.JIT_ERR_AUTH_REQUIRED.code, message: 'sign in first' });
  if (!deps.checkCsrf(req)) return fail(ws, CLOSE.accessDenied, { code: AuthErrors.JIT_ERR_AUTH_CSRF.code, message: AuthErrors.JIT_ERR_AUTH_CSRF.message });
  const id = (req.params as { id?: string }).id ?? '';
  const entry = /^[0-9a-f-]{36}$/i.test(id) ? await deps.live.get(id) : null;
  if (!entry) {
    const e = new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: `live session ${id.slice(0, 40)}` });
    return fail(ws, CLOSE.badRequest, publicError(e));
  }
  if (!(await deps.mayWatch(principal, entry))) {
    const e = new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: 'watch live sessions' });
    return fail(ws, CLOSE.accessDenied, publicError(e));
  }
  sendJson(ws, { type: 'header', cols: entry.cols, rows: entry.rows });
  // A moderator (or an admin) ends the session from the watch: the same terminate as the live list's, audited by the holder.
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    if (isBinary) return;
    let msg: { type?: unknown };
    try {
      msg = JSON.parse((Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8')) as typeof msg;
    } catch {
      return;
    }
    if (msg.type !== 'terminate') return;
    void (async () => {
      if (!deps.mayTerminate || !(await deps.mayTerminate(principal, entry))) {
        return sendJson(ws, { type: 'error', ...publicError(new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: 'terminate this session' })) });
      }
      await deps.live.terminate(id, principal.login);
    })().catch((err: unknown) => deps.log.warn({ err, sessionId: id }, 'terminate from the watch failed'));
  });
  let stop: (() => Promise<void>) | null = null;
  try {
    stop = await deps.live.watchFrames(
      id,
      {
      onData: (chunk) => {
        if (ws.readyState === ws.OPEN) ws.send(chunk, { binary: true });
      },
      onResize: (cols, rows) => sendJson(ws, { type: 'resize', cols, rows }),
      onEnd: () => {
        sendJson(ws, { type: 'closed', reason: 'ended' });
        if (ws.readyState === ws.OPEN) ws.close(CLOSE.normal, 'ended');
      },
      },
      principal.login,
      principal.personId,
    );
  } catch (err) {
    return fail(ws, CLOSE.badRequest, publicError(err));
  }
  await deps.audit.record({ type: 'recording.viewed', actor: principal.login, outcome: 'success', sessionId: id, computer: entry.computerName, account: entry.account, data: { live: true } }).catch(() => undefined);
  if (ws.readyState !== ws.OPEN) {
    await stop();
    return;
  }
  ws.once('close', () => void stop?.());
}
