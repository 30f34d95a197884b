// Browser test of the package-compliance report on the console's Reports
// page: Debian's chromium, driven by playwright-core, against the real
// gateway crates/jumpgate/tests/e2e/packages.rs started, after its agent
// installed a package (the result shipped to the analytics store).
//
// The administrator opens Reports; the package-compliance card has a row
// for the package and group with its compliant count, and a stacked bar
// whose compliant part is drawn. Screenshot: report-compliance (the card).
//
// Env: JG_URL, JG_ADMIN/JG_ADMIN_PASSWORD, JG_PACKAGE, JG_GROUP,
// JG_ARTIFACTS, JG_CHROMIUM.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) {
    console.error(`missing env ${k}`);
    process.exit(2);
  }
  return v;
};
const URL_ = env('JG_URL');
const ADMIN = env('JG_ADMIN');
const ADMIN_PASSWORD = env('JG_ADMIN_PASSWORD');
const PACKAGE = env('JG_PACKAGE');
const GROUP = env('JG_GROUP');
const ARTIFACTS = env('JG_ARTIFACTS');
const CHROMIUM = env('JG_CHROMIUM', '/usr/bin/chromium');
const WAIT = 20_000;

fs.mkdirSync(ARTIFACTS, { recursive: true });
const hardStop = setTimeout(() => {
  console.error('FAIL: the browser test took longer than 120 s');
  process.exit(3);
}, 120_000);
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}
const cspViolations = [];
const pageErrors = [];

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: WAIT,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to (apply|load|execute|connect)/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));

  await page.goto(`${URL_}/#/login`);
  await page.locator('input[name=username]').waitFor();
  await page.keyboard.type(ADMIN);
  await page.keyboard.press('Tab');
  await page.keyboard.type(ADMIN_PASSWORD);
  await page.keyboard.press('Enter');
  await page.locator('h1', { hasText: 'Endpoints' }).waitFor();
  await page.locator('nav a', { hasText: 'Reports' }).click();
  await page.locator('main[data-loaded=reports]').waitFor();

  const card = page.locator('#report-package-compliance');
  await card.waitFor();
  check((await card.locator('h2').textContent()).includes('Package compliance'), 'the card is titled');
  const row = card.locator('tr', { has: page.locator('td', { hasText: PACKAGE }) });
  await row.first().waitFor();
  const cells = await row.first().locator('td').allTextContents();
  // package, group, endpoints, compliant, failed, pending
  check(cells[0] === PACKAGE && cells[1] === GROUP, `the row names the package and group: ${cells}`);
  check(Number(cells[3]) >= 1, `an endpoint is compliant: ${cells}`);
  const part = card.locator('rect.part-compliant');
  check((await part.count()) >= 1, 'a compliant part is drawn');
  const title = await part.first().locator('title').textContent();
  check(title.includes(PACKAGE) && title.includes('compliant'), `the part is labelled: ${title}`);
  check((await card.locator('svg text', { hasText: 'pending' }).count()) === 1, 'the legend names pending');
  await card.screenshot({ path: path.join(ARTIFACTS, 'report-compliance.png') });

  check(cspViolations.length === 0, `no CSP violations: ${cspViolations.join(' | ')}`);
  check(pageErrors.length === 0, `no page errors: ${pageErrors.join(' | ')}`);
  console.log('REPORT-COMPLIANCE-TEST PASSED');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack || e}`);
  try {
    for (const [i, pg] of browser.contexts().flatMap((c) => c.pages()).entries()) await pg.screenshot({ path: path.join(ARTIFACTS, `failure-${i}.png`), fullPage: true });
  } catch {
    // the page may be gone
  }
} finally {
  clearTimeout(hardStop);
  await browser.close();
}
process.exit(failed ? 1 : 0);
