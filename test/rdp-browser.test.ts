import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Computer } from '../core/domain.js';
import { Secret } from '../core/secret.js';
import { FixedBroker, SlotRecorder, peerEncode, solidPng, startGuacdPeer, startRdpTestApp, type GuacdPeer } from './harness/guacd-peer.js';

/**
 * The RDP view (web/src/rdp/rdp-view.ts, guacamole-common-js) in Debian's
 * chromium against the gateway tunnel and the Guacamole test peer: the
 * canvas shows the peer's PNG, keys and mouse reach the peer, progress is
 * shown, the password never reaches the page. And the replay
 * (rdp-replay.ts) of a guacd-format recording with an astral character.
 */

const CHROMIUM = '/usr/bin/chromium';
const repo = fileURLToPath(new URL('..', import.meta.url));
const PASSWORD = 'Br0wser;pw,😀';
const COLOR: [number, number, number] = [200, 30, 60];
const COLOR2: [number, number, number] = [20, 180, 90];

const computer: Computer = {
  id: 'c1', organizationId: 'o1', name: 'win01', address: '10.9.8.7', protocols: ['rdp'], sshPort: 22, rdpPort: 3389,
  domainStore: 'ad', localStore: null, jit: {}, policy: {}, restricted: false,
};

async function waitForChromium(): Promise<boolean> {
  // The lead installs chromium (scripts/deps/browser.txt); give an ongoing install a little time.
  for (let i = 0; i < 60 && !existsSync(CHROMIUM); i++) await new Promise((r) => setTimeout(r, 1000));
  return existsSync(CHROMIUM);
}

const haveChromium = await waitForChromium();
if (!haveChromium) console.info(`rdp-browser: skipped: ${CHROMIUM} is missing (install scripts/deps/browser.txt)`);

/** Pixel at (x, y) of every canvas on the page (browser code as a string: the test tsconfig has no DOM types). */
async function pixels(page: Page, x: number, y: number): Promise<number[][]> {
  return page.evaluate(`[...document.querySelectorAll('canvas')]
    .filter((c) => c.width > ${x} && c.height > ${y})
    .map((c) => [...c.getContext('2d').getImageData(${x}, ${y}, 1, 1).data])`);
}

