/**
 * A complete SSH front door on real services, shared by
 * test/ssh-front-door.test.ts and bench/ssh-gateway.bench.ts: an sshd test
 * host with the Linux account store (SshAccountStore), the JIT engine on
 * PGlite, the BullMQ queue and worker on a real Redis, a small SessionBroker
 * (access = "the computer exists", provisioning through the queue, teardown
 * through the queue), a test identity (registered public keys + a TOTP secret
 * per person), and `startFrontDoor` on a loopback port.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrokeredSession } from '../gateway/sessions/session-broker.js';
import type { ConnectionOptions, Worker } from 'bullmq';
import { generateSecret, generate, verify } from 'otplib';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import { migrate } from '../core/db/migrations.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import type { Computer } from '../core/domain.js';
import { CoreErrors, JitgateError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logging.js';
import { redisOptions } from '../core/redis.js';
import type { Principal } from '../gateway/auth/principal.js';
import type { FrontDoorIdentity, OpenedSession, SessionBroker } from '../gateway/contracts.js';
import { startFrontDoor, type FrontDoorDeps, type FrontDoorHandle } from '../gateway/ssh/front-door.js';
import { buildJobHandlers } from '../provisioner/job-handlers.js';
import { JitQueue, startJitWorker } from '../provisioner/jobs.js';
import { JIT_PRESETS, type JitSettingsInput } from '../provisioner/jit-settings.js';
import { toComputer } from '../provisioner/jit-repository.js';
import { SshAccountStore } from '../provisioner/stores/ssh.store.js';
import { JitFixture } from '../test/fixtures/jit-fixture.js';
import { startSshHost, type SshHostHandle } from '../test/harness/ssh-host.js';

export const ADMIN_GROUP = 'sudo';

export interface RigPerson {
  principal: Principal;
  /** OpenSSH private key file (unencrypted ed25519) and its contents. */
  keyPath: string;
  privateKey: Buffer;
  totpSecret: string;
}

/** Registered keys + TOTP secrets, verified the way the identity module does (RFC 6238, ±1 step). */
export class RigIdentity implements FrontDoorIdentity {
  readonly #people = new Map<string, { principal: Principal; keyBlob: Buffer; secret: string }>();
  readonly codeChecks: { personId: string; ok: boolean }[] = [];
  /** People locked out (personId → until), as the identity module locks them after failed sign-ins. */
  readonly locks = new Map<string, Date>();

  add(principal: Principal, keyBlob: Buffer, secret: string): void {
    this.#people.set(principal.login, { principal, keyBlob, secret });
  }

