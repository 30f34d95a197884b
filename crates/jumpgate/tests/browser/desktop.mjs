// Browser test of the console's desktop side: Debian's chromium, driven by
// playwright-core, against the real gateway that
// crates/jumpgate/tests/e2e/web_desktop.rs started. Every wait is bounded;
// the whole run is capped. Prints `DESKTOP-TEST PASSED` on success and
// `KEY=value` facts the Rust side checks.
//
// Env: JG_URL, JG_ADMIN/JG_ADMIN_PASSWORD, JG_ARTIFACTS, JG_CHROMIUM, and
// - replay: JG_REPLAY_FILE (a desktop recording), JG_REPLAY_CHECKPOINTS
//   (`seconds:WxH:file.rgba,…`, the exact picture at those times);
// - live: JG_DESKTOP_ENDPOINT, JG_DISPLAY (the endpoint's Xvfb, for
//   xdotool), JG_PATTERN (`x,y,rrggbb;…` pixels of the pattern drawn on it),
//   JG_CLICK (`x,y`: where to click), JG_TYPED_FILE (where the xterm on the
//   endpoint writes what is typed);
// - display gone: JG_GONE_ENDPOINT, JG_GONE_READY (a file written once the
//   screen is drawn; the Rust side then stops the endpoint's X server).

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { check, env, step } from './lib.mjs';

const URL_ = env('JG_URL');
const ADMIN = env('JG_ADMIN');
const ADMIN_PASSWORD = env('JG_ADMIN_PASSWORD');
const ARTIFACTS = env('JG_ARTIFACTS');
const CHROMIUM = env('JG_CHROMIUM', '/usr/bin/chromium');
const WAIT = 20_000;

fs.mkdirSync(ARTIFACTS, { recursive: true });
const hardStop = setTimeout(() => {
  console.error('FAIL: the desktop browser test took longer than 220 s');
  process.exit(3);
}, 220_000);

