// Browser test of the technician's support pages: Debian's chromium, driven
// by playwright-core, against the real gateway crates/jumpgate/tests/e2e/
// web_support.rs started, whose SimCustomer plays the customer.
//
// Turns: this script prints `@@ <tag> <json>` when the customer may take
// their next step and reads `<tag> <json>` lines on standard input for
// what they did (with the Rust side's Date.now()-comparable times, so the
// page measures how long the console took to show it). Every wait is
// bounded; the whole run is capped. Prints `FIGURE ...` lines (the delays
// measured, reported, never asserted) and `SUPPORT-TEST PASSED`.
//
// Env: JG_URL (the console), JG_USER/JG_PASSWORD (a technician in the
// customer's queue), JG_CUSTOMER (the customer's name), JG_ARTIFACTS
// (screenshots), JG_CHROMIUM (default /usr/bin/chromium).

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { check, env, step } from './lib.mjs';

const URL_ = env('JG_URL');
const USER = env('JG_USER');
const PASSWORD = env('JG_PASSWORD');
const CUSTOMER = env('JG_CUSTOMER');
const ARTIFACTS = env('JG_ARTIFACTS');
const CHROMIUM = env('JG_CHROMIUM', '/usr/bin/chromium');
const WAIT = 20_000;
const CONTROL = 'Control mouse and keyboard';

fs.mkdirSync(ARTIFACTS, { recursive: true });
const hardStop = setTimeout(() => {
  console.error('FAIL: the browser test took longer than 300 s');
  process.exit(3);
}, 300_000);

// --- Turns with the Rust side ----------------------------------------------
const inbox = [];
const waiting = [];
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const at = line.indexOf(' ');
  const msg = { tag: at < 0 ? line : line.slice(0, at), data: at < 0 ? {} : JSON.parse(line.slice(at + 1)) };
  const w = waiting.findIndex((x) => x.tag === msg.tag);
  if (w >= 0) waiting.splice(w, 1)[0].resolve(msg.data);
  else inbox.push(msg);
});
function say(tag, data = {}) {
  console.log(`@@ ${tag} ${JSON.stringify(data)}`);
}
function hear(tag) {
  const i = inbox.findIndex((x) => x.tag === tag);
  if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0].data);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the customer never did: ${tag}`)), 120_000);
    waiting.push({ tag, resolve: (d) => { clearTimeout(t); resolve(d); } });
  });
}
const figures = [];
function figure(name, ms) {
  figures.push(`${name}=${ms}ms`);
  console.log(`FIGURE ${name}=${ms}ms`);
}

const cspViolations = [];
const pageErrors = [];
const httpErrors = [];
let loggedIn = false;
const dialogs = [];
function watch(page, who) {
  page.on('console', (m) => {
    const t = m.text();
    if (/Content Security Policy|Refused to (apply|load|execute|connect)/i.test(t)) cspViolations.push(`${who}: ${t}`);
  });
  page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
  page.on('response', (r) => {
    // Before the login, the console's probe of the session answers 401.
    if (r.status() >= 400 && loggedIn) httpErrors.push(`${who}: ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    d.accept();
  });
}
async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage });
}

