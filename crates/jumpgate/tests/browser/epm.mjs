// Browser test of the console's privilege management pages: Debian's
// chromium, driven by playwright-core, against the real gateway and agent
// crates/jumpgate/tests/e2e/web_epm.rs started.
//
// The administrator edits the policy as YAML (a bad field is named by the
// gateway), saves and publishes it, sees the endpoint take the version,
// asks a what-if; on the requests page a live approval request (the Rust
// side starts a real `jumpgate elevate` when this script prints
// `@@ requests-open` and answers `go`) is approved with a click; an offline
// challenge gets its response; the events page lists the decisions.
// Screenshots: epm-invalid, epm-policy, epm-requests, epm-code, epm-events.
//
// Env: JG_URL, JG_ADMIN/JG_ADMIN_PASSWORD, JG_ENDPOINT, JG_LOCAL_USER,
// JG_POLICY (valid YAML), JG_CHALLENGE, JG_APPROVAL ("1": expect a request),
// JG_ARTIFACTS, JG_CHROMIUM.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { check, env, step } from './lib.mjs';

const URL_ = env('JG_URL');
const ADMIN = env('JG_ADMIN');
const ADMIN_PASSWORD = env('JG_ADMIN_PASSWORD');
const ENDPOINT = env('JG_ENDPOINT');
const LOCAL_USER = env('JG_LOCAL_USER');
const POLICY = env('JG_POLICY');
const CHALLENGE = env('JG_CHALLENGE');
const APPROVAL = env('JG_APPROVAL', '0') === '1';
const ARTIFACTS = env('JG_ARTIFACTS');
const CHROMIUM = env('JG_CHROMIUM', '/usr/bin/chromium');
const WAIT = 20_000;

fs.mkdirSync(ARTIFACTS, { recursive: true });
const hardStop = setTimeout(() => {
  console.error('FAIL: the browser test took longer than 200 s');
  process.exit(3);
}, 200_000);
const lines = readline.createInterface({ input: process.stdin });
const inbox = [];
let wake = null;
lines.on('line', (l) => {
  inbox.push(l);
  if (wake) wake();
});
async function nextLine() {
  while (!inbox.length) await new Promise((r) => (wake = r));
  return inbox.shift();
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
  check((await page.locator('nav a', { hasText: 'Privilege' }).count()) === 1, 'the nav offers Privilege');
  step('logged in');

  // --- The policy: a bad field named, then saved and published ------------
  await page.locator('nav a', { hasText: 'Privilege' }).click();
  await page.locator('h1', { hasText: 'Privilege management' }).waitFor();
  const editor = page.locator('#epm-yaml');
  check((await editor.inputValue()).includes('default: block'), 'the draft of a new site blocks by default');
  await editor.fill(POLICY.replace('action: block', 'action: blocked'));
  await page.locator('#epm-validate').click();
  const problems = page.locator('#epm-problems');
  await problems.waitFor();
  const problemText = await problems.textContent();
  check(/rules\[\d+\]\.action/.test(problemText) && problemText.includes('blocked'), `the bad field is named: ${problemText}`);
  await page.locator('#epm-save').click();
  await page.locator('#epm-problems').waitFor();
  await shot(page, 'epm-invalid');
  step('an invalid policy is refused, naming its field');

  await editor.fill(POLICY);
  await page.locator('#epm-validate').click();
  await page.locator('#epm-status', { hasText: 'The policy is valid.' }).waitFor();
  await page.locator('#epm-save').click();
  await page.locator('#epm-status', { hasText: 'Saved as revision' }).waitFor();
  await page.locator('#epm-publish').click();
  await page.locator('#epm-status', { hasText: 'Published version 1' }).waitFor();
  await page.locator('#epm-bundles td', { hasText: /^1$/ }).first().waitFor();
  // The endpoint takes it (the table follows).
  await page.waitForFunction(
    (name) => [...document.querySelectorAll('#epm-endpoints tr')].some((tr) => tr.textContent.includes(name) && tr.children[2] && tr.children[2].textContent === '1'),
    ENDPOINT,
    { timeout: WAIT },
  );
  step('saved, published, the endpoint runs version 1');

  // --- What-if ----------------------------------------------------------
  await page.locator('#whatif-endpoint').fill(ENDPOINT);
  await page.locator('#whatif-user').fill(LOCAL_USER);
  await page.locator('#whatif-command').fill('/usr/bin/whoami');
  await page.getByRole('button', { name: 'Ask' }).click();
  await page.locator('#whatif-action', { hasText: 'block' }).waitFor();
  check((await page.locator('#whatif-rule').textContent()).includes('no-whoami'), 'the what-if names the rule');
  await page.locator('#whatif-command').fill('/usr/bin/id -u');
  await page.getByRole('button', { name: 'Ask' }).click();
  await page.locator('#whatif-action', { hasText: /^elevate$/ }).waitFor();
  await shot(page, 'epm-policy');
  step('what-if answers with the decision and the rule');

  // --- Requests: live, approved with a click; an offline code -------------
  await page.goto(`${URL_}/#/epm/requests`);
  await page.locator('#epm-live[data-up=yes]').waitFor();
  if (APPROVAL) {
    console.log('@@ requests-open {}');
    check((await nextLine()) === 'go', 'the Rust side started the elevation');
    const approve = page.locator('button[data-approve]');
    await approve.first().waitFor();
    check((await page.locator('#epm-requests').textContent()).includes(LOCAL_USER), 'the request names the user');
    await shot(page, 'epm-requests');
    await approve.first().click();
    await page.locator('#epm-requests td', { hasText: 'approved' }).first().waitFor();
    step('a live request approved');
  }
  await page.locator('#code-endpoint').fill(ENDPOINT);
  await page.locator('#code-challenge').fill(CHALLENGE);
  await page.getByRole('button', { name: 'Get the response' }).click();
  const response = page.locator('#code-response');
  await response.waitFor();
  const digits = (await response.textContent()).trim();
  check(/^\d{5}-\d{5}$/.test(digits), `a response of ten digits: ${digits}`);
  console.log(`@@ response ${JSON.stringify({ response: digits })}`);
  await shot(page, 'epm-code');
  step('an offline challenge answered');

  // --- Events -----------------------------------------------------------
  await page.goto(`${URL_}/#/epm/events`);
  await page.locator('#epm-events td', { hasText: 'policy version 1 in force' }).first().waitFor();
  if (APPROVAL) await page.locator('#epm-events td', { hasText: 'rule date-approved' }).first().waitFor();
  await shot(page, 'epm-events');
  step('events listed');

  check(cspViolations.length === 0, `no CSP violations: ${cspViolations.join(' | ')}`);
  check(pageErrors.length === 0, `no page errors: ${pageErrors.join(' | ')}`);
  console.log('EPM-TEST PASSED');
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
  lines.close();
  await browser.close();
}
process.exit(failed ? 1 : 0);
