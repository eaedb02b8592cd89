import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions, Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Database } from '../../core/db/database.js';
import { silentLogger } from '../../core/logging.js';
import { redisOptions } from '../../core/redis.js';
import { SecretBox } from '../../core/secret-box.js';
import { AccessService } from '../../gateway/access-policy.js';
import { apiRoutes } from '../../gateway/api/index.js';
import { checkCsrfQuery, createAuth, createPerson } from '../../gateway/auth/index.js';
import { createMetrics } from '../../gateway/metrics.js';
import { buildServer } from '../../gateway/server.js';
import { startSshGateway, type SshGateway } from '../../gateway/ssh/ssh-gateway.js';
import { webStatic } from '../../gateway/web-static.js';
import { buildJobHandlers } from '../../provisioner/job-handlers.js';
import { JitQueue, startJitWorker } from '../../provisioner/jobs.js';
import { JitAccountService } from '../../provisioner/jit-account.service.js';
import { JIT_PRESETS } from '../../provisioner/jit-settings.js';
import { SshAccountStore } from '../../provisioner/stores/ssh.store.js';
import { createRecorder } from '../../recorder/session-recorder.js';
import { buildWeb } from '../../web/build.js';
import { JitFixture } from '../fixtures/jit-fixture.js';
import { databaseFactories } from '../harness/databases.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from '../harness/ssh-host.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { signIn, type Person } from './web-steps.js';

/**
 * Issue 17 (defects 3, 4, 5): the session page as people use it, on the same
 * real pieces as web-terminal.e2e.test.ts. Every provisioning step reaches
 * the page in order on every connect; Extend offers only what fits under the
 * computer's maximum; the page is focused (no navigation, End session), asks
 * before leaving, and Back/Forward never silently opens a new JIT account.
 *
 * The browser terminal page on the real pieces, wired here in-process the
 * way main.ts will wire them: the auth plugin (sign-in, CSRF), the admin API
 * (`GET /computers`), the terminal websocket (gateway/ssh) with the JIT engine
 * behind BullMQ on the real test Redis, the real recorder, and a real sshd
 * test host. A technician signs in with TOTP, opens SSH from the Sessions
 * page in a new tab, sees the provisioning progress and the JIT account,
 * runs `id`; an admin watches the session live (read-only xterm) and
 * terminates it; the account is gone from the host afterwards.
 */
const redisSocket = inject('redisSocket');
const why = [chromiumAvailable(), sshHostAvailable(), redisSocket ? { ok: true } : { ok: false, reason: 'no test Redis' }].find((a) => !a.ok)?.reason;
const STORE = 'e2e-ssh';

