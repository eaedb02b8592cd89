/**
 * The native SSH front door: people run `ssh alice+web01@jitgate` with their
 * own SSH client. jitgate authenticates them (registered public key, then a
 * TOTP code: both required, RFC 4252 §5.1 partial success), opens a JIT
 * session through the SessionBroker, logs into the computer with the
 * injected credentials and proxies the channels. Nobody ever sees the JIT
 * account's password.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import ssh2, { type AuthContext, type Connection, type KeyboardAuthContext, type PublicKeyAuthContext } from 'ssh2';
import type { AuditLog } from '../../core/audit.js';
import type { Logger } from '../../core/logging.js';
import type { SessionRecorder } from '../../recorder/recorder.js';
import { LOGIN_PATTERN } from '../auth/people.js';
import type { Principal } from '../auth/principal.js';
import type { FrontDoorIdentity, SessionBroker } from '../contracts.js';
import { FrontDoorSessionHandler, type FrontDoorTarget } from './front-door-session.js';
import { loadOrCreateHostKey } from './front-door-host-key.js';
import { sendAuthBanner } from './front-door-wire.js';
import { preconnectUpstream as preconnectUpstreamDefault, type PendingUpstream, type UpstreamTarget } from './upstream.js';

/** How the front door reaches the computer (gateway/ssh/upstream.ts's preconnectUpstream by default; swappable in tests). */
export type PreconnectUpstreamFn = (target: UpstreamTarget) => PendingUpstream;

export interface FrontDoorDeps {
  /** `sshFrontDoor.host` / `sshFrontDoor.port` (0 = any free port). */
  host: string;
  port: number;
  /** `sshFrontDoor.hostKeyFile`; absent → ed25519 key generated in `dataDir`. */
  hostKeyFile?: string;
  dataDir: string;
  identity: FrontDoorIdentity;
  broker: SessionBroker;
  /** Computers the person may reach (the menu shown for a bare `alice@`); without it the person must name one. */
  listComputers?: (principal: Principal) => Promise<{ name: string }[]>;
  /** Records pty sessions (asciicast) and exec/SFTP channels; absent → nothing recorded. */
  recorder?: SessionRecorder;
  /** Default: gateway/ssh/upstream.ts's preconnectUpstream (verifies `computer.policy.sshHostKeySha256`; no pin, no connection). */
  preconnectUpstream?: PreconnectUpstreamFn;
  /** Audits channels the computer's policy refuses (`session.denied`); absent → only logged. */
  audit?: Pick<AuditLog, 'record'>;
  log: Logger;
  /** Wrong TOTP codes allowed per connection before it is dropped (default 3). */
  maxCodeAttempts?: number;
  /** Authentication must finish within this time (default 60 s, like OpenSSH's LoginGraceTime 120 s halved). */
  loginGraceMs?: number;
  /** Terminals are told this long before their session's lease ends (default 5 min). */
  leaseWarningMs?: number;
}

export interface FrontDoorHandle {
  readonly port: number;
  /** OpenSSH public key line of the host key (for known_hosts) and its `SHA256:` fingerprint. */
  readonly hostKeyPublic: string;
  readonly hostKeySha256: string;
  /** Connections currently open. */
  connections(): number;
  /** Stop listening and close every connection (their sessions end and are torn down). */
  close(): Promise<void>;
}

/** A computer name as the API accepts it (gateway/api/computers.ts), optionally `organization/name`; a computer id matches too. */
const COMPUTER_NAME = '[A-Za-z0-9][A-Za-z0-9._-]{0,62}';
const COMPUTER_REF = new RegExp(`^(?:${COMPUTER_NAME}/)?${COMPUTER_NAME}$`);

/**
 * `alice+web01` → login alice, computer web01; `alice` → menu. Both parts
 * must match the login and computer-name patterns (logins compare in lower
 * case, as the identity module stores them): anything else (control
 * characters, NUL bytes, spaces, overlong names) is refused here, before
 * any database query.
 */
export function parseFrontDoorUser(username: string): FrontDoorTarget | null {
  const plus = username.indexOf('+');
  const login = (plus < 0 ? username : username.slice(0, plus)).toLowerCase();
  const computer = plus < 0 ? null : username.slice(plus + 1);
  if (!LOGIN_PATTERN.test(login)) return null;
  if (computer !== null && !COMPUTER_REF.test(computer)) return null;
  return { login, computer };
}

/** What a person is told (auth banner) when the user name is not `login+computer`. */
function usageBanner(port: number): string {
  const p = port === 22 ? '' : `-p ${port} `;
  return [
    'jitgate: the user name must be <login>+<computer>, for example',
    `  ssh ${p}alice+web01@<this gateway>`,
    'or just <login> for a menu of your computers.',
  ].join('\r\n');
}