/** Date.now() in the page when `test()` first holds, checked on every DOM change. */
function firstSeen(page, key, selector, text) {
  return page.evaluate(
    ([key, selector, text]) => {
      window.__seen ??= {};
      const look = () => {
        if (window.__seen[key]) return;
        for (const el of document.querySelectorAll(selector)) {
          if (text === null || el.textContent.includes(text)) {
            window.__seen[key] = Date.now();
            return;
          }
        }
      };
      new MutationObserver(look).observe(document.body, { childList: true, subtree: true, characterData: true, attributes: true });
      look();
    },
    [key, selector, text],
  );
}
async function seenAt(page, key) {
  const h = await page.waitForFunction((k) => window.__seen && window.__seen[k], key, { timeout: WAIT });
  return h.jsonValue();
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: WAIT,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(WAIT);
  watch(page, USER);

  // --- Tina logs in and opens the Support page ---------------------------
  await page.goto(`${URL_}/#/login`);
  await page.locator('input[name=username]').waitFor();
  await page.keyboard.type(USER);
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await page.locator('nav a', { hasText: 'Support' }).click();
  loggedIn = true;
  await page.locator('h1', { hasText: 'Support' }).waitFor();
  await page.locator('#support-live', { hasText: 'Live' }).waitFor();
  await page.locator('#support-waiting td.empty', { hasText: 'Nobody is waiting.' }).waitFor();
  await firstSeen(page, 'pending', '#support-waiting tbody tr', CUSTOMER);
  step('queue open');
  say('queue-open');

  // --- A customer asks: the row appears while their app downloads --------
  const req = await hear('requested');
  const pendingAt = await seenAt(page, 'pending');
  // From just before the request (an upper bound: the row may appear
  // before the POST's answer reaches the Rust side).
  figure('request_to_row', pendingAt - req.at);
  const pendingRow = page.locator('#support-waiting tbody tr', { hasText: CUSTOMER });
  check((await pendingRow.locator('td[data-label="Waiting"]').textContent()) === 'downloading the app', 'pending: downloading');
  check((await pendingRow.locator('[data-accept]').count()) === 0, 'no Accept before the client connects');
  step('pending row shown');
  // The Accept button of this customer, whenever it comes.
  await firstSeen(page, 'accept', '#support-waiting button[data-accept]', null);
  say('pending-shown');

  // --- Their client connects: the Accept button, live ---------------------
  const conn = await hear('connected');
  const acceptAt = await seenAt(page, 'accept');
  // From the client's hello done (`joined`), and from before it dialled
  // (`dialled`: TLS and the hello included, an upper bound).
  figure('join_to_dom', acceptAt - conn.joined);
  figure('dial_to_dom', acceptAt - conn.dialled);
  const accept = page.locator(`button[data-accept="${conn.id}"]`);
  await accept.waitFor();
  const row = page.locator('#support-waiting tbody tr', { has: accept });
  check((await row.locator('td[data-label="Customer"]').textContent()) === CUSTOMER, 'the customer named');
  check((await row.locator('td[data-label="Problem"]').textContent()).includes('blank pages'), 'the problem shown');
  // The waiting time ticks in the page.
  await page.waitForFunction(() => /^\d+:\d\d$/.test(document.querySelector('#support-waiting .ticker')?.textContent || ''));
  await shot(page, 'queue');
  step('waiting customer shown');

  // --- Accept, the session page ------------------------------------------
  await accept.click();
  await page.waitForURL((u) => u.hash === `#/support/${encodeURIComponent(conn.id)}`);
  await page.locator('h1', { hasText: 'Support session' }).waitFor();
  await page.locator('#ss-head', { hasText: CUSTOMER }).waitFor();
  await page.locator('#ss-head', { hasText: 'tina (owner)' }).waitFor();
  await page.locator('#ss-live', { hasText: 'Live' }).waitFor();
  step('accepted');

  // --- Chat both ways -----------------------------------------------------
  const mine = 'Hello, this is Tina from the help desk. Which printer is it?';
  await page.getByLabel('Message to the customer').fill(mine);
  await page.getByLabel('Message to the customer').press('Enter');
  await page.locator('#ss-chat li.chat-technician', { hasText: mine }).waitFor();
  check((await page.getByLabel('Message to the customer').inputValue()) === '', 'the field is cleared after sending');
  await firstSeen(page, 'customer-line', '#ss-chat li.chat-customer', null);
  say('tech-said', { text: mine });
  const theirs = await hear('customer-said');
  const lineAt = await seenAt(page, 'customer-line');
  const line = page.locator('#ss-chat li.chat-customer');
  check((await line.locator('.chat-from').textContent()) === `${CUSTOMER}: `, `the customer named: ${await line.textContent()}`);
  check((await line.locator('.chat-text').textContent()) === theirs.text, `the customer's words: ${await line.textContent()}`);
  figure('customer_chat_to_dom', lineAt - theirs.at);
  step('chat both ways');

  // --- Ask for control; the customer allows, then takes it back ----------
  const control = page.locator('#ss-rights button[data-right="control"]');
  check((await control.textContent()) === `Ask: ${CONTROL}`, `the control button: ${await control.textContent()}`);
  await page.getByRole('button', { name: `Ask: ${CONTROL}` }).click();
  await page.locator('#ss-rights button[data-right="control"]', { hasText: 'asked' }).waitFor();
  await firstSeen(page, 'granted', '#ss-rights button[data-right="control"][aria-pressed="true"]', null);
  say('asked');
  const allowed = await hear('allowed');
  const grantedAt = await seenAt(page, 'granted');
  figure('allow_to_dom', grantedAt - allowed.at);
  check((await control.textContent()).includes(CONTROL), 'still names the right');
  check(await control.isDisabled(), 'a granted right is not asked again');
  await page.locator('#ss-open-screen').waitFor();
  await page.locator('#ss-news', { hasText: `${CUSTOMER} allowed: ` }).filter({ hasText: CONTROL }).waitFor();
  await shot(page, 'support-session');
  step('control granted');
  await firstSeen(page, 'revoked', '#ss-rights button[data-right="control"][aria-pressed="false"]', null);
  say('granted');
  const revoked = await hear('revoked');
  const revokedAt = await seenAt(page, 'revoked');
  figure('revoke_to_dom', revokedAt - revoked.at);
  check((await control.textContent()) === `Ask: ${CONTROL}`, `asked again after revoking: ${await control.textContent()}`);
  check(!(await control.isDisabled()), 'control may be asked again');
  await page.locator('#ss-news', { hasText: `${CUSTOMER} took back: ${CONTROL}.` }).waitFor();
  step('control revoked');

  // --- Invite a teammate as observer; the customer sees him; remove him ---
  await page.locator('#ss-invite-user').fill('bob');
  await page.locator('#ss-invite-role').selectOption('observer');
  await page.getByRole('button', { name: 'Invite', exact: true }).click();
  await page.locator('#ss-people li[data-user="bob"]', { hasText: 'observer' }).waitFor();
  check((await page.locator('#ss-invite-user').inputValue()) === '', 'the invite field is cleared');
  check((await page.locator('#ss-transfer-form').count()) === 1, 'the owner may transfer');
  await shot(page, 'support-team');
  say('invited');
  await hear('saw-bob');
  await page.locator('#ss-people button[data-remove="bob"]').click();
  await page.locator('#ss-people li[data-user="bob"]').waitFor({ state: 'detached' });
  say('removed');
  step('observer invited and removed');
  // A narrow window: rights and chat stack, nothing runs off the side.
  await page.setViewportSize({ width: 420, height: 800 });
  check(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no sideways scrolling at 420 px');
  await shot(page, 'support-session-narrow');
  await page.setViewportSize({ width: 1280, height: 800 });

  // --- A session key, on the queue page ------------------------------------
  await page.locator('nav a', { hasText: 'Support' }).click();
  await page.locator('#support-live', { hasText: 'Live' }).waitFor();
  await page.locator('#support-queues', { hasText: 'helpdesk: you accept customers yourself' }).waitFor();
  const mineRow = page.locator('#support-mine tbody tr', { hasText: CUSTOMER });
  await mineRow.waitFor();
  check((await mineRow.locator('td[data-label="Granted"]').textContent()) === 'See the screen', 'the rights named for people');
  check((await page.locator('#support-waiting td.empty').count()) === 1, 'nobody waiting once accepted');
  await page.getByRole('button', { name: 'Create session key' }).click();
  const keyEl = page.locator('#support-key-value');
  await keyEl.waitFor();
  const key = (await keyEl.textContent()).trim();
  const digits = key.replace(/\D/g, '');
  check(/^[\d ]+$/.test(key) && digits.length === 10, `a ten-digit key: ${key.length} characters`);
  console.log(`KEY_DIGITS=${digits.length}`);
  await shot(page, 'support-key');
  step('session key shown');

  // --- Back to the session; End --------------------------------------------
  await mineRow.getByRole('link', { name: CUSTOMER }).click();
  await page.locator('#ss-head', { hasText: CUSTOMER }).waitFor();
  // The conversation is still there, in order.
  const said = await page.locator('#ss-chat li:not(.chat-system) .chat-text').allTextContents();
  check(said.length === 2 && said[0] === mine && said[1] === theirs.text, `the chat kept: ${JSON.stringify(said)}`);
  const told = await page.locator('#ss-chat li.chat-system .chat-text').allTextContents();
  check(told.join('|') === 'bob joined as observer|bob was removed by tina', `the system's lines: ${JSON.stringify(told)}`);
  await page.getByRole('button', { name: 'End session' }).click();
  await page.locator('.notice', { hasText: 'This session has ended' }).waitFor();
  check(dialogs.some((m) => m.startsWith(`End the support session with ${CUSTOMER}?`)), `End asks first: ${dialogs.join(' | ')}`);
  check(await page.locator('#ss-rights').isHidden(), 'no rights to ask once ended');
  check(await page.locator('.chat-form').isHidden(), 'no chat once ended');
  say('ended');
  step('ended');

  // --- The history lists it, with who, what was used and how it ended -----
  await page.locator('nav a', { hasText: 'Support' }).click();
  await page.locator('#support-history-link').click();
  const hist = page.locator('#support-history tbody tr', { hasText: CUSTOMER });
  await hist.waitFor();
  const cell = async (label) => (await hist.locator(`td[data-label="${label}"]`).textContent()).trim();
  check((await cell('Queue')) === 'helpdesk', `history queue: ${await cell('Queue')}`);
  check((await cell('Technicians')) === 'bob, tina', `history technicians: ${await cell('Technicians')}`);
  check((await cell('Rights used')) === `See the screen, ${CONTROL}`, `history rights: ${await cell('Rights used')}`);
  check((await cell('Outcome')) === 'ended by tina', `history outcome: ${await cell('Outcome')}`);
  check(/^\d+ s$|min/.test(await cell('Duration')), `history duration: ${await cell('Duration')}`);
  await shot(page, 'support-history');
  step('history');

  check(cspViolations.length === 0, `no CSP violations: ${cspViolations.join(' | ')}`);
  check(pageErrors.length === 0, `no page errors: ${pageErrors.join(' | ')}`);
  check(httpErrors.length === 0, `no refused calls: ${httpErrors.join(' | ')}`);
  console.log(`FIGURES ${figures.join(' ')}`);
  console.log('SUPPORT-TEST PASSED');
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
