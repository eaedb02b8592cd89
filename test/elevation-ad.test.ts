/**
 * Elevation (mode elevate) against a real Samba AD DC, with real processes:
 * `jitgate serve --role worker` SIGKILLed right after it added the person's
 * existing account to a group (and mid-remove, at teardown), then `jitgate
 * reconcile`; and the directory unreachable during teardown. In every path
 * the memberships jitgate added are gone at the end and the membership the
 * account had before the session is still there. The kill lands at exact
 * LDAP steps: the LDAP-aware proxy of test/harness/ldap-pause-proxy.ts holds
 * the chosen group modify. No test hook exists in product code.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import type { ConnectionOptions } from 'bullmq';
import { Attribute, Change, Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Database } from '../core/db/database.js';
import { migrate } from '../core/db/migrations.js';
import { openDatabase } from '../core/db/open.js';
import { silentLogger } from '../core/logging.js';
import type { AccountStore } from '../provisioner/account-store.js';
import type { ReconcileReport } from '../provisioner/jit-account.service.js';
import { JitQueue } from '../provisioner/jobs.js';
import { LdapAccountStore } from '../provisioner/stores/ldap.store.js';
import { JitFixture } from './fixtures/jit-fixture.js';
import { createTestTlsIdentity, LDAP_OP, startLdapPauseProxy, type LdapPauseProxy } from './harness/ldap-pause-proxy.js';
import { createTestDatabase } from './harness/postgres.js';
import { sambaAdAvailable, startSambaAd, type SambaAdHandle } from './harness/samba-ad.js';
import { runJitgate, startRedisTcpBridge, startWorkerProcess, writeWorkerConfig, type RedisBridge, type WorkerConfig, type WorkerProcess } from './harness/worker-process.js';

const avail = sambaAdAvailable();
const redisSocket = inject('redisSocket');
const pgUrl = inject('pgUrl');
const skipReason = !avail.ok ? avail.reason : !redisSocket || !pgUrl ? `needs Redis and PostgreSQL: ${inject('missing')}` : undefined;

const STORE = 'corp-ad';
/** Lease of the sessions under test (set in the database: the engine takes whole minutes). */
const LEASE_MS = 30_000;
/** The group the person's account was in before any session: it must survive every path. */
const OPS = 'JIT Ops';

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

