// Shared helpers for the end-to-end tests of Vigil's web console.
//
// The tests drive Debian's Chromium through playwright-core (which downloads no browser).
// crates/vigil/tests/console.rs starts `vigil serve` on a fresh data directory and runs
// them with these variables set:
//   VIGIL_URL            the server's base URL, e.g. http://127.0.0.1:41234
//   VIGIL_ADMIN_KEY      the first admin key that server printed
//   VIGIL_CHROMIUM       the Chromium binary (default /usr/bin/chromium)
//   VIGIL_SCREENSHOT_DIR optional: where screenshot() writes PNGs (nothing is written
//                        when unset)

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const baseUrl = (process.env.VIGIL_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const adminKey = process.env.VIGIL_ADMIN_KEY || '';
export const chromiumPath = process.env.VIGIL_CHROMIUM || '/usr/bin/chromium';
export const screenshotDir = process.env.VIGIL_SCREENSHOT_DIR || '';

export const VIEWPORT = { width: 1366, height: 800 };

// Without the background-networking flags Chromium keeps trying to reach Google's
// services, and stalls on the refused connections of this offline machine. We run as
// root, which Chromium's sandbox refuses: hence --no-sandbox.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches headless Chromium. Close it with `await browser.close()`. */
export async function launch() {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
}

/**
 * A new page in its own browser context (fresh cookies and storage), 1366x800, whose
 * relative URLs resolve against `baseUrl` (so `page.goto('/')` works).
 *
 * What goes wrong in the page is recorded:
 *   page.errors        every console error and uncaught page error, as strings
 *   page.pageErrors    the uncaught exceptions only (Error objects)
 *   page.consoleErrors the console.error messages only (strings; this includes the
 *                      browser's own "Failed to load resource" lines)
 * `assertNoPageErrors(page)` fails a test on any uncaught exception; `withPage` does that
 * automatically.
 */
export async function newPage(browser, contextOptions = {}) {
  const context = await browser.newContext({
    viewport: VIEWPORT,
    baseURL: baseUrl + '/',
    ...contextOptions,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.setDefaultNavigationTimeout(30_000);
  page.errors = [];
  page.pageErrors = [];
  page.consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const loc = msg.location();
    const where = loc && loc.url ? ` (${loc.url}:${loc.lineNumber})` : '';
    const text = `${msg.text()}${where}`;
    page.consoleErrors.push(text);
    page.errors.push(`console.error: ${text}`);
  });
  page.on('pageerror', (err) => {
    page.pageErrors.push(err);
    page.errors.push(`uncaught: ${err && err.stack ? err.stack : err}`);
  });
  return page;
}

/** Fails when the page threw an uncaught exception. */
export function assertNoPageErrors(page) {
  assert.deepEqual(
    page.pageErrors.map((e) => (e && e.stack ? e.stack : String(e))),
    [],
    `uncaught errors in the page:\n${page.errors.join('\n')}`,
  );
}

/** Fails when the page logged any console error or threw any uncaught exception. */
export function assertNoErrors(page) {
  assert.deepEqual(page.errors, [], `errors in the page:\n${page.errors.join('\n')}`);
}

/**
 * Runs `fn(page)` on a new page, then fails on any uncaught page error, and always closes
 * the page's context. When the test fails and VIGIL_SCREENSHOT_DIR is set, a screenshot
 * `failed-<name>.png` is kept for a look.
 *
 *   test('shows events', () => withPage(browser, async (page) => { ... }));
 */
export async function withPage(browser, fn, { name = 'page', contextOptions } = {}) {
  const page = await newPage(browser, contextOptions);
  try {
    await fn(page);
    assertNoPageErrors(page);
  } catch (err) {
    await screenshot(page, `failed-${name}`).catch(() => {});
    throw err;
  } finally {
    await page.context().close();
  }
}

/**
 * Writes `${VIGIL_SCREENSHOT_DIR}/${name}.png` when that variable is set, else does
 * nothing. Returns the path written, or null.
 */
export async function screenshot(page, name, options = {}) {
  if (!screenshotDir) return null;
  mkdirSync(screenshotDir, { recursive: true });
  const path = join(screenshotDir, `${name.replace(/[^A-Za-z0-9._-]+/g, '_')}.png`);
  await page.screenshot({ path, ...options });
  return path;
}

/**
 * Calls Vigil's REST API, for seeding data and checking state beside the browser.
 *
 *   await api('/api/v1/events', { method: 'POST', body: { ...event } });
 *   const { body: key } = await api('/api/v1/keys', { method: 'POST', body: { name: 'e2e', role: 'viewer' } });
 *
 * `body` is sent as JSON (a string is sent as is); `token` defaults to the admin key, and
 * `token: null` sends no Authorization header. Returns { status, headers, body } with the
 * body parsed as JSON when it is JSON. Throws on a non-2xx status unless `allowError`.
 */
export async function api(path, { method = 'GET', body, token = adminKey, headers = {}, allowError = false } = {}) {
  const h = { accept: 'application/json', ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  }
  const url = /^https?:\/\//.test(path) ? path : baseUrl + (path.startsWith('/') ? path : `/${path}`);
  const res = await fetch(url, { method, headers: h, body: payload, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let parsed = text;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
  }
  if (!res.ok && !allowError) {
    throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 500)}`);
  }
  return { status: res.status, headers: res.headers, body: parsed };
}