  personByPublicKey(login: string, _algo: string, keyData: Buffer): Promise<Principal | null> {
    const p = this.#people.get(login);
    return Promise.resolve(p && p.keyBlob.equals(keyData) && !this.#locked(p.principal.personId) ? p.principal : null);
  }

  keyOwnerLockedUntil(login: string, _algo: string, keyData: Buffer): Promise<Date | null> {
    const p = this.#people.get(login);
    return Promise.resolve(p && p.keyBlob.equals(keyData) ? this.#locked(p.principal.personId) : null);
  }

  #locked(personId: string): Date | null {
    const until = this.locks.get(personId);
    return until && until.getTime() > Date.now() ? until : null;
  }

  async verifySecondFactor(personId: string, code: string): Promise<boolean> {
    const p = [...this.#people.values()].find((x) => x.principal.personId === personId);
    let ok = false;
    if (p && !this.#locked(personId) && /^\d{6}$/.test(code)) {
      const r = await verify({ secret: p.secret, token: code, epochTolerance: 30 }).catch(() => ({ valid: false }));
      ok = r.valid;
    }
    this.codeChecks.push({ personId, ok });
    return ok;
  }
}

/** A SessionBroker over the real JIT engine and queue (what gateway/sessions does, minus live registry and access policy). */
export class RigBroker implements SessionBroker {
  readonly opened: string[] = [];
  readonly ended: string[] = [];
  readonly #terminators = new Map<string, ((reason: 'terminated' | 'lease-expired', by: string) => void)[]>();
  readonly #watchers = new Map<string, ((change: { count: number; event: 'joined' | 'left'; by: string }) => void)[]>();
  /** Milliseconds each open() spent provisioning (request → job done → credentials). */
  readonly provisionMs: number[] = [];
  /** Milliseconds from open() to the proxy reporting the upstream login (provision + connect). */
  readonly loginMs: number[] = [];
  constructor(
    readonly fx: JitFixture,
    readonly queue: JitQueue,
  ) {}

  /** Resolves when every session opened so far has been torn down (state ended). */
  async allEnded(timeoutMs = 60_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const rows = await this.fx.db.query("SELECT count(*)::int AS n FROM sessions WHERE id = ANY($1::uuid[]) AND state <> 'ended'", [this.opened]);
      if (Number(rows[0]?.n ?? 0) === 0) return;
      if (Date.now() > end) throw new Error('sessions still open after the teardown deadline');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** What an admin's terminate does to the proxy holding the session. */
  terminate(sessionId: string, by: string): number {
    const cbs = this.#terminators.get(sessionId) ?? [];
    for (const cb of cbs) cb('terminated', by);
    return cbs.length;
  }

  /** What the live-session registry does when somebody starts or stops watching the session. */
  watch(sessionId: string, change: { count: number; event: 'joined' | 'left'; by: string }): number {
    const cbs = this.#watchers.get(sessionId) ?? [];
    for (const cb of cbs) cb(change);
    return cbs.length;
  }

  async open(req: Parameters<SessionBroker['open']>[0], onProgress: Parameters<SessionBroker['open']>[1]): Promise<OpenedSession & Pick<BrokeredSession, 'onWatchers'>> {
    const rows = await this.fx.db.query('SELECT * FROM computers WHERE name = $1 OR id::text = $1', [req.computerRef]);
    if (!rows[0]) throw new JitgateError(CoreErrors.JIT_ERR_ACCESS_DENIED, { computer: req.computerRef });
    const computer = toComputer(rows[0]);
    const t0 = performance.now();
    await req.admit?.(computer);
    req.onAccessGranted?.(computer);
    const s = await this.fx.service.requestSession({ personLogin: req.principal.login, personId: null, computer, protocol: req.protocol });
    onProgress('creating account');
    const job = await this.queue.provision(s.id);
    await this.queue.waitFor(job, 60_000);
    onProgress('account ready');
    // As gateway/sessions does: the injected credentials, or for an elevated session the account name only.
    const credentials = await this.fx.service.sessionLogin(s.id);
    const session = (await this.fx.repo.getSession(s.id))!;
    this.opened.push(s.id);
    this.provisionMs.push(performance.now() - t0);
    let ended: Promise<void> | null = null;
    return {
      session,
      computer,
      credentials,
      onTerminate: (cb) => {
        this.#terminators.set(s.id, [...(this.#terminators.get(s.id) ?? []), cb]);
      },
      // as BrokeredSession.onWatchers (gateway/sessions/session-broker.ts)
      onWatchers: (cb: (change: { count: number; event: 'joined' | 'left'; by: string }) => void) => {
        this.#watchers.set(s.id, [...(this.#watchers.get(s.id) ?? []), cb]);
      },
      loggedIn: () => {
        this.loginMs.push(performance.now() - t0);
        return this.fx.service.releaseCredentials(s.id);
      },
      end: (reason: string) => {
        ended ??= this.queue.teardown(s.id, reason).then(() => {
          this.ended.push(s.id);
        });
        return ended;
      },
    };
  }
}

export interface Rig {
  host: SshHostHandle;
  db: PgliteDatabase;
  fx: JitFixture;
  queue: JitQueue;
  broker: RigBroker;
  identity: RigIdentity;
  dir: string;
  log: Logger;
  person(login: string): RigPerson;
  /** A computer on the test host (JIT maximum security, joins the sudo group; `jit` overrides those settings); `policy` as in the inventory. */
  computer(policy?: Record<string, unknown>, jit?: Partial<JitSettingsInput>): Promise<Computer>;
  frontDoor(extra?: Partial<FrontDoorDeps>): Promise<FrontDoorHandle>;
  /** JIT accounts of `login` on the test host now (`<login>_xxxxxx`). */
  accountsOf(login: string): Promise<string[]>;
  close(): Promise<void>;
}

/** `groups`: configured group → Linux group of the host's store (default: `admins` → sudo). */
export async function startRig(redisSocket: string, opts: { log?: Logger; concurrency?: number; groups?: Record<string, string> } = {}): Promise<Rig> {
  const log = opts.log ?? silentLogger();
  const dir = mkdtempSync(join(tmpdir(), 'jgt-fd-'));
  const host = await startSshHost();
  const store = new SshAccountStore({
    host: host.address, port: host.port, username: host.adminUser, privateKey: host.adminPrivateKey,
    hostKeySha256: host.hostKeySha256, groups: opts.groups ?? { admins: ADMIN_GROUP }, logger: log, timeoutMs: 20_000,
  });
  const db = await PgliteDatabase.open();
  await migrate(db);
  const fx = new JitFixture(db, new Map([['linux', store]]));
  const connection = redisOptions({ path: redisSocket }, { maxRetriesPerRequest: null }) as ConnectionOptions;
  const prefix = `fd${randomBytes(4).toString('hex')}`;
  const queue = new JitQueue({ connection, prefix, teardownAttempts: 3 });
  await queue.ready();
  const worker: Worker = startJitWorker({
    connection, prefix, concurrency: opts.concurrency ?? 4, log,
    handlers: buildJobHandlers(fx.service, queue, async (id) => (await fx.repo.getSession(id))?.leaseExpiresAt ?? null),
  });
  const broker = new RigBroker(fx, queue);
  const identity = new RigIdentity();
  const doors: FrontDoorHandle[] = [];

  return {
    host, db, fx, queue, broker, identity, dir, log,
    person(login) {
      return frontDoorPerson(identity, dir, { personId: randomUUID(), login, displayName: login, role: 'technician', organizationId: null, authSessionId: '' });
    },
    async computer(policy = {}, jit = {}) {
      const c = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local', ...jit }, { localStore: 'linux' });
      const rows = await db.query('UPDATE computers SET address = $2, ssh_port = $3, policy = $4 WHERE id = $1 RETURNING *', [
        c.id, host.address, host.port, JSON.stringify({ sshHostKeySha256: host.hostKeySha256, ...policy }),
      ]);
      return toComputer(rows[0]!);
    },
    async frontDoor(extra = {}) {
      const d = await startFrontDoor({ host: '127.0.0.1', port: 0, dataDir: dir, identity, broker, log, ...extra });
      doors.push(d);
      return d;
    },
    async accountsOf(login) {
      const r = await host.exec(`getent passwd | cut -d: -f1 | grep '^${login}_' || true`);
      return r.stdout.split('\n').filter(Boolean);
    },
    async close() {
      for (const d of doors) await d.close().catch(() => undefined);
      await worker.close().catch(() => undefined);
      await queue.close().catch(() => undefined);
      await store.close().catch(() => undefined);
      await db.close().catch(() => undefined);
      await host.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A person the front door knows: a fresh ed25519 key in `dir` and a TOTP secret, registered with `identity`. */
export function frontDoorPerson(identity: RigIdentity, dir: string, principal: Principal): RigPerson {
  const keyPath = join(dir, `${principal.login}_ed25519`);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', principal.login, '-f', keyPath]);
  chmodSync(keyPath, 0o600);
  const pubLine = readFileSync(`${keyPath}.pub`, 'utf8').trim().split(/\s+/);
  const totpSecret = generateSecret();
  identity.add(principal, Buffer.from(pubLine[1]!, 'base64'), totpSecret);
  return { principal, keyPath, privateKey: readFileSync(keyPath), totpSecret };
}

/**
 * How the tests run the real OpenSSH clients (ssh, scp, sftp) against a front
 * door: no user config, only `knownHosts` trusted, only the person's key,
 * public key then keyboard-interactive (the TOTP prompt, answered by
 * {@link writeAskpass}). Options first, then the command's own arguments.
 */
export function opensshArgs(knownHosts: string, person: RigPerson): string[] {
  return [
    '-F', '/dev/null',
    '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes',
    '-o', 'IdentitiesOnly=yes', '-o', 'PreferredAuthentications=publickey,keyboard-interactive', '-o', 'UpdateHostKeys=no',
    '-o', 'ConnectTimeout=30', '-i', person.keyPath,
  ];
}

/** The environment for {@link opensshArgs}: the askpass program answers the TOTP prompt (`askpass` default: the person's current code). */
export function opensshEnv(home: string, person: RigPerson, askpass?: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: home, SSH_ASKPASS: askpass ?? writeAskpass(home, person.totpSecret), SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' };
}

/** Run one of the OpenSSH clients to the end: exit code (null when killed after 90 s), stdout and stderr. */
export function runOpenssh(cmd: 'ssh' | 'scp' | 'sftp', args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The current TOTP code for a secret (what the person's authenticator shows). */
export function totpNow(secret: string): Promise<string> {
  return generate({ secret });
}

/** An ssh2 client signed in through the front door: public key, then the code answered at the prompt. */
export function frontDoorClient(port: number, username: string, person: RigPerson, code: string | Promise<string>, extra: Partial<ConnectConfig> = {}): Promise<Client> {
  return Promise.resolve(code).then(
    (answer) =>
      new Promise<Client>((resolve, reject) => {
        const c = new Client();
        c.once('ready', () => resolve(c));
        c.once('error', (err) => {
          c.destroy();
          reject(err);
        });
        c.connect({
          host: '127.0.0.1',
          port,
          username,
          readyTimeout: 30_000,
          authHandler: [
            { type: 'publickey', username, key: person.privateKey },
            { type: 'keyboard-interactive', username, prompt: (_n: string, _i: string, _l: string, prompts: unknown[], finish: (a: string[]) => void) => finish(prompts.map(() => answer)) },
          ] as never,
          ...extra,
        });
      }),
  );
}

/** Run a command over an ssh2 client; stdout, stderr and the exit code. */
export function execOver(c: Client, cmd: string): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    c.exec(cmd, (err, stream: ClientChannel) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      let code: number | null = null;
      stream.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
      stream.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
      stream.on('exit', (x: number | null) => (code = x));
      stream.on('close', () => resolve({ stdout, stderr, code }));
    });
  });
}

/** An askpass program answering the TOTP prompt with the current code (RFC 6238, computed in the script itself). */
export function writeAskpass(dir: string, secret: string | null, fixedAnswer?: string): string {
  const path = join(dir, `askpass-${randomBytes(3).toString('hex')}`);
  const body = `#!${process.execPath}
const { createHmac } = require('node:crypto');
const fixed = ${JSON.stringify(fixedAnswer ?? null)};
if (fixed !== null) { process.stdout.write(fixed + '\\n'); process.exit(0); }
const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
let bits = '';
for (const ch of ${JSON.stringify(secret ?? '')}.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
const counter = Buffer.alloc(8);
counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000)));
const h = createHmac('sha1', key).update(counter).digest();
const o = h[h.length - 1] & 15;
const n = (h.readUInt32BE(o) & 0x7fffffff) % 1000000;
process.stdout.write(String(n).padStart(6, '0') + '\\n');
`;
  writeFileSync(path, body, { mode: 0o700 });
  return path;
}
