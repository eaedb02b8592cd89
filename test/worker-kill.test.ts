import { randomBytes } from 'node:crypto';
import { AddRequest, Attribute, Change, Client, DeleteRequest, ModifyRequest } from 'ldapts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ConnectionOptions } from 'bullmq';
import type { Database } from '../core/db/database.js';
import { migrate } from '../core/db/migrations.js';
import { openDatabase } from '../core/db/open.js';
import { silentLogger } from '../core/logging.js';
import type { AccountStore } from '../provisioner/account-store.js';
import { JitQueue } from '../provisioner/jobs.js';
import { JIT_PRESETS } from '../provisioner/jit-settings.js';
import { LdapAccountStore } from '../provisioner/stores/ldap.store.js';
import { JitFixture } from './fixtures/jit-fixture.js';
import { spawnCli } from './harness/cli.js';
import { LDAP_OP, ldapMessageSize, parseLdapRequest, startLdapPauseProxy, type LdapPauseProxy } from './harness/ldap-pause-proxy.js';
import { createTestDatabase } from './harness/postgres.js';
import { sambaAdAvailable, startSambaAd, type SambaAdHandle } from './harness/samba-ad.js';
import { runJitgate, startRedisTcpBridge, startWorkerProcess, writeWorkerConfig, type RedisBridge, type WorkerConfig, type WorkerProcess } from './harness/worker-process.js';

/**
 * The worker is a real `jitgate serve --role worker` OS process, SIGKILLed at
 * exact LDAP steps: an LDAP-aware TLS proxy between it and the Samba AD DC
 * holds the first group modify (or delete) and the test kills the process
 * while that request is in flight. No test hook exists in product code.
 * Afterwards a second worker process (lease-expiry job) or `jitgate
 * reconcile` must leave no JIT account and no membership in the directory.
 */
const avail = sambaAdAvailable();
const redisSocket = inject('redisSocket');
const pgUrl = inject('pgUrl');
const skipReason = !avail.ok ? avail.reason : !redisSocket || !pgUrl ? `needs Redis and PostgreSQL: ${inject('missing')}` : undefined;

const STORE = 'corp-ad';
/** Lease of the sessions under test: long enough to land the kill, short enough to wait out (the engine takes whole minutes; the test shortens the lease in the database). */
const LEASE_MS = 30_000;

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms).unref())]);
}

describe('ldap pause proxy framing (what decides where the kill lands)', () => {
  it('finds message boundaries and reads op and DN of add, modify and delete requests as ldapts encodes them', () => {
    const group = 'CN=JIT Admins,CN=Users,DC=jittest,DC=lan';
    const add = new AddRequest({ messageId: 7, dn: 'CN=carol_abc123,OU=JIT,DC=jittest,DC=lan', attributes: [new Attribute({ type: 'description', values: ['x'.repeat(300)] })] }).write();
    const mod = new ModifyRequest({ messageId: 300, dn: group, changes: [new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: ['CN=a,DC=b'] }) })] }).write();
    const del = new DeleteRequest({ messageId: 9, dn: 'CN=carol_abc123,OU=JIT,DC=jittest,DC=lan' }).write();
    expect(add.length).toBeGreaterThan(300); // long-form BER length
    const stream = Buffer.concat([add, mod, del]);
    expect(ldapMessageSize(stream)).toBe(add.length);
    expect(ldapMessageSize(stream.subarray(0, add.length - 1))).toBeNull();
    expect(ldapMessageSize(stream.subarray(0, 1))).toBeNull();
    expect(parseLdapRequest(add)).toEqual({ op: LDAP_OP.add, opName: 'add', messageId: 7, dn: 'CN=carol_abc123,OU=JIT,DC=jittest,DC=lan' });
    expect(parseLdapRequest(stream.subarray(add.length, add.length + mod.length))).toEqual({ op: LDAP_OP.modify, opName: 'modify', messageId: 300, dn: group });
    expect(parseLdapRequest(del)).toEqual({ op: LDAP_OP.del, opName: 'del', messageId: 9, dn: 'CN=carol_abc123,OU=JIT,DC=jittest,DC=lan' });
    expect(() => ldapMessageSize(Buffer.from([0x16, 0x03, 0x01]))).toThrow(/not an LDAPMessage/);
  });
});

