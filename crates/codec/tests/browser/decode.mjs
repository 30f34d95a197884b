// Drives Debian's chromium (playwright-core) to decode jumpgate-codec packets
// with js/desktop-decoder.js; started by crates/codec/tests/browser.rs.
// Env: JG_URL (the test's loopback server), JG_OUT (directory for the
// snapshots), JG_CHROMIUM, JG_PLAYWRIGHT (directory whose node_modules
// holds playwright-core: crates/jumpgate/tests/browser).
// Writes step-N.rgba (+ step-N.size) per step and prints DECODE-TEST DONE.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(path.join(process.env.JG_PLAYWRIGHT, 'package.json'));
const { chromium } = require('playwright-core');

const hardStop = setTimeout(() => {
  console.error('FAIL: the decode test took longer than 90 s');
  process.exit(3);
}, 90_000);

const browser = await chromium.launch({
  executablePath: process.env.JG_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.log(`console: ${m.text()}`));
  page.on('pageerror', (e) => console.log(`pageerror: ${e}`));
  await page.goto(`${process.env.JG_URL}/index.html`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 20_000 });
  const supported = await page.evaluate(() => typeof VideoDecoder === 'function' && window.isSecureContext);
  if (!supported) throw new Error('no WebCodecs VideoDecoder in this page');
  const res = await page.evaluate(() => window.runAll());
  for (const s of res.snapshots) {
    fs.writeFileSync(path.join(process.env.JG_OUT, `step-${s.step}.rgba`), Buffer.from(s.rgba, 'base64'));
    fs.writeFileSync(path.join(process.env.JG_OUT, `step-${s.step}.size`), `${s.width}x${s.height}`);
  }
  console.log(`STATS=${JSON.stringify(res.stats)}`);
  console.log(`ERRORS=${JSON.stringify(res.errors)}`);
  console.log('DECODE-TEST DONE');
} finally {
  await browser.close();
  clearTimeout(hardStop);
}