describe.skipIf(!haveChromium)('RDP view in chromium against the test peer', () => {
  let dir: string;
  let browser: Browser;
  let peer: GuacdPeer;
  let broker: FixedBroker;
  let app: Awaited<ReturnType<typeof startRdpTestApp>>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jitgate-rdp-web-'));
    const started = Date.now();
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
    console.info(`rdp-browser: view built with Vite in ${Date.now() - started} ms`);
    writeFileSync(join(dir, 'view.html'), `<!doctype html><html><body style="margin:0">
<div id="host" style="width:640px;height:480px"></div>
<script type="module">
import { mountRdp } from './rdp-view.js';
window.statuses = []; window.closedReason = null;
window.handle = mountRdp(document.getElementById('host'), {
  computerId: 'win01', accountType: 'domain', csrf: 'good',
  onStatus: (s) => window.statuses.push(s), onClosed: (r) => { window.closedReason = r; },
  onReady: (i) => { window.readyInfo = i; },
});
</script></body></html>`);
    writeFileSync(join(dir, 'replay.html'), `<!doctype html><html><body style="margin:0">
<div id="host" style="width:640px"></div>
<script type="module">
import { mountRdpReplay } from './rdp-replay.js';
window.replay = mountRdpReplay(document.getElementById('host'), { url: '/rdp-test/session.guac' });
</script></body></html>`);
    // A guacd-format recording (code-point lengths): first frame COLOR, an instruction with astral
    // characters, then COLOR2 two seconds later. Parsed with UTF-16 lengths it would fall apart after the emoji.
    const frame = (rgb: [number, number, number], ts: number): string =>
      peerEncode('img', '1', '14', '0', 'image/png', '0', '0') + peerEncode('blob', '1', solidPng(64, 48, rgb).toString('base64')) + peerEncode('end', '1') + peerEncode('sync', String(ts));
    writeFileSync(
      join(dir, 'session.guac'),
      peerEncode('size', '0', '64', '48') + frame(COLOR, 1000) + peerEncode('name', 'alice 😀 ok 𝄞 👨‍👩‍👧') + frame(COLOR2, 3000),
    );

    peer = await startGuacdPeer({ image: { width: 64, height: 48, rgb: COLOR } });
    broker = new FixedBroker(computer, { username: 'alice_k3x9q2', password: new Secret(PASSWORD), domain: 'CORP' });
    app = await startRdpTestApp({ broker, recorder: new SlotRecorder(dir), guacd: { host: peer.host, port: peer.port }, staticDir: dir });
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await app?.app.close();
    await peer?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('draws the peer image, shows progress, sends keys and mouse, never sees the password, and disconnects', async () => {
    const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
    const frames: string[] = [];
    page.on('websocket', (ws) => {
      ws.on('framereceived', (f) => frames.push(String(f.payload)));
      ws.on('framesent', (f) => frames.push(String(f.payload)));
    });
    await page.goto(`${app.url}/rdp-test/view.html`);
    await page.waitForFunction(`window.statuses.includes('connected to win01')`, null, { timeout: 30_000 });
    const statuses = await page.evaluate('window.statuses');
    expect(statuses).toEqual(['connecting…', 'creating account…', 'adding to JIT Admins…', 'connecting to win01…', 'connected to win01']);
    // the session id and lease end reach the page (for its lease bar and Extend button)
    const info = (await page.evaluate('window.readyInfo')) as { sessionId: string; computer: string; leaseExpiresAt: number };
    expect(info.computer).toBe('win01');
    expect(info.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(Math.abs(info.leaseExpiresAt - (Date.now() + 3600_000))).toBeLessThan(5 * 60_000);

    // The canvas shows the PNG the peer drew.
    await expect.poll(async () => (await pixels(page, 10, 10)).some((p) => p.join() === [...COLOR, 255].join()), { timeout: 20_000 }).toBe(true);
    const conn = peer.connections[0]!;
    expect(conn.handshake[0]).toEqual(['size', '640', '480', '96']);
    expect(conn.args.password).toBe(PASSWORD);

    // Keyboard (focused view) and mouse reach the peer as Guacamole instructions.
    await page.mouse.click(20, 15);
    await page.keyboard.press('a');
    await page.keyboard.press('Enter');
    await peer.waitFor(() => conn.received.some((i) => i.join() === 'key,65293,0'), 20_000, 'Enter released');
    const keys = conn.received.filter((i) => i[0] === 'key').map((i) => i.slice(1).join(':'));
    expect(keys).toEqual(['97:1', '97:0', '65293:1', '65293:0']);
    const mouse = conn.received.filter((i) => i[0] === 'mouse');
    expect(mouse.some((m) => m[1] === '20' && m[2] === '15')).toBe(true);

    expect(frames.join('\n')).not.toContain(PASSWORD);
    expect(await page.content()).not.toContain(PASSWORD);

    await page.evaluate('window.handle.disconnect()');
    await peer.waitFor(() => conn.received.some((i) => i[0] === 'disconnect'), 20_000, 'disconnect at the peer');
    await peer.waitFor(() => broker.opened[0]?.ended.length === 1, 20_000, 'teardown');
    expect(await page.evaluate('window.closedReason')).toBe('You closed the session.');
    await page.close();
  });

  it('tells the person when an administrator ends the session', async () => {
    const page = await browser.newPage();
    await page.goto(`${app.url}/rdp-test/view.html`);
    await page.waitForFunction(`window.statuses.includes('connected to win01')`, null, { timeout: 30_000 });
    broker.opened.at(-1)!.fireTerminate('terminated', 'admin:bob');
    await page.waitForFunction('window.closedReason !== null', null, { timeout: 20_000 });
    expect(await page.evaluate('window.closedReason')).toBe('An administrator ended this session.');
    await page.close();
  });

  it('says why in words when guacd gives up before the first frame (NLA against a server without NLA), not "The session ended."', async () => {
    // guacd 1.5: `ready`, then `error` with UPSTREAM_NOT_FOUND, then close (issue 13 item 2).
    const nlaPeer = await startGuacdPeer({ failAfterReady: { message: 'Security negotiation failed (wrong security type?)', status: 0x0207 } });
    const nlaBroker = new FixedBroker(computer, { username: 'alice_k3x9q2', password: new Secret(PASSWORD), domain: 'CORP' });
    const nlaApp = await startRdpTestApp({ broker: nlaBroker, recorder: new SlotRecorder(dir), guacd: { host: nlaPeer.host, port: nlaPeer.port }, staticDir: dir });
    try {
      const page = await browser.newPage();
      await page.goto(`${nlaApp.url}/rdp-test/view.html`);
      await page.waitForFunction('window.closedReason !== null', null, { timeout: 30_000 });
      const reason = String(await page.evaluate('window.closedReason'));
      expect(reason).toContain('the remote desktop of win01 did not open');
      expect(reason).toContain('This computer may not support NLA: ask an admin to set RDP security to TLS.');
      expect(reason).not.toContain('alice_k3x9q2');
      await nlaPeer.waitFor(() => nlaBroker.opened[0]?.ended.length === 1, 20_000, 'teardown');
      await page.close();
    } finally {
      await nlaApp.app.close();
      await nlaPeer.close();
    }
  });

  it('replays a guacd recording with astral characters: seek to the end shows the last frame', async () => {
    const page = await browser.newPage();
    await page.goto(`${app.url}/rdp-test/replay.html`);
    // Loaded: duration 2 s between the two sync frames.
    await page.waitForFunction(`document.querySelector('.jitgate-rdp-replay span')?.textContent === '00:00 / 00:02'`, null, { timeout: 20_000 });
    await expect.poll(async () => (await pixels(page, 10, 10)).some((p) => p.join() === [...COLOR, 255].join()), { timeout: 20_000 }).toBe(true);
    await page.evaluate(`{
      const seek = document.querySelector('.jitgate-rdp-replay input[type=range]');
      seek.value = seek.max;
      seek.dispatchEvent(new Event('input'));
    }`);
    await expect.poll(async () => (await pixels(page, 10, 10)).some((p) => p.join() === [...COLOR2, 255].join()), { timeout: 20_000 }).toBe(true);
    await page.evaluate('window.replay.dispose()');
    expect(await page.locator('.jitgate-rdp-replay').count()).toBe(0);
    await page.close();
  });
});
