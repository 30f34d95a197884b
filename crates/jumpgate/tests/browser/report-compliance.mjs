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

import path from 'node:path';
import { check, consoleTest, env, logIn } from './lib.mjs';

const URL_ = env('JG_URL');
const ADMIN = env('JG_ADMIN');
const ADMIN_PASSWORD = env('JG_ADMIN_PASSWORD');
const PACKAGE = env('JG_PACKAGE');
const GROUP = env('JG_GROUP');

await consoleTest({ name: 'REPORT-COMPLIANCE-TEST', seconds: 120 }, async ({ page, artifacts }) => {
  await logIn(page, URL_, ADMIN, ADMIN_PASSWORD);
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
  await card.screenshot({ path: path.join(artifacts, 'report-compliance.png') });

});