describe.skipIf(skipReason !== undefined)(`worker process SIGKILLed mid-provisioning and mid-teardown (Samba AD)${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let ad: SambaAdHandle;
  let proxy: LdapPauseProxy;
  let bridge: RedisBridge;
  let db: Database;
  let fx: JitFixture;
  let directStore: LdapAccountStore;
  const secretKey = randomBytes(32).toString('base64');
  const auditKey = randomBytes(32);
  const configs: WorkerConfig[] = [];
  const workers: WorkerProcess[] = [];
  const queues: JitQueue[] = [];

  /** Query the DC directly as Administrator (not through jitgate, not through the proxy). */
  async function asAdmin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({ url: ad.url, tlsOptions: { ca: [ad.caCert] } });
    try {
      await c.bind(ad.adminDn, ad.adminPassword);
      return await fn(c);
    } finally {
      await c.unbind().catch(() => undefined);
    }
  }
  const jitAccounts = () =>
    asAdmin(async (c) => {
      const { searchEntries } = await c.search(ad.baseDn, { filter: '(&(objectClass=user)(description=jitgate:*))', attributes: ['sAMAccountName', 'userAccountControl'] });
      return searchEntries.map((e) => ({ name: String(e.sAMAccountName), disabled: (Number(e.userAccountControl) & 2) !== 0 }));
    });
  const members = (group: string) =>
    asAdmin(async (c) => {
      const { searchEntries } = await c.search(ad.adminGroupDns[group]!, { scope: 'base', attributes: ['member'] });
      const m = searchEntries[0]?.member;
      return (Array.isArray(m) ? m : m ? [m] : []).map((x) => String(x).toLowerCase());
    });
  const isMember = async (group: string, account: string) => (await members(group)).some((dn) => dn.startsWith(`cn=${account.toLowerCase()},`));

  /** One scenario's isolation: its own Redis prefix, queue and worker configs (via the proxy, or direct to the DC). */
  async function scenario(extra: { provisioningTimeoutSeconds?: number } = {}) {
    const prefix = `jgt-kill-${randomBytes(4).toString('hex')}`;
    const queue = new JitQueue({ connection: { path: redisSocket, maxRetriesPerRequest: null } as ConnectionOptions, prefix });
    queues.push(queue);
    await queue.ready();
    const base = { databaseUrl: dbUrl, redisUrl: bridge.url, redisPrefix: prefix, installationId: fx.installationId, secretKey, auditKey: auditKey.toString('base64'), ...extra };
    const storeBase = { name: STORE, bindDn: ad.bindDn, baseDn: ad.baseDn, accountsContainer: ad.jitOu, groups: { ...ad.adminGroupDns }, upnSuffix: ad.upnSuffix };
    const viaProxy = writeWorkerConfig({ ...base, store: { ...storeBase, url: proxy.url, caCert: proxy.caCert } });
    const direct = writeWorkerConfig({ ...base, store: { ...storeBase, url: ad.url, caCert: ad.caCert } });
    configs.push(viaProxy, direct);
    const env = { JGT_TEST_LDAP_PASSWORD: ad.bindPassword };
    const start = async (cfg: WorkerConfig) => {
      const w = await startWorkerProcess(cfg.path, env);
      workers.push(w);
      return w;
    };
    return { queue, viaProxy, direct, env, start };
  }

  /** A lease of LEASE_MS from now, set before provisioning (as if the person had asked for half a minute). */
  async function shortLease<T extends { id: string }>(s: T): Promise<T> {
    await fx.repo.extendLease(s.id, new Date(Date.now() + LEASE_MS));
    return s;
  }

  async function auditTypes(sessionId: string) {
    return (await fx.audit.list({ sessionId })).map((e) => ({ type: e.type, actor: e.actor }));
  }

  let dbUrl: string;
  beforeAll(async () => {
    ad = await startSambaAd();
    proxy = await startLdapPauseProxy({ upstreamHost: ad.dcAddress, upstreamCa: ad.caCert });
    bridge = await startRedisTcpBridge(redisSocket);
    dbUrl = await createTestDatabase(pgUrl, `jgt_kill_${randomBytes(4).toString('hex')}`);
    db = await openDatabase({ url: dbUrl, dataDir: '/nonexistent', poolSize: 4 });
    await migrate(db);
    directStore = new LdapAccountStore({
      url: ad.url, caCert: ad.caCert, bindDn: ad.bindDn, bindPassword: ad.bindPassword, baseDn: ad.baseDn,
      accountsContainer: ad.jitOu, groups: ad.adminGroupDns, logger: silentLogger(),
    });
    // The test process plays the gateway: it writes sessions and enqueues jobs.
    fx = new JitFixture(db, new Map<string, AccountStore>([[STORE, directStore]]), { auditKey });
  });

  afterAll(async () => {
    await Promise.allSettled(workers.map((w) => w.kill()));
    await Promise.allSettled(queues.map((q) => q.close()));
    await directStore?.close();
    await db?.close();
    await proxy?.close();
    await bridge?.close();
    for (const c of configs) c.remove();
    await ad?.stop();
  });

  it('named account: killed after the account add, before the group modify; a second worker process removes it at lease end', async () => {
    const { queue, viaProxy, direct, start } = await scenario();
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['JIT Admins'] });
    const w1 = await start(viaProxy);
    const held = proxy.holdNext([LDAP_OP.modify, LDAP_OP.del]);
    fx.clock = new Date();
    const s = await shortLease(await fx.service.requestSession({ personLogin: 'carol', computer: pc, protocol: 'rdp', minutes: 1 }));
    await queue.provision(s.id);
    const req = await within(held, 60_000, 'the group modify to reach the proxy');
    const exit = await w1.kill();
    expect(exit.signal).toBe('SIGKILL');

    // The kill landed between create and group add: the add went through, the modify never did.
    const account = (await fx.repo.getSession(s.id))!.accountName!;
    expect(account).toMatch(/^carol_[a-z0-9]{6}$/);
    expect(req).toMatchObject({ opName: 'modify', dn: ad.adminGroupDns['JIT Admins'] });
    const adds = proxy.seen.filter((r) => r.opName === 'add');
    expect(adds.some((r) => r.dn.toLowerCase().startsWith(`cn=${account.toLowerCase()},`))).toBe(true);
    expect((await jitAccounts()).map((a) => a.name)).toContain(account);
    expect(await isMember('JIT Admins', account)).toBe(false);
    expect((await fx.repo.getSession(s.id))!.state).toBe('provisioning');

    // A second worker process (straight to the DC) takes over the queue: the
    // lease-expiry job scheduled before provisioning ends the session.
    const w2 = await start(direct);
    // The state turns 'ended' just before the session.ended event is written: wait for both.
    await waitFor('the orphan to be removed', async () => {
      const st = (await fx.repo.getSession(s.id))!.state;
      return (st === 'ended' || st === 'failed') && (await jitAccounts()).length === 0 && (await auditTypes(s.id)).some((t) => t.type === 'session.ended');
    });
    expect(await members('JIT Admins')).toEqual([]);
    const trail = await auditTypes(s.id);
    const types = trail.map((t) => t.type);
    expect(types).toContain('account.created');
    expect(types).toContain('lease.expired');
    expect(types.indexOf('account.deleted')).toBeGreaterThan(types.indexOf('account.created'));
    expect(types.at(-1)).toBe('session.ended');
    expect(trail.find((t) => t.type === 'lease.expired')!.actor).toMatch(/^system:(lease|reconciler)$/);
    expect((await fx.audit.verify()).ok).toBe(true);
    await w2.stop();
  }, 240_000);

  it('session ended, worker killed at the first teardown step (group modify); `jitgate reconcile` after the lease end removes account and memberships', async () => {
    const { queue, viaProxy, direct, env, start } = await scenario();
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['JIT Admins', 'Helpdesk'] });
    const w1 = await start(viaProxy);
    fx.clock = new Date();
    const s = await shortLease(await fx.service.requestSession({ personLogin: 'dave', computer: pc, protocol: 'ssh', minutes: 1 }));
    const result = await queue.waitFor<{ account: string; state: string }>(await queue.provision(s.id), 60_000);
    expect(result.state).toBe('active');
    const account = result.account;
    expect(await isMember('JIT Admins', account)).toBe(true);
    expect(await isMember('Helpdesk', account)).toBe(true);

    // The person closes the session: the gateway enqueues teardown; the worker dies on its first directory write.
    const held = proxy.holdNext([LDAP_OP.modify, LDAP_OP.del]);
    await queue.teardown(s.id, 'closed by user');
    const req = await within(held, 60_000, 'the teardown modify to reach the proxy');
    expect(req.opName).toBe('modify');
    expect(Object.values(ad.adminGroupDns)).toContain(req.dn);
    expect((await w1.kill()).signal).toBe('SIGKILL');
    expect((await fx.repo.getSession(s.id))!.state).toBe('ending');
    expect((await jitAccounts()).map((a) => a.name)).toContain(account);
    expect(await isMember('JIT Admins', account)).toBe(true);
    expect(await isMember('Helpdesk', account)).toBe(true);

    // Until the lease ends, a sweep must leave the session alone (dry run, clock set just before the lease end).
    const lease = (await fx.repo.getSession(s.id))!.leaseExpiresAt.getTime();
    fx.clock = new Date(lease - 1000);
    const early = await fx.service.reconcile({ dryRun: true });
    expect(early.expiredSessions).toBe(0);
    expect(early.actions).toEqual([]);

    await waitFor('the lease to run out', async () => Date.now() > lease + 1000, 120_000);
    const r = await runJitgate(['reconcile', '--json'], direct.path, env);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ dryRun: false, expiredSessions: 1, failures: [] });
    expect(await jitAccounts()).toEqual([]);
    expect(await members('JIT Admins')).toEqual([]);
    expect(await members('Helpdesk')).toEqual([]);
    expect((await fx.repo.getSession(s.id))!.state).toBe('ended');
    const trail = await auditTypes(s.id);
    const after = trail.slice(trail.findIndex((t) => t.type === 'lease.expired'));
    expect(after.map((t) => t.type)).toEqual(['lease.expired', 'account.group_removed', 'account.group_removed', 'account.deleted', 'session.ended']);
    expect(after[0]!.actor).toBe('system:reconciler');
    expect((await fx.audit.list({ type: 'reconcile.completed' })).some((e) => e.data.expiredSessions === 1)).toBe(true);
    expect((await fx.audit.verify()).ok).toBe(true);
  }, 240_000);

  it('`jitgate checkout` SIGKILLed right after its first group add: it named the session first, and `jitgate reconcile` rolls it back after the provisioning timeout, not the 60-minute lease', async () => {
    const TIMEOUT_S = 20;
    const { viaProxy, direct, env } = await scenario({ provisioningTimeoutSeconds: TIMEOUT_S });
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['JIT Admins', 'Helpdesk'] });
    // JIT Admins is added first; hold the Helpdesk add: the process dies with the account already in JIT Admins
    const held = proxy.holdNext([LDAP_OP.modify], (dn) => dn === ad.adminGroupDns.Helpdesk);
    const child = spawnCli(['checkout', pc.name, '--for', 'gina', '--minutes', '60', '--config', viaProxy.path], env);
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, sig) => r(sig)));
    await within(held, 90_000, 'the second group add to reach the proxy');
    const sessionId = /session ([0-9a-f-]{36}) requested on/.exec(err)?.[1];
    expect(sessionId, err).toBeDefined();
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const s = (await fx.repo.getSession(sessionId!))!;
    expect(s.state).toBe('provisioning');
    expect(s.leaseExpiresAt.getTime() - s.createdAt.getTime()).toBeGreaterThanOrEqual(59 * 60_000);
    const account = s.accountName!;
    expect(await isMember('JIT Admins', account)).toBe(true);

    // Once the provisioning timeout has passed (the lease is an hour away), a sweep rolls the session back.
    await waitFor('the provisioning timeout to pass', async () => Date.now() > s.createdAt.getTime() + TIMEOUT_S * 1000 + 1000, 120_000);
    const r = await runJitgate(['reconcile', '--json'], direct.path, env);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { sessions: { sessionId: string; done: boolean; reason: string; account: string }[] };
    expect(report.sessions.find((x) => x.sessionId === sessionId)).toMatchObject({ done: true, account, reason: `provisioning did not finish within ${TIMEOUT_S} s` });
    expect((await jitAccounts()).map((a) => a.name)).not.toContain(account);
    expect(await isMember('JIT Admins', account)).toBe(false);
    expect((await fx.repo.getSession(sessionId!))!.state).toBe('ended');
    // and in words for the operator
    const text = await runJitgate(['reconcile'], direct.path, env);
    expect(text.stdout).toMatch(/ended \d+ session\(s\)/);
  }, 240_000);

  it('shared account: killed between create and group add; at lease end it is out of the group, disabled, password rotated', async () => {
    const { queue, viaProxy, direct, start } = await scenario();
    const org = await fx.organization();
    const pc = await fx.computer({ enabled: true, deleteOnCheckIn: false, accountMode: 'shared', adminGroups: ['JIT Admins'] }, { orgId: org.id });
    const w1 = await start(viaProxy);
    const held = proxy.holdNext([LDAP_OP.modify, LDAP_OP.del]);
    fx.clock = new Date();
    const s = await shortLease(await fx.service.requestSession({ personLogin: 'erin', computer: pc, protocol: 'rdp', minutes: 1 }));
    await queue.provision(s.id);
    const req = await within(held, 60_000, 'the group modify to reach the proxy');
    expect((await w1.kill()).signal).toBe('SIGKILL');
    const account = `msp-${org.code}`;
    expect(req).toMatchObject({ opName: 'modify', dn: ad.adminGroupDns['JIT Admins'] });
    expect((await fx.repo.getSession(s.id))!.accountName).toBe(account);
    expect(await jitAccounts()).toContainEqual({ name: account, disabled: false });
    expect(await isMember('JIT Admins', account)).toBe(false);

    const w2 = await start(direct);
    await waitFor('the shared account to be released', async () =>
      (await fx.repo.getSession(s.id))!.state === 'ended' && (await auditTypes(s.id)).some((t) => t.type === 'session.ended'));
    // Kept by design (shared accounts are disabled between sessions), never left usable or privileged.
    expect(await jitAccounts()).toEqual([{ name: account, disabled: true }]);
    expect(await members('JIT Admins')).toEqual([]);
    const types = (await auditTypes(s.id)).map((t) => t.type);
    expect(types).toEqual(expect.arrayContaining(['account.created', 'lease.expired', 'account.disabled', 'account.password_rotated', 'session.ended']));
    expect((await fx.audit.verify()).ok).toBe(true);
    await w2.stop();
    await directStore.delete(account);
  }, 240_000);
});
