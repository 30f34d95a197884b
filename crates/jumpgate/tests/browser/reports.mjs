// Browser test of the console's reports dashboard: Debian's chromium,
// driven by playwright-core, against the real gateway
// crates/jumpgate/tests/e2e/reports.rs started (with sessions and failed
// logins already shipped to the analytics store).
//
// The administrator opens Reports from the navigation; every report is a
// card with an SVG chart, a table and CSV/JSON exports; the failed-logins
// chart has a bar per account; the filters narrow the reports (a user
// with no events empties them); the CSV export downloads.
// Screenshots: reports-dashboard, reports-filtered.
//
// Env: JG_URL, JG_ADMIN/JG_ADMIN_PASSWORD, JG_FAILED_USER (an account with
// failed logins), JG_ARTIFACTS, JG_CHROMIUM.

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
const FAILED_USER = env('JG_FAILED_USER');
const ARTIFACTS = env('JG_ARTIFACTS');
const CHROMIUM = env('JG_CHROMIUM', '/usr/bin/chromium');
const WAIT = 20_000;

fs.mkdirSync(ARTIFACTS, { recursive: true });
const hardStop = setTimeout(() => {
  console.error('FAIL: the browser test took longer than 150 s');
  process.exit(3);
}, 150_000);
const step = (s) => console.log(`STEP ${s}`);
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}
const cspViolations = [];
const pageErrors = [];
const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: WAIT,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1280, height: 900 } });
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
  await page.locator('h1', { hasText: 'Reports' }).waitFor();
  await page.locator('main[data-loaded=reports]').waitFor();
  step('the dashboard loaded');

  const cards = await page.locator('section.report').count();
  check(cards >= 8, `a card per report: ${cards}`);
  check((await page.locator('section.report svg.report-chart').count()) === cards, 'every card has a chart');
  // Failed logins: a bar for the account, its height the largest.
  const failedCard = page.locator('#report-failed-logins');
  await failedCard.locator('td', { hasText: FAILED_USER }).first().waitFor();
  const bars = failedCard.locator('rect.bar');
  check((await bars.count()) >= 1, 'failed logins has bars');
  const title = await bars.first().locator('title').textContent();
  check(title.includes(FAILED_USER), `the bar is labelled with the account: ${title}`);
  // Sessions per day: a line with a point.
  check((await page.locator('#report-sessions-per-day polyline.series').count()) === 1, 'sessions per day is a line');
  check((await page.locator('#report-sessions-per-technician rect.bar').count()) >= 1, 'sessions per technician has a bar');
  await shot(page, 'reports-dashboard');
  step('charts drawn');

  // The CSV export downloads the same rows.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    failedCard.getByRole('link', { name: 'Export CSV' }).click(),
  ]);
  const file = path.join(ARTIFACTS, 'failed-logins.csv');
  await download.saveAs(file);
  const csv = fs.readFileSync(file, 'utf8');
  check(csv.startsWith('day,user,attempts') && csv.includes(FAILED_USER), `the CSV export: ${csv}`);
  step('CSV exported');

  // Filters: a user with no events empties the reports.
  await page.locator('input[name=user]').fill('nobody-at-all');
  await page.getByRole('button', { name: 'Apply' }).click();
  await failedCard.locator('td.empty').waitFor();
  check((await page.locator('#report-failed-logins rect.bar').count()) === 0, 'no bars once filtered out');
  await shot(page, 'reports-filtered');
  step('filters applied');

  check(cspViolations.length === 0, `no CSP violations: ${cspViolations.join(' | ')}`);
  check(pageErrors.length === 0, `no page errors: ${pageErrors.join(' | ')}`);
  console.log('REPORTS-TEST PASSED');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack || e}`);
  if (pageErrors.length) console.error(`page errors: ${pageErrors.join('\n')}`);
  try {
    for (const [i, pg] of browser.contexts().flatMap((c) => c.pages()).entries()) await pg.screenshot({ path: path.join(ARTIFACTS, `failure-${i}.png`), fullPage: true });
  } catch {
    /* best effort */
  }
} finally {
  clearTimeout(hardStop);
  await browser.close();
}
process.exit(failed ? 1 : 0);
