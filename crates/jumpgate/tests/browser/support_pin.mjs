// Browser test of the console's "Pin as unattended…" button: Debian's
// chromium, driven by playwright-core, against the real gateway
// crates/jumpgate/tests/e2e/support_pin.rs started, whose SimCustomer
// answers the offer. The owner opens the support session's page, clicks
// the button, names the group in the prompt; the offer goes out and the
// customer's answer comes back as a line of the chat.
//
// Env: JG_URL, JG_USER/JG_PASSWORD (the session's owner), JG_SESSION,
// JG_GROUP, JG_ARTIFACTS, JG_CHROMIUM (default /usr/bin/chromium).
// Prints `PIN-TEST PASSED`.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { env } from './lib.mjs';

const URL_ = env('JG_URL');
const USER = env('JG_USER');
const PASSWORD = env('JG_PASSWORD');
const SESSION = env('JG_SESSION');
const GROUP = env('JG_GROUP');
const ARTIFACTS = env('JG_ARTIFACTS');
const CHROMIUM = env('JG_CHROMIUM', '/usr/bin/chromium');
const WAIT = 20_000;

fs.mkdirSync(ARTIFACTS, { recursive: true });
const hardStop = setTimeout(() => {
  console.error('FAIL: the browser test took longer than 120 s');
  process.exit(3);
}, 120_000);

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: WAIT,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const pageErrors = [];
let failed = false;
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const prompts = [];
  page.on('dialog', (d) => {
    prompts.push(d.message());
    d.accept(GROUP);
  });

  await page.goto(`${URL_}/#/login`);
  await page.locator('input[name=username]').waitFor();
  await page.keyboard.type(USER);
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await page.locator('nav a', { hasText: 'Support' }).waitFor();
  await page.goto(`${URL_}/#/support/${encodeURIComponent(SESSION)}`);
  const pin = page.locator('#ss-pin');
  await pin.waitFor();
  console.log('STEP the button is there');
  await pin.click();
  await page.getByText(`Offered: the customer answers in their window (group ${GROUP})`).waitFor();
  if (!prompts.some((p) => p.includes('in which group'))) throw new Error(`no group prompt: ${prompts}`);
  console.log('STEP offered');
  await page.locator('#ss-chat li', { hasText: `offered to install permanent remote access on this computer (group ${GROUP})` }).waitFor();
  await page.locator('#ss-chat li', { hasText: 'Permanent remote access was not installed' }).waitFor();
  console.log('STEP the refusal is in the chat');
  await page.screenshot({ path: path.join(ARTIFACTS, 'support-pin.png'), fullPage: true });
  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join('; ')}`);
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack || e}`);
} finally {
  clearTimeout(hardStop);
  await browser.close();
}
if (failed) process.exit(1);
console.log('PIN-TEST PASSED');
