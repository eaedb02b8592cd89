import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Worker } from 'bullmq';
import type { Database } from '../../core/db/database.js';
import { silentLogger } from '../../core/logging.js';
import { createPerson } from '../../gateway/auth/index.js';
import { JIT_PRESETS } from '../../provisioner/jit-settings.js';
import { SearchIndexQueue, startSearchIndexWorker } from '../../provisioner/search-index.jobs.js';
import { SearchIndexer } from '../../recorder/search-index.js';
import { JitFixture } from '../fixtures/jit-fixture.js';
import { sshHostAvailable, type SshHostHandle } from '../harness/ssh-host.js';
import { startSshWebRig, type SshWebRig } from './web-rig.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { go, signIn, type Person } from './web-steps.js';

/**
 * Issue 19, search across sessions, end to end: a technician runs a real SSH
 * session in the browser terminal (gateway → JIT account on a real sshd test
 * host, recorded by the real recorder) and types a distinctive command; the
 * session ends, the recording is sealed and the search-index job (BullMQ on
 * the test Redis) indexes it; an auditor of the organization finds the
 * command on the Search page, clicks the hit and the player opens at that
 * moment with the command timeline beside it.
 */
const redisSocket = inject('redisSocket');
const why = [chromiumAvailable(), sshHostAvailable(), redisSocket ? { ok: true } : { ok: false, reason: 'no test Redis' }].find((a) => !a.ok)?.reason;
const STORE = 'e2e-ssh';

describe.skipIf(why !== undefined)(`search across sessions in the browser${why ? ` (skipped: ${why})` : ''}`, () => {
  let rig: SshWebRig;
  let host: SshHostHandle;
  let db: Database;
  let fx: JitFixture;
  let searchQueue: SearchIndexQueue | undefined;
  let searchWorker: Worker | undefined;
  let b: BrowserHandle;
  let b2: BrowserHandle;
  let base = '';
  const prefix = `jg-search-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    // wired as app/main.ts wires it: sealing enqueues indexing, the worker indexes from the recorder's store
    rig = await startSshWebRig({ redisSocket: redisSocket!, prefix, store: STORE, onSealed: async (id) => void (await searchQueue?.enqueue(id)) });
    ({ host, db, fx, base } = rig);
    searchQueue = new SearchIndexQueue({ connection: rig.connection, prefix });
    const indexer = new SearchIndexer({ db, store: rig.recorder.store, log: silentLogger() });
    searchWorker = startSearchIndexWorker({ connection: rig.connection, prefix, log: silentLogger(), index: (id) => indexer.index(id) });
    b = await launchBrowser();
    b2 = await launchBrowser();
  }, 300_000);

  afterAll(async () => {
    await b?.close();
    await b2?.close();
    await searchWorker?.close();
    await searchQueue?.close();
    await rig?.close();
  }, 60_000);

  it('a command typed in an SSH session is found in Search; the hit opens the player at that moment, with the command timeline', async () => {
    const org = await fx.organization();
    const tech: Person = { login: `tess${randomBytes(2).toString('hex')}`, displayName: 'Tess Tech', password: `pw-${randomUUID()}` };
    const auditor: Person = { login: `abe${randomBytes(2).toString('hex')}`, displayName: 'Abe Auditor', password: `pw-${randomUUID()}` };
    await createPerson(db, { login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: org.id, password: tech.password });
    await createPerson(db, { login: auditor.login, displayName: auditor.displayName, role: 'auditor', organizationId: org.id, password: auditor.password });
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local' }, { orgId: org.id, localStore: STORE, domainStore: STORE });
    await db.query("UPDATE computers SET address = $2, ssh_port = $3, protocols = '{ssh}', policy = jsonb_build_object('sshHostKeySha256', $4::text) WHERE id = $1", [pc.id, host.address, host.port, host.hostKeySha256]);
    const needle = `jgneedle${randomBytes(4).toString('hex')}`;

    // The technician's session: wait for the shell, idle a few seconds (so the moment is not 0), type the command, end.
    const term = await b.newPage();
    term.on('dialog', (d) => void d.accept());
    await signIn(term, base, tech, 'search-tech');
    await term.goto(`${base}/terminal/${encodeURIComponent(pc.id)}`);
    await term.getByTestId('jit-account').waitFor({ timeout: 120_000 });
    const screen = () => term.locator('.xterm-rows').innerText().catch(() => '');
    await expect.poll(screen, { timeout: 60_000 }).toMatch(/[$#]\s*$/m);
    await new Promise((r) => setTimeout(r, 3000));
    await term.locator('.xterm').click();
    await term.keyboard.type(`echo ${needle} | rev\n`);
    await expect.poll(screen, { timeout: 30_000 }).toContain([...needle].reverse().join(''));
    await term.getByTestId('end-session').click();
    await term.getByTestId('terminal-status').getByText('You ended the session.').waitFor();

    // The auditor searches for it (the search-index job runs after the recording is sealed: retried until it shows).
    const page = await b2.newPage();
    // Failed requests by address.
    const failed: string[] = [];
    page.on('response', (r) => void (r.status() >= 400 && failed.push(`${r.status()} ${new URL(r.url()).pathname}`)));
    await signIn(page, base, auditor, 'search-auditor');
    await go(page, 'Search');
    await page.getByLabel('Search for').fill(needle);
    await page.getByRole('button', { name: 'Search' }).click();
    const hits = page.getByTestId('hits').locator('li');
    const deadline = Date.now() + 60_000;
    while (!(await hits.count())) {
      if (Date.now() > deadline) throw new Error('the command was not found in Search within 60 s of the session ending');
      await page.waitForTimeout(1000);
      await page.getByRole('button', { name: 'Search' }).click();
      await page.locator('[data-testid="hits"], [data-testid="no-hits"]').first().waitFor();
    }
    const hit = hits.first();
    expect(await hit.textContent()).toContain(`echo ${needle} | rev`);
    expect(await hit.textContent()).toContain(tech.login);
    expect(await hit.textContent()).toContain(pc.name);
    expect(await hit.locator('mark').first().textContent()).toBe(needle);
    await screenshot(page, 'search-hits');

    // The hit opens the player at that moment: ?t= seconds in, the command on the replayed screen, the timeline beside it.
    await hit.getByRole('link').first().click();
    await page.getByRole('heading', { name: 'Replay' }).waitFor();
    const t = Number(new URL(page.url()).searchParams.get('t'));
    expect(t).toBeGreaterThanOrEqual(3);
    await page.getByText(/starting \d+ s in/).waitFor();
    await expect.poll(() => page.getByTestId('player').innerText().catch(() => ''), { timeout: 30_000 }).toContain(`echo ${needle}`);
    const timeline = page.getByTestId('command-timeline');
    await timeline.getByText(`echo ${needle} | rev`).waitFor({ timeout: 30_000 });
    await screenshot(page, 'search-replay-at-moment');
    expect(failed).toEqual([]);
    expect(b2.errors).toEqual([]);
  }, 600_000);
});
