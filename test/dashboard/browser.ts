import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Locator, type Page } from 'playwright-core';

/** Debian's Chromium (`.ci/run` installs the `chromium` package); never a downloaded browser. */
export const CHROMIUM = process.env.ERRAND_TEST_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Flags for Chromium as root on a machine without network: no sandbox (root), no GPU, and none of
 * the background traffic it would otherwise keep trying. Playwright gives every launch a fresh
 * temporary user-data-dir and adds --headless.
 */
export const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export const SCREENSHOTS = fileURLToPath(new URL('../../test-results/dashboard/', import.meta.url));

export async function launchChromium(): Promise<Browser> {
  await mkdir(SCREENSHOTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, timeout: 60_000 });
}

/** A browser context signed in through the login link, as a person who opened what `errand up` printed. */
export async function signedIn(browser: Browser, base: string, token: string, options: BrowserContextOptions = {}): Promise<BrowserContext> {
  const context = await browser.newContext({ baseURL: base, ...options });
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  const res = await page.goto(`/login?token=${encodeURIComponent(token)}`);
  if (!res?.ok()) throw new Error(`the login link answered ${res?.status()}`);
  await page.close();
  return context;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Waits until the locator holds an element whose text matches. */
export async function waitForText(locator: Locator, text: RegExp | string): Promise<void> {
  await locator.filter({ hasText: text }).first().waitFor();
}
