// Browser test of the console's Access requests page: Debian's chromium,
// driven by playwright-core, against the real gateway
// crates/jumpgate/tests/e2e/access.rs started (group `default` requires
// one approval by role `admin`; technician JG_REQUESTER has asked for
// access with `jg access request`).
//
// The administrator opens Access requests from the navigation; the
// technician's request waits for their decision with its reason; Approve
// makes it active; the administrator's own request, made with the form,
// is listed but never offered for their own decision.
// With JG_ELEVATION_ID (a user on an endpoint waits in `jumpgate elevate`
// for approval), the elevation request is listed too, kind `elevation`
// with its program and rule, and Approve approves it (state approved).
// Screenshots: access-requests, access-elevation, access-approved.
//
// Env: JG_URL, JG_ADMIN/JG_ADMIN_PASSWORD, JG_REQUESTER, JG_REQUEST_ID,
// JG_ELEVATION_ID (may be empty), JG_ARTIFACTS, JG_CHROMIUM.

import { check, consoleTest, env, logIn, step } from './lib.mjs';

const URL_ = env('JG_URL');
const ADMIN = env('JG_ADMIN');
const ADMIN_PASSWORD = env('JG_ADMIN_PASSWORD');
const REQUESTER = env('JG_REQUESTER');
const ID = env('JG_REQUEST_ID');
const ELEVATION = process.env.JG_ELEVATION_ID || '';

await consoleTest({ name: 'ACCESS-TEST', seconds: 120 }, async ({ page, shot }) => {
  await logIn(page, URL_, ADMIN, ADMIN_PASSWORD);
  await page.locator('nav a', { hasText: 'Access requests' }).click();
  await page.locator('h1', { hasText: 'Access requests' }).waitFor();
  await page.locator('#access-requests[data-loaded=yes]').waitFor();
  step('the page loaded');

  // The technician's request waits for the administrator's decision.
  const approve = page.locator(`button[data-approve="${ID}"]`);
  await approve.waitFor();
  const row = page.locator('tr', { has: approve });
  const text = await row.textContent();
  check(text.includes(REQUESTER) && text.includes('INC-4242') && text.includes('0/1'), `the waiting row: ${text}`);
  check((await page.locator(`button[data-deny="${ID}"]`).count()) === 1, 'a Deny button');

  // The administrator asks for access too, with the form.
  await page.locator('#access-target').fill('default');
  await page.locator('#access-window').selectOption('7200');
  await page.locator('#access-reason').fill('CHG-99 maintenance');
  await page.getByRole('button', { name: 'Request access' }).click();
  await page.locator('#access-status', { hasText: 'approval(s) needed' }).waitFor();
  const mine = page.locator('tr', { hasText: 'CHG-99 maintenance' });
  await mine.locator('button', { hasText: 'Withdraw' }).waitFor();
  check((await page.locator('tr', { hasText: 'CHG-99 maintenance' }).locator('button[data-approve]').count()) === 0,
    'nobody is offered to approve their own request');
  step('a request made with the form');
  await shot(page, 'access-requests');

  // Approve: the request becomes active and leaves the waiting list.
  await approve.click();
  await page.locator(`span[data-id="${ID}"][data-state=active]`).waitFor();
  check((await page.locator(`button[data-approve="${ID}"]`).count()) === 0, 'no longer waiting');
  await page.locator('#access-status', { hasText: 'is active' }).waitFor();
  await shot(page, 'access-approved');
  step('approved in the console');

  if (ELEVATION) {
    // The endpoint user's elevation request waits here too.
    const approveElev = page.locator(`button[data-approve="${ELEVATION}"]`);
    await approveElev.waitFor();
    const erow = page.locator('tr', { has: approveElev });
    const etext = await erow.textContent();
    check(etext.includes('elevation') && etext.includes('/usr/bin/date +%Y') && etext.includes('date-approved')
      && etext.includes('INC-31 printer driver') && etext.includes('@desk-3'), `the elevation row: ${etext}`);
    check((await page.locator(`button[data-deny="${ELEVATION}"]`).count()) === 1, 'a Deny button for the elevation');
    await shot(page, 'access-elevation');
    await approveElev.click();
    await page.locator(`span[data-id="${ELEVATION}"][data-state=approved]`).waitFor();
    await page.locator('#access-status', { hasText: 'Elevation request' }).waitFor();
    check((await page.locator(`button[data-approve="${ELEVATION}"]`).count()) === 0, 'the elevation no longer waits');
    await shot(page, 'access-elevation-approved');
    step('an elevation approved in the console');
  }
});
