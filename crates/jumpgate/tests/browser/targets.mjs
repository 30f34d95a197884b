// Browser test of the console's Targets page and the Account page's SSH
// section: Debian's chromium, driven by playwright-core, against the real
// gateway crates/jumpgate/tests/e2e/web_targets.rs started, with a jump
// point agent and a real sshd as the agentless target.
//
// The administrator adds an SSH target from the form (trust on first use,
// the credential named by its vault secret), sees it listed, opens a
// terminal on it and runs a command there as the target's account; the
// injected password is on no page. A target refused by the gateway (an
// endpoint that is not a jump point) shows the gateway's reason. On the
// Account page an SSH public key is added (its fingerprint listed), a
// private key is refused, and the key is removed.
// Screenshots: targets-list, targets-terminal, targets-refused, account-ssh.
//
// Env: JG_URL, JG_ADMIN/JG_ADMIN_PASSWORD, JG_JUMP_POINT, JG_PLAIN_ENDPOINT
// (an endpoint that is no jump point), JG_SSH_ADDR, JG_SSH_USER,
// JG_CREDENTIAL (the vault secret's name), JG_SECRET (its value: must
// appear nowhere), JG_PUBLIC_KEY, JG_PUBLIC_FP, JG_ARTIFACTS, JG_CHROMIUM.

import { check, consoleTest, env, logIn, step } from './lib.mjs';

const URL_ = env('JG_URL');
const SECRET = env('JG_SECRET');

await consoleTest({ name: 'TARGETS-TEST', seconds: 150 }, async ({ page, shot }) => {
  await logIn(page, URL_, env('JG_ADMIN'), env('JG_ADMIN_PASSWORD'));
  await page.locator('nav a', { hasText: 'Targets' }).click();
  await page.locator('h1', { hasText: 'Targets' }).waitFor();
  await page.locator('td.empty', { hasText: 'No target yet.' }).waitFor();
  step('the Targets page is empty');

  // A refused target: the gateway's reason is shown, nothing is added.
  const form = page.locator('form.grid-form');
  await form.locator('input[name=name]').fill('bad-01');
  await form.locator('input[name=via]').fill(env('JG_PLAIN_ENDPOINT'));
  await form.locator('input[name=address]').fill(env('JG_SSH_ADDR'));
  await form.locator('input[name=user]').fill(env('JG_SSH_USER'));
  await form.locator('input[name=credential]').fill(env('JG_CREDENTIAL'));
  await form.locator('select[name=pin]').selectOption('tofu');
  check(await form.locator('input[name=host_key]').isHidden(), 'the pinned-key field hides with trust on first use');
  await form.getByRole('button', { name: 'Add target' }).click();
  const refused = page.locator('[role=alert]');
  await refused.waitFor();
  const why = await refused.textContent();
  check(/jump point/i.test(why), `the refusal names the reason: ${why}`);
  await shot(page, 'targets-refused');
  check((await page.locator('td', { hasText: 'bad-01' }).count()) === 0, 'the refused target is not listed');
  step('a target through a plain endpoint is refused with the reason');

  // The real one. The form keeps what was typed after a refusal.
  await form.locator('input[name=name]').fill('db-01');
  await form.locator('input[name=via]').fill(env('JG_JUMP_POINT'));
  await form.getByRole('button', { name: 'Add target' }).click();
  await page.locator('.notice.ok', { hasText: 'Target db-01 added' }).waitFor();
  const row = page.locator('tr', { has: page.locator('strong', { hasText: 'db-01' }) });
  await row.waitFor();
  const rowText = await row.textContent();
  check(rowText.includes(env('JG_SSH_USER')) && rowText.includes(env('JG_CREDENTIAL')), `the account and its secret's name: ${rowText}`);
  check(rowText.includes('pinned at first use'), `trust on first use shown: ${rowText}`);
  await shot(page, 'targets-list');
  step('the target is listed');

  // A terminal on it: the command runs as the target's account.
  await row.locator('a[data-terminal=db-01]').click();
  await page.locator('#term-state', { hasText: 'Connected' }).waitFor();
  await page.locator('.xterm').click();
  await page.keyboard.type('echo on-$(whoami)-$((6*7))\n');
  const want = `on-${env('JG_SSH_USER')}-42`;
  await page.waitForFunction((m) => (document.querySelector('.xterm-rows')?.textContent ?? '').includes(m), want);
  await shot(page, 'targets-terminal');
  step('a terminal on the target runs as its account');

  // The host key was pinned at first use: the list shows its fingerprint.
  await page.locator('nav a', { hasText: 'Targets' }).click();
  await page.locator('tr', { hasText: 'db-01' }).locator('code.fingerprint', { hasText: 'SHA256:' }).waitFor();
  step('the host key seen at first use is pinned');

  // Account: SSH keys.
  await page.locator('nav a', { hasText: 'Account' }).click();
  await page.locator('h2', { hasText: 'SSH' }).waitFor();
  await page.locator('td.empty', { hasText: 'No SSH key yet.' }).waitFor();
  const box = page.locator('textarea[name=public_key]');
  await box.fill('-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----');
  await page.getByRole('button', { name: 'Add key' }).click();
  const bad = page.locator('section', { has: page.locator('h2', { hasText: 'SSH' }) }).locator('[role=alert]');
  await bad.waitFor();
  check(/private|public key/i.test(await bad.textContent()), `a private key is refused: ${await bad.textContent()}`);
  await box.fill(env('JG_PUBLIC_KEY'));
  await page.getByRole('button', { name: 'Add key' }).click();
  const fp = env('JG_PUBLIC_FP');
  await page.locator('td code.fingerprint', { hasText: fp }).waitFor();
  const door = await page.locator('section', { has: page.locator('h2', { hasText: 'SSH' }) }).locator('p').first().textContent();
  check(door.includes('+ENDPOINT@') && door.includes('SHA256:'), `the front door's address and host key: ${door}`);
  await shot(page, 'account-ssh');
  page.once('dialog', (d) => d.accept());
  await page.locator('tr', { hasText: fp }).getByRole('button', { name: 'Remove' }).click();
  await page.locator('td.empty', { hasText: 'No SSH key yet.' }).waitFor();
  step('an SSH key added, a private key refused, the key removed');

  // The terminal's session ended when its page was left: it is among
  // the past sessions (the list refreshes itself).
  await page.goto(`${URL_}/#/sessions`);
  const past = page.locator('section', { has: page.locator('h2', { hasText: 'Past' }) });
  await past.locator('td', { hasText: 'db-01' }).first().waitFor();
  step('the terminal session on the target ended with its page');

  // The injected password was on no page this test saw.
  for (const [hash, shown] of [['#/targets', 'td strong'], ['#/sessions', 'td'], ['#/account', 'h2']]) {
    await page.goto(`${URL_}/${hash}`);
    // Loaded: the page shows what it lists (the positive control below).
    await page.locator(shown, { hasText: hash === '#/account' ? 'SSH' : 'db-01' }).first().waitFor();
    const html = await page.content();
    check(!html.includes(SECRET), `the secret is not on ${hash}`);
    check(html.includes(hash === '#/account' ? 'SSH' : 'db-01'), `positive control: ${hash} is loaded`);
  }
  step('the injected secret is on no page');
});