function utcMinute(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Key type named inside an SSH public key blob (RFC 4253 §6.6: string key-type first). */
// ssh2 is CommonJS: Node's ESM loader only sees a few of its named exports (Client), so take the rest off the default.
const { Server, utils } = ssh2;

function blobKeyType(blob: Buffer): string | null {
  if (blob.length < 4) return null;
  const n = blob.readUInt32BE(0);
  return n > 0 && n < 64 && blob.length >= 4 + n ? blob.subarray(4, 4 + n).toString('latin1') : null;
}

/** Verify a publickey userauth signature over the session-bound blob (RFC 4252 §7, ssh2's server example). */
function signatureValid(ctx: PublicKeyAuthContext): boolean {
  if (!ctx.signature || !ctx.blob) return false;
  const parsed = utils.parseKey(ctx.key.data);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) return false;
  if (blobKeyType(ctx.key.data) !== key.type) return false;
  return key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true;
}

class FrontDoorConnection {
  readonly id = randomUUID();
  readonly #log: Logger;
  #target: FrontDoorTarget | null = null;
  #username: string | null = null;
  /** Set once the public key is proven; the second factor is still missing. */
  #keyOwner: Principal | null = null;
  /** The proven key, to ask whether its owner got locked meanwhile. */
  #provenKey: { algo: string; data: Buffer } | null = null;
  #codeAttempts = 0;
  #principal: Principal | null = null;
  #handler: FrontDoorSessionHandler | null = null;

  constructor(
    readonly conn: Connection,
    readonly deps: FrontDoorDeps,
    readonly ip: string,
    readonly preconnectUpstream: PreconnectUpstreamFn,
    /** The port the front door listens on, for the usage hint. */
    readonly port: number,
  ) {
    this.#log = deps.log.child({ component: 'ssh-front-door', conn: this.id, ip });
    const grace = setTimeout(() => {
      if (!this.#principal) conn.end();
    }, deps.loginGraceMs ?? 60_000);
    grace.unref();
    conn.on('authentication', (ctx) => {
      this.#authenticate(ctx).catch((err: unknown) => {
        this.#log.warn({ err }, 'authentication step failed');
        ctx.reject();
      });
    });
    conn.on('ready', () => {
      clearTimeout(grace);
      this.#handler = new FrontDoorSessionHandler({
        conn,
        principal: this.#principal!,
        target: this.#target!,
        deps,
        preconnectUpstream,
        log: this.#log,
      });
    });
    conn.on('error', (err) => this.#log.debug({ err: err.message }, 'client connection error'));
    conn.on('close', () => {
      clearTimeout(grace);
      void this.#handler?.close('client disconnected');
    });
  }

  async #authenticate(ctx: AuthContext): Promise<void> {
    // One identity per connection: RFC 4252 §5 lets clients change the user name between attempts; we do not.
    if (this.#username === null) {
      this.#username = ctx.username;
      this.#target = parseFrontDoorUser(ctx.username);
      if (!this.#target) {
        // JSON-encoded by pino: control characters cannot forge log lines; cut to bound the line.
        this.#log.info({ user: ctx.username.slice(0, 80) }, 'user name is not login+computer');
        sendAuthBanner(this.conn, usageBanner(this.port));
      }
    }
    const target = this.#target;
    if (!target || ctx.username !== this.#username) return ctx.reject();
    if (ctx.method === 'publickey') return this.#publicKey(ctx, target);
    if (ctx.method === 'keyboard-interactive') return this.#secondFactor(ctx);
    // 'none' and anything else: tell the client what is left.
    return this.#keyOwner ? ctx.reject(['keyboard-interactive'], true) : ctx.reject(['publickey']);
  }

  async #publicKey(ctx: PublicKeyAuthContext, target: FrontDoorTarget): Promise<void> {
    if (this.#keyOwner) return ctx.reject(['keyboard-interactive'], true);
    const person = await this.deps.identity.personByPublicKey(target.login, ctx.key.algo, ctx.key.data);
    // A locked person's key still gets as far as proving its signature: then they are told until when.
    const lockedUntil = person ? null : await this.#lockedUntil(target.login, ctx.key.algo, ctx.key.data);
    if (!person && !lockedUntil) return ctx.reject(['publickey']);
    // Without a signature the client only asks whether this key would do (SSH_MSG_USERAUTH_PK_OK).
    if (!ctx.signature) return ctx.accept();
    if (!signatureValid(ctx)) {
      this.#log.warn({ login: target.login }, 'public key signature did not verify');
      return ctx.reject(['publickey']);
    }
    if (!person) return this.#refuseLocked(ctx, target.login, lockedUntil!);
    this.#keyOwner = person;
    this.#provenKey = { algo: ctx.key.algo, data: ctx.key.data };
    // Partial success: the key is right, the TOTP code is still required.
    return ctx.reject(['keyboard-interactive'], true);
  }

  async #secondFactor(ctx: KeyboardAuthContext): Promise<void> {
    const person = this.#keyOwner;
    if (!person) return ctx.reject(['publickey']);
    const answers = await new Promise<string[]>((resolve) => {
      ctx.prompt([{ prompt: 'Verification code (authenticator app): ', echo: false }], resolve);
    });
    const code = (answers[0] ?? '').trim();
    const ok = code.length > 0 && code.length <= 64 && (await this.deps.identity.verifySecondFactor(person.personId, code));
    if (!ok) {
      this.#codeAttempts++;
      const key = this.#provenKey;
      const lockedUntil = key ? await this.#lockedUntil(person.login, key.algo, key.data) : null;
      if (lockedUntil) return this.#refuseLocked(ctx, person.login, lockedUntil);
      if (this.#codeAttempts >= (this.deps.maxCodeAttempts ?? 3)) {
        // SSH's disconnect carries no text through ssh2: the banner says why, before the door closes.
        sendAuthBanner(this.conn, `jitgate: ${this.#codeAttempts} wrong verification codes; connection closed. Try again with a fresh code.`);
        ctx.reject([]);
        this.conn.end();
        return;
      }
      return ctx.reject(['keyboard-interactive'], true);
    }
    this.#principal = { ...person, authSessionId: `ssh:${this.id}` };
    // The identity module audits sign-ins and failed codes (and locks); the log line ties them to this connection.
    this.#log.info({ person: person.login, computer: this.#target?.computer ?? null }, 'front door sign-in');
    ctx.accept();
  }

  async #lockedUntil(login: string, algo: string, data: Buffer): Promise<Date | null> {
    return (await this.deps.identity.keyOwnerLockedUntil?.(login, algo, data)) ?? null;
  }

  /** The key is proven and its owner is locked out: say until when, then close (the identity module audited the lock). */
  #refuseLocked(ctx: AuthContext, login: string, until: Date): void {
    this.#log.info({ login, until: until.toISOString() }, 'front door sign-in refused: locked');
    sendAuthBanner(this.conn, `jitgate: ${login} is locked until ${utcMinute(until)} after too many failed sign-ins.`);
    ctx.reject([]);
    this.conn.end();
  }

  close(reason: string): Promise<void> {
    this.conn.end();
    return this.#handler?.close(reason) ?? Promise.resolve();
  }
}