const pageErrors = [];
function watch(page, who) {
  page.on('console', (m) => {
    const t = m.text();
    if (/Content Security Policy|Refused to (apply|load|execute|connect)/i.test(t)) pageErrors.push(`${who}: ${t}`);
  });
  page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
  page.on('dialog', (d) => d.accept());
}
async function shot(page, name) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  console.log(`SCREENSHOT=${file}`);
}
async function login(page, user, password) {
  await page.goto(`${URL_}/#/login`);
  await page.locator('input[name=username]').fill(user);
  await page.locator('input[name=password]').fill(password);
  await page.locator('input[name=password]').press('Enter');
  await page.locator('h1', { hasText: 'Endpoints' }).waitFor();
}
/** The canvas's pixels as RGBA bytes. */
async function canvasPixels(page, id) {
  const r = await page.evaluate((id) => {
    const c = document.getElementById(id);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let s = '';
    for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
    return { w: c.width, h: c.height, b64: btoa(s) };
  }, id);
  return { w: r.w, h: r.h, data: Buffer.from(r.b64, 'base64') };
}
const frames = (page) => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

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
  watch(page, ADMIN);
  await login(page, ADMIN, ADMIN_PASSWORD);
  step('logged in');

  if (process.env.JG_REPLAY_FILE) await replay(page);
  if (process.env.JG_PAGES_ENDPOINT) await pages(page);
  if (process.env.JG_DESKTOP_ENDPOINT) await live(page);
  if (process.env.JG_GONE_ENDPOINT) await gone(page);

  check(pageErrors.length === 0, `no page errors or CSP violations: ${pageErrors.join(' | ')}`);
  console.log('DESKTOP-TEST PASSED');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack || e}`);
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    await p.screenshot({ path: path.join(ARTIFACTS, `failure-${Date.now()}.png`) }).catch(() => {});
  }
} finally {
  clearTimeout(hardStop);
  await browser.close();
}
process.exit(failed ? 1 : 0);

// --- Replay ------------------------------------------------------------------

async function replay(page) {
  const file = env('JG_REPLAY_FILE');
  const checkpoints = env('JG_REPLAY_CHECKPOINTS').split(',').map((c) => {
    const [t, size, f] = c.split(':');
    const [w, h] = size.split('x').map(Number);
    return { t: Number(t), w, h, data: fs.readFileSync(f) };
  });
  // The recording's content, as the gateway serves a desktop recording.
  const id = 'rec_synthetic_desktop';
  await page.route(`**/api/v1/recordings/${id}/cast`, (route) =>
    route.fulfill({ status: 200, contentType: 'application/x-jumpgate-desktop', body: fs.readFileSync(file) }));
  await page.goto(`${URL_}/#/recordings/${id}`);
  await page.locator('h1', { hasText: 'Desktop recording' }).waitFor();
  const screen = page.locator('#replay-screen');
  const settle = async () => {
    await page.waitForFunction(() => {
      const s = document.getElementById('replay-screen');
      return s.dataset.ready === 'true' && s.dataset.applied === s.dataset.count;
    }, null, { timeout: WAIT });
    await frames(page);
  };
  const seekTo = (t) => page.evaluate((t) => {
    const seek = document.getElementById('seek');
    seek.value = String(t);
    seek.dispatchEvent(new Event('input', { bubbles: true }));
  }, t);
  const compare = async (cp, what) => {
    const got = await canvasPixels(page, 'replay-canvas');
    check(got.w === cp.w && got.h === cp.h, `${what}: canvas ${got.w}×${got.h}, want ${cp.w}×${cp.h}`);
    let differing = 0;
    let first = null;
    for (let i = 0; i < cp.data.length; i += 4) {
      if (got.data[i] !== cp.data[i] || got.data[i + 1] !== cp.data[i + 1] || got.data[i + 2] !== cp.data[i + 2]) {
        differing++;
        if (first === null) first = `pixel ${(i / 4) % cp.w},${Math.floor(i / 4 / cp.w)}: ${[...got.data.subarray(i, i + 3)]} want ${[...cp.data.subarray(i, i + 3)]}`;
      }
    }
    check(differing === 0, `${what}: ${differing} pixels differ (${first})`);
  };
  await settle();
  await shot(page, 'desktop-replay-start');
  // Forward to the end (through a stream start), then back into the first
  // stream: both pictures exact.
  const [a, b] = checkpoints;
  await seekTo(b.t);
  await settle();
  await compare(b, 'seek forward to the end');
  check((await page.locator('#replay-caption').textContent()).includes('the user ended the session'), 'the caption names the last control event');
  await shot(page, 'desktop-replay-end');
  await seekTo(a.t);
  await settle();
  await compare(a, 'seek back into the first stream');
  check((await page.locator('#replay-caption').textContent()).includes('technician has control'), 'the caption follows the position back');
  // The cursor is drawn where the recording put it (hot spot 4,4 at 300,40).
  const cur = await page.evaluate(() => {
    const c = document.querySelector('#replay-screen .desk-cursor');
    return [...c.getContext('2d').getImageData(300, 40, 1, 1).data];
  });
  check(cur[0] === 220 && cur[1] === 20 && cur[3] === 255, `the cursor is drawn at its position: ${cur}`);
  await page.locator('#replay-scale').selectOption('1');
  await shot(page, 'desktop-replay-seek-back-1to1');
  await page.locator('#replay-scale').selectOption('fit');
  // The timeline's events seek; playing at 8× reaches the end.
  const marks = page.locator('#replay-events button');
  check((await marks.count()) === 4, `four control and clipboard events on the timeline, got ${await marks.count()}`);
  await marks.filter({ hasText: 'took back control' }).click();
  await settle();
  check((await page.locator('#replay-caption').textContent()).includes('took back control'), 'a timeline event seeks to it');
  await page.locator('#speed').selectOption('8');
  await page.locator('#play').click();
  await screen.and(page.locator('[data-finished="true"]')).waitFor({ timeout: WAIT });
  await settle();
  await compare(b, 'played to the end');
  await shot(page, 'desktop-replay-played');
  console.log('REPLAY=pixel-exact');
  step('replay');
}

// --- The desktop page and the group form, whatever the endpoint answers --------

