import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { generate, generateSecret } from 'otplib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Database } from '../core/db/database.js';
import { migrate } from '../core/db/migrations.js';
import { openDatabase } from '../core/db/open.js';
import { SecretBox } from '../core/secret-box.js';
import { parsePublicKeyLine } from '../gateway/auth/ssh-key.js';
import { JIT_PRESETS } from '../provisioner/jit-settings.js';
import { openFrontDoorShell, startGatewayProcess, writeGatewayConfig, type FrontDoorShell, type GatewayConfig, type GatewayProcess } from './harness/gateway-process.js';
import { createTestDatabase } from './harness/postgres.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from './harness/ssh-host.js';
import { startRedisTcpBridge, type RedisBridge } from './harness/worker-process.js';

/**
 * Issue 12 item 4, second half, on real processes: `jitgate serve` (gateway,
 * SSH front door and worker in one process) holds a front-door session whose
 * JIT account sits in `sudo` on a real sshd test host, and is SIGKILLed. The
 * session's holder (`gateway:<id>`) stops refreshing its Redis alive key; a
 * new `jitgate serve` on the same configuration must tear the session down as
 * soon as that key expires (20 s), not at the lease end (60 minutes). The
 * graceful path (SIGTERM) is the control. No test hook in product code.
 */
const avail = sshHostAvailable();
const redisSocket = inject('redisSocket');
const pgUrl = inject('pgUrl');
const skipReason = !avail.ok ? avail.reason : !redisSocket || !pgUrl ? `needs Redis and PostgreSQL: ${inject('missing')}` : undefined;

const STORE = 'linux';
const ADMIN_GROUP = 'sudo';
/** How often the worker looks for sessions whose gateway is gone (the config's minimum). */
const ORPHAN_CHECK_SECONDS = 2;
/** RedisLiveSessions: alive key time-to-live = 4 × the 5 s heartbeat. */
const ALIVE_TTL_MS = 20_000;

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms).unref())]);
}

type SessionRow = {
  id: string;
  state: string;
  holder: string | null;
  account_name: string | null;
  end_reason: string | null;
  lease_expires_at: Date;
  created_at: Date;
  ended_at: Date | null;
};

