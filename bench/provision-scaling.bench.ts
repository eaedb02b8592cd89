/**
 * Provisioning throughput with one worker and with two (issue 18), on the
 * multi-node deployment of scripts/multinode.sh (PostgreSQL, Redis, separate
 * `jitgate serve --role worker` processes sharing them):
 *
 *   node --import tsx bench/provision-scaling.bench.ts [--jobs 40] [--stores linux,ad]
 *
 * Stores: `linux` (the SSH store, on two sshd test hosts, jobs alternating
 * between them) and `ad` (the LDAP store on a Samba AD DC). For each store, N
 * sessions are inserted and their provision jobs queued at once; the time is
 * first job queued → last job done, first with w2 stopped, then with both
 * workers. Every batch is torn down (not timed) before the next. Needs root,
 * PostgreSQL, Redis, HAProxy (for the topology), sshd and Samba. Prints a table
 * on stdout; bounded by a hard deadline.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import type { Database } from '../core/db/database.js';
import { openDatabase } from '../core/db/open.js';
import { JitRepository } from '../provisioner/jit-repository.js';
import { JIT_PRESETS } from '../provisioner/jit-settings.js';
import { JitQueue } from '../provisioner/jobs.js';
import { multinodeAvailable, startMultinode, type Multinode } from '../test/harness/multinode.js';
import { sambaAdAvailable, startSambaAd, type SambaAdHandle } from '../test/harness/samba-ad.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from '../test/harness/ssh-host.js';
import { runBench } from './lib/run.js';
import { formatTable } from './lib/stats.js';

const { values: args } = parseArgs({ options: { jobs: { type: 'string', default: '40' }, stores: { type: 'string', default: 'linux,ad' } } });
const JOBS = Number(args.jobs);
const STORES = new Set(args.stores.split(','));
const DEADLINE_MS = 25 * 60_000;
const t00 = performance.now();
const progress = (what: string) => console.error(`[${((performance.now() - t00) / 1000).toFixed(1)} s] ${what}`);

interface Target {
  label: string;
  computers: { id: string; name: string }[];
  accountType: 'local' | 'domain';
}

async function main(): Promise<void> {
  for (const a of [sshHostAvailable(), multinodeAvailable(), ...(STORES.has('ad') ? [sambaAdAvailable()] : [])]) if (!a.ok) throw new Error(`cannot run: ${a.reason ?? ''}`);
  const hosts: SshHostHandle[] = [];
  let ad: SambaAdHandle | null = null;
  let nodes: Multinode | null = null;
  let db: Database | null = null;
  let queue: JitQueue | null = null;
  const dir = mkdtempSync(join(tmpdir(), 'jgt-provscale-'));
  const rows: string[][] = [];
  try {
    progress('starting sshd hosts, Samba AD…');
    if (STORES.has('linux')) hosts.push(...(await Promise.all([startSshHost(), startSshHost()])));
    if (STORES.has('ad')) ad = await startSambaAd();
    const orgName = `org-${randomBytes(3).toString('hex')}`;
    const stores: object[] = hosts.map((h, i) => ({
      name: `linux${i + 1}`, type: 'ssh', host: h.address, port: h.port, username: h.adminUser, privateKey: `file:${h.adminKeyPath}`,
      hostKeySha256: h.hostKeySha256, groups: { admins: 'sudo' }, organizations: [orgName],
    }));
    if (ad) {
      writeFileSync(join(dir, 'ad-ca.pem'), ad.caCert);
      stores.push({
        name: 'corp-ad', type: 'ldap', url: ad.url, caCert: `file:${join(dir, 'ad-ca.pem')}`, bindDn: ad.bindDn, bindPassword: ad.bindPassword,
        baseDn: ad.baseDn, accountsContainer: ad.jitOu, groups: ad.adminGroupDns, upnSuffix: ad.upnSuffix, organizations: [orgName],
      });
    }
    const configPath = join(dir, 'jitgate.yaml');
    writeFileSync(configPath, stringify({ log: { level: 'info' }, accountStores: stores }), { mode: 0o600 });
    progress('scripts/multinode.sh up…');
    nodes = await startMultinode({ configPath, orphanCheckSeconds: 10 });
    db = await openDatabase({ url: nodes.databaseUrl, dataDir: '/nonexistent', poolSize: 4 });
    const repo = new JitRepository(db);
    queue = new JitQueue({ connection: { url: nodes.redisUrl } as never, prefix: 'jitgate' });
    await queue.ready();
    // One waitUntilFinished per job in a batch.
    queue.queue.setMaxListeners(4 * JOBS + 10);
    const orgId = randomUUID();
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [orgId, orgName, String(100_000 + Math.floor(Math.random() * 800_000))]);
    const computer = async (store: string, accountType: 'local' | 'domain', address: string, port: number, group: string): Promise<{ id: string; name: string }> => {
      const id = randomUUID();
      const name = `pc-${randomBytes(3).toString('hex')}`;
      await db!.query(
        `INSERT INTO computers (id, organization_id, name, address, protocols, ssh_port, local_store, domain_store, jit, policy)
         VALUES ($1, $2, $3, $4, '{ssh}', $5, $6, $7, $8, '{}')`,
        [id, orgId, name, address, port, accountType === 'local' ? store : null, accountType === 'domain' ? store : null,
          JSON.stringify({ ...JIT_PRESETS.maximumSecurity, adminGroups: [group], accountType })],
      );
      return { id, name };
    };
    const targets: Target[] = [];
    if (hosts.length) {
      targets.push({ label: `Linux (SSH store, ${hosts.length} sshd hosts)`, accountType: 'local', computers: await Promise.all(hosts.map((h, i) => computer(`linux${i + 1}`, 'local', h.address, h.port, 'admins'))) });
    }
    if (ad) targets.push({ label: 'Samba AD (LDAP store)', accountType: 'domain', computers: [await computer('corp-ad', 'domain', ad.dcAddress, 22, 'JIT Admins')] });

    /** N sessions provisioned at once; seconds from the first job queued to the last one done. */
    const batch = async (t: Target): Promise<{ seconds: number; failed: number }> => {
      const ids: string[] = [];
      for (let i = 0; i < JOBS; i++) {
        const pc = t.computers[i % t.computers.length]!;
        const s = await repo.insertSession({
          id: randomUUID(), personId: null, personLogin: `b${randomBytes(3).toString('hex')}`, computerId: pc.id, computerName: pc.name, protocol: 'ssh',
          accountType: t.accountType, leaseExpiresAt: new Date(Date.now() + 3_600_000), holder: null,
        });
        ids.push(s.id);
      }
      const t0 = performance.now();
      const jobs = await Promise.all(ids.map((id) => queue!.provision(id)));
      const results = await Promise.allSettled(jobs.map((j) => queue!.waitFor(j, 600_000)));
      const seconds = (performance.now() - t0) / 1000;
      const failed = results.filter((r) => r.status === 'rejected').length;
      // Clean up, not timed: the next batch starts on an empty directory.
      const downs = await Promise.all(ids.map((id) => queue!.teardown(id, 'bench done')));
      await Promise.allSettled(downs.map((j) => queue!.waitFor(j, 600_000)));
      return { seconds, failed };
    };

    const measured = new Map<string, { one: number; two: number; f1: number; f2: number }>();
    // A warm-up batch per store on both workers (connections, first LDAP bind, …), not counted.
    for (const t of targets) {
      progress(`warm-up ${t.label}`);
      await batch(t).catch(() => undefined);
    }
    progress('stopping w2: one worker');
    await nodes.stop('w2');
    for (const t of targets) {
      progress(`1 worker: ${t.label}`);
      const r = await batch(t);
      measured.set(t.label, { one: r.seconds, two: 0, f1: r.failed, f2: 0 });
    }
    progress('starting w2: two workers');
    await nodes.start('w2');
    for (const t of targets) {
      progress(`2 workers: ${t.label}`);
      const r = await batch(t);
      const m = measured.get(t.label)!;
      m.two = r.seconds;
      m.f2 = r.failed;
    }
    for (const t of targets) {
      const m = measured.get(t.label)!;
      const j1 = JOBS / m.one;
      const j2 = JOBS / m.two;
      rows.push([t.label, String(JOBS), `${j1.toFixed(2)} (${m.one.toFixed(1)} s)`, `${j2.toFixed(2)} (${m.two.toFixed(1)} s)`, `${(j2 / j1).toFixed(2)}x`, `${m.f1} / ${m.f2}`]);
    }
  } finally {
    await queue?.close().catch(() => undefined);
    await db?.close().catch(() => undefined);
    await nodes?.down().catch(() => undefined);
    await ad?.stop().catch(() => undefined);
    await Promise.all(hosts.map((h) => h.stop().catch(() => undefined)));
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(formatTable(['store', 'jobs', '1 worker jobs/s', '2 workers jobs/s', 'scaling', 'failed (1 / 2)'], rows));
}

runBench(main, DEADLINE_MS);
