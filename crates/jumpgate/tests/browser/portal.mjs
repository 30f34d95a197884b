// Browser test of the support portal and the console's admin pages for
// queues and portal branding: Debian's chromium, driven by playwright-core,
// against the real gateway crates/jumpgate/tests/e2e/web_portal.rs started
// (with --portal-hostname). Every wait is bounded; the whole run is capped.
// Prints `PORTAL-TEST PASSED` on success.
//
// Env: JG_URL (the console), JG_PORTAL_URL and JG_PORTAL_HOST (the
// portal's own host name, mapped to loopback for chromium), JG_ADMIN/
// JG_ADMIN_PASSWORD, JG_KEY (a live session key), JG_SITE_NAME,
// JG_PRIMARY, JG_WELCOME (the branding set through the API),
// JG_ARTIFACTS (screenshots), JG_CHROMIUM (default /usr/bin/chromium).

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { check, env, step } from './lib.mjs';

const URL_ = env('JG_URL');
const PORTAL_URL = env('JG_PORTAL_URL');
const PORTAL_HOST = env('JG_PORTAL_HOST');
const ADMIN = env('JG_ADMIN');
const ADMIN_PASSWORD = env('JG_ADMIN_PASSWORD');
const KEY = env('JG_KEY');
const SITE_NAME = env('JG_SITE_NAME');
const PRIMARY = env('JG_PRIMARY');
const WELCOME = env('JG_WELCOME');
const ARTIFACTS = env('JG_ARTIFACTS');
const CHROMIUM = env('JG_CHROMIUM', '/usr/bin/chromium');
const WAIT = 20_000;
const INVALID = 'This key is not valid. Ask your technician for a new one.';

fs.mkdirSync(ARTIFACTS, { recursive: true });
const hardStop = setTimeout(() => {
  console.error('FAIL: the browser test took longer than 200 s');
  process.exit(3);
}, 200_000);

const cspViolations = [];
const pageErrors = [];
function watch(page, who) {
  page.on('console', (m) => {
    const t = m.text();
    if (/Content Security Policy|Refused to (apply|load|execute|connect)/i.test(t)) cspViolations.push(`${who}: ${t}`);
  });
  page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
  page.on('dialog', (d) => d.accept());
}
async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage });
}