/** A TLS relay to the DC that can be switched off (connections refused and cut) and on again: the directory down. */
async function startSwitchableRelay(upstreamHost: string, upstreamCa: string) {
  const identity = createTestTlsIdentity();
  let up = true;
  const sockets = new Set<Socket>();
  const server = tls.createServer({ key: identity.key, cert: identity.cert, minVersion: 'TLSv1.2' }, (client) => {
    if (!up) {
      client.destroy();
      return;
    }
    const upstream = tls.connect({ host: upstreamHost, port: 636, ca: [upstreamCa], minVersion: 'TLSv1.2' });
    sockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
    client.pipe(upstream).pipe(client);
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `ldaps://127.0.0.1:${(server.address() as AddressInfo).port}`,
    caCert: identity.caCert,
    setUp(v: boolean) {
      up = v;
      if (!v) for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe.skipIf(skipReason !== undefined)(`elevation on Samba AD: kill mid-add, kill mid-remove, directory down${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let ad: SambaAdHandle;
  let proxy: LdapPauseProxy;
  let relay: Awaited<ReturnType<typeof startSwitchableRelay>>;
  let bridge: RedisBridge;
  let db: Database;
  let fx: JitFixture;
  let dbUrl: string;
  let groups: Record<string, string>;
  const stores: LdapAccountStore[] = [];
  const secretKey = randomBytes(32).toString('base64');
  const auditKey = randomBytes(32);
  const configs: WorkerConfig[] = [];
  const workers: WorkerProcess[] = [];
  const queues: JitQueue[] = [];
  const env = () => ({ JGT_TEST_LDAP_PASSWORD: ad.bindPassword });

  async function asAdmin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({ url: ad.url, tlsOptions: { ca: [ad.caCert] } });
    try {
      await c.bind(ad.adminDn, ad.adminPassword);
      return await fn(c);
    } finally {
      await c.unbind().catch(() => undefined);
    }
  }
  const userDn = (name: string) => `CN=${name},${ad.jitOu}`;
  /** Read straight from the DC as Administrator (not through jitgate, not through a proxy). */
  const isMember = (group: string, name: string) =>
    asAdmin(async (c) => {
      const { searchEntries } = await c.search(groups[group]!, { scope: 'base', attributes: ['member'] });
      const m = searchEntries[0]?.member;
      return (Array.isArray(m) ? m : m ? [m] : []).map((x) => String(x).toLowerCase()).includes(userDn(name).toLowerCase());
    });
  const memberships = async (name: string) => Object.fromEntries(await Promise.all(Object.keys(groups).map(async (g) => [g, await isMember(g, name)] as const)));

  /** The person's own account, made by the Administrator: enabled, no jitgate marker, already in JIT Ops. */
  async function existingAccount(): Promise<string> {
    const name = `el${randomBytes(4).toString('hex')}`;
    await asAdmin(async (c) => {
      await c.add(userDn(name), [
        new Attribute({ type: 'objectClass', values: ['user'] }),
        new Attribute({ type: 'sAMAccountName', values: [name] }),
        new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"Pw-${randomBytes(9).toString('base64url')}-9a"`, 'utf16le')] }),
        new Attribute({ type: 'userAccountControl', values: ['512'] }),
      ]);
      await c.modify(groups[OPS]!, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [userDn(name)] }) }));
    });
    return name;
  }

  async function scenario(extra: { provisioningTimeoutSeconds?: number } = {}) {
    const prefix = `jgt-elev-${randomBytes(4).toString('hex')}`;
    const queue = new JitQueue({ connection: { path: redisSocket, maxRetriesPerRequest: null } as ConnectionOptions, prefix });
    queues.push(queue);
    await queue.ready();
    const base = { databaseUrl: dbUrl, redisUrl: bridge.url, redisPrefix: prefix, installationId: fx.installationId, secretKey, auditKey: auditKey.toString('base64'), ...extra };
    const storeBase = { name: STORE, bindDn: ad.bindDn, baseDn: ad.baseDn, accountsContainer: ad.jitOu, groups, upnSuffix: ad.upnSuffix };
    const viaProxy = writeWorkerConfig({ ...base, store: { ...storeBase, url: proxy.url, caCert: proxy.caCert } });
    const direct = writeWorkerConfig({ ...base, store: { ...storeBase, url: ad.url, caCert: ad.caCert } });
    configs.push(viaProxy, direct);
    const start = async (cfg: WorkerConfig) => {
      const w = await startWorkerProcess(cfg.path, env());
      workers.push(w);
      return w;
    };
    return { queue, viaProxy, direct, start };
  }

  const elevate = (adminGroups: string[]) => fx.computer({ enabled: true, mode: 'elevate', deleteOnCheckIn: true, adminGroups });

  async function reconcileCli(cfg: WorkerConfig, ...args: string[]): Promise<ReconcileReport> {
    const r = await runJitgate(['reconcile', '--json', ...args], cfg.path, env());
    expect(r.code, r.stderr + r.stdout).toBe(0);
    return JSON.parse(r.stdout) as ReconcileReport;
  }

  const byGroup = (r: ReconcileReport, sessionId: string) =>
    Object.fromEntries(r.elevations.filter((e) => e.sessionId === sessionId).map((e) => [e.group, { action: e.action, done: e.done }]));

  beforeAll(async () => {
    ad = await startSambaAd();
    // A third group the person is in before any session.
    const opsDn = `CN=${OPS},${ad.jitOu}`;
    await asAdmin((c) => c.add(opsDn, [new Attribute({ type: 'objectClass', values: ['group'] }), new Attribute({ type: 'sAMAccountName', values: ['JITOps'] })]));
    groups = { ...ad.adminGroupDns, [OPS]: opsDn };
    proxy = await startLdapPauseProxy({ upstreamHost: ad.dcAddress, upstreamCa: ad.caCert });
    relay = await startSwitchableRelay(ad.dcAddress, ad.caCert);
    bridge = await startRedisTcpBridge(redisSocket);
    dbUrl = await createTestDatabase(pgUrl, `jgt_elev_${randomBytes(4).toString('hex')}`);
    db = await openDatabase({ url: dbUrl, dataDir: '/nonexistent', poolSize: 4 });
    await migrate(db);
    const direct = new LdapAccountStore({
      url: ad.url, caCert: ad.caCert, bindDn: ad.bindDn, bindPassword: ad.bindPassword, baseDn: ad.baseDn, accountsContainer: ad.jitOu, groups, logger: silentLogger(),
    });
    stores.push(direct);
    // The test process plays the gateway: it writes sessions and enqueues jobs.
    fx = new JitFixture(db, new Map<string, AccountStore>([[STORE, direct]]), { auditKey });
  });

  afterAll(async () => {
    await Promise.allSettled(workers.map((w) => w.kill()));
    await Promise.allSettled(queues.map((q) => q.close()));
    for (const s of stores) await s.close().catch(() => undefined);
    await db?.close();
    await proxy?.close();
    await relay?.close();
    await bridge?.close();
    for (const c of configs) c.remove();
    await ad?.stop();
  });

  it('worker SIGKILLed right after adding the account to a group: `jitgate reconcile` (dry run, then real) removes what jitgate added and keeps the earlier membership', async () => {
    const { queue, viaProxy, direct, start } = await scenario();
    const name = await existingAccount();
    // JIT Ops: already a member. JIT Admins: added. Helpdesk: its add is held, and the worker dies.
    const pc = await elevate([OPS, 'JIT Admins', 'Helpdesk']);
    const w1 = await start(viaProxy);
    const held = proxy.holdNext([LDAP_OP.modify], (dn) => dn === groups.Helpdesk);
    fx.clock = new Date();
    const s = await fx.service.requestSession({ personLogin: name, computer: pc, protocol: 'rdp', minutes: 1 });
    await fx.repo.extendLease(s.id, new Date(Date.now() + LEASE_MS));
    await queue.provision(s.id);
    await within(held, 90_000, 'the Helpdesk add to reach the proxy');
    expect((await w1.kill()).signal).toBe('SIGKILL');

    expect(await memberships(name)).toEqual({ 'JIT Admins': true, Helpdesk: false, [OPS]: true });
    expect((await fx.repo.getSession(s.id))!.state).toBe('provisioning');
    const rows = await fx.repo.elevationsOfSession(s.id);
    expect(Object.fromEntries(rows.map((e) => [e.group, [e.addedByJitgate, e.state]]))).toEqual({ [OPS]: [false, 'active'], 'JIT Admins': [true, 'active'], Helpdesk: [true, 'adding'] });

    // Before the lease ends, a sweep leaves the session alone.
    const early = await reconcileCli(direct, '--dry-run');
    expect(byGroup(early, s.id)).toEqual({});
    expect(early.skipped.some((k) => k.name === name)).toBe(true);

    await waitFor('the lease to run out', async () => Date.now() > s.createdAt.getTime() + LEASE_MS + 2000);
    const dry = await reconcileCli(direct, '--dry-run');
    expect(byGroup(dry, s.id)).toEqual({ [OPS]: { action: 'kept', done: false }, 'JIT Admins': { action: 'removed', done: false }, Helpdesk: { action: 'removed', done: false } });
    expect(await memberships(name)).toEqual({ 'JIT Admins': true, Helpdesk: false, [OPS]: true });

    // The dead worker's elevation lock is leased (60 s): the sweep waits it out, then acts.
    const real = await reconcileCli(direct);
    expect(real.failures).toEqual([]);
    expect(byGroup(real, s.id)).toEqual({ [OPS]: { action: 'kept', done: true }, 'JIT Admins': { action: 'removed', done: true }, Helpdesk: { action: 'removed', done: true } });
    expect(await memberships(name)).toEqual({ 'JIT Admins': false, Helpdesk: false, [OPS]: true });
    expect((await fx.repo.getSession(s.id))!.state).toBe('ended');
    expect((await fx.repo.elevationsOfSession(s.id)).every((e) => e.state === 'removed')).toBe(true);

    // In words for the operator, and nothing left for the next sweep.
    const text = await runJitgate(['reconcile', '--dry-run'], direct.path, env());
    expect(text.stdout).not.toContain(name);
    const again = await reconcileCli(direct);
    expect(byGroup(again, s.id)).toEqual({});
    expect(await isMember(OPS, name)).toBe(true);
    expect((await fx.audit.verify()).ok).toBe(true);
  }, 300_000);

  it('worker SIGKILLed mid-remove at teardown: `jitgate reconcile` after the lease end removes the rest, says so in words, and keeps the earlier membership', async () => {
    const { queue, viaProxy, direct, start } = await scenario();
    const name = await existingAccount();
    const pc = await elevate(['JIT Admins', OPS, 'Helpdesk']);
    const w1 = await start(viaProxy);
    fx.clock = new Date();
    const s = await fx.service.requestSession({ personLogin: name, computer: pc, protocol: 'ssh', minutes: 1 });
    await fx.repo.extendLease(s.id, new Date(Date.now() + LEASE_MS));
    const result = await queue.waitFor<{ state: string; account: string; elevated: boolean }>(await queue.provision(s.id), 90_000);
    expect(result).toMatchObject({ state: 'active', account: name, elevated: true });
    expect(await memberships(name)).toEqual({ 'JIT Admins': true, Helpdesk: true, [OPS]: true });

    // The person closes the session; the worker dies on its first removal.
    const held = proxy.holdNext([LDAP_OP.modify]);
    await queue.teardown(s.id, 'closed by user');
    const req = await within(held, 90_000, 'the teardown modify to reach the proxy');
    expect(req.dn).toBe(groups['JIT Admins']);
    expect((await w1.kill()).signal).toBe('SIGKILL');
    expect((await fx.repo.getSession(s.id))!.state).toBe('ending');
    expect(await memberships(name)).toEqual({ 'JIT Admins': true, Helpdesk: true, [OPS]: true });

    await waitFor('the lease to run out', async () => Date.now() > s.createdAt.getTime() + LEASE_MS + 2000);
    const r = await runJitgate(['reconcile'], direct.path, env());
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain(`done elevation: remove ${STORE}/${name} from JIT Admins (added by jitgate), session ${s.id}`);
    expect(r.stdout).toContain(`done elevation: remove ${STORE}/${name} from Helpdesk (added by jitgate), session ${s.id}`);
    expect(r.stdout).toContain(`done elevation: keep ${STORE}/${name} in ${OPS} (member before the session), session ${s.id}`);
    expect(await memberships(name)).toEqual({ 'JIT Admins': false, Helpdesk: false, [OPS]: true });
    expect((await fx.repo.getSession(s.id))!.state).toBe('ended');
    const removed = (await fx.audit.list({ sessionId: s.id })).filter((e) => e.type === 'account.group_removed').map((e) => [e.data.group, e.data.removed]);
    expect(removed).toEqual([['JIT Admins', true], [OPS, false], ['Helpdesk', true]]);
  }, 300_000);

  it('directory down during teardown: the teardown fails and leaves the records; sweeps retry while it is down and remove the added memberships once it is back', async () => {
    const store = new LdapAccountStore({
      url: relay.url, caCert: relay.caCert, bindDn: ad.bindDn, bindPassword: ad.bindPassword, baseDn: ad.baseDn, accountsContainer: ad.jitOu, groups, logger: silentLogger(),
    });
    stores.push(store);
    const local = new JitFixture(db, new Map<string, AccountStore>([[STORE, store]]), { auditKey });
    const name = await existingAccount();
    const pc = await local.computer({ enabled: true, mode: 'elevate', deleteOnCheckIn: true, adminGroups: ['JIT Admins', OPS] });
    local.clock = new Date();
    const { sessionId, result } = await local.open(pc, name, { minutes: 5 });
    expect(result).toMatchObject({ state: 'active', elevated: true, account: name });
    expect(await memberships(name)).toEqual({ 'JIT Admins': true, Helpdesk: false, [OPS]: true });

    relay.setUp(false);
    const down = await local.service.teardown(sessionId, 'closed by user').then(
      () => 'ok',
      (e: unknown) => (e as { code?: string }).code ?? String(e),
    );
    expect(down).toMatch(/^JIT_ERR_STORE_/);
    expect((await local.repo.getSession(sessionId))!.state).toBe('ending');
    expect(await memberships(name)).toEqual({ 'JIT Admins': true, Helpdesk: false, [OPS]: true });

    // Past the lease: the sweep tries, fails, and leaves everything as it was (records open, nothing forgotten).
    local.clock = new Date(Date.now() + 6 * 60_000);
    const failed = await local.service.reconcile();
    expect(failed.failures.length).toBeGreaterThan(0);
    // Only the earlier membership's record may be closed meanwhile (keeping it needs no directory); jitgate's stays open.
    expect(byGroup(failed, sessionId)['JIT Admins']).toBeUndefined();
    expect((await local.repo.elevationsOfSession(sessionId)).filter((e) => e.state !== 'removed').map((e) => e.group)).toContain('JIT Admins');
    expect(await memberships(name)).toEqual({ 'JIT Admins': true, Helpdesk: false, [OPS]: true });

    relay.setUp(true);
    const ok = await local.service.reconcile();
    expect(ok.failures).toEqual([]);
    expect({ ...byGroup(failed, sessionId), ...byGroup(ok, sessionId) }).toEqual({ 'JIT Admins': { action: 'removed', done: true }, [OPS]: { action: 'kept', done: true } });
    expect(await memberships(name)).toEqual({ 'JIT Admins': false, Helpdesk: false, [OPS]: true });
    expect((await local.repo.getSession(sessionId))!.state).toBe('ended');
  }, 300_000);
});
