// Browser test of the console's Alerts page: Debian's chromium, driven by
// playwright-core, against the real gateway crates/jumpgate/tests/e2e/
// alerts.rs started with `[smtp]` pointing at a real aiosmtpd (STARTTLS).
//
// The administrator opens Alerts from the navigation; the rule made with
// jg (JG_RULE) is listed; a rule with a bad event is refused with the
// gateway's reason and nothing is added; a rule is added through the form;
// a test mail goes to JG_TEST_TO and the mail server's reply is shown;
// the jg-made rule is removed from its row. The test then checks the mail.
// Screenshots: alerts-invalid, alerts.
//
// Env: JG_URL, JG_ADMIN/JG_ADMIN_PASSWORD, JG_RULE, JG_TEST_TO,
// JG_ARTIFACTS, JG_CHROMIUM.

import { check, consoleTest, env, logIn, step } from './lib.mjs';

const URL_ = env('JG_URL');
const ADMIN = env('JG_ADMIN');
const ADMIN_PASSWORD = env('JG_ADMIN_PASSWORD');
const RULE = env('JG_RULE');
const TEST_TO = env('JG_TEST_TO');

await consoleTest({ name: 'ALERTS-TEST', seconds: 90 }, async ({ page, shot }) => {
  page.on('dialog', (d) => d.accept());
  await logIn(page, URL_, ADMIN, ADMIN_PASSWORD);
  await page.locator('nav a', { hasText: 'Alerts' }).click();
  await page.locator('h1', { hasText: 'Alerts' }).waitFor();
  await page.locator('main[data-loaded=alerts]').waitFor();
  const row = page.locator('tr', { has: page.locator('td strong', { hasText: RULE }) });
  await row.waitFor();
  check((await row.locator('td[data-label=Events]').textContent()).includes('lockout'), 'the rule’s events listed');
  check((await row.locator('td[data-label=Recipients]').textContent()).includes('oncall@example.test'), 'its address listed');
  step('the rule made with jg is listed');

  // Refused: the gateway's reason names the field; nothing is added.
  await page.locator('input[name=name]').fill('bad-rule');
  await page.locator('input[name=events]').fill('Lock out');
  await page.locator('input[name=addresses]').fill('x@example.test');
  await page.getByRole('button', { name: 'Add rule' }).click();
  const refused = page.locator('[role=alert]', { hasText: 'events:' });
  await refused.waitFor();
  await shot(page, 'alerts-invalid');
  check((await page.locator('td strong', { hasText: 'bad-rule' }).count()) === 0, 'the refused rule is not listed');
  step('a bad rule refused, naming the field');

  await page.locator('input[name=name]').fill('console-made');
  await page.locator('input[name=events]').fill('group-create');
  await page.locator('input[name=addresses]').fill('console@example.test');
  await page.locator('input[name=subject]').fill('Made in the console: {target}');
  await page.locator('input[name=max_per_hour]').fill('30');
  await page.getByRole('button', { name: 'Add rule' }).click();
  const made = page.locator('tr', { has: page.locator('td strong', { hasText: 'console-made' }) });
  await made.waitFor();
  check((await made.locator('td[data-label="Per hour"]').textContent()).trim() === '30', 'its limit listed');
  check((await page.locator('[role=alert]').count()) === 0, 'no error left on the page');
  step('a rule added through the form');

  await page.locator('input[name=test_to]').fill(TEST_TO);
  await page.getByRole('button', { name: 'Send test mail' }).click();
  await page.locator('.notice', { hasText: 'accepted the test mail' }).waitFor();
  await shot(page, 'alerts');
  step('a test mail sent');

  await row.getByRole('button', { name: 'Remove' }).click();
  await row.waitFor({ state: 'detached' });
  check((await made.count()) === 1, 'the other rule stays');
  step('the jg-made rule removed');
});
