// Browser test of the web console: Debian's chromium, driven by
// playwright-core, against the real gateway and agent that
// crates/jumpgate/tests/e2e/web.rs started. Every wait is bounded; the
// whole run is capped. Prints `CONSOLE-TEST PASSED` on success and
// `KEY=value` facts the Rust side checks (e.g. the upload's SHA-256).
//
// Env: JG_URL, JG_USER/JG_PASSWORD (an account whose role requires MFA and
// may open shells, transfer files, terminate sessions and view audit),
// JG_TECH/JG_TECH_PASSWORD (a technician: no view-audit), JG_ADMIN/
// JG_ADMIN_PASSWORD, JG_ENDPOINT, JG_UPLOAD_DIR, JG_ARTIFACTS,
// JG_CHROMIUM (default /usr/bin/chromium).

import { chromium } from 'playwright-core';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { check, env, step } from './lib.mjs';

const URL_ = env('JG_URL');
const USER = env('JG_USER');
const PASSWORD = env('JG_PASSWORD');
const TECH = env('JG_TECH');
const TECH_PASSWORD = env('JG_TECH_PASSWORD');
const ADMIN = env('JG_ADMIN');
const ADMIN_PASSWORD = env('JG_ADMIN_PASSWORD');
const ENDPOINT = env('JG_ENDPOINT');
const UPLOAD_DIR = env('JG_UPLOAD_DIR');
const ARTIFACTS = env('JG_ARTIFACTS');
const CHROMIUM = env('JG_CHROMIUM', '/usr/bin/chromium');
const WAIT = 20_000;

fs.mkdirSync(ARTIFACTS, { recursive: true });
const hardStop = setTimeout(() => {
  console.error('FAIL: the browser test took longer than 240 s');
  process.exit(3);
}, 240_000);