async function pages(page) {
  const ep = env('JG_PAGES_ENDPOINT');
  await page.goto(`${URL_}/#/admin/groups`);
  await page.locator('#group-consent').waitFor();
  check((await page.locator('#group-consent').inputValue()) === 'prompt', 'a new group asks the user by default');
  await page.locator('#group-consent').selectOption('notify');
  await shot(page, 'desktop-group-consent-form');
  await page.goto(`${URL_}/#/endpoints`);
  await page.locator(`.status.online[data-endpoint="${ep}"]`).waitFor();
  await page.getByRole('link', { name: 'Desktop' }).first().click();
  await page.locator('h1', { hasText: `Desktop — ${ep}` }).waitFor();
  check(await page.locator('#desk-opt-control').isChecked(), 'control is on by default for a user with desktop-control');
  check(!(await page.locator('#desk-opt-clipboard').isChecked()), 'the clipboard is off by default');
  await shot(page, 'desktop-options');
  await page.locator('#desk-connect').click();
  // Whatever this endpoint answers (no display here), the page says it.
  await page.locator('#desk-ended, #desk-screen[data-drawn]').first().waitFor({ timeout: 50_000 });
  const said = (await page.locator('#desk-banner').textContent()) || '';
  console.log(`DESKTOP_PAGE_SAID=${said.replace(/\s+/g, ' ')}`);
  await shot(page, 'desktop-page-answer');
  step('desktop page and group form');
}

// --- Live desktop -------------------------------------------------------------

function xdotool(...args) {
  return execFileSync('xdotool', args, { env: { ...process.env, DISPLAY: env('JG_DISPLAY') }, encoding: 'utf8' }).trim();
}
async function poll(what, f, ms = WAIT) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await f();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function live(page) {
  const ep = env('JG_DESKTOP_ENDPOINT');
  await page.goto(`${URL_}/#/endpoints`);
  await page.locator(`.status.online[data-endpoint="${ep}"]`).waitFor();
  await page.getByRole('link', { name: 'Desktop' }).first().click();
  await page.locator('h1', { hasText: `Desktop — ${ep}` }).waitFor();
  check(await page.locator('#desk-opt-control').isChecked(), 'control is on by default for a user with desktop-control');
  await page.locator('#desk-opt-clipboard').check();
  await shot(page, 'desktop-options');
  await page.locator('#desk-connect').click();
  await page.locator('#desk-screen[data-drawn]').waitFor({ timeout: 45_000 });
  await page.locator('#desk-state', { hasText: 'You have control' }).waitFor();
  step('desktop connected');

  // The pattern drawn on the endpoint's display, read back from the canvas.
  const pattern = env('JG_PATTERN').split(';').map((p) => {
    const [x, y, hex] = p.split(',');
    return { x: Number(x), y: Number(y), rgb: [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16)) };
  });
  let lastPx;
  await poll('the pattern on the canvas', async () => {
    const px = await page.evaluate((pts) => {
      const c = document.getElementById('desk-canvas');
      const ctx = c.getContext('2d');
      return pts.map((p) => [...ctx.getImageData(p.x, p.y, 1, 1).data]);
    }, pattern);
    lastPx = px;
    return pattern.every((p, i) => p.rgb.every((v, k) => Math.abs(v - px[i][k]) <= 2));
  }).catch(async (e) => {
    await shot(page, 'desktop-live-pattern-missing');
    throw new Error(`${e.message}: the canvas shows ${JSON.stringify(lastPx)} where ${JSON.stringify(pattern)} was drawn`);
  });
  await page.waitForFunction(() => Number(document.getElementById('desk-fps').dataset.fps ?? -1) >= 0 && document.getElementById('desk-rtt').dataset.ms !== undefined, null, { timeout: WAIT });
  console.log(`RTT_MS=${await page.locator('#desk-rtt').getAttribute('data-ms')}`);
  await shot(page, 'desktop-live-fit');
  await page.locator('#desk-scale').selectOption('1');
  await shot(page, 'desktop-live-1to1');
  await page.locator('#desk-scale').selectOption('fit');
  step('pattern read back');

  // A click in the browser lands at the same pixel on the endpoint.
  const [cx, cy] = env('JG_CLICK').split(',').map(Number);
  const box = await page.locator('#desk-canvas').boundingBox();
  const size = await page.evaluate(() => { const c = document.getElementById('desk-canvas'); return [c.width, c.height]; });
  const px = box.x + ((cx + 0.5) * box.width) / size[0];
  const py = box.y + ((cy + 0.5) * box.height) / size[1];
  await page.mouse.move(px, py);
  await page.mouse.click(px, py);
  const where = await poll('the pointer on the endpoint', () => {
    const m = /x:(\d+) y:(\d+)/.exec(xdotool('getmouselocation'));
    return m && Math.abs(Number(m[1]) - cx) <= 1 && Math.abs(Number(m[2]) - cy) <= 1 ? `${m[1]},${m[2]}` : null;
  });
  console.log(`CLICKED_AT=${where}`);
  step('click landed');

  // Typing: non-US characters arrive as typed in the endpoint's xterm.
  const text = 'Grüße, Wörld! ½ €';
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
  const typedFile = env('JG_TYPED_FILE');
  await poll('the typed text on the endpoint', () => fs.existsSync(typedFile) && fs.readFileSync(typedFile, 'utf8').includes(text));
  console.log('TYPED=ok');
  await shot(page, 'desktop-live-typed');
  step('typed');

  // Two monitors are listed; one that went away in the meantime (an option
  // the page still had) is answered with a note, and the page stays on
  // the whole screen.
  await page.locator('#desk-monitor').waitFor();
  const listed = await page.locator('#desk-monitor option').count();
  check(listed >= 3, `all monitors and the endpoint's two are offered (${listed})`);
  await page.evaluate(() => {
    const sel = document.getElementById('desk-monitor');
    const gone = document.createElement('option');
    gone.value = '7';
    gone.textContent = 'gone (640×480)';
    sel.append(gone);
  });
  await page.locator('#desk-monitor').selectOption('7');
  const refused = await page.locator('#desk-refused').textContent();
  check(/there is no monitor 7 on this endpoint/.test(refused) && /still showing all monitors/.test(refused), `the note says what happened: ${refused}`);
  console.log(`MONITOR_NOTE=${refused}`);
  check(await page.locator('#desk-monitor').inputValue() === '', 'the choice shows the whole screen again');
  check(await page.locator('#desk-state', { hasText: 'You have control' }).count() === 1, 'control unchanged');
  const still = await page.evaluate(() => document.getElementById('desk-canvas').width);
  check(still === 1024, `still the whole screen (${still})`);
  await shot(page, 'desktop-live-monitor-refused');
  step('monitor refused');

  // The keys menu and the view-only switch.
  await page.locator('#desk-keys summary').click();
  await shot(page, 'desktop-keys-menu');
  await page.locator('#desk-keys summary').click();
  await page.locator('#desk-view-only').check();
  await page.locator('#desk-disconnect').click();
  await page.locator('#desk-ended').waitFor();
  await shot(page, 'desktop-disconnected');
  step('live desktop');
}

