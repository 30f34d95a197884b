// Browser test of the console's watch mode: Debian's chromium, driven by
// playwright-core, against the real gateway that
// crates/jumpgate/tests/e2e/desktop_watch.rs started, with someone else's
// desktop session live on a real agent and Xvfb. A supervisor opens
// Sessions, clicks Watch, and sees the "Watching" label and the endpoint's
// screen (the pattern read back from the canvas); then clicks and types on
// the screen (the Rust side checks nothing reached the endpoint). Every
// wait is bounded; prints `WATCH-TEST PASSED` on success.
//
// With JG_DRIVE=1 it is a support participant instead, opening
// the owner's screen from the support session's page (JG_SUPPORT), the
// co-driving viewer `#/watch/desktop/ID/drive`: the label
// says they may drive, and the click is meant to land (the Rust side checks
// it did).
//
// Env: JG_URL, JG_USER/JG_PASSWORD (the supervisor), JG_SESSION (the
// watched session's id), JG_PATTERN (`x,y,rrggbb;…` pixels drawn on the
// endpoint; may be empty), JG_CLICK (`x,y`: where to click), JG_SHOT (the
// screenshot's path), JG_DRIVE, JG_SUPPORT, JG_ARTIFACTS, JG_CHROMIUM.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { check, env, step } from './lib.mjs';

const URL_ = env('JG_URL');
const USER = env('JG_USER');
const PASSWORD = env('JG_PASSWORD');
const SESSION = env('JG_SESSION');
const SHOT = env('JG_SHOT');
const ARTIFACTS = env('JG_ARTIFACTS');
const CHROMIUM = env('JG_CHROMIUM', '/usr/bin/chromium');
const DRIVE = env('JG_DRIVE', '') === '1';
const WAIT = 20_000;

fs.mkdirSync(ARTIFACTS, { recursive: true });
fs.mkdirSync(path.dirname(SHOT), { recursive: true });
const hardStop = setTimeout(() => {
  console.error('FAIL: the watch browser test took longer than 150 s');
  process.exit(3);
}, 150_000);

async function poll(what, f, ms = WAIT) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const pageErrors = [];
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: WAIT,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to (apply|load|execute|connect)/i.test(m.text())) pageErrors.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));

  await page.goto(`${URL_}/#/login`);
  await page.locator('input[name=username]').fill(USER);
  await page.locator('input[name=password]').fill(PASSWORD);
  await page.locator('input[name=password]').press('Enter');
  await page.locator('h1', { hasText: 'Endpoints' }).waitFor();
  step('logged in');

  if (DRIVE) {
    // The support session's page offers the owner's live screen to join.
    await page.goto(`${URL_}/#/support/${encodeURIComponent(env('JG_SUPPORT'))}`);
    const join = page.locator(`a[data-screen="${SESSION}"]`);
    await join.waitFor();
    const text = await join.textContent();
    check(/^Join .+'s screen$/.test(text), `the support page's join link: ${text}`);
    check((await join.getAttribute('href')).endsWith('/drive'), 'a participant joins to drive');
    await page.screenshot({ path: path.join(ARTIFACTS, 'support-join.png') });
    await join.click();
  } else {
    // Sessions: the live desktop session has a Watch action.
    await page.goto(`${URL_}/#/sessions`);
    const watch = page.locator(`a[data-watch="${SESSION}"]`);
    await watch.waitFor();
    await watch.click();
  }
  await page.locator('h1', { hasText: 'Watching' }).waitFor();
  const label = await page.locator('#desk-watching').textContent();
  check(/Watching/.test(label) && (DRIVE ? /may drive/ : /read-only/).test(label), `the Watching label: ${label}`);
  check(await page.locator('#desk-options').count() === 0, 'no session options when watching');
  await page.locator('#desk-screen[data-drawn]').waitFor({ timeout: 45_000 });
  step('watching');

  const pattern = env('JG_PATTERN').split(';').filter((p) => p).map((p) => {
    const [x, y, hex] = p.split(',');
    return { x: Number(x), y: Number(y), rgb: [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16)) };
  });
  let lastPx;
  await poll('the pattern on the canvas', async () => {
    const px = await page.evaluate((pts) => {
      const ctx = document.getElementById('desk-canvas').getContext('2d');
      return pts.map((p) => [...ctx.getImageData(p.x, p.y, 1, 1).data]);
    }, pattern);
    lastPx = px;
    return pattern.every((p, i) => p.rgb.every((v, k) => Math.abs(v - px[i][k]) <= 2));
  }).catch((e) => {
    throw new Error(`${e.message}: the canvas shows ${JSON.stringify(lastPx)} where ${JSON.stringify(pattern)} was drawn`);
  });
  if (DRIVE) await page.locator('#desk-state', { hasText: 'You have control' }).waitFor();
  const state = await page.locator('#desk-state').textContent();
  check(DRIVE || !/You have control/.test(state), `a watcher is not told it has control: ${state}`);
  console.log(`STATE=${state}`);
  step('pattern read back');
  await page.screenshot({ path: SHOT });
  console.log(`SCREENSHOT=${SHOT}`);

  // Clicks and keys on the screen: nothing is sent (and the gateway would
  // drop it); the Rust side checks the endpoint's pointer.
  const [cx, cy] = env('JG_CLICK').split(',').map(Number);
  const box = await page.locator('#desk-canvas').boundingBox();
  const size = await page.evaluate(() => { const c = document.getElementById('desk-canvas'); return [c.width, c.height]; });
  const px = box.x + ((cx + 0.5) * box.width) / size[0];
  const py = box.y + ((cy + 0.5) * box.height) / size[1];
  await page.mouse.move(px, py);
  await page.mouse.click(px, py);
  if (!DRIVE) await page.keyboard.type('not-typed');
  console.log('CLICKED=1');
  step('clicked');

  check(pageErrors.length === 0, `no page errors or CSP violations: ${pageErrors.join(' | ')}`);
  console.log('WATCH-TEST PASSED');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack || e}`);
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    await p.screenshot({ path: path.join(ARTIFACTS, `watch-failure-${Date.now()}.png`) }).catch(() => {});
  }
} finally {
  clearTimeout(hardStop);
  await browser.close();
}
process.exit(failed ? 1 : 0);
