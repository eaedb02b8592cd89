import type { Client, ClientChannel, Connection, PseudoTtyInfo, ServerChannel, Session, TcpipRequestInfo } from 'ssh2';
import { isJitgateError, JitgateError } from '../../core/errors.js';
import type { Logger } from '../../core/logging.js';
import type { RecordingMeta, StreamRecording, TerminalRecording } from '../../recorder/recorder.js';
import type { Principal } from '../auth/principal.js';
import type { Computer } from '../../core/domain.js';
import type { OpenedSession, SessionGate } from '../contracts.js';
import { moderationPolicyOf } from '../access-requests/moderation.js';
import type { LiveTap } from '../sessions/live-sessions.js';
import type { BrokeredSession } from '../sessions/session-broker.js';
import { SshGatewayErrors } from './errors.js';
import { pinnedHostKey } from './host-key-pin.js';
import type { AskPerson, PendingUpstream } from './upstream.js';
import { askOnTerminal } from './front-door-login-prompt.js';
import type { FrontDoorDeps, PreconnectUpstreamFn } from './front-door.js';
import { chooseComputer } from './front-door-menu.js';
import { relay, type RelayTap } from './front-door-relay.js';
import { FrontDoorErrors } from './front-door-errors.js';
import { channelRefusal, type ChannelRefusal, type ChannelRequest } from './front-door-policy.js';
import { rejectProhibited } from './front-door-wire.js';

export interface FrontDoorTarget {
  login: string;
  /** null: show the menu of reachable computers. */
  computer: string | null;
}

export interface FrontDoorSessionOptions {
  conn: Connection;
  principal: Principal;
  target: FrontDoorTarget;
  deps: FrontDoorDeps;
  preconnectUpstream: PreconnectUpstreamFn;
  log: Logger;
}

type ExitInfo = { code: number } | { signal: string; dump: boolean; desc: string };

interface Upstream {
  opened: OpenedSession;
  client: Client;
}

/** Environment variables passed through (OpenSSH's default SendEnv; nothing that changes how programs run). */
const ENV_ALLOWED = /^(LANG|LANGUAGE|LC_[A-Z_]+|TZ|COLORTERM)$/;
const MAX_ENV = 32;

/** A client's channel and its state before the real request (pty, env). */
interface SessionState {
  pty: PseudoTtyInfo | null;
  env: Record<string, string>;
  upstream: ClientChannel | null;
  terminal: TerminalRecording | null;
  /** Where its output goes to live watchers (a pty channel of a session in the live list). */
  live?: LiveTap | undefined;
}

function policyFlag(session: OpenedSession, name: string): boolean {
  return session.computer.policy[name] === true;
}

/** The computer's policy refused a channel before anything was provisioned for it (thrown from the broker's `admit`). */
class ChannelRefused extends JitgateError {
  constructor(
    readonly refusal: ChannelRefusal,
    readonly computer: Computer,
    /** The channel request it was decided for: another channel sharing the connect retries with its own. */
    readonly request: ChannelRequest,
  ) {
    super(FrontDoorErrors.JIT_ERR_FRONTDOOR_NOT_ALLOWED, { what: refusal.label, computer: computer.name });
  }
}

/** What the person may read about a failure: typed errors carry a safe message; anything else stays generic. */
function publicMessage(err: unknown, computer: string | null): string {
  if (isJitgateError(err)) return err.message;
  return `could not open a session on ${computer ?? 'the computer'}`;
}

/**
 * Everything after sign-in on one front-door connection: one JIT session and
 * one upstream SSH connection (opened on the first channel that needs it),
 * shared by every channel the client opens.
 */
/** The computer's pinned host key; JIT_ERR_SSH_HOST_KEY_NOT_PINNED without one (no trust on first use). */
function pinOf(c: Computer): string {
  return pinnedHostKey(c);
}

export class FrontDoorSessionHandler {
  readonly #o: FrontDoorSessionOptions;
  #computer: string | null;
  #upstream: Promise<Upstream> | null = null;
  #closed = false;
  #closeReason = '';
  readonly #channels = new Set<ServerChannel>();
  /** Channels with a pty (a person at a terminal): the only ones told about the lease end. */
  readonly #interactive = new Set<ServerChannel>();
  #leaseTimer: NodeJS.Timeout | undefined;
  /** A four-eyes session's gate: input from the person passes only while it allows. */
  #gate: SessionGate | null = null;
  readonly #inputAllowed = (): boolean => !this.#gate || this.#gate.inputAllowed();
  /** Set once the lease warning is due: terminals opened later get it at once. */
  #leaseNotice: (() => string) | null = null;
  /** Channel runs in flight (each ends with its recording closed). */
  readonly #runs = new Set<Promise<void>>();

