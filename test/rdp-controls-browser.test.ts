import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Computer } from '../core/domain.js';
import { silentLogger } from '../core/logging.js';
import { Secret } from '../core/secret.js';
import { rdpWatchRoutes } from '../gateway/rdp/rdp-watch.js';
import { RedisLiveSessions } from '../gateway/sessions/live-sessions.js';
import { FixedBroker, SlotRecorder, TEST_PRINCIPAL, peerEncode, solidPng, startGuacdPeer, startRdpTestApp, type GuacdPeer } from './harness/guacd-peer.js';
import { redisAvailable, startRedis, type RedisHandle } from './harness/redis.js';

/**
 * The RDP page's controls in Debian's chromium against the gateway and the
 * Guacamole test peer (issue 13): the side menu offers only what the
 * computer's policy allows; the replay shows the key/clipboard timeline
 * beside the player and an entry seeks it; an auditor's watch view draws the
 * live session's current screen.
 */

const CHROMIUM = '/usr/bin/chromium';
const repo = fileURLToPath(new URL('..', import.meta.url));
const haveChromium = existsSync(CHROMIUM);
const haveRedis = redisAvailable().ok;
if (!haveChromium) console.info(`rdp-controls-browser: skipped: ${CHROMIUM} is missing (install scripts/deps/browser.txt)`);

const computer: Computer = {
  id: 'c1', organizationId: 'o1', name: 'win01', address: '10.9.8.7', protocols: ['rdp'], sshPort: 22, rdpPort: 3389,
  domainStore: 'ad', localStore: null, jit: {}, policy: {}, restricted: false,
};
const COLOR: [number, number, number] = [30, 60, 200];

