/**
 * What the provisioning benchmark runs on: a real Samba AD DC (network
 * namespace), a private Redis on a unix socket, embedded PGlite, the LDAP
 * store, the JIT engine, and a BullMQ queue + in-process worker — wired the
 * way main.ts wires them, with silent logs.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { ConnectionOptions, Worker } from 'bullmq';
import { Attribute, Change, Client } from 'ldapts';
import { AuditLog } from '../../core/audit.js';
import type { Computer } from '../../core/domain.js';
import { migrate } from '../../core/db/migrations.js';
import { PgliteDatabase } from '../../core/db/pglite.database.js';
import { silentLogger } from '../../core/logging.js';
import { SecretBox } from '../../core/secret-box.js';
import type { AccountStore } from '../../provisioner/account-store.js';
import { buildJobHandlers } from '../../provisioner/job-handlers.js';
import { JitAccountService } from '../../provisioner/jit-account.service.js';
import { JitRepository, toComputer } from '../../provisioner/jit-repository.js';
import type { JitSettingsInput } from '../../provisioner/jit-settings.js';
import { JitQueue, startJitWorker } from '../../provisioner/jobs.js';
import { LdapAccountStore } from '../../provisioner/stores/ldap.store.js';
import { MemoryAccountStore } from '../../provisioner/stores/memory.store.js';
import { startRedis, type RedisHandle } from '../../test/harness/redis.js';
import { startSambaAd, type SambaAdHandle } from '../../test/harness/samba-ad.js';

export const BENCH_STORE = 'bench-ad';
/** An in-memory store beside it: the engine's own cost without any directory. */
export const MEMORY_STORE = 'bench-mem';

export interface BenchEnv {
  ad: SambaAdHandle;
  db: PgliteDatabase;
  repo: JitRepository;
  audit: AuditLog;
  store: LdapAccountStore;
  engine: JitAccountService;
  queue: JitQueue;
  worker: Worker;
  computer(jit: JitSettingsInput, store?: string): Promise<Computer>;
  /** Every jitgate-marked account left in the DC is deleted (as the service account). */
  sweepDirectory(): Promise<number>;
  close(): Promise<void>;
}

export interface BenchEnvOptions {
  workerConcurrency: number;
}

