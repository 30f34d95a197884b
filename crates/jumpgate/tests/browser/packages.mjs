// Browser test of the console's Package Manager pages: Debian's chromium,
// driven by playwright-core, against the real gateway and agent
// crates/jumpgate/tests/e2e/web_packages.rs started (the agent installs
// into a private dpkg root).
//
// The administrator uploads a .deb built by the Rust side, assigns it to
// the endpoint's group, sees the endpoint report it installed (with
// dpkg's output), and asks the inventory which endpoints run the package
// older than a version. Screenshots: packages-uploaded,
// packages-installed, inventory.
//
// Env: JG_URL, JG_ADMIN/JG_ADMIN_PASSWORD, JG_ENDPOINT, JG_GROUP, JG_DEB
// (the file), JG_PACKAGE, JG_VERSION, JG_ARTIFACTS, JG_CHROMIUM.

import { check, consoleTest, env, logIn, step } from './lib.mjs';

const URL_ = env('JG_URL');
const ADMIN = env('JG_ADMIN');
const ADMIN_PASSWORD = env('JG_ADMIN_PASSWORD');
const ENDPOINT = env('JG_ENDPOINT');
const GROUP = env('JG_GROUP');
const DEB = env('JG_DEB');
const PACKAGE = env('JG_PACKAGE');
const VERSION = env('JG_VERSION');
const WAIT = 30_000;

await consoleTest({ name: 'PACKAGES-TEST', seconds: 200, wait: WAIT }, async ({ page, shot }) => {
  await logIn(page, URL_, ADMIN, ADMIN_PASSWORD);
  step('logged in');

  // --- Upload ------------------------------------------------------------
  await page.locator('#nav a', { hasText: 'Packages' }).click();
  await page.locator('h1', { hasText: 'Packages' }).waitFor();
  // A file that is not a package: the gateway's typed error is shown.
  await page.locator('#pkg-file').setInputFiles({ name: 'junk.deb', mimeType: 'application/vnd.debian.binary-package', buffer: Buffer.from('not a debian package') });
  await page.locator('#pkg-upload').click();
  await page.locator('#pkg-status .error', { hasText: 'ar archive' }).waitFor();
  step('a file that is not a package is refused, saying why');
  await page.locator('#pkg-file').setInputFiles(DEB);
  await page.locator('#pkg-upload').click();
  await page.locator('#pkg-status', { hasText: `Uploaded ${PACKAGE} ${VERSION}` }).waitFor();
  await page.locator('#pkg-list td', { hasText: PACKAGE }).first().waitFor();
  await shot(page, 'packages-uploaded');
  step('uploaded');

  // --- Assign, and the endpoint's result ----------------------------------
  await page.locator('#pkg-assign-package').selectOption(PACKAGE);
  await page.locator('#pkg-assign-group').selectOption(GROUP);
  await page.locator('#pkg-assign').click();
  await page.locator('#pkg-status', { hasText: `install ${PACKAGE} ${VERSION} on ${GROUP}` }).waitFor();
  const deadline = Date.now() + WAIT;
  for (;;) {
    await page.locator('#pkg-refresh').click();
    const row = page.locator('#pkg-results tr', { hasText: ENDPOINT });
    if ((await row.count()) > 0 && (await row.first().textContent()).includes('installed')) break;
    check(Date.now() < deadline, 'the endpoint reports the package installed');
    await page.waitForTimeout(500);
  }
  await page.locator('#pkg-results summary').first().click();
  await page.locator('#pkg-results pre', { hasText: `Setting up ${PACKAGE}` }).waitFor();
  await shot(page, 'packages-installed');
  step('installed on the endpoint, with dpkg\'s output');

  // --- Inventory -------------------------------------------------------
  await page.locator('#nav a', { hasText: 'Inventory' }).click();
  await page.locator('h1', { hasText: 'Inventory' }).waitFor();
  await page.locator('#inv-package').fill(PACKAGE);
  await page.locator('#inv-version').fill('< 99');
  await page.locator('#inv-search').click();
  await page.locator('#inv-results td', { hasText: ENDPOINT }).first().waitFor();
  await page.locator('#inv-results td', { hasText: VERSION }).first().waitFor();
  await shot(page, 'inventory');
  await page.locator('#inv-version').fill(`< ${VERSION}`);
  await page.locator('#inv-search').click();
  await page.locator('#inv-count', { hasText: '0 endpoint packages match.' }).waitFor();
  step('the inventory answers version queries');

});