describe.skipIf(skipReason !== undefined)(`gateway process SIGKILLed with an open front-door session (sshd host)${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let host: SshHostHandle;
  let bridge: RedisBridge;
  let db: Database;
  let redis: Redis;
  let cfg: GatewayConfig;
  /** Same installation, but no periodic orphan check and no scheduled sweep within the test: only the sweep at start can act. */
  let cfgStartOnly: GatewayConfig;
  let keyDir: string;
  let orgId: string;
  let computerName: string;
  const prefix = `jgt-gwkill-${randomBytes(4).toString('hex')}`;
  const secretKey = randomBytes(32).toString('base64');
  const box = SecretBox.fromBase64(secretKey);
  const processes: GatewayProcess[] = [];
  const shells: FrontDoorShell[] = [];

  /** A technician of the organization with TOTP enrolled and an SSH key registered (as the web app leaves them). */
  async function person(): Promise<{ login: string; privateKey: Buffer; totpSecret: string }> {
    const login = `t${randomBytes(3).toString('hex')}`.replace(/[0-9]/g, 'x');
    const id = randomUUID();
    const totpSecret = generateSecret();
    await db.query(
      "INSERT INTO people (id, login, display_name, role, organization_id, totp_secret_enc, totp_enabled) VALUES ($1, $2, $2, 'technician', $3, $4, true)",
      [id, login, orgId, box.encrypt(totpSecret, `totp:${id}`)],
    );
    const keyPath = join(keyDir, login);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', login, '-f', keyPath]);
    chmodSync(keyPath, 0o600);
    const k = parsePublicKeyLine(readFileSync(`${keyPath}.pub`, 'utf8'));
    await db.query('INSERT INTO ssh_keys (id, person_id, public_key, fingerprint, label) VALUES ($1, $2, $3, $4, $5)', [randomUUID(), id, k.publicKey, k.fingerprint, 'laptop']);
    return { login, privateKey: readFileSync(keyPath), totpSecret };
  }

  async function start(config: GatewayConfig = cfg): Promise<GatewayProcess> {
    const p = await startGatewayProcess(config.path);
    processes.push(p);
    return p;
  }

  /** Sign in through the front door, then prove in the shell that the JIT account is logged in and in the admin group. */
  async function openSession(gw: GatewayProcess, who: { login: string; privateKey: Buffer; totpSecret: string }) {
    const sh = await openFrontDoorShell({
      port: gw.sshPort, hostKeySha256: gw.sshHostKeySha256, user: `${who.login}+${computerName}`, privateKey: who.privateKey, code: await generate({ secret: who.totpSecret }),
    });
    shells.push(sh);
    // The echoed command line shows `who=$(`, never `who=<login>_`: only the command's output matches.
    sh.type('echo "who=$(id -un) in=$(id -Gn | tr " " ,)"');
    const m = await sh.waitFor(new RegExp(`who=(${who.login}_[a-z0-9]{6}) in=(\\S+)`), 90_000);
    const account = m[1]!;
    expect(m[2]!.split(',')).toContain(ADMIN_GROUP);
    const rows = await db.query<SessionRow>("SELECT * FROM sessions WHERE person_login = $1 AND state <> 'ended'", [who.login]);
    expect(rows).toHaveLength(1);
    return { sh, account, session: rows[0]! };
  }

  const session = async (id: string) => (await db.query<SessionRow>('SELECT * FROM sessions WHERE id = $1', [id]))[0]!;
  /** `getent passwd` on the host, straight through its namespaces (not through jitgate). */
  const onHost = async (account: string) => (await host.exec(`getent passwd ${account}`)).code === 0;
  const inAdminGroup = async (account: string) => (await host.exec(`id -nG ${account}`)).stdout.split(/\s+/).includes(ADMIN_GROUP);
  const trail = async (sessionId: string) =>
    db.query<{ type: string; actor: string; data: Record<string, unknown> }>('SELECT type, actor, data FROM audit_events WHERE session_id = $1 ORDER BY seq', [sessionId]);

  beforeAll(async () => {
    host = await startSshHost();
    bridge = await startRedisTcpBridge(redisSocket);
    redis = new Redis({ path: redisSocket });
    const dbUrl = await createTestDatabase(pgUrl, `jgt_gwkill_${randomBytes(4).toString('hex')}`);
    db = await openDatabase({ url: dbUrl, dataDir: '/nonexistent', poolSize: 4 });
    await migrate(db);
    keyDir = mkdtempSync(join(tmpdir(), 'jgt-gwkill-keys-'));

    orgId = randomUUID();
    const orgName = `org-${orgId.slice(0, 8)}`;
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [orgId, orgName, String(100_000 + Math.floor(Math.random() * 800_000))]);
    computerName = `web-${randomBytes(3).toString('hex')}`;
    // Delete on check-in, local account in `sudo`, the host's key pinned (no credentials go to an unpinned host).
    await db.query(
      `INSERT INTO computers (id, organization_id, name, address, protocols, ssh_port, local_store, jit, policy)
       VALUES ($1, $2, $3, $4, '{ssh}', $5, $6, $7, $8)`,
      [
        randomUUID(), orgId, computerName, host.address, host.port, STORE,
        JSON.stringify({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local' }),
        JSON.stringify({ sshHostKeySha256: host.hostKeySha256 }),
      ],
    );
    const base = {
      databaseUrl: dbUrl, redisUrl: bridge.url, redisPrefix: prefix, secretKey,
      store: {
        name: STORE, host: host.address, port: host.port, username: host.adminUser, privateKeyPath: host.adminKeyPath,
        hostKeySha256: host.hostKeySha256, groups: { admins: ADMIN_GROUP }, organizations: [orgName],
      },
    };
    cfg = writeGatewayConfig({ ...base, orphanCheckSeconds: ORPHAN_CHECK_SECONDS });
    cfgStartOnly = writeGatewayConfig({ ...base, orphanCheckSeconds: 3600, reconcileIntervalSeconds: 3600, dataDir: cfg.dataDir });
  });

  afterAll(async () => {
    for (const s of shells) s.client.destroy();
    await Promise.allSettled(processes.map((p) => p.kill()));
    redis?.disconnect();
    await db?.close();
    await bridge?.close();
    cfg?.remove();
    cfgStartOnly?.remove();
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
    await host?.stop();
  });

  it('SIGKILL with an open session: the restarted gateway removes the account (and its sudo) once the dead gateway\'s alive key expires, not at the lease end', async () => {
    const gw1 = await start();
    const alice = await person();
    const { sh, account, session: s } = await openSession(gw1, alice);
    expect(s.state).toBe('active');
    expect(s.account_name).toBe(account);
    // The front door recorded which gateway holds the session.
    expect(s.holder).toMatch(/^gateway:gw-[0-9a-f]{12}$/);
    const aliveKey = `${prefix}:live:alive:${s.holder!.slice('gateway:'.length)}`;
    expect(await redis.exists(aliveKey)).toBe(1);
    expect(await onHost(account)).toBe(true);
    expect(await inAdminGroup(account)).toBe(true);

    expect(await gw1.kill()).toEqual({ code: null, signal: 'SIGKILL' });
    // Nothing cleaned up on the way out: the account keeps sudo and the session is still live.
    expect(await onHost(account)).toBe(true);
    expect(await inAdminGroup(account)).toBe(true);
    expect((await session(s.id)).state).toBe('active');
    await within(sh.closed, 30_000, 'the client connection to drop with the gateway');

    // A new process, same configuration (a new gateway id): at its start the old holder may still look alive;
    // its key expires at most ALIVE_TTL_MS after the last heartbeat, then the next orphan check ends the session.
    const gw2 = await start();
    const ended = await waitFor(
      'the session to end and the account to be gone from the host',
      async () => {
        const row = await session(s.id);
        return row.state === 'ended' && !(await onHost(account)) ? row : undefined;
      },
      60_000,
    );
    expect(ended.end_reason).toBe('its gateway is gone');
    // Proof it was the holder check, not the lease: the lease (60 minutes by default) had not passed.
    expect(ended.lease_expires_at.getTime() - ended.created_at.getTime()).toBeGreaterThanOrEqual(59 * 60_000);
    expect(ended.ended_at!.getTime()).toBeLessThan(ended.lease_expires_at.getTime() - 50 * 60_000);
    // The only sign that the holder died: its alive key timed out (nobody deleted it).
    expect(await redis.exists(aliveKey)).toBe(0);
    expect(await host.exec(`getent group ${ADMIN_GROUP}`)).toMatchObject({ code: 0 });
    expect((await host.exec(`getent group ${ADMIN_GROUP}`)).stdout).not.toContain(account);

    const events = await trail(s.id);
    const types = events.map((e) => e.type);
    expect(types).toContain('account.created');
    expect(types).toContain('session.ended');
    expect(types).not.toContain('lease.expired');
    expect(events.find((e) => e.type === 'session.ended')).toMatchObject({ actor: 'system:reconciler', data: { reason: 'its gateway is gone' } });
    expect(gw2.output()).toContain('reconciler ended sessions');
    expect(gw2.output()).toContain(s.id);
    await gw2.stop();
  }, 300_000);

  it('SIGKILL, and nothing runs until the dead gateway\'s alive key has expired: the sweep at the next start ends the session', async () => {
    const gw1 = await start();
    const carol = await person();
    const { sh, account, session: s } = await openSession(gw1, carol);
    const aliveKey = `${prefix}:live:alive:${s.holder!.slice('gateway:'.length)}`;
    expect(await gw1.kill()).toEqual({ code: null, signal: 'SIGKILL' });
    await within(sh.closed, 30_000, 'the client connection to drop with the gateway');
    await waitFor("the dead gateway's alive key to expire", async () => (await redis.exists(aliveKey)) === 0, ALIVE_TTL_MS + 30_000);
    // The whole installation is down: nobody has acted, the account still has sudo.
    expect((await session(s.id)).state).toBe('active');
    expect(await onHost(account)).toBe(true);
    expect(await inAdminGroup(account)).toBe(true);

    const seqBefore = Number((await db.query<{ n: string | null }>('SELECT max(seq) AS n FROM audit_events'))[0]?.n ?? 0);
    // orphanCheckSeconds and the sweep schedule are an hour here: only the sweep every worker runs at start can act.
    const gw2 = await start(cfgStartOnly);
    const ended = await waitFor(
      'the sweep at start to end the session and remove the account',
      async () => {
        const row = await session(s.id);
        return row.state === 'ended' && !(await onHost(account)) ? row : undefined;
      },
      60_000,
    );
    expect(ended.end_reason).toBe('its gateway is gone');
    expect(ended.ended_at!.getTime()).toBeLessThan(ended.lease_expires_at.getTime() - 50 * 60_000);
    // The sweep ends the session first, then compares the stores: its reconcile.completed event comes a little later.
    const sweeps = await waitFor(
      'the sweep at start to record reconcile.completed',
      async () => {
        const rows = await db.query<{ data: { sessionsEnded: number } }>("SELECT data FROM audit_events WHERE type = 'reconcile.completed' AND seq > $1", [seqBefore]);
        return rows.length > 0 ? rows : undefined;
      },
      60_000,
    );
    expect(sweeps.map((e) => e.data.sessionsEnded)).toContain(1);
    expect((await trail(s.id)).find((e) => e.type === 'session.ended')).toMatchObject({ actor: 'system:reconciler', data: { reason: 'its gateway is gone' } });
    await gw2.stop();
  }, 300_000);

  it('control, SIGTERM: the gateway ends its open session itself on the way out, with its own reason', async () => {
    const gw = await start();
    const bob = await person();
    const { sh, account, session: s } = await openSession(gw, bob);
    expect(s.holder).toMatch(/^gateway:gw-/);
    const aliveKey = `${prefix}:live:alive:${s.holder!.slice('gateway:'.length)}`;
    expect(await onHost(account)).toBe(true);

    const exit = await gw.stop();
    expect(exit).toEqual({ code: 0, signal: null });
    await within(sh.closed, 30_000, 'the client connection to close');
    // A clean close says goodbye: the alive key is deleted, not left to expire.
    expect(await redis.exists(aliveKey)).toBe(0);
    // Usually the process's own worker runs the teardown before it exits. If the worker closed first, the
    // job stays queued and the next start takes it at once (the alive key is already gone): both end the
    // session with the gateway's own reason, well before its lease.
    if ((await session(s.id)).state !== 'ended') {
      const next = await start();
      await waitFor('the queued teardown to run at the next start', async () => (await session(s.id)).state === 'ended', 60_000);
      await next.stop();
    }
    const row = await session(s.id);
    expect(row.state).toBe('ended');
    expect(row.end_reason).toBe('gateway shutting down');
    expect(await onHost(account)).toBe(false);
    const events = await trail(s.id);
    expect(events.map((e) => e.type)).toContain('session.ended');
    expect(events.find((e) => e.type === 'session.ended')!.data).toMatchObject({ reason: 'gateway shutting down' });
  }, 300_000);
});
