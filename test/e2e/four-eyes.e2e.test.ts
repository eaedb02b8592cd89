import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions, Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import type { Database } from '../../core/db/database.js';
import { silentLogger } from '../../core/logging.js';
import { redisOptions } from '../../core/redis.js';
import { SecretBox } from '../../core/secret-box.js';
import { AccessService } from '../../gateway/access-policy.js';
import { AccessRequestService, SessionModerationService, accessRequestRoutes, computerSessionEnder, moderationRoutes } from '../../gateway/access-requests/index.js';
import { apiRoutes } from '../../gateway/api/index.js';
import { checkCsrfQuery, createAuth, createPerson } from '../../gateway/auth/index.js';
import { createMetrics } from '../../gateway/metrics.js';
import { buildServer } from '../../gateway/server.js';
import { startSshGateway, type SshGateway } from '../../gateway/ssh/ssh-gateway.js';
import { webStatic } from '../../gateway/web-static.js';
import { buildJobHandlers } from '../../provisioner/job-handlers.js';
import { JitQueue, startJitWorker } from '../../provisioner/jobs.js';
import { JIT_PRESETS } from '../../provisioner/jit-settings.js';
import { SshAccountStore } from '../../provisioner/stores/ssh.store.js';
import { createRecorder } from '../../recorder/session-recorder.js';
import { buildWeb } from '../../web/build.js';
import { JitFixture } from '../fixtures/jit-fixture.js';
import { databaseFactories } from '../harness/databases.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from '../harness/ssh-host.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { go, signIn, type Person } from './web-steps.js';

