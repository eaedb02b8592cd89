import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Page } from 'playwright-core';
import type { Database } from '../../core/db/database.js';
import { createLogger } from '../../core/logging.js';
import { createPerson } from '../../gateway/auth/index.js';
import { MemoryAccountStore } from '../../provisioner/stores/memory.store.js';
import { JitFixture } from '../fixtures/jit-fixture.js';
import { sshHostAvailable, type SshHostHandle } from '../harness/ssh-host.js';
import { waitFor } from '../fixtures/elevation-ssh-env.js';
import { startSshWebRig, startWebRig, type SshWebRig, type WebRig } from './web-rig.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { addOrganization, addPerson, firstRunSetup, go, signIn, type Person } from './web-steps.js';

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

describe.skipIf(!browserOk.ok)(`elevation in the web app${browserOk.ok ? '' : ` (skipped: ${browserOk.reason})`}`, () => {
  let rig: WebRig;
  let db: Database;
  let base = '';
  let setupPath = '';
  let b: BrowserHandle;
  const tag = randomBytes(3).toString('hex');
  const directory = new MemoryAccountStore({ groups: ['sudo'] });

  beforeAll(async () => {
    rig = await startWebRig({
      stores: [{ name: 'linux-ssh', type: 'ssh', url: 'ssh://192.0.2.10:22', organizations: null, groups: ['sudo'], allowedContainers: null, elevationAccountName: 'adm_{login}' }],
      api: { findExistingAccount: (_store, name) => directory.findExisting(name) },
    });
    ({ db, base } = rig);
    setupPath = await rig.setupPath();
    b = await launchBrowser();
  }, 240_000);

  afterAll(async () => {
    await b?.close();
    await rig?.close();
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

/**
 * Issue 14, an elevated session from the web app on a real sshd host: the
 * person's own Linux account joins `sudo` for the lease; jitgate holds no
 * password, so the terminal page says "sign in with your own password" and
 * the person types it in the terminal, where it is relayed to the computer's
 * login once (a wrong one first: refused, asked again). The typed passwords
 * appear in no log line (the gateway and worker log at trace level), no
 * recording file and no audit or database row; the session's own output
 * does appear in the recording (so the search looks in the right place). At
 * the end the membership jitgate added is gone and the account stays.
 */
const redisSocket = inject('redisSocket');
const whyNot = [browserOk, sshHostAvailable(), redisSocket ? { ok: true } : { ok: false, reason: 'no test Redis' }].find((a) => !a.ok)?.reason;

/** Every file under `dir`, as text (gzip-compressed files unpacked). */
function filesText(dir: string): string {
  let out = '';
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const raw = readFileSync(join(e.parentPath, e.name));
    out += raw.toString('utf8');
    if (raw[0] === 0x1f && raw[1] === 0x8b) out += gunzipSync(raw).toString('utf8');
  }
  return out;
}

const termText = (page: Page): Promise<string> => page.locator('.xterm-rows').innerText().catch(() => '');

describe.skipIf(whyNot !== undefined)(`an elevated SSH session from the web app${whyNot ? ` (skipped: ${whyNot})` : ''}`, () => {
  const STORE = 'e2e-elev-ssh';
  let rig: SshWebRig;
  let host: SshHostHandle;
  let db: Database;
  let recDir = '';
  let b: BrowserHandle;
  let base = '';
  let fx: JitFixture;
  let logged = '';

  beforeAll(async () => {
    // Everything the gateway and the worker log, at the most talkative level, kept to be searched.
    const log = createLogger({ level: 'trace', destination: { write: (line: string) => void (logged += line) } });
    rig = await startSshWebRig({ redisSocket: redisSocket!, prefix: `jg-welev-${randomBytes(4).toString('hex')}`, store: STORE, log });
    ({ host, db, fx, base, recDir } = rig);
    b = await launchBrowser();
  }, 300_000);

  afterAll(async () => {
    await b?.close();
    await rig?.close();
  }, 60_000);

  it('says "sign in with your own password", relays the typed password (a wrong one refused first) and keeps it nowhere; the added membership is gone at the end', async () => {
    const org = await fx.organization();
    // The person's login is their Linux account's name (the store's default rule `{login}`).
    const tech: Person = { login: `ev${randomBytes(3).toString('hex')}`, displayName: 'Eve Elevated', password: `pw-${randomUUID()}` };
    await createPerson(db, { login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: org.id, password: tech.password });
    const own = `Own-${randomBytes(9).toString('base64url')}`;
    const wrong = `Wrong-${randomBytes(9).toString('base64url')}`;
    const sh = async (cmd: string) => {
      const r = await host.exec(cmd);
      if (r.code !== 0) throw new Error(`${cmd}: ${r.stderr}`);
      return r.stdout;
    };
    await sh(`useradd -m -s /bin/bash ${tech.login}`);
    await host.exec('chpasswd', { stdin: `${tech.login}:${own}\n` }).then((r) => expect(r.code, r.stderr).toBe(0));
    const sudoMembers = async () => (await sh('getent group sudo')).trim().split(':')[3]!.split(',').filter(Boolean);
    expect(await sudoMembers()).not.toContain(tech.login);

    const pc = await fx.computer({ enabled: true, mode: 'elevate', adminGroups: ['admins'], accountType: 'local', maxSessionMinutes: 30 }, { orgId: org.id, localStore: STORE, domainStore: STORE });
    await db.query("UPDATE computers SET address = $2, ssh_port = $3, protocols = '{ssh}', policy = jsonb_build_object('sshHostKeySha256', $4::text) WHERE id = $1", [pc.id, host.address, host.port, host.hostKeySha256]);

    const page = await b.newPage();
    page.on('dialog', (d) => void d.accept());
    await signIn(page, base, tech);
    const t0 = Date.now();
    await page.goto(`${base}/terminal/${pc.id}`);
    const ask = page.getByTestId('own-password');
    await ask.waitFor({ timeout: 120_000 });
    expect(await ask.textContent()).toContain(`Sign in with your own password for ${tech.login}`);
    // Elevated before the login: the membership exists while the person types.
    expect(await sudoMembers()).toContain(tech.login);
    await waitFor('the password prompt in the terminal', async () => ((await termText(page)).includes(`Password for ${tech.login}:`) ? true : undefined), 30_000);
    await screenshot(page, 'terminal-own-password');
    await page.locator('.xterm').click();
    await page.keyboard.type(`${wrong}\n`);
    await waitFor('the refusal', async () => ((await ask.textContent().catch(() => '')) ?? '').includes('refused that password') ? true : undefined, 60_000);
    // Nothing typed at the prompt is echoed.
    expect(await termText(page)).not.toContain(wrong);
    await page.keyboard.type(`${own}\n`);
    const account = await waitFor('the session to be ready', async () => (await page.getByTestId('jit-account').textContent().catch(() => null)) || undefined, 60_000);
    console.log(`elevated web session: ready ${Date.now() - t0} ms after opening the page (including typing)`);
    expect(account).toBe(tech.login);
    expect(await page.getByTestId('terminal-status').textContent()).toContain('your own account');
    await page.keyboard.type('id -nG; echo marker-$((6*7))\n');
    await waitFor('the command output', async () => ((await termText(page)).includes('marker-42') ? true : undefined), 30_000);
    expect(await termText(page)).toMatch(/\bsudo\b/);
    await page.getByRole('button', { name: /End session/ }).click();
    await page.getByTestId('close-reason').waitFor({ timeout: 60_000 });

    const sessionId = (await db.query<{ id: string }>('SELECT id FROM sessions WHERE computer_id = $1', [pc.id]))[0]!.id;
    await waitFor('the session to end', async () => ((await fx.repo.getSession(sessionId))?.state === 'ended' ? true : undefined), 120_000);
    expect(await sudoMembers()).not.toContain(tech.login);
    expect((await host.exec(`id ${tech.login}`)).code).toBe(0);

    // Kept nowhere: the recording (which holds the session's output), every log line, the audit trail, the database.
    const recorded = filesText(recDir);
    expect(recorded).toContain('marker-42');
    const rows = JSON.stringify([
      ...(await db.query('SELECT * FROM audit_events')),
      ...(await db.query('SELECT * FROM sessions')),
      ...(await db.query('SELECT * FROM elevations')),
    ]);
    expect(logged).toContain(sessionId);
    for (const secret of [own, wrong]) {
      expect(recorded).not.toContain(secret);
      expect(logged).not.toContain(secret);
      expect(rows).not.toContain(secret);
    }
    await page.close();
  }, 300_000);
});
