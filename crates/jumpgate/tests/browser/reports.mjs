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

import fs from 'node:fs';
import path from 'node:path';
import { check, consoleTest, env, logIn, step } from './lib.mjs';

const URL_ = env('JG_URL');
const ADMIN = env('JG_ADMIN');
const ADMIN_PASSWORD = env('JG_ADMIN_PASSWORD');
const FAILED_USER = env('JG_FAILED_USER');

await consoleTest({ name: 'REPORTS-TEST', seconds: 150, contextOptions: { acceptDownloads: true } }, async ({ page, shot, artifacts }) => {
  await logIn(page, URL_, ADMIN, ADMIN_PASSWORD);
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
  const file = path.join(artifacts, 'failed-logins.csv');
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

});