/**
 * Four-eyes sessions in a real chromium with two browser contexts: the
 * technician opens SSH on a computer that requires a moderator and sees
 * "waiting for a moderator"; the organization's admin finds the session under
 * Live sessions → Sessions to moderate and opens it; the technician's session
 * connects and runs; the moderator leaves and the technician sees the pause,
 * then the end after the grace period. Real sshd host, Redis, BullMQ, PGlite.
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

const terminalText = (page: Page): Promise<string> => page.locator('.xterm-rows').innerText().catch(() => '');
const banner = async (page: Page): Promise<{ state: string | null; text: string }> => {
  const el = page.getByTestId('moderation-banner');
  if ((await el.count()) === 0) return { state: null, text: '' };
  return { state: await el.getAttribute('data-state'), text: (await el.textContent()) ?? '' };
};

describe.skipIf(why !== undefined)(`four-eyes sessions in the browser${why ? ` (skipped: ${why})` : ''}`, () => {
  let dist = '';
  let recDir = '';
  let host: SshHostHandle;
  let db: Database;
  let store: SshAccountStore;
  let queue: JitQueue;
  let worker: Worker;
  let gw: SshGateway;
  let app: FastifyInstance;
  let techB: BrowserHandle;
  let modB: BrowserHandle;
  let base = '';
  let fx: JitFixture;
  const prefix = `jg-4e-${randomBytes(4).toString('hex')}`;

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
    fx = new JitFixture(db, new Map([[STORE, store]]));
    const connection = redisOptions({ path: redisSocket }, { maxRetriesPerRequest: null }) as ConnectionOptions;
    queue = new JitQueue({ connection, prefix, teardownAttempts: 3 });
    await queue.ready();
    worker = startJitWorker({ connection, prefix, concurrency: 2, log, handlers: buildJobHandlers(fx.service, queue, async (id) => (await fx.repo.getSession(id))?.leaseExpiresAt ?? null) });
    const auth = createAuth({
      db, box: new SecretBox(randomBytes(32)), audit: fx.audit, log,
      cfg: { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 'jitgate-e2e', cookieSecure: 'auto' },
    });
    const access = new AccessService(db, fx.audit);
    const recorder = createRecorder({ db, audit: fx.audit, log, dir: recDir, signingKey: randomBytes(32) });
    const moderation = new SessionModerationService({ db, audit: fx.audit, log });
    gw = await startSshGateway({
      redis: redisOptions({ path: redisSocket }), queueEvents: { connection, prefix }, queue, engine: fx.service, access, recorder, audit: fx.audit,
      checkCsrf: checkCsrfQuery,
      mayWatch: async (p, e) => p.role === 'global_admin' || moderation.mayModerate(p, e.sessionId),
      mayTerminate: (p, e) => moderation.mayModerate(p, e.sessionId),
      moderation, livePrefix: `${prefix}:live`, liveHeartbeatMs: 1000, log,
    });
    const requests = new AccessRequestService({ db, audit: fx.audit, log, secondFactor: { confirm: async () => null }, endSessions: computerSessionEnder(db, gw.live) });
    app = await buildServer({
      log, metrics: createMetrics(), version: 'e2e', readiness: [],
      rootPlugins: [auth.plugin, webStatic(await built)],
      apiPlugins: [
        apiRoutes({
          db, audit: fx.audit, access, liveSessions: gw.live, recordingFiles: recorder,
          stores: [{ name: STORE, type: 'ssh', url: `ssh://${host.address}:${host.port}`, organizations: null, groups: ['admins'], allowedContainers: null }], checkStore: async () => ({ ok: true }),
          extendSession: async (id, minutes, actor) => fx.service.extendLease(id, minutes, actor),
        }),
        ...gw.apiPlugins,
        accessRequestRoutes(requests),
        moderationRoutes(moderation, gw.live),
      ],
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    base = `http://127.0.0.1:${addr && typeof addr === 'object' ? addr.port : 0}`;
    techB = await launchBrowser();
    modB = await launchBrowser();
  }, 300_000);

  afterAll(async () => {
    await techB?.close();
    await modB?.close();
    await app?.close();
    await gw?.close();
    await worker?.close();
    await queue?.close();
    await store?.close();
    await db?.close();
    await host?.stop();
    for (const d of [dist, recDir]) if (d) rmSync(d, { recursive: true, force: true });
  }, 60_000);

  it('technician waits for the moderator, runs while moderated, is paused when the moderator leaves and ended after the grace period', async () => {
    const org = await fx.organization();
    const tag = randomBytes(2).toString('hex');
    const tech: Person = { login: `tina${tag}`, displayName: 'Tina Tech', password: `pw-${randomUUID()}` };
    const mod: Person = { login: `mona${tag}`, displayName: 'Mona Moderator', password: `pw-${randomUUID()}` };
    await createPerson(db, { login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: org.id, password: tech.password });
    await createPerson(db, { login: mod.login, displayName: mod.displayName, role: 'org_admin', organizationId: org.id, password: mod.password });
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local' }, { orgId: org.id, localStore: STORE, domainStore: STORE });
    await db.query(
      "UPDATE computers SET address = $2, ssh_port = $3, protocols = '{ssh}', policy = jsonb_build_object('sshHostKeySha256', $4::text, 'requireModerator', true, 'moderatorGraceSeconds', 8) WHERE id = $1",
      [pc.id, host.address, host.port, host.hostKeySha256],
    );

    const page = await techB.newPage();
    await signIn(page, base, tech, 'four-eyes-technician');
    const row = page.locator(`tr[data-computer="${pc.name}"]`);
    await row.waitFor();
    const [term] = await Promise.all([techB.context.waitForEvent('page'), row.getByRole('link', { name: `Connect to ${pc.name} with SSH` }).click()]);
    await waitFor('waiting for a moderator', 120_000, async () => ((await banner(term)).state === 'waiting' ? true : undefined));
    expect((await banner(term)).text).toMatch(/waiting for a moderator/);
    expect(await term.getByTestId('jit-account').count()).toBe(0);
    await screenshot(term, 'four-eyes-waiting');

    const modPage = await modB.newPage();
    modPage.on('dialog', (d) => void d.accept());
    await signIn(modPage, base, mod, 'four-eyes-moderator');
    await go(modPage, 'Live sessions');
    const item = modPage.getByTestId('moderation-list').locator('li', { hasText: tech.login });
    await item.waitFor({ timeout: 30_000 });
    await item.getByRole('link', { name: 'Moderate' }).click();
    await modPage.getByText('watching (read-only)').waitFor({ timeout: 30_000 });

    const account = await waitFor('the JIT account', 60_000, async () => (await term.getByTestId('jit-account').textContent().catch(() => null)) || undefined);
    expect((await banner(term)).text).toContain(`moderated by ${mod.login}`);
    await term.locator('.xterm').click();
    await term.keyboard.type('echo moderated-$((6*7))\n');
    await waitFor('the moderator to see the output', 30_000, async () => ((await terminalText(modPage)).includes('moderated-42') ? true : undefined));

    // the moderator leaves: paused, typing has no effect, ended after the grace period
    await go(modPage, 'Live sessions');
    await waitFor('the pause', 20_000, async () => ((await banner(term)).state === 'paused' ? true : undefined));
    expect((await banner(term)).text).toMatch(/paused: the moderator left, input is blocked/);
    await screenshot(term, 'four-eyes-paused');
    await term.locator('.xterm').click();
    await term.keyboard.type('echo paused-$((5*5))\n');
    await waitFor('the end after the grace period', 30_000, async () => ((await banner(term)).state === 'ended' ? true : undefined));
    expect((await banner(term)).text).toMatch(/no moderator rejoined within 8 seconds/);
    expect(await terminalText(term)).not.toContain('paused-25');
    await waitFor('the JIT account to be removed', 60_000, async () => ((await host.exec(`getent passwd ${account}`)).code !== 0 ? true : undefined));
  }, 300_000);
});