/**
 * Start the front door. Wiring (main.ts): `startFrontDoor({ host, port,
 * hostKeyFile, dataDir, identity, broker, listComputers, recorder,
 * audit, log })` when `sshFrontDoor.enabled`; call `close()`
 * on shutdown.
 */
export async function startFrontDoor(deps: FrontDoorDeps): Promise<FrontDoorHandle> {
  const hostKey = loadOrCreateHostKey({ hostKeyFile: deps.hostKeyFile, dataDir: deps.dataDir });
  const preconnectUpstream = deps.preconnectUpstream ?? preconnectUpstreamDefault;
  const live = new Set<FrontDoorConnection>();
  /** Known once listening (deps.port may be 0); connections arrive only after that. */
  let port = deps.port;
  const server = new Server(
    {
      hostKeys: [hostKey.privateKey],
      ident: 'jitgate',
      algorithms: {
        cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr'],
      },
    },
    (conn, info) => {
      // Interactive traffic: no Nagle delay on keystrokes and echoes (OpenSSH sets TCP_NODELAY for sessions too).
      // (ssh2 has Connection#setNoDelay; its type definitions lack it.)
      (conn as Connection & { setNoDelay(noDelay: boolean): void }).setNoDelay(true);
      const c = new FrontDoorConnection(conn, deps, info.ip, preconnectUpstream, port);
      live.add(c);
      conn.on('close', () => live.delete(c));
    },
  );
  server.on('error', (err: Error) => deps.log.error({ err }, 'ssh front door listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(deps.port, deps.host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  deps.log.info({ host: deps.host, port, hostKey: hostKey.sha256 }, 'ssh front door listening');
  let closing: Promise<void> | null = null;
  return {
    port,
    hostKeyPublic: hostKey.publicLine,
    hostKeySha256: hostKey.sha256,
    connections: () => live.size,
    close: () => {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        await Promise.allSettled([...live].map((c) => c.close('gateway shutting down')));
        await stopped;
      })();
      return closing;
    },
  };
}