  constructor(o: FrontDoorSessionOptions) {
    this.#o = o;
    this.#computer = o.target.computer;
    o.conn.on('session', (accept) => this.#session(accept()));
    o.conn.on('tcpip', (accept, reject, info) => void this.#tcpip(accept, reject, info));
  }

  get #log(): Logger {
    return this.#o.log;
  }

  /**
   * The connection's session for a channel: provisioned and connected once
   * per connection (progress goes to whoever asked first), after the
   * computer's policy admitted `req`, and checked against it again when the
   * session was opened for another channel. Throws ChannelRefused.
   */
  async #sessionFor(progress: (line: string) => void, req: ChannelRequest, ask: AskPerson | null): Promise<Upstream> {
    for (let attempt = 0; ; attempt++) {
      let up: Upstream;
      try {
        up = await this.#connect(progress, req, ask);
      } catch (err) {
        // Refused for a concurrent channel's request: ask again with ours (#connect was reset).
        if (err instanceof ChannelRefused && err.request !== req && attempt < 3) continue;
        if (err instanceof ChannelRefused) this.#refused(err.refusal, err.computer, null);
        throw err;
      }
      const refusal = channelRefusal(up.opened.computer, req);
      if (refusal) {
        this.#refused(refusal, up.opened.computer, up.opened.session.id);
        throw new ChannelRefused(refusal, up.opened.computer, req);
      }
      return up;
    }
  }

  /** A channel the computer's policy does not allow: logged and audited (`session.denied`). */
  #refused(refusal: ChannelRefusal, computer: Computer, sessionId: string | null): void {
    this.#log.info({ computer: computer.name, what: refusal.what, tool: refusal.tool }, 'channel refused by policy');
    void this.#o.deps.audit
      ?.record({
        type: 'session.denied', actor: this.#o.principal.login, outcome: 'denied', computer: computer.name, sessionId,
        data: { via: 'ssh-front-door', reason: refusal.what, tool: refusal.tool, message: refusal.message },
      })
      .catch((err: unknown) => this.#log.error({ err }, 'audit failed'));
  }

