// What the console's browser tests share: their environment, checks,
// Debian's chromium launched headless with the flags this machine's closed
// network needs, the page's CSP violations and errors collected (and
// failing the test), screenshots into JG_ARTIFACTS, a hard stop, and the
// administrator's login.
//
// A test is `await consoleTest({ name, seconds }, async ({ page, shot }) => …)`:
// it prints `NAME PASSED` and exits 0, or prints `FAIL: …`, screenshots
// every page as failure-N.png and exits 1 (3 when it outlived `seconds`;
// 2 for a missing environment variable).

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

/** The environment variable `k` (or `d`); exits 2 naming it when unset. */
export const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) {
    console.error(`missing env ${k}`);
    process.exit(2);
  }
  return v;
};

export const step = (s) => console.log(`STEP ${s}`);

export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

/**
 * Runs `body` with a fresh page in headless chromium, then checks that the
 * page had no CSP violation and no error, prints `${name} PASSED` and exits.
 * `wait`: each action's timeout (ms); `contextOptions` go to newContext.
 */
export async function consoleTest({ name, seconds, wait = 20_000, contextOptions = {} }, body) {
  const artifacts = env('JG_ARTIFACTS');
  fs.mkdirSync(artifacts, { recursive: true });
  const hardStop = setTimeout(() => {
    console.error(`FAIL: the browser test took longer than ${seconds} s`);
    process.exit(3);
  }, seconds * 1000);
  const cspViolations = [];
  const pageErrors = [];
  const shot = (page, file) => page.screenshot({ path: path.join(artifacts, `${file}.png`), fullPage: true });

  const browser = await chromium.launch({
    executablePath: env('JG_CHROMIUM', '/usr/bin/chromium'),
    headless: true,
    timeout: wait,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let failed = false;
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 }, ...contextOptions });
    const page = await ctx.newPage();
    page.setDefaultTimeout(wait);
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to (apply|load|execute|connect)/i.test(m.text())) cspViolations.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));

    await body({ browser, page, shot, artifacts });

    check(cspViolations.length === 0, `no CSP violations: ${cspViolations.join(' | ')}`);
    check(pageErrors.length === 0, `no page errors: ${pageErrors.join(' | ')}`);
    console.log(`${name} PASSED`);
  } catch (e) {
    failed = true;
    console.error(`FAIL: ${e.stack || e}`);
    if (pageErrors.length) console.error(`page errors: ${pageErrors.join('\n')}`);
    try {
      for (const [i, pg] of browser.contexts().flatMap((c) => c.pages()).entries()) await pg.screenshot({ path: path.join(artifacts, `failure-${i}.png`), fullPage: true });
    } catch {
      /* best effort: the page may be gone */
    }
  } finally {
    clearTimeout(hardStop);
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}

/** Logs in on the console's login page; returns on the Endpoints page. */
export async function logIn(page, url, user, password) {
  await page.goto(`${url}/#/login`);
  await page.locator('input[name=username]').waitFor();
  await page.keyboard.type(user);
  await page.keyboard.press('Tab');
  await page.keyboard.type(password);
  await page.keyboard.press('Enter');
  await page.locator('h1', { hasText: 'Endpoints' }).waitFor();
}