// --- The endpoint's display going away ------------------------------------------

async function gone(page) {
  const ep = env('JG_GONE_ENDPOINT');
  await page.goto(`${URL_}/#/desktop/${ep}`);
  await page.locator('h1', { hasText: `Desktop — ${ep}` }).waitFor();
  await page.locator('#desk-connect').click();
  await page.locator('#desk-screen[data-drawn]').waitFor({ timeout: 45_000 });
  fs.writeFileSync(env('JG_GONE_READY'), 'drawn');
  step('connected; the X server is stopped');
  const ended = page.locator('#desk-ended');
  await ended.waitFor({ timeout: 45_000 });
  const said = (await ended.textContent()).trim();
  console.log(`GONE_PAGE=${said}`);
  check(said === "The session ended at the endpoint: the endpoint's display went away.", `the page says why: ${said}`);
  await shot(page, 'desktop-display-gone');

  // The session list shows the outcome as stored.
  const outcome = "error: endpoint side: the endpoint's display went away";
  await page.goto(`${URL_}/#/sessions`);
  await page.locator('#past-title').waitFor();
  await poll('the outcome in the session list', async () => (await page.getByRole('cell', { name: outcome, exact: true }).count()) > 0);
  console.log(`GONE_OUTCOME=${outcome}`);
  await shot(page, 'sessions-display-gone');

  // The recording's timeline names the failure.
  await page.goto(`${URL_}/#/recordings`);
  await page.getByRole('link', { name: 'Play' }).first().click();
  await page.locator('h1', { hasText: 'Desktop recording' }).waitFor();
  const mark = page.locator('#replay-events button', { hasText: 'the session failed at the endpoint' });
  await mark.waitFor();
  await mark.click();
  const caption = await page.locator('#replay-caption').textContent();
  console.log(`GONE_CAPTION=${caption}`);
  check(caption === "the session failed at the endpoint (the endpoint's display went away)", `the replay's caption: ${caption}`);
  await shot(page, 'replay-display-gone');
  step('display gone');
}