  /** Provision and connect, once per connection (the first request decides admission; a refused one leaves nothing behind). */
  #connect(progress: (line: string) => void, req: ChannelRequest, ask: AskPerson | null): Promise<Upstream> {
    if (this.#upstream) return this.#upstream;
    const memo: Promise<Upstream> = this.#provisionAndConnect(progress, req, ask).catch((err: unknown) => {
      if (err instanceof ChannelRefused && this.#upstream === memo) this.#upstream = null;
      throw err;
    });
    this.#upstream = memo;
    return memo;
  }

  /** `ask`: the person's terminal, for the computer's login prompt when the session is their own account (null without a pty). */
  async #provisionAndConnect(progress: (line: string) => void, req: ChannelRequest, ask: AskPerson | null): Promise<Upstream> {
    const computer = this.#computer!;
    // The connection to the computer starts as soon as access is granted, in parallel with provisioning.
    let early: PendingUpstream | null = null;
    let opened: OpenedSession;
    try {
      opened = await this.#o.deps.broker.open(
        {
          principal: this.#o.principal, computerRef: computer, protocol: 'ssh', via: 'ssh-front-door',
          admit: (c) => {
            // Policy before provisioning: a refused channel must not create a JIT account (with sudo) first.
            const refusal = channelRefusal(c, req);
            if (refusal) throw new ChannelRefused(refusal, c, req);
            // No pinned host key, no session: nothing is provisioned and no password can reach an unconfirmed host.
            pinOf(c);
          },
          onAccessGranted: (c) => {
            // A four-eyes session may wait long for its moderator, past the computer's login grace time: connect when admitted.
            if (moderationPolicyOf(c.policy).required) return;
            early = this.#o.preconnectUpstream({ host: c.address, port: c.sshPort, hostKeySha256: pinOf(c), log: this.#log });
          },
        },
        (step) => progress(`jitgate: ${step}…`),
      );
    } catch (err) {
      (early as PendingUpstream | null)?.abort();
      if (isJitgateError(err, SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_NOT_PINNED)) {
        await this.#o.deps.audit
          ?.record({ type: 'session.failed', actor: this.#o.principal.login, outcome: 'failure', computer, data: { via: 'ssh-front-door', code: err.code } })
          .catch((e: unknown) => this.#log.error({ err: e }, 'audit failed'));
      }
      throw err;
    }
    if (this.#closed) {
      (early as PendingUpstream | null)?.abort();
      await opened.end('client disconnected');
      throw new Error('connection closed while provisioning');
    }
    opened.onTerminate((reason, by) => {
      this.#log.info({ reason, by }, 'session closed from outside');
      // A four-eyes session ended by its rule (no moderator came or rejoined in time) says why, not who.
      const ended = by === 'system:moderation' && this.#gate?.state === 'ended' ? `ended: ${this.#gate.status().message}` : null;
      const line = `\r\njitgate: session ${ended ?? (reason === 'lease-expired' ? 'lease expired' : `terminated by ${by}`)}\r\n`;
      for (const ch of this.#channels) if (ch.writable) ch.stderr.write(line);
      void this.close(reason);
    });
    // Watching is told on native SSH too (the browser terminal shows a banner): a line on the person's terminal.
    const watchable = opened as Partial<Pick<BrokeredSession, 'onWatchers'>>;
    watchable.onWatchers?.((w) => {
      const line = `\r\njitgate: ${w.by} ${w.event === 'joined' ? 'started' : 'stopped'} watching this session live (${w.count} watching now)\r\n`;
      for (const ch of this.#interactive) if (ch.writable) ch.stderr.write(line);
    });
    this.#warnBeforeLeaseEnd(opened, opened.session.leaseExpiresAt);
    // Four-eyes: no login (no credentials reach the computer) until a moderator watches; every change is told on the terminal.
    const gate = opened.moderation ?? null;
    if (gate) {
      this.#gate = gate;
      // Until the session runs, the channel waiting for it is told (its progress); then every terminal. The end is told by onTerminate.
      let running = false;
      gate.onStatus((st) => {
        if (st.state === 'ended') return;
        const line = `jitgate: ${st.message}`;
        if (!running) progress(line);
        else for (const ch of this.#interactive) if (ch.writable) ch.stderr.write(`\r\n${line}\r\n`);
      });
      if (!(await gate.admitted()) || this.#closed) {
        await opened.end(this.#closed ? this.#closeReason : 'no moderator').catch(() => undefined);
        throw new Error('no moderator joined');
      }
      running = true;
      // Typed while nobody moderated (the channels were paused, not read): dropped, so nothing runs unseen-then-late.
      for (const ch of this.#channels) while (ch.read() !== null);
    }
    progress(`jitgate: connecting to ${opened.computer.name} as ${opened.credentials.username}…`);
    try {
      const pending: PendingUpstream =
        early ?? this.#o.preconnectUpstream({ host: opened.computer.address, port: opened.computer.sshPort, hostKeySha256: pinOf(opened.computer), log: this.#log });
      // The person's own account (elevate): they answer the computer's login prompt at their terminal.
      const secret = opened.credentials.password ?? ask;
      if (!secret) {
        pending.abort();
        throw new JitgateError(FrontDoorErrors.JIT_ERR_FRONTDOOR_OWN_PASSWORD_NEEDS_TERMINAL, { account: opened.credentials.username, computer: opened.computer.name });
      }
      const { client } = await pending.login(opened.credentials.username, secret);
      client.on('close', () => void this.close('computer closed the connection'));
      await opened.loggedIn().catch((err: unknown) => this.#log.warn({ err }, 'loggedIn failed'));
      if (this.#closed) client.end();
      return { opened, client };
    } catch (err) {
      await opened.end('upstream connection failed').catch(() => undefined);
      throw err;
    }
  }

  /**
   * A few minutes before the lease ends (`leaseWarningMs`, default 5 min) every
   * terminal of this connection is told, on stderr; exec and SFTP channels are
   * not (their stderr belongs to the program and whoever parses it).
   */
  #warnBeforeLeaseEnd(opened: OpenedSession, leaseEnd: Date): void {
    const lead = this.#o.deps.leaseWarningMs ?? 5 * 60_000;
    const notice = (end: Date) => (): string => {
      const mins = Math.max(0, Math.round((end.getTime() - Date.now()) / 60_000));
      const at = end.toISOString().slice(11, 16);
      return `\r\njitgate: this session ends at ${at} UTC (${mins <= 1 ? 'in about a minute' : `in ${mins} minutes`}), when its JIT account is removed: save your work\r\n`;
    };
    const due = async (): Promise<void> => {
      if (this.#closed) return;
      // Extended meanwhile (from the web app): warn before the new end instead.
      const end = (await opened.currentLeaseEnd?.().catch(() => null)) ?? leaseEnd;
      if (end.getTime() - lead > Date.now() + 1000) return arm(end);
      this.#leaseNotice = notice(end);
      const line = this.#leaseNotice();
      for (const ch of this.#interactive) if (ch.writable) ch.stderr.write(line);
    };
    const arm = (end: Date): void => {
      const delay = end.getTime() - lead - Date.now();
      // Timers hold at most ~24.8 days; a lease that long is warned about when it is that close.
      if (delay >= 2 ** 31 - 1) return;
      this.#leaseNotice = null;
      this.#leaseTimer = setTimeout(() => void due(), Math.max(0, delay));
      this.#leaseTimer.unref();
    };
    arm(leaseEnd);
  }

  /** With the break-glass window and the moderation so far (recordings.metadata). */
  async #meta(up: Upstream): Promise<RecordingMeta> {
    return {
      metadata: await up.opened.recordingMetadata?.(),
      sessionId: up.opened.session.id,
      personLogin: this.#o.principal.login,
      computerName: up.opened.computer.name,
      account: up.opened.credentials.username,
      protocol: 'ssh',
      startedAt: new Date(),
    };
  }

  #session(s: Session): void {
    const st: SessionState = { pty: null, env: {}, upstream: null, terminal: null };
    s.on('pty', (accept, _reject, info) => {
      st.pty = info;
      accept?.();
    });
    s.on('env', (accept, reject, info) => {
      if (ENV_ALLOWED.test(info.key) && Object.keys(st.env).length < MAX_ENV && info.val.length <= 256) {
        st.env[info.key] = info.val;
        accept?.();
      } else reject?.();
    });
    s.on('window-change', (accept, _reject, info) => {
      if (st.pty) Object.assign(st.pty, { cols: info.cols, rows: info.rows, width: info.width, height: info.height });
      st.upstream?.setWindow(info.rows, info.cols, info.height, info.width);
      st.terminal?.resize(info.cols, info.rows);
      st.live?.resize(info.cols, info.rows);
      accept?.();
    });
    s.on('signal', (accept, _reject, info) => {
      st.upstream?.signal(info.name);
      accept?.();
    });
    s.on('shell', (accept) => {
      const ch = this.#track(accept());
      ch.pause();
      this.#spawn(this.#run(ch, st, { kind: 'shell' }));
    });
    s.on('exec', (accept, _reject, info) => {
      const ch = this.#track(accept());
      ch.pause();
      this.#spawn(this.#run(ch, st, { kind: 'exec', command: info.command }));
    });
    s.on('subsystem', (accept, reject, info) => {
      if (info.name !== 'sftp') return reject();
      const ch = this.#track(accept());
      ch.pause();
      this.#spawn(this.#run(ch, st, { kind: 'sftp' }));
    });
  }

  #spawn(run: Promise<void>): void {
    const p = run.catch((err: unknown) => this.#log.error({ err }, 'channel failed'));
    this.#runs.add(p);
    void p.finally(() => this.#runs.delete(p));
  }

  #track(ch: ServerChannel): ServerChannel {
    this.#channels.add(ch);
    ch.on('close', () => this.#channels.delete(ch));
    ch.on('error', () => undefined);
    return ch;
  }

  #fail(ch: ServerChannel, message: string, code = 1): void {
    if (ch.writable) {
      ch.stderr.write(`jitgate: ${message}\r\n`);
      ch.exit(code);
      ch.end();
    }
  }

  async #run(ch: ServerChannel, st: SessionState, req: { kind: 'shell' } | { kind: 'exec'; command: string } | { kind: 'sftp' }): Promise<void> {
    const eol = st.pty ? '\r\n' : '\n';
    // Progress goes to the terminal in a pty, else to stderr so it never mixes into a command's output.
    const progress = (line: string): void => {
      if (!ch.writable) return;
      if (st.pty) ch.write(line + eol);
      else ch.stderr.write(line + eol);
    };
    if (!this.#computer) {
      if (req.kind !== 'shell' || !st.pty || !this.#o.deps.listComputers) {
        return this.#fail(ch, `connect as ${this.#o.target.login}+<computer> to run a command or SFTP`, 2);
      }
      const list = await this.#o.deps.listComputers(this.#o.principal).catch((err: unknown) => {
        this.#log.warn({ err }, 'listing computers failed');
        return null;
      });
      if (!list) return this.#fail(ch, 'could not list your computers');
      if (list.length === 0) return this.#fail(ch, 'you have no computers to connect to');
      ch.resume();
      const chosen = await chooseComputer(ch, list.map((c) => c.name));
      if (!chosen) return this.#fail(ch, 'no computer chosen', 130);
      ch.pause();
      // Another channel may have chosen meanwhile; the connection holds one session.
      this.#computer ??= chosen;
    }
    let up: Upstream;
    try {
      up = await this.#sessionFor(progress, req, st.pty ? askOnTerminal(ch, this.#computer) : null);
    } catch (err) {
      // A refusal by policy: stderr and exit status 1, like a program that is not allowed to run.
      if (err instanceof ChannelRefused) return this.#fail(ch, err.refusal.message);
      this.#log.info({ code: isJitgateError(err) ? err.code : undefined, err: isJitgateError(err) ? undefined : err }, 'session open failed');
      return this.#fail(ch, publicMessage(err, this.#computer));
    }
    const env = st.env;
    const pty = st.pty ? { rows: st.pty.rows, cols: st.pty.cols, height: st.pty.height, width: st.pty.width, term: st.pty.term, modes: st.pty.modes } : undefined;
    let upCh: ClientChannel;
    try {
      upCh = await new Promise<ClientChannel>((resolve, reject) => {
        const cb = (err: Error | undefined, c: ClientChannel): void => (err ? reject(err) : resolve(c));
        if (req.kind === 'shell') up.client.shell(pty ?? false, { env }, cb);
        else if (req.kind === 'exec') up.client.exec(req.command, { env, ...(pty ? { pty } : {}) }, cb);
        else up.client.subsys('sftp', cb);
      });
    } catch (err) {
      this.#log.warn({ err }, 'upstream channel failed');
      return this.#fail(ch, `${up.opened.computer.name} refused the ${req.kind} request`);
    }
    // Listen before any other await: a fast command can exit and close while the recording starts.
    const exit: { info: ExitInfo | null } = { info: null };
    upCh.on('exit', (code: number | null, signal?: string, dump?: boolean, desc?: string) => {
      exit.info = code !== null && code !== undefined ? { code } : { signal: String(signal ?? 'KILL').replace(/^SIG/, ''), dump: Boolean(dump), desc: desc ?? '' };
    });
    const closed = new Promise<void>((resolve) => upCh.once('close', () => resolve()));
    if (!ch.writable) {
      upCh.close();
      return;
    }
    st.upstream = upCh;
    if (st.pty) {
      this.#interactive.add(ch);
      ch.once('close', () => this.#interactive.delete(ch));
      if (this.#leaseNotice) ch.stderr.write(this.#leaseNotice());
    }
    const recorder = this.#o.deps.recorder;
    const recordInput = policyFlag(up.opened, 'recordInput');
    let terminal: TerminalRecording | null = null;
    let stream: StreamRecording | null = null;
    try {
      if (recorder && st.pty) {
        terminal = await recorder.startTerminal(await this.#meta(up), {
          cols: st.pty.cols, rows: st.pty.rows, recordInput, term: st.pty.term,
          ...(req.kind === 'exec' ? { command: req.command } : {}),
        });
        st.terminal = terminal;
      } else if (recorder) {
        stream = await recorder.startStream(await this.#meta(up), req.kind === 'sftp' ? 'sftp' : 'exec', req.kind === 'exec' ? req.command : undefined);
      }
    } catch (err) {
      // A session that must be recorded and cannot be is not opened.
      this.#log.error({ err }, 'recording could not start');
      upCh.close();
      return this.#fail(ch, 'the session could not be recorded');
    }
    const tap = (write: (d: Buffer) => boolean, drained: () => Promise<void>): RelayTap => ({ write, drained });
    const outTap = terminal
      ? tap((d) => terminal.output(d), () => terminal.drained())
      : stream
        ? tap((d) => stream.write('out', d), () => stream.drained())
        : undefined;
    const errTap = terminal
      ? tap((d) => terminal.output(d), () => terminal.drained())
      : stream
        ? tap((d) => stream.write('err', d), () => stream.drained())
        : undefined;
    const inTap = terminal
      ? recordInput
        ? tap((d) => terminal.input(d), () => terminal.drained())
        : undefined
      : stream
        ? tap((d) => stream.write('in', d), () => stream.drained())
        : undefined;

    // A terminal is shown live to its watchers (auditors, a four-eyes session's moderators), as the browser terminal is.
    const liveTap = st.pty ? (up.opened as Partial<Pick<BrokeredSession, 'tap'>>).tap : undefined;
    if (liveTap && st.pty) {
      st.live = liveTap;
      liveTap.resize(st.pty.cols, st.pty.rows);
    }
    const watched = (t: RelayTap | undefined): RelayTap | undefined =>
      liveTap
        ? {
            write: (d) => {
              liveTap.output(d);
              return t ? t.write(d) : true;
            },
            drained: () => (t ? t.drained() : Promise.resolve()),
          }
        : t;
    const out = relay(upCh, ch, watched(outTap));
    const err = relay(upCh.stderr, ch.stderr, watched(errTap));
    void relay(ch, upCh, inTap, this.#inputAllowed);
    ch.once('end', () => upCh.end());
    ch.once('close', () => upCh.close());
    ch.resume();

    await Promise.all([out, err, closed]);
    const ex = exit.info;
    if (ch.writable) {
      if (ex && 'code' in ex) ch.exit(ex.code);
      else if (ex) ch.exit(ex.signal, ex.dump, ex.desc);
      ch.end();
    }
    const summary = terminal ? terminal.close() : stream ? stream.close(ex && 'code' in ex ? ex.code : null) : null;
    if (summary) await summary.catch((e: unknown) => this.#log.error({ err: e }, 'closing recording failed'));
  }

  async #tcpip(accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo): Promise<void> {
    if (!this.#computer) return rejectProhibited(this.#o.conn, reject, `connect as ${this.#o.target.login}+<computer> to forward ports`);
    let up: Upstream;
    try {
      // A forward-only connection (`ssh -N -L …`) provisions only if the policy allows forwarding.
      up = await this.#sessionFor(() => undefined, { kind: 'forward', dest: `${info.destIP}:${info.destPort}` }, null);
    } catch (err) {
      // RFC 4254 §5.1 reason 1: OpenSSH shows "open failed: administratively prohibited: <message>".
      if (err instanceof ChannelRefused) return rejectProhibited(this.#o.conn, reject, err.refusal.message);
      return reject();
    }
    up.client.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, upCh) => {
      if (err) return reject();
      const ch = this.#track(accept());
      void relay(upCh, ch).then(() => ch.end());
      void relay(ch, upCh, undefined, this.#inputAllowed).then(() => upCh.end());
      ch.once('close', () => upCh.close());
      upCh.once('close', () => ch.close());
    });
  }

  /** End everything: upstream connection, JIT session (teardown enqueued), pending recordings. */
  async close(reason: string): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    clearTimeout(this.#leaseTimer);
    // Still waiting for a moderator: stop waiting, so the session ends now (not when the wait runs out).
    if (this.#gate?.state === 'waiting') this.#gate.close();
    // Channels first, the connection once the client closed them too (or after 2 s): a client that gets the
    // disconnect while the last lines are on their way (OpenSSH) exits without showing them, and they say why.
    const open = [...this.#channels];
    for (const ch of open) if (ch.writable) ch.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(open.map((ch) => new Promise((r) => (this.#channels.has(ch) ? ch.once('close', r) : r(null))))),
      new Promise((r) => (timer = setTimeout(r, 2000))),
    ]);
    clearTimeout(timer);
    this.#o.conn.end();
    const up = await this.#upstream?.catch(() => null);
    if (up) {
      up.client.end();
      await Promise.allSettled([...this.#runs]);
      await up.opened.end(reason).catch((err: unknown) => this.#log.error({ err }, 'ending the session failed'));
    }
  }
}