async function waitFor<T>(what: string, ms: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(why !== undefined)(`session pages on the real gateway pieces${why ? ` (skipped: ${why})` : ''}`, () => {
  let dist = '';
  let recDir = '';
  let host: SshHostHandle;
  let db: Database;
  let store: SshAccountStore;
  let queue: JitQueue;
  let worker: Worker;
  let gw: SshGateway;
  let app: FastifyInstance;
  let b: BrowserHandle;
  let b2: BrowserHandle;
  let base = '';
  let fx: JitFixture;
  const prefix = `jg-sp-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    dist = mkdtempSync(join(tmpdir(), 'jg-web-dist-'));
    recDir = mkdtempSync(join(tmpdir(), 'jg-web-rec-'));
    const built = buildWeb(dist);
    host = await startSshHost();
    db = await databaseFactories().find((f) => f.label === 'pglite')!.open();
    const log = silentLogger();
    store = new SshAccountStore({
      host: host.address, port: host.port, username: host.adminUser, privateKey: host.adminPrivateKey, hostKeySha256: host.hostKeySha256,
      groups: { admins: 'sudo' }, logger: log, timeoutMs: 20_000,
    });
    const stores = new Map([[STORE, store]]);
    fx = new JitFixture(db, stores);
    const engine = new JitAccountService({ repo: fx.repo, audit: fx.audit, box: new SecretBox(randomBytes(32)), stores, log, installationId: fx.installationId, leaseGraceMs: 1000 });
    const connection = redisOptions({ path: redisSocket }, { maxRetriesPerRequest: null }) as ConnectionOptions;
    queue = new JitQueue({ connection, prefix, teardownAttempts: 3 });
    await queue.ready();
    worker = startJitWorker({ connection, prefix, concurrency: 2, log, handlers: buildJobHandlers(engine, queue, async (id) => (await fx.repo.getSession(id))?.leaseExpiresAt ?? null) });
    const auth = createAuth({
      db, box: new SecretBox(randomBytes(32)), audit: fx.audit, log,
      cfg: { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 'jitgate-e2e', cookieSecure: 'auto' },
    });
    const access = new AccessService(db, fx.audit);
    const recorder = createRecorder({ db, audit: fx.audit, log, dir: recDir, signingKey: randomBytes(32) });
    gw = await startSshGateway({
      redis: redisOptions({ path: redisSocket }), queueEvents: { connection, prefix }, queue, engine, access, recorder, audit: fx.audit,
      checkCsrf: checkCsrfQuery,
      mayWatch: (p) => p.role !== 'technician', livePrefix: `${prefix}:live`, log,
    });
    app = await buildServer({
      log, metrics: createMetrics(), version: 'e2e', readiness: [],
      rootPlugins: [auth.plugin, webStatic(await built)],
      apiPlugins: [
        apiRoutes({
          db, audit: fx.audit, access, liveSessions: gw.live, recordingFiles: recorder,
          stores: [{ name: STORE, type: 'ssh', url: `ssh://${host.address}:${host.port}`, organizations: null, groups: ['admins'], allowedContainers: null }], checkStore: async () => ({ ok: true }),
          extendSession: async (id, minutes, actor) => {
            const r = await engine.extendLease(id, minutes, actor);
            await queue.scheduleLeaseExpiry(id, r.leaseExpiresAt);
            return r;
          },
        }),
        ...gw.apiPlugins,
      ],
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    base = `http://127.0.0.1:${addr && typeof addr === 'object' ? addr.port : 0}`;
    b = await launchBrowser();
    b2 = await launchBrowser();
  }, 300_000);

  afterAll(async () => {
    await b?.close();
    await b2?.close();
    await app?.close();
    await gw?.close();
    await worker?.close();
    await queue?.close();
    await store?.close();
    await db?.close();
    await host?.stop();
    for (const d of [dist, recDir]) if (d) rmSync(d, { recursive: true, force: true });
  }, 60_000);

  it('shows every provisioning step in order on each connect; Extend fits the maximum; focused page; Back/Forward offers a new session instead of opening one', async () => {
    const org = await fx.organization();
    const tech: Person = { login: `sam${randomBytes(2).toString('hex')}`, displayName: 'Sam Tech', password: `pw-${randomUUID()}` };
    await createPerson(db, { login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: org.id, password: tech.password });
    // 90-minute maximum, 60-minute default lease: about 30 minutes of room to extend
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local', maxSessionMinutes: 90 }, { orgId: org.id, localStore: STORE, domainStore: STORE });
    await db.query("UPDATE computers SET address = $2, ssh_port = $3, protocols = '{ssh}', policy = jsonb_build_object('sshHostKeySha256', $4::text) WHERE id = $1", [pc.id, host.address, host.port, host.hostKeySha256]);
    const sessions = async () => Number((await db.query<{ n: string }>('SELECT count(*)::text AS n FROM sessions WHERE computer_id = $1', [pc.id]))[0]!.n);

    const page = await b.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.type());
      void d.accept();
    });
    await signIn(page, base, tech, 'session-page');
    const url = `${base}/terminal/${encodeURIComponent(pc.id)}`;

    // Defect 3: several connects, each with the exact ordered list of steps.
    for (let i = 0; i < 3; i++) {
      // from the Sessions page each time: Chromium turns a navigation to the URL it shows into a reload,
      // which keeps the entry's "session already ran" mark (that case is the Back/Forward one below)
      await page.goto(`${base}/`);
      await page.getByRole('navigation', { name: 'Main' }).waitFor();
      await page.goto(url);

      const account = await waitFor('the JIT account', 120_000, async () => (await page.getByTestId('jit-account').textContent().catch(() => null)) || undefined);
      const steps = await page.getByTestId('progress-steps').locator('li').allTextContents();
      const groupSteps = store.groupsOnCreate ? ['added to admins…'] : ['adding to admins…'];
      expect(steps).toEqual(['creating account…', `account ${account} ready…`, ...groupSteps, `connecting to ${pc.name}…`]);
      // Defect 5: a focused page, no main navigation, an explicit End session
      expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
      await page.getByTestId('end-session').click();
      await page.getByTestId('terminal-status').getByText('You ended the session.').waitFor();
      await waitFor('the JIT account to be deleted', 120_000, async () => ((await host.exec(`id ${account}`)).code !== 0 ? true : undefined));
    }
    expect(dialogs.filter((d) => d === 'confirm')).toHaveLength(3);

    // Defect 4: only lengths that fit under the maximum; none once the lease is at it.
    await page.goto(`${base}/`);
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await page.goto(url);
    await page.getByTestId('jit-account').waitFor({ timeout: 120_000 });
    const options = async () => (await page.getByTestId('extend-minutes').locator('option').evaluateAll((os) => os.map((o) => Number(o.getAttribute('value')))));
    const first = await options();
    expect(Math.max(...first)).toBeLessThanOrEqual(30);
    expect(Math.max(...first)).toBeGreaterThanOrEqual(29);
    await page.getByTestId('extend-minutes').selectOption(String(Math.max(...first)));
    await page.getByTestId('extend').click();
    await page.getByTestId('extend-max').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('extend').count()).toBe(0);
    await screenshot(page, 'session-page-at-maximum');

    // Defect 5: leaving asks first (beforeunload); Forward back to the page offers a new session, creates none.
    await page.locator('.xterm').click();
    await page.keyboard.type('true\n');
    const before = await sessions();
    await page.goBack();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    expect(dialogs).toContain('beforeunload');
    await page.goForward();
    await page.getByTestId('session-ended').waitFor();
    await screenshot(page, 'session-page-ended');
    expect(await sessions()).toBe(before);
    await page.getByRole('button', { name: 'Start a new session' }).click();
    await page.getByTestId('jit-account').waitFor({ timeout: 120_000 });
    expect(await sessions()).toBe(before + 1);
    await page.getByTestId('end-session').click();
    await page.getByTestId('terminal-status').getByText('You ended the session.').waitFor();
    expect(b.errors).toEqual([]);
  }, 600_000);
});