// RFC 6238 TOTP (HMAC-SHA1, 30 s, 6 digits), as an authenticator app.
function base32(s) {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let acc = 0;
  const out = [];
  for (const c of s.replace(/[\s=]/g, '').toUpperCase()) {
    const v = A.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${s}`);
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}
function totp(secret, stepNo) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(stepNo));
  const mac = crypto.createHmac('sha1', secret).update(msg).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(off) & 0x7fffffff;
  return String(bin % 1_000_000).padStart(6, '0');
}
const stepNow = () => Math.floor(Date.now() / 1000 / 30);

const cspViolations = [];
const pageErrors = [];
function watch(page, who) {
  page.on('console', (m) => {
    const t = m.text();
    if (/Content Security Policy|Refused to (apply|load|execute|connect)/i.test(t)) cspViolations.push(`${who}: ${t}`);
  });
  page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
  page.on('dialog', (d) => d.accept());
}
async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}
async function login(page, user, password, code) {
  await page.goto(`${URL_}/#/login`);
  await page.locator('input[name=username]').waitFor({ timeout: WAIT });
  // Keyboard only: the user name field has focus; Tab to the password; Enter submits.
  await page.keyboard.type(user);
  await page.keyboard.press('Tab');
  await page.keyboard.type(password);
  await page.keyboard.press('Enter');
  if (code !== undefined) {
    const totpField = page.locator('input[name=totp]');
    await totpField.waitFor({ state: 'visible', timeout: WAIT });
    await totpField.fill(code());
    await totpField.press('Enter');
  }
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: WAIT,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  // The gateway's certificate is issued by the site's own CA; trust is
  // pinned elsewhere (jg, agent), here the browser is told to accept it.
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const page = await ctx.newPage();
  page.setDefaultTimeout(WAIT);
  watch(page, USER);

  // --- Login, forced MFA enrollment with the QR code -------------------
  await page.goto(`${URL_}/`);
  await page.locator('h1', { hasText: 'Log in' }).waitFor();
  await shot(page, '01-login');
  await login(page, USER, PASSWORD);
  await page.locator('h1', { hasText: 'Account' }).waitFor();
  check((await page.locator('nav a', { hasText: 'Endpoints' }).count()) === 0, 'a restricted session sees only the account page');
  await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
  const secretText = await page.locator('#totp-secret').textContent();
  check(await page.locator('svg.qr').isVisible(), 'the QR code is shown');
  const qrBox = await page.locator('svg.qr').boundingBox();
  check(qrBox && qrBox.width >= 150, 'the QR code renders at a scannable size');
  check((await page.locator('svg.qr path').count()) === 1, 'the QR code has its modules');
  await shot(page, '02-mfa-enroll');
  const secret = base32(secretText.trim());
  const enrollStep = stepNow();
  await page.getByLabel('Code shown by the app').fill(totp(secret, enrollStep));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.locator('#recovery-codes li').first().waitFor();
  await shot(page, '03-mfa-recovery-codes');
  step('mfa enrolled');

  // --- CSRF: a cookie-authenticated POST without the token is refused ----
  const csrf = await page.evaluate(async () => {
    const bare = await fetch('/api/v1/me/mfa/recovery-codes', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"code":"000000"}' });
    const wrong = await fetch('/api/v1/me/mfa/recovery-codes', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': 'nope' }, body: '{"code":"000000"}' });
    const cookieVisible = document.cookie.includes('jg_session');
    return { bare: bare.status, bareBody: await bare.json(), wrong: wrong.status, cookieVisible };
  });
  check(csrf.bare === 403 && csrf.bareBody.error === 'csrf', `POST without CSRF token refused: ${JSON.stringify(csrf)}`);
  check(csrf.wrong === 403, 'POST with a wrong CSRF token refused');
  check(!csrf.cookieVisible, 'the session cookie is HttpOnly (invisible to script)');
  step('csrf refused');

  // --- Log out, log in again with a TOTP code ---------------------------
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.locator('h1', { hasText: 'Log in' }).waitFor();
  const after = await page.evaluate(async () => (await fetch('/api/v1/me')).status);
  check(after === 401, 'logged out: the API answers 401');
  // The enrollment code is spent: wait for the next time step.
  const waitUntil = Date.now() + 35_000;
  while (stepNow() <= enrollStep && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 500));
  await login(page, USER, PASSWORD, () => totp(secret, stepNow()));
  await page.locator('h1', { hasText: 'Endpoints' }).waitFor();
  step('logged in with totp');

  // --- Endpoints: live status -------------------------------------------
  await page.locator(`.status.online[data-endpoint="${ENDPOINT}"]`).waitFor();
  await shot(page, '04-endpoints');
  await page.setViewportSize({ width: 420, height: 800 });
  await shot(page, '05-endpoints-narrow');
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByRole('searchbox', { name: 'Search' }).fill('no-such-endpoint');
  check((await page.locator(`[data-endpoint="${ENDPOINT}"]`).count()) === 0, 'the filter hides non-matching endpoints');
  await page.getByRole('searchbox', { name: 'Search' }).fill(ENDPOINT.slice(0, 3));
  step('endpoint online');

  // --- Endpoints: long values an endpoint reported, and a conflict --------
  // The gateway bounds what agents report, but the page must hold even a
  // 3,000-character OS and a 400-character host name (injected into the
  // real answer): the action buttons stay on screen.
  const endpointsRoute = '**/api/v1/endpoints';
  await page.route(endpointsRoute, async (route) => {
    const res = await route.fetch();
    const list = await res.json();
    for (const e of list) {
      if (e.name !== ENDPOINT) continue;
      e.os = `Linux ${'x'.repeat(3000)}`;
      e.hostname = `host-${'h'.repeat(400)}`;
      e.conflict = { last_at: new Date().toISOString(), count: 3, newcomer: '127.0.0.1:4711' };
    }
    await route.fulfill({ response: res, json: list });
  });
  await page.locator(`.status.conflict[data-conflict="${ENDPOINT}"]`).waitFor({ timeout: WAIT });
  for (const width of [1280, 1024, 420]) {
    await page.setViewportSize({ width, height: 800 });
    if (width === 420) await shot(page, '04c-endpoints-long-values-narrow');
    const box = await page.getByRole('link', { name: 'Terminal' }).first().boundingBox();
    check(
      box && box.x >= 0 && box.x + box.width <= width,
      `the Terminal button stays on screen beside a 3,000-character OS at ${width}px: ${JSON.stringify(box)}`,
    );
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  await shot(page, '04b-endpoints-long-values-conflict');
  await page.unroute(endpointsRoute);
  await page.locator(`.status.conflict[data-conflict="${ENDPOINT}"]`).waitFor({ state: 'detached', timeout: WAIT });
  step('long values fit');

  // --- Terminal ---------------------------------------------------------
  const marker = `hello-${crypto.randomInt(1e9)}`;
  // Keyboard only: Tab from the page title to the endpoint's Terminal link, Enter.
  await page.locator('h1', { hasText: 'Endpoints' }).focus();
  let onTerminalLink = false;
  for (let i = 0; i < 40 && !onTerminalLink; i++) {
    await page.keyboard.press('Tab');
    onTerminalLink = await page.evaluate(() => document.activeElement?.textContent === 'Terminal');
  }
  check(onTerminalLink, 'the Terminal link is reachable with Tab');
  await page.keyboard.press('Enter');
  await page.locator('#term-state', { hasText: 'Connected' }).waitFor();
  await page.locator('.xterm').click();
  await page.keyboard.type(`echo ${marker}\n`);
  await page.waitForFunction(
    (m) => {
      const t = document.querySelector('.xterm-rows')?.textContent ?? '';
      return t.split(m).length - 1 >= 2;
    },
    marker,
    { timeout: WAIT },
  );
  // Resize: the PTY follows the window. The size the remote `stty size`
  // reports before and after must differ, and match the terminal on screen
  // (a resize that did nothing would fail here).
  const screenRows = () => page.evaluate(() => document.querySelectorAll('.xterm-rows > div').length);
  // Asks the remote shell its size until a report satisfies `want`
  // (re-asking, since the new size may still be on its way).
  const remoteSize = async (want) => {
    const deadline = Date.now() + WAIT;
    for (;;) {
      await page.keyboard.type('stty size\n');
      const found = await page
        .waitForFunction(
          (w) => {
            const sizes = [...document.querySelectorAll('.xterm-rows > div')]
              .map((d) => /^(\d+) (\d+)$/.exec(d.textContent.trim()))
              .filter(Boolean)
              .map((m) => [Number(m[1]), Number(m[2])]);
            return sizes.find(([r, c]) => r === w.rows && (w.colsBelow === undefined || c < w.colsBelow)) ?? false;
          },
          want,
          { timeout: 2_000 },
        )
        .then((h) => h.jsonValue())
        .catch(() => null);
      if (found) return found;
      check(Date.now() < deadline, `the remote terminal never reported ${JSON.stringify(want)} rows`);
    }
  };
  const rows0 = await screenRows();
  const [, cols0] = await remoteSize({ rows: rows0 });
  await page.setViewportSize({ width: 900, height: 640 });
  // Polled, not a pause: the terminal re-fits to the smaller window.
  await page.waitForFunction((r) => document.querySelectorAll('.xterm-rows > div').length < r, rows0, { timeout: WAIT });
  const rows1 = await screenRows();
  const [gotRows, gotCols] = await remoteSize({ rows: rows1, colsBelow: cols0 });
  check(gotRows < rows0 && gotCols < cols0, `resized from ${rows0}x${cols0} to ${gotRows}x${gotCols}`);
  await page.setViewportSize({ width: 1280, height: 800 });
  // A pause in the session, so its recording is long enough to pause.
  await page.keyboard.type(`sleep 2; echo slept-${marker}\n`);
  await page.waitForFunction(
    (m) => (document.querySelector('.xterm-rows')?.textContent ?? '').split(`slept-${m}`).length - 1 >= 2,
    marker,
    { timeout: WAIT },
  );
  await shot(page, '06-terminal');
  console.log(`MARKER=${marker}`);
  step('terminal echo');
  await page.keyboard.type('exit\n');
  await page.locator('#term-notice', { hasText: 'exited' }).waitFor();
  await page.locator('#reconnect').waitFor({ state: 'visible' });
  await shot(page, '07-terminal-closed');
  // Reconnect from the keyboard: the button has the focus after a close.
  await page.keyboard.press('Enter');
  await page.locator('#term-state', { hasText: 'Connected' }).waitFor();
  check(await page.locator('#reconnect').isHidden(), 'the reconnect button hides once connected');
  step('terminal closed notice, reconnect');

  // --- Sessions: an admin terminates a live one -------------------------
  const other = await ctx.newPage();
  other.setDefaultTimeout(WAIT);
  watch(other, `${USER}-2`);
  await other.goto(`${URL_}/#/terminal/${ENDPOINT}`);
  await other.locator('#term-state', { hasText: 'Connected' }).waitFor();
  await page.goto(`${URL_}/#/sessions`);
  const terminate = page.getByRole('button', { name: 'Terminate' }).first();
  await terminate.waitFor();
  await shot(page, '08-sessions');
  await terminate.click();
  await other.locator('#term-notice', { hasText: 'terminated by' }).waitFor();
  await shot(other, '09-terminal-terminated');
  await other.close();
  await page.locator('h2', { hasText: 'Active (0)' }).waitFor();
  step('session terminated');

  // --- Files: upload with progress, then download -----------------------
  const data = crypto.randomBytes(300 * 1024 + 17);
  const sha = crypto.createHash('sha256').update(data).digest('hex');
  const name = `upload-${crypto.randomInt(1e9)}.bin`;
  await page.goto(`${URL_}/#/files/${ENDPOINT}`);
  await page.getByLabel('File').setInputFiles({ name, mimeType: 'application/octet-stream', buffer: data });
  await page.getByLabel('Destination on the endpoint').fill(`${UPLOAD_DIR}/`);
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.locator('#upload-status .notice.ok').waitFor();
  const upText = await page.locator('#upload-status').textContent();
  check(upText.includes(sha), `the page shows the verified SHA-256 (${upText})`);
  check((await page.locator('progress').first().evaluate((p) => p.value === p.max)), 'the progress bar is full');
  await shot(page, '10-upload');
  console.log(`UPLOAD_NAME=${name}`);
  console.log(`UPLOAD_SHA256=${sha}`);
  step('upload');
  await page.getByLabel('Path on the endpoint').fill(`${UPLOAD_DIR}/${name}`);
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: WAIT }), page.getByRole('button', { name: 'Download' }).click()]);
  const got = fs.readFileSync(await download.path());
  check(crypto.createHash('sha256').update(got).digest('hex') === sha, 'the downloaded file is the uploaded one');
  await page.locator('#download-status .notice.ok').waitFor();
  await shot(page, '11-download');
  step('download');

  // --- Recordings: replay the terminal session --------------------------
  const rec = await page.evaluate(async () => {
    const r = await fetch('/api/v1/recordings');
    return { status: r.status, body: await r.text() };
  });
  check(rec.status === 200, `recordings list: ${rec.status} ${rec.body}`);
  await page.goto(`${URL_}/#/recordings`);
  await page.getByRole('link', { name: 'Play' }).first().waitFor();
  await shot(page, '12-recordings');
  // The newest recording is the terminated session; replay the one with our marker.
  const list = JSON.parse(rec.body);
  let found = false;
  let paused = false;
  for (const r of list) {
    await page.goto(`${URL_}/#/recordings/${r.id}`);
    await page.locator('#play').waitFor();
    if (r.duration_secs >= 1) {
      // Play at 1×, pause at once: the replay stops where it is.
      await page.locator('#play').click();
      await page.locator('#play').click();
      check((await page.locator('#play').getAttribute('aria-pressed')) === 'false', 'pause stops the replay');
      check((await page.locator('#player').getAttribute('data-finished')) === null, 'a paused replay is not finished');
      paused = true;
    }
    await page.locator('#speed').selectOption('4');
    await page.locator('#play').click();
    // A recording shorter than a frame (a session closed at once) may end
    // before the pressed state can be seen: only longer ones are checked.
    if (r.duration_secs >= 1) await page.locator('#play[aria-pressed="true"]').waitFor();
    await page.locator('#player[data-finished="true"]').waitFor({ timeout: 60_000 });
    const text = await page.locator('#player .xterm-rows').textContent();
    if (text.includes(marker)) {
      found = true;
      await shot(page, '13-replay');
      break;
    }
  }
  check(found, 'a replayed recording shows the marker');
  check(paused, 'a recording long enough to pause was replayed');
  console.log('RECORDINGS=replayed');
  step('replay');
  await ctx.close();

  // --- A technician (no view-audit) cannot see recordings ---------------
  const techCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const tech = await techCtx.newPage();
  tech.setDefaultTimeout(WAIT);
  watch(tech, TECH);
  await login(tech, TECH, TECH_PASSWORD);
  await tech.locator('h1', { hasText: 'Endpoints' }).waitFor();
  check((await tech.locator('nav a', { hasText: 'Recordings' }).count()) === 0, 'no Recordings link without view-audit');
  await tech.goto(`${URL_}/#/recordings`);
  const direct = await tech.evaluate(async () => {
    const r = await fetch('/api/v1/recordings');
    return { status: r.status, body: await r.text() };
  });
  check(direct.status === 403, `the recordings API refuses a technician (${direct.status} ${direct.body})`);
  const denied = tech.locator('[role=alert]');
  await denied.waitFor();
  const deniedText = await denied.textContent();
  check(deniedText === JSON.parse(direct.body).message, `the API's message is shown: ${deniedText}`);
  await shot(tech, '14-technician-recordings-denied');
  // A session the gateway refuses says why (the API's own message).
  await tech.goto(`${URL_}/#/terminal/no-such-endpoint`);
  await tech.locator('#term-notice', { hasText: 'no endpoint named `no-such-endpoint`' }).waitFor();
  await shot(tech, '14b-terminal-refused');
  await techCtx.close();
  step('technician denied recordings');

  // --- Admin pages -------------------------------------------------------
  const adminCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const adm = await adminCtx.newPage();
  adm.setDefaultTimeout(WAIT);
  watch(adm, ADMIN);
  await login(adm, ADMIN, ADMIN_PASSWORD);
  await adm.locator('h1', { hasText: 'Endpoints' }).waitFor();
  for (const [hash, title, file] of [
    ['#/admin/users', 'Users', '15-admin-users'],
    ['#/admin/roles', 'Roles', '16-admin-roles'],
    ['#/admin/groups', 'Groups', '17-admin-groups'],
    ['#/admin/api-clients', 'API clients', '18-admin-api-clients'],
    ['#/admin/enroll-tokens', 'Enrollment tokens', '19-admin-enroll-tokens'],
  ]) {
    await adm.goto(`${URL_}/${hash}`);
    await adm.locator('h1', { hasText: title }).waitFor();
    await adm.locator('table, form').first().waitFor();
    await shot(adm, file);
  }
  // A state-changing form goes through the CSRF-protected path.
  await adm.goto(`${URL_}/#/admin/groups`);
  await adm.getByLabel('Name', { exact: true }).fill('browser-made');
  await adm.getByRole('button', { name: 'Create group' }).click();
  await adm.locator('td', { hasText: 'browser-made' }).first().waitFor();
  // An API error is shown with the API's message.
  await adm.getByLabel('Name', { exact: true }).fill('browser-made');
  await adm.getByRole('button', { name: 'Create group' }).click();
  await adm.locator('.error').first().waitFor();
  await shot(adm, '20-admin-error');
  await adm.goto(`${URL_}/#/admin/enroll-tokens`);
  await adm.getByRole('button', { name: 'Create token' }).click();
  await adm.locator('code.secret').waitFor();
  await shot(adm, '21-admin-enroll-token');
  await adminCtx.close();
  step('admin pages');

  check(pageErrors.length === 0, `no script errors: ${pageErrors.join('\n')}`);
  check(cspViolations.length === 0, `no CSP violations: ${cspViolations.join('\n')}`);
  console.log('CONSOLE-TEST PASSED');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack || e}`);
  if (pageErrors.length) console.error(`page errors:\n${pageErrors.join('\n')}`);
  if (cspViolations.length) console.error(`CSP violations:\n${cspViolations.join('\n')}`);
  for (const c of browser.contexts()) {
    for (const [i, p] of c.pages().entries()) await shot(p, `failure-${i}`).catch(() => {});
  }
} finally {
  await browser.close().catch(() => {});
  clearTimeout(hardStop);
}
process.exit(failed ? 1 : 0);
