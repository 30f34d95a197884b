// Browser test of the console's search inside recordings: Debian's
// chromium, driven by playwright-core, against the real gateway and agent
// crates/jumpgate/tests/e2e/web_recording_search.rs started (a session
// printed JG_PRINTED JG_OFFSET seconds in, and more after it).
//
// The administrator searches on the recordings page (an empty search is
// answered on the page), the hit shows the snippet and moment, a click
// opens the player paused at the hit: the position is JG_OFFSET, the
// printed line is on the terminal, what followed it is not.
// Screenshots: search-results, player-at-hit.
//
// Env: JG_URL, JG_ADMIN/JG_ADMIN_PASSWORD, JG_QUERY, JG_PRINTED,
// JG_RECORDING, JG_OFFSET, JG_ARTIFACTS, JG_CHROMIUM.

import { check, consoleTest, env, logIn, step } from './lib.mjs';

const URL_ = env('JG_URL');
const ADMIN = env('JG_ADMIN');
const ADMIN_PASSWORD = env('JG_ADMIN_PASSWORD');
const QUERY = env('JG_QUERY');
const PRINTED = env('JG_PRINTED');
const RECORDING = env('JG_RECORDING');
const OFFSET = Number(env('JG_OFFSET'));

await consoleTest({ name: 'RECORDING-SEARCH-TEST', seconds: 150 }, async ({ page, shot }) => {
  await logIn(page, URL_, ADMIN, ADMIN_PASSWORD);
  step('logged in');

  await page.locator('nav a', { hasText: 'Recordings' }).click();
  await page.locator('h1', { hasText: 'Recordings' }).waitFor();
  const box = page.locator('#recording-search-q');
  await box.waitFor();
  // A search with no word is answered on the page, by the gateway.
  await box.fill('/ -');
  await page.locator('#recording-search-go').click();
  await page.locator('#recording-search-status', { hasText: 'at least 2' }).waitFor();
  step('a query without a word is refused, with the reason');

  await box.fill(QUERY);
  await box.press('Enter');
  const hit = page.locator('a.search-hit').first();
  await hit.waitFor();
  const hitText = await hit.textContent();
  check(hitText.includes(PRINTED), `the hit shows the snippet: ${hitText}`);
  check((await hit.getAttribute('data-recording')) === RECORDING, 'the hit is the recording');
  check(Math.abs(Number(await hit.getAttribute('data-offset')) - OFFSET) < 1e-9, 'the hit has the moment the API gave');
  await page.locator('#recording-search-status', { hasText: '1 recording(s) found' }).waitFor();
  await shot(page, 'search-results');
  step('the search lists the hit');

  await hit.click();
  await page.locator('#player[data-ready="true"]').waitFor();
  const hash = await page.evaluate(() => location.hash);
  check(hash.startsWith(`#/recordings/${RECORDING}?t=`), `the player's route has the moment: ${hash}`);
  const pos = Number(await page.locator('#seek').inputValue());
  check(Math.abs(pos - OFFSET) < 0.01, `the player is at ${pos}, the hit at ${OFFSET}`);
  check((await page.locator('#play').getAttribute('aria-pressed')) === 'false', 'paused at the hit');
  // The screen shows what was printed up to the hit, and not what came after.
  await page.waitForFunction(
    (want) => (document.querySelector('#player .xterm-rows')?.textContent || '').includes(want),
    PRINTED,
  );
  const screen = await page.locator('#player .xterm-rows').textContent();
  check(screen.includes('before-it'), `earlier output is on the screen: ${screen}`);
  check(!screen.includes('after-it'), `later output is not: ${screen}`);
  const clock = await page.locator('#play-time').textContent();
  check(clock.startsWith(`0:0${Math.floor(OFFSET)}`), `the clock shows the moment: ${clock}`);
  await shot(page, 'player-at-hit');
  step('the player opened at the hit');

});
