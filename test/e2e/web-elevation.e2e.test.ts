import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { AuditLog } from '../../core/audit.js';
import type { Database } from '../../core/db/database.js';
import { silentLogger } from '../../core/logging.js';
import { SecretBox } from '../../core/secret-box.js';
import { AccessService } from '../../gateway/access-policy.js';
import { apiRoutes } from '../../gateway/api/index.js';
import { createAuth } from '../../gateway/auth/index.js';
import { createMetrics } from '../../gateway/metrics.js';
import { buildServer } from '../../gateway/server.js';
import { webStatic } from '../../gateway/web-static.js';
import { MemoryAccountStore } from '../../provisioner/stores/memory.store.js';
import { buildWeb } from '../../web/build.js';
import { DirRecordingFiles, MemoryLiveSessions } from '../fixtures/api-fixture.js';
import { databaseFactories } from '../harness/databases.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { addOrganization, addPerson, firstRunSetup, go, type Person } from './web-steps.js';

/**
 * Issue 14 in the browser: the Computers page's JIT mode select (create /
 * elevate, with its plain explanation; the create-only options go away in
 * elevate mode) saves `jit.mode`, and the People page's "Existing accounts"
 * section maps a person to their own account, refused in words when the
 * store has no such account, and back to the store's rule. Real identity
 * module and admin API on PGlite; the store's accounts come from the
 * engine's in-memory store.
 */
const browserOk = chromiumAvailable();
const pglite = databaseFactories().find((f) => f.label === 'pglite')!;

describe.skipIf(!browserOk.ok)(`elevation in the web app${browserOk.ok ? '' : ` (skipped: ${browserOk.reason})`}`, () => {
  let dist = '';
  let db: Database;
  let app: FastifyInstance;
  let base = '';
  let setupPath = '';
  let b: BrowserHandle;
  const files = new DirRecordingFiles();
  const tag = randomBytes(3).toString('hex');
  const directory = new MemoryAccountStore({ groups: ['sudo'] });

  beforeAll(async () => {
    dist = mkdtempSync(join(tmpdir(), 'jg-web-dist-'));
    await buildWeb(dist);
    db = await pglite.open();
    const audit = new AuditLog(db);
    const log = silentLogger();
    const auth = createAuth({
      db, box: new SecretBox(randomBytes(32)), audit, log,
      cfg: { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 'jitgate-e2e', cookieSecure: 'auto' },
    });
    app = await buildServer({
      log, metrics: createMetrics(), version: 'e2e', readiness: [],
      rootPlugins: [auth.plugin, webStatic(dist)],
      apiPlugins: [
        apiRoutes({
          db, audit, access: new AccessService(db, audit), liveSessions: new MemoryLiveSessions(), recordingFiles: files,
          stores: [{ name: 'linux-ssh', type: 'ssh', url: 'ssh://192.0.2.10:22', organizations: null, groups: ['sudo'], allowedContainers: null, elevationAccountName: 'adm_{login}' }],
          checkStore: async () => ({ ok: true }),
          findExistingAccount: (_store, name) => directory.findExisting(name),
          extendSession: () => Promise.reject(new Error('no sessions here')),
        }),
      ],
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    if (!addr || typeof addr === 'string') throw new Error('no address');
    base = `http://127.0.0.1:${addr.port}`;
    setupPath = (await auth.bootstrapPath())!;
    b = await launchBrowser();
  }, 240_000);

  afterAll(async () => {
    await b?.close();
    await app?.close();
    await db?.close();
    if (dist) rmSync(dist, { recursive: true, force: true });
    rmSync(files.dir, { recursive: true, force: true });
  });

  it('a computer set to elevate saves jit.mode; a person is mapped to their own account, refused when it does not exist, and back to the rule', async () => {
    const page = await b.newPage();
    const admin: Person = { login: `admin${tag}`, displayName: 'First Admin', password: `pw-${randomUUID()}` };
    const tech: Person = { login: `tech${tag}`, displayName: 'Tess Tech', password: `pw-${randomUUID()}` };
    const org = `acme${tag}`;
    const computer = `elev${tag}`;
    await firstRunSetup(page, base + setupPath, admin);
    await addOrganization(page, org, String(1000 + Math.floor(Math.random() * 8999)));

    await go(page, 'Computers');
    await page.getByRole('button', { name: 'Add computer' }).click();
    const form = page.locator('form.editor');
    await form.getByLabel('Organization').selectOption({ label: org });
    await form.getByLabel('Name', { exact: true }).fill(computer);
    await form.getByLabel('Address (host name or IP)').fill('192.0.2.10');
    await form.getByLabel('Local account store (SSH / WinRM)').selectOption('linux-ssh');
    await form.getByLabel('Account type').selectOption('local');
    await form.getByLabel(/Admin groups/).fill('sudo');
    const mode = form.getByLabel('How admin rights are given');
    expect(await mode.inputValue()).toBe('create');
    await form.getByText('A new account is made for each session').waitFor();
    expect(await form.getByLabel('Delete the account when the session ends').count()).toBe(1);
    await mode.selectOption('elevate');
    await form.getByText('people type their own in the remote login').waitFor();
    // Options that only mean something for created accounts are gone.
    expect(await form.getByLabel('Delete the account when the session ends').count()).toBe(0);
    await screenshot(page, 'computer-jit-mode-elevate');
    await form.getByRole('button', { name: 'Save' }).click();
    const row = page.locator(`tr[data-computer="${computer}"]`);
    await row.waitFor();
    await row.getByText('elevates own account').waitFor();
    const saved = await db.query<{ jit: { mode?: string } | string }>('SELECT jit FROM computers WHERE name = $1', [computer]);
    const jit = typeof saved[0]!.jit === 'string' ? JSON.parse(saved[0]!.jit) : saved[0]!.jit;
    expect(jit.mode).toBe('elevate');

    await addPerson(page, { ...tech, role: 'technician', organization: org });
    await page.locator(`tr[data-login="${tech.login}"]`).getByRole('button', { name: 'Existing accounts' }).click();
    const section = page.getByTestId('person-accounts');
    const input = section.getByLabel('linux-ssh (ssh)');
    await input.waitFor();
    // Empty: the store's rule, shown as the placeholder.
    expect([await input.inputValue(), await input.getAttribute('placeholder')]).toEqual(['', `adm_${tech.login}`]);
    await input.fill('ops9');
    await section.getByRole('button', { name: 'Save' }).click();
    await section.getByRole('alert').getByText(`has no account ops9 on linux-ssh`).waitFor();
    const mapped = async () => (await db.query<{ account_name: string }>('SELECT m.account_name FROM person_accounts m JOIN people p ON p.id = m.person_id WHERE p.login = $1', [tech.login]))[0]?.account_name ?? null;
    expect(await mapped()).toBeNull();

    directory.accounts.set('ops1', { name: 'ops1', password: 'x', marker: '', enabled: true, expiresAt: null, protectedReason: null });
    await input.fill('ops1');
    await section.getByRole('button', { name: 'Save' }).click();
    await section.getByRole('status').getByText(`${tech.login} elevates as ops1 on linux-ssh.`).waitFor();
    expect(await mapped()).toBe('ops1');
    await section.getByText('set by an admin').waitFor();
    await screenshot(page, 'person-existing-accounts');

    await section.getByRole('button', { name: 'Use the rule' }).click();
    await section.getByRole('status').getByText('the naming rule applies again').waitFor();
    expect(await mapped()).toBeNull();
    await page.close();
  }, 240_000);
});
