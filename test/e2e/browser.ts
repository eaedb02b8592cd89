import { accessSync, constants, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from '../harness/cli.js';

export const CHROMIUM = '/usr/bin/chromium';
export const SCREENSHOTS = join(ROOT, 'test-artifacts', 'screenshots');

/** Whether the Debian chromium is installed (scripts/deps/browser.txt); `reason` for `describe.skipIf`. */
export function chromiumAvailable(): { ok: boolean; reason?: string } {
  try {
    accessSync(CHROMIUM, constants.X_OK);
    return { ok: true };
  } catch {
    return { ok: false, reason: `${CHROMIUM} not installed (apt-get install chromium; see scripts/deps/browser.txt)` };
  }
}

export interface BrowserHandle {
  context: BrowserContext;
  /** console errors and uncaught page errors seen so far, per page */
  errors: string[];
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/** Headless Debian chromium with a fresh profile directory, removed on close. */
export async function launchBrowser(viewport = { width: 1280, height: 800 }): Promise<BrowserHandle> {
  const profile = mkdtempSync(join(tmpdir(), 'jg-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60_000,
  });
  context.setDefaultTimeout(30_000);
  const errors: string[] = [];
  const watch = (page: Page) => {
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  };
  context.on('page', watch);
  for (const p of context.pages()) watch(p);
  return {
    context,
    errors,
    newPage: () => context.newPage(),
    close: async () => {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}
