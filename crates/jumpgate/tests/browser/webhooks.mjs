// Browser test of the console's Webhooks page: Debian's chromium, driven
// by playwright-core, against the real gateway crates/jumpgate/tests/e2e/
// webhooks.rs started, with a real receiver on loopback that answers 500
// (so deliveries die after the subscription's 1 s... retry period the test
// set up through jg: JG_DEAD_SUB) .
//
// The administrator opens Webhooks from the navigation; the subscription
// made by jg is listed with its dead delivery; a new subscription is added
// through the form and its secret is shown once; the dead delivery is
// replayed from its row (the table shows it pending or delivered again);
// the new subscription is removed.
// Screenshot: webhooks.
//
// Env: JG_URL, JG_ADMIN/JG_ADMIN_PASSWORD, JG_DEAD_SUB, JG_RECEIVER (a
// loopback URL), JG_ARTIFACTS, JG_CHROMIUM.

import { check, consoleTest, env, logIn, step } from './lib.mjs';

const URL_ = env('JG_URL');
const ADMIN = env('JG_ADMIN');
const ADMIN_PASSWORD = env('JG_ADMIN_PASSWORD');
const DEAD_SUB = env('JG_DEAD_SUB');
const RECEIVER = env('JG_RECEIVER');

await consoleTest({ name: 'WEBHOOKS-TEST', seconds: 90 }, async ({ page, shot }) => {
  page.on('dialog', (d) => d.accept());
  await logIn(page, URL_, ADMIN, ADMIN_PASSWORD);
  await page.locator('nav a', { hasText: 'Webhooks' }).click();
  await page.locator('h1', { hasText: 'Webhooks' }).waitFor();
  await page.locator('main[data-loaded=webhooks]').waitFor();
  const row = page.locator('tr', { has: page.locator('td strong', { hasText: DEAD_SUB }) });
  await row.waitFor();
  check((await row.locator('td[data-label=Dead]').textContent()).trim() === '1', 'one dead delivery listed');
  step('the subscription made by jg is listed');

  // Add one through the form: its secret is shown once.
  await page.locator('input[name=url]').fill(RECEIVER);
  await page.locator('input[name=events]').fill('group-create, lockout');
  await page.locator('input[name=name]').fill('console-made');
  await page.locator('select[name=format]').selectOption('servicenow');
  await page.getByRole('button', { name: 'Add subscription' }).click();
  const secret = page.locator('code.secret-value');
  await secret.waitFor();
  check((await secret.textContent()).startsWith('whsec_'), 'the secret is shown');
  await page.locator('td strong', { hasText: 'console-made' }).waitFor();
  step('a subscription added');

  // The dead delivery, replayed from its row.
  await row.getByRole('button', { name: 'Deliveries' }).click();
  const dead = page.locator('tbody tr', { has: page.locator('span.state-dead') });
  await dead.first().waitFor();
  await shot(page, 'webhooks');
  await dead.first().getByRole('button', { name: 'Replay' }).click();
  await page.locator('.status', { hasText: 'queued again' }).waitFor();
  await page.locator('span.state-pending, span.state-delivered').first().waitFor();
  step('the dead delivery replayed');

  const made = page.locator('tr', { has: page.locator('td strong', { hasText: 'console-made' }) });
  await made.getByRole('button', { name: 'Remove' }).click();
  await made.waitFor({ state: 'detached' });
  step('the subscription removed');
});