describe.skipIf(!haveChromium || !haveRedis)('RDP controls in chromium', () => {
  let dir: string;
  let browser: Browser;
  let peer: GuacdPeer;
  let broker: FixedBroker;
  let redis: RedisHandle;
  let live: RedisLiveSessions;
  let app: Awaited<ReturnType<typeof startRdpTestApp>>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jitgate-rdp-controls-'));
    await build({
      configFile: false, root: repo, logLevel: 'warn', clearScreen: false,
      build: {
        outDir: dir, emptyOutDir: false, minify: false, target: 'es2022', sourcemap: false,
        lib: {
          entry: { 'rdp-view': join(repo, 'web/src/rdp/rdp-view.ts'), 'rdp-replay': join(repo, 'web/src/rdp/rdp-replay.ts') },
          formats: ['es'],
          fileName: (_format, name) => `${name}.js`,
        },
      },
    });
    writeFileSync(join(dir, 'view.html'), `<!doctype html><html><body style="margin:0">
<div id="host" style="width:640px;height:480px"></div>
<script type="module">
import { mountRdp } from './rdp-view.js';
window.ready = null;
window.handle = mountRdp(document.getElementById('host'), {
  computerId: 'win01', accountType: 'domain', csrf: 'good', onStatus: () => {}, onClosed: () => {}, onReady: (i) => { window.ready = i; },
});
</script></body></html>`);
    writeFileSync(join(dir, 'watch.html'), `<!doctype html><html><body style="margin:0">
<div id="host" style="width:640px;height:480px"></div>
<script type="module">
import { watchRdp } from './rdp-view.js';
window.statuses = []; window.closedReason = null;
const q = new URLSearchParams(location.search);
document.cookie = 'as=auditor; path=/';
window.handle = watchRdp(document.getElementById('host'), {
  sessionId: q.get('session'), csrf: 'good', tunnelUrl: '/api/v1/rdp/watch',
  onStatus: (s) => window.statuses.push(s), onClosed: (r) => { window.closedReason = r; },
});
</script></body></html>`);
    writeFileSync(join(dir, 'replay.html'), `<!doctype html><html><body style="margin:0">
<div id="host" style="width:900px"></div>
<script type="module">
import { mountRdpReplay } from './rdp-replay.js';
window.replay = mountRdpReplay(document.getElementById('host'), { url: '/rdp-test/keys.guac', startAtMs: Number(new URLSearchParams(location.search).get('at') ?? 0) });
</script></body></html>`);
    // The golden fragment of recorder/rdp-key-timeline.test.ts with a real image in place of its placeholder.
    const fragment = readFileSync(join(repo, 'recorder/testdata/rdp-keys.guac'), 'utf8');
    const png = solidPng(64, 48, COLOR).toString('base64');
    writeFileSync(join(dir, 'keys.guac'), fragment.replace('4.blob,1.1,12.iVBORw0KGgo=;', peerEncode('blob', '1', png)));

    redis = await startRedis();
    live = new RedisLiveSessions({ redis: { path: redis.socketPath }, prefix: `b-${randomUUID().slice(0, 8)}`, heartbeatMs: 500, log: silentLogger() });
    await live.start();
    peer = await startGuacdPeer({ image: { width: 64, height: 48, rgb: COLOR } });
    broker = new FixedBroker(computer, { username: 'alice_c1', password: new Secret('pw'), domain: 'CORP' });
    const origOpen = broker.open.bind(broker);
    // Sessions go into the live list as the real broker's do (so the watch route finds them).
    broker.open = async (req, onProgress) => {
      const o = await origOpen(req, onProgress);
      const reg = await live.register(
        { sessionId: o.session.id, personLogin: req.principal.login, computerName: 'win01', protocol: 'rdp', account: 'alice_c1', startedAt: new Date().toISOString() },
        () => undefined,
      );
      return Object.assign(o, { setGuacdConnection: (id: string) => reg.setGuacdConnection(id) });
    };
    app = await startRdpTestApp({
      broker, recorder: new SlotRecorder(dir), guacd: { host: peer.host, port: peer.port }, staticDir: dir,
      principals: { auditor: { ...TEST_PRINCIPAL, login: 'sam', role: 'auditor' } },
      apiPlugins: [
        rdpWatchRoutes({
          log: silentLogger(), live, guacd: { host: peer.host, port: peer.port },
          checkCsrf: (req) => (req.query as Record<string, unknown>).csrf === 'good',
          mayWatch: (p) => p.role !== 'technician', audit: { record: async () => undefined },
        }),
      ],
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await app?.app.close();
    await peer?.close();
    await live?.close();
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function openView(policy: Record<string, unknown>): Promise<Page> {
    (broker.computer as { policy: unknown }).policy = policy;
    const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
    await page.goto(`${app.url}/rdp-test/view.html`);
    await page.waitForFunction('window.ready !== null', null, { timeout: 30_000 });
    return page;
  }
  const count = (page: Page, sel: string): Promise<number> => page.locator(sel).count();

  it('offers no menu at all when the policy allows no clipboard, files or printing', async () => {
    const page = await openView({ clipboard: 'off', drive: 'off' });
    expect(await count(page, 'details.rdp-menu')).toBe(0);
    expect(await count(page, 'input[type=file], textarea')).toBe(0);
    await page.close();
  }, 60_000);

  it('remote→local clipboard only: shows the remote clipboard, offers no way to send text or files', async () => {
    const page = await openView({ clipboard: 'remote-to-local', drive: 'download' });
    await page.locator('details.rdp-menu > summary').click();
    expect(await count(page, 'textarea')).toBe(0);
    expect(await count(page, 'input[type=file]')).toBe(0);
    expect(await count(page, 'output.rdp-remote-clipboard')).toBe(1);
    await expect.poll(() => page.locator('details.rdp-menu').innerText()).toContain('Download folder');
    const conn = peer.connections.at(-1)!;
    conn.send('clipboard', '5', 'text/plain');
    conn.send('blob', '5', Buffer.from('copied remotely').toString('base64'));
    conn.send('end', '5');
    await expect.poll(() => page.locator('output.rdp-remote-clipboard').textContent(), { timeout: 20_000 }).toBe('copied remotely');
    await page.close();
  }, 60_000);

  it('both ways with upload: text sent from the menu reaches guacd; over the limit nothing is sent', async () => {
    const page = await openView({ clipboard: 'both', clipboardMaxBytes: 10, drive: 'upload' });
    const conn = peer.connections.at(-1)!;
    await page.locator('details.rdp-menu > summary').click();
    expect(await count(page, 'input[type=file]')).toBe(1);
    await page.locator('textarea').fill('hello');
    await page.getByRole('button', { name: 'Send to remote clipboard' }).click();
    await peer.waitFor(() => conn.received.some((i) => i[0] === 'blob' && Buffer.from(i[2] ?? '', 'base64').toString() === 'hello'), 20_000, 'clipboard at guacd');
    const before = conn.received.filter((i) => i[0] === 'clipboard').length;
    await page.locator('textarea').fill('far more than ten bytes');
    await page.getByRole('button', { name: 'Send to remote clipboard' }).click();
    await expect.poll(() => page.locator('details.rdp-menu').innerText()).toContain('Not sent');
    expect(conn.received.filter((i) => i[0] === 'clipboard').length).toBe(before);
    await page.close();
  }, 60_000);

  it('replay: the key/clipboard timeline is beside the player and an entry seeks it', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    await page.goto(`${app.url}/rdp-test/replay.html`);
    const entries = page.locator('aside.replay-timeline button.timeline-entry');
    await expect.poll(() => entries.count(), { timeout: 30_000 }).toBe(8);
    expect(await entries.nth(0).innerText()).toContain('dir:C\\⏎');
    expect(await entries.nth(3).innerText()).toContain('P@ss wörd');
    await entries.nth(2).click();
    // 4420 ms into the recording: the player shows 00:04.
    await expect.poll(() => page.locator('.replay-controls span').innerText(), { timeout: 20_000 }).toMatch(/^00:04 \//);
    // Opened at a moment (a search hit, `?t=` on the replay page): the player starts there (5720 ms: a frame), not at the first frame.
    await page.goto(`${app.url}/rdp-test/replay.html?at=5720`);
    await expect.poll(() => entries.count(), { timeout: 30_000 }).toBe(8);
    await expect.poll(() => page.locator('.replay-controls span').innerText(), { timeout: 20_000 }).toMatch(/^00:05 \//);
    await page.close();
  }, 60_000);

  it('an auditor watching draws the live session read-only', async () => {
    const person = await openView({ clipboard: 'off' });
    const sessionId = await person.evaluate('window.ready.sessionId');
    for (let i = 0; i < 200 && !(await live.get(String(sessionId)))?.guacdConnection; i++) await new Promise((r) => setTimeout(r, 25));
    const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
    await page.goto(`${app.url}/rdp-test/watch.html?session=${String(sessionId)}`);
    await page.waitForFunction(`window.statuses.some((s) => s.startsWith('watching alice on win01'))`, null, { timeout: 30_000 });
    await expect
      .poll(
        () => page.evaluate(`[...document.querySelectorAll('canvas')].filter((c) => c.width > 10 && c.height > 10).map((c) => [...c.getContext('2d').getImageData(10, 10, 1, 1).data].slice(0, 3).join())`),
        { timeout: 20_000 },
      )
      .toContain(COLOR.join());
    await page.keyboard.type('x');
    await page.mouse.click(50, 50);
    const joined = peer.joins.at(-1)!;
    await new Promise((r) => setTimeout(r, 500));
    expect(joined.received.filter((i) => i[0] !== 'sync' && i[0] !== 'nop')).toEqual([]);
    await person.close();
    await page.waitForFunction('window.closedReason !== null', null, { timeout: 30_000 });
    await page.close();
  }, 60_000);
});