export async function startBenchEnv(opts: BenchEnvOptions): Promise<BenchEnv> {
  const closers: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    const [ad, redis] = await Promise.all([startSambaAd(), startRedis()]);
    closers.push(() => ad.stop(), () => (redis as RedisHandle).stop());
    const db = await PgliteDatabase.open();
    closers.push(() => db.close());
    await migrate(db);
    const store = new LdapAccountStore({
      url: ad.url, caCert: ad.caCert, bindDn: ad.bindDn, bindPassword: ad.bindPassword, baseDn: ad.baseDn,
      accountsContainer: ad.jitOu, groups: ad.adminGroupDns, upnSuffix: ad.upnSuffix, logger: silentLogger(),
    });
    closers.push(() => store.close());
    const repo = new JitRepository(db);
    const audit = new AuditLog(db);
    const engine = new JitAccountService({
      repo, audit, box: new SecretBox(randomBytes(32)), stores: new Map<string, AccountStore>([[BENCH_STORE, store], [MEMORY_STORE, new MemoryAccountStore()]]),
      log: silentLogger(), installationId: randomBytes(4).toString('hex'),
    });
    const connection = { path: redis.socketPath, maxRetriesPerRequest: null } as ConnectionOptions;
    const prefix = `bench-${randomBytes(3).toString('hex')}`;
    const queue = new JitQueue({ connection, prefix });
    closers.push(() => queue.close());
    await queue.ready();
    // one waitUntilFinished listener per concurrent caller
    queue.queue.setMaxListeners(200);
    const worker = startJitWorker({
      connection, prefix, concurrency: opts.workerConcurrency, log: silentLogger(),
      handlers: buildJobHandlers(engine, queue, async (id) => (await repo.getSession(id))?.leaseExpiresAt ?? null),
    });
    closers.push(() => worker.close(true));
    await worker.waitUntilReady();

    return {
      ad, db, repo, audit, store, engine, queue, worker,
      async computer(jit, storeName = BENCH_STORE) {
        const orgId = randomUUID();
        await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [orgId, `bench-${orgId.slice(0, 8)}`, String(100_000 + Math.floor(Math.random() * 800_000))]);
        const rows = await db.query(
          `INSERT INTO computers (id, organization_id, name, address, protocols, domain_store, local_store, jit)
           VALUES ($1,$2,$3,'127.0.0.1','{ssh,rdp}',$4,$4,$5) RETURNING *`,
          [randomUUID(), orgId, `bench-${randomBytes(3).toString('hex')}`, storeName, JSON.stringify(jit)],
        );
        return toComputer(rows[0]!);
      },
      async sweepDirectory() {
        const c = new Client({ url: ad.url, tlsOptions: { ca: [ad.caCert] } });
        try {
          await c.bind(ad.bindDn, ad.bindPassword);
          const { searchEntries } = await c.search(ad.jitOu, { filter: '(&(objectClass=user)(description=jitgate:*))', attributes: ['dn'] });
          for (const e of searchEntries) await c.del(e.dn);
          return searchEntries.length;
        } finally {
          await c.unbind().catch(() => undefined);
        }
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The raw ldapts operations the LDAP store performs for one JIT account, on
 * one bound connection with the store's connection settings (LDAPS, the DC's
 * CA, TLS ≥ 1.2): add (with unicodePwd) and modify group `member`, without
 * the lookups the store makes before each.
 */
export class RawLdap {
  #c: Client | null = null;
  constructor(private readonly ad: SambaAdHandle) {}

  async #client(): Promise<Client> {
    if (this.#c) return this.#c;
    const host = new URL(this.ad.url).hostname;
    const c = new Client({ url: this.ad.url, timeout: 10_000, connectTimeout: 10_000, tlsOptions: { ca: [this.ad.caCert], host, minVersion: 'TLSv1.2' } });
    await c.bind(this.ad.bindDn, this.ad.bindPassword);
    this.#c = c;
    return c;
  }

  #dn(name: string): string {
    return `CN=${name},${this.ad.jitOu}`;
  }

  /** add (with unicodePwd) + modify group member. */
  async provision(name: string, password: string, group: string): Promise<void> {
    const c = await this.#client();
    const upn = `${name}@${this.ad.upnSuffix}`;
    const expires = (BigInt(Date.now() + 3_600_000) * 10_000n + 116_444_736_000_000_000n).toString();
    await c.add(this.#dn(name), [
      new Attribute({ type: 'objectClass', values: ['top', 'person', 'organizationalPerson', 'user'] }),
      new Attribute({ type: 'cn', values: [name] }),
      new Attribute({ type: 'sAMAccountName', values: [name] }),
      new Attribute({ type: 'userPrincipalName', values: [upn] }),
      new Attribute({ type: 'description', values: [`jitgate:bench:${name}`] }),
      new Attribute({ type: 'displayName', values: [name] }),
      new Attribute({ type: 'userAccountControl', values: ['512'] }),
      new Attribute({ type: 'accountExpires', values: [expires] }),
      new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"${password}"`, 'utf16le')] }),
    ]);
    await c.modify(this.ad.adminGroupDns[group]!, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [this.#dn(name)] }) }));
  }

  /** modify member (delete) + del. */
  async teardown(name: string, group: string): Promise<void> {
    const c = await this.#client();
    await c.modify(this.ad.adminGroupDns[group]!, new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [this.#dn(name)] }) }));
    await c.del(this.#dn(name));
  }

  async close(): Promise<void> {
    await this.#c?.unbind().catch(() => undefined);
    this.#c = null;
  }
}