// A small PNG logo (a badge in the brand's colour), made here so the test
// uploads a real image.
function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function logoPng(size, [r, g, b]) {
  const raw = Buffer.alloc((size * 4 + 1) * size);
  const c = (size - 1) / 2;
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0;
    for (let x = 0; x < size; x++) {
      const d = Math.hypot(x - c, y - c) / c;
      const o = y * (size * 4 + 1) + 1 + x * 4;
      // A ring, a white gap and a dot: a simple, recognisable badge.
      const inRing = d <= 1 && d > 0.72;
      const inDot = d <= 0.42;
      const inside = d <= 1;
      raw[o] = inRing || inDot ? r : 255;
      raw[o + 1] = inRing || inDot ? g : 255;
      raw[o + 2] = inRing || inDot ? b : 255;
      raw[o + 3] = inside ? 255 : 0;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8;
  ihdr[9] = 6;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
const rgb = (hex) => [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: WAIT,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    // The portal's own host name, as DNS would resolve it.
    `--host-resolver-rules=MAP ${PORTAL_HOST} 127.0.0.1`,
  ],
});
let failed = false;
try {
  // The gateway's certificate is issued by the site's own CA.
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(WAIT);
  watch(page, 'admin');

  // --- The console: log in as the administrator ---------------------------
  await page.goto(`${URL_}/#/login`);
  await page.locator('input[name=username]').waitFor();
  await page.keyboard.type(ADMIN);
  await page.keyboard.press('Tab');
  await page.keyboard.type(ADMIN_PASSWORD);
  await page.keyboard.press('Enter');
  await page.locator('h1', { hasText: 'Endpoints' }).waitFor();
  check((await page.locator('nav a', { hasText: 'Queues' }).count()) === 1, 'the nav offers Queues');
  check((await page.locator('nav a', { hasText: 'Portal' }).count()) === 1, 'the nav offers Portal');
  step('admin logged in');

  // --- Portal branding: the API's settings, a logo uploaded ----------------
  await page.locator('nav a', { hasText: 'Portal' }).click();
  await page.locator('h1', { hasText: 'Support portal' }).waitFor();
  check((await page.getByLabel('Site name').inputValue()) === SITE_NAME, 'the site name set through the API');
  check((await page.getByLabel('Main colour').inputValue()) === PRIMARY, 'the colour set through the API');
  check((await page.getByLabel('Welcome').inputValue()) === WELCOME, 'the welcome text set through the API');
  // Too big a logo is refused in the page, before any upload.
  await page.getByLabel('Upload a logo').setInputFiles({ name: 'huge.png', mimeType: 'image/png', buffer: Buffer.alloc(70 * 1024, 1) });
  await page.locator('[role=alert]', { hasText: 'at most 64 KiB' }).waitFor();
  await page.getByLabel('Upload a logo').setInputFiles({ name: 'logo.png', mimeType: 'image/png', buffer: logoPng(96, rgb(PRIMARY)) });
  await page.locator('canvas[aria-label="New logo"]').waitFor({ state: 'visible' });
  await page.getByRole('button', { name: 'Save portal' }).click();
  await page.locator('.notice', { hasText: 'The portal is updated.' }).waitFor();
  const current = page.locator('img[alt="Current logo"]');
  await current.waitFor({ state: 'visible' });
  await page.waitForFunction(() => {
    const i = document.querySelector('img[alt="Current logo"]');
    return i && i.complete && i.naturalWidth === 96;
  });
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, 'admin-portal');
  step('portal branding saved with a logo');

  // --- Queues: list, create, edit, delete ----------------------------------
  await page.locator('nav a', { hasText: 'Queues' }).click();
  await page.locator('h1', { hasText: 'Support queues' }).waitFor();
  await page.locator('strong[data-queue="helpdesk"]').waitFor();
  const create = page.locator('section.card', { hasText: 'Create a queue' });
  await create.getByLabel('Name').fill('printers');
  await create.getByLabel('Description').fill('Printers and scanners');
  await create.getByLabel('Endpoint group').fill('default');
  await create.getByLabel('Members').fill('tina');
  await create.getByRole('button', { name: 'Create queue' }).click();
  await page.locator('.notice', { hasText: 'Queue printers created.' }).waitFor();
  await page.locator('strong[data-queue="printers"]').waitFor();
  const row = page.locator('tr', { has: page.locator('strong[data-queue="printers"]') });
  await row.getByRole('button', { name: 'Edit' }).click();
  const edit = page.locator('section.card', { hasText: 'Edit queue printers' });
  await edit.waitFor();
  check(await page.evaluate(() => document.activeElement && document.activeElement.id === 'edit-queue-title'), 'the edit form takes the focus');
  check((await edit.getByLabel('Members').inputValue()) === 'tina', 'the edit form shows the members');
  await edit.getByLabel('Most waiting').fill('5');
  await edit.getByLabel('Assign new customers to a member in turn').check();
  await shot(page, 'admin-queues-edit');
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('.notice', { hasText: 'Queue printers saved.' }).waitFor();
  await page.locator('tr', { has: page.locator('strong[data-queue="printers"]') }).locator('td[data-label="Most waiting"]', { hasText: '5' }).waitFor();
  check((await page.locator('tr', { has: page.locator('strong[data-queue="printers"]') }).locator('td[data-label="Auto-assign"]').textContent()) === 'on', 'auto-assign shown on');
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, 'admin-queues');
  // A queue made and deleted again.
  await create.getByLabel('Name').fill('scratch');
  await create.getByLabel('Endpoint group').fill('default');
  await create.getByRole('button', { name: 'Create queue' }).click();
  await page.locator('strong[data-queue="scratch"]').waitFor();
  await page.locator('tr', { has: page.locator('strong[data-queue="scratch"]') }).getByRole('button', { name: 'Delete' }).click();
  await page.locator('strong[data-queue="scratch"]').waitFor({ state: 'detached' });
  await page.locator('.notice', { hasText: 'Queue scratch deleted.' }).waitFor();
  step('queues created, edited, deleted');

  // --- The portal on its own host, as a visitor without an account -------
  const visitor = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 } });
  const p = await visitor.newPage();
  p.setDefaultTimeout(WAIT);
  watch(p, 'visitor');
  await p.goto(`${PORTAL_URL}/`);
  await p.locator('#start').waitFor({ state: 'visible' });
  check((await p.locator('#site-name').textContent()) === SITE_NAME, 'the site name');
  check((await p.title()) === SITE_NAME, 'the page title is the site name');
  check((await p.locator('#welcome').textContent()) === WELCOME, 'the welcome text');
  const bar = await p.locator('.masthead').evaluate((el) => getComputedStyle(el).backgroundColor);
  check(bar === `rgb(${rgb(PRIMARY).join(', ')})`, `the header in the brand colour: ${bar}`);
  const button = await p.getByRole('button', { name: 'Continue' }).evaluate((el) => getComputedStyle(el).backgroundColor);
  check(button === bar, `buttons in the brand colour: ${button}`);
  await p.waitForFunction(() => {
    const i = document.getElementById('logo');
    return i && !i.hidden && i.complete && i.naturalWidth === 96;
  });
  const queues = await p.locator('#queue option').evaluateAll((os) => os.map((o) => o.value));
  check(JSON.stringify(queues.sort()) === JSON.stringify(['helpdesk', 'printers']), `the public queues: ${queues}`);
  // Nothing of the console on the portal's host.
  const probe = await p.evaluate(async () => [(await fetch('/api/v1/users')).status, (await fetch('/assets/app.js')).status, (await fetch('/api/v1/portal/settings')).status]);
  check(JSON.stringify(probe) === '[404,404,404]', `the console is not on the portal's host: ${probe}`);
  await shot(p, 'portal');
  await p.setViewportSize({ width: 400, height: 860 });
  await shot(p, 'portal-narrow');
  await p.setViewportSize({ width: 1280, height: 860 });
  step('portal shows the branding');

  // --- A wrong key: the one message; keyboard only -------------------------
  await p.locator('#key').focus();
  await p.keyboard.type('000 000 0000');
  await p.keyboard.press('Enter');
  await p.locator('#key-error').waitFor({ state: 'visible' });
  check((await p.locator('#key-error').textContent()) === INVALID, `the invalid-key message: ${await p.locator('#key-error').textContent()}`);
  step('invalid key answered');

  // --- The technician's key (typed with its spaces) -> the download page --
  await p.locator('#key').fill(KEY);
  await p.getByRole('button', { name: 'Continue' }).click();
  await p.locator('#download').waitFor({ state: 'visible' });
  const href = await p.locator('#download-link').getAttribute('href');
  check(/^\/portal\/download\/jgd_[A-Za-z0-9_-]+$/.test(href), `the download link: ${href}`);
  check(await p.evaluate(() => document.activeElement && document.activeElement.id === 'download-title'), 'the download heading takes the focus');
  const steps = await p.locator('ol.steps li').allTextContents();
  check(steps.length === 3, 'three steps');
  check(/terminal/i.test(steps[0]), 'step 1 opens a terminal');
  check(steps[1].includes('chmod +x ~/Downloads/jumpgate-assist'), 'step 2 makes it runnable');
  check(steps[2].includes('~/Downloads/jumpgate-assist'), 'step 3 runs it');
  check((await p.locator('#download').textContent()).includes('removes itself when you close it'), 'the app removes itself');
  const expiry1 = await p.locator('#expiry').textContent();
  check(/valid for \d+:\d\d/.test(expiry1), `the countdown: ${expiry1}`);
  await p.waitForFunction((first) => document.getElementById('expiry').textContent !== first, expiry1, { timeout: 5000 });
  await shot(p, 'portal-download');
  step('valid key leads to the download');

  // --- The request form -------------------------------------------------
  await p.getByRole('button', { name: 'Start over' }).click();
  await p.locator('#start').waitFor({ state: 'visible' });
  check(await p.evaluate(() => document.activeElement && document.activeElement.id === 'key'), 'start over puts the focus in the key field');
  // Missing fields are named, not sent.
  await p.getByRole('button', { name: 'Request help' }).click();
  await p.locator('#request-error', { hasText: 'Please enter your name.' }).waitFor();
  await p.getByLabel('Your name').fill('Dana Browser');
  await p.getByLabel('Topic').selectOption('printers');
  check((await p.locator('#queue-description').textContent()) === 'Printers and scanners', 'the queue description');
  await p.getByLabel('What do you need help with?').fill('The scanner does not scan since this morning.');
  await p.getByRole('button', { name: 'Request help' }).click();
  await p.locator('#download').waitFor({ state: 'visible' });
  const href2 = await p.locator('#download-link').getAttribute('href');
  check(href2 !== href && href2.startsWith('/portal/download/jgd_'), 'a new download for the request');
  step('request form works');

  // --- Too many keys from one address: the wait, plainly ------------------
  await p.getByRole('button', { name: 'Start over' }).click();
  await p.locator('#start').waitFor({ state: 'visible' });
  let limited = null;
  // 5 attempts at once, then one every 6 s: a dozen quick tries hit it.
  for (let i = 0; i < 12 && !limited; i++) {
    await p.locator('#key').fill(`999 999 ${String(1000 + i)}`);
    await p.getByRole('button', { name: 'Continue' }).click();
    await p.locator('#key-error').waitFor({ state: 'visible' });
    await p.waitForFunction(() => !document.querySelector('#key-form button[type=submit]').disabled);
    const t = await p.locator('#key-error').textContent();
    if (t.startsWith('Too many attempts')) limited = t;
    else check(t === INVALID, `a wrong key before the limit: ${t}`);
  }
  check(limited && /^Too many attempts\. Please try again in \d+ s\.$/.test(limited), `the rate limit's message: ${limited}`);
  await shot(p, 'portal-rate-limited', false);
  step('rate limit shown with its wait');

  // --- The portal on the console's host --------------------------------
  await page.goto(`${URL_}/portal`);
  await page.locator('#start').waitFor({ state: 'visible' });
  check((await page.locator('#site-name').textContent()) === SITE_NAME, 'the portal at /portal on the console host');
  step('portal on the console host');

  check(cspViolations.length === 0, `no CSP violations: ${cspViolations.join(' | ')}`);
  check(pageErrors.length === 0, `no page errors: ${pageErrors.join(' | ')}`);
  console.log('PORTAL-TEST PASSED');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack || e}`);
  if (cspViolations.length) console.error(`CSP: ${cspViolations.join('\n')}`);
  if (pageErrors.length) console.error(`page errors: ${pageErrors.join('\n')}`);
  try {
    for (const [i, pg] of browser.contexts().flatMap((c) => c.pages()).entries()) await shot(pg, `failure-${i}`);
  } catch {
    /* best effort */
  }
} finally {
  clearTimeout(hardStop);
  await browser.close();
}
process.exit(failed ? 1 : 0);
