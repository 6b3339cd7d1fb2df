// Browser tests of the console's security controls against the real
// clio_demo and Debian's headless chromium: "Copy as curl" and the HAR
// export target the server's public origin whatever Host a captured request
// carried, and
// "Log out everywhere" ends every browser's session.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser, waitFor } from './lib/harness.mjs';
import { DEMO_BIN, startDemo, loginWithForm, subscribe, chipCount, exportText } from './lib/console.mjs';

const KEY = `e2e-security-${process.pid}-${Date.now()}`;
const skip = DEMO_BIN ? false : 'CLIO_DEMO_BIN is not set (ctest sets it)';

// A GET with a Host header of our choosing (fetch does not allow one).
function getWithHost(port, path, host) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { Host: host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('console security controls', { skip }, () => {
  let dir; let demo; let browser;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'clio-e2e-sec-'));
    demo = await startDemo({ key: KEY, db: join(dir, 'clio.db'), traffic: 0 });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await demo?.proc.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('copy as curl and the HAR export target the public origin, not the captured Host header', async () => {
    const ctx = await browser.newContext({ acceptDownloads: true });
    try {
      const page = await ctx.newPage();
      await loginWithForm(page, demo, KEY);
      const id = await subscribe(page, 'path:/curl-origin');
      await getWithHost(demo.port, '/curl-origin/x?a=1', 'evil.example:9999');
      await waitFor(async () => (await chipCount(page, id)) >= 1, { timeoutMs: 15000, what: 'the row' });
      await page.locator('#table .tr', { hasText: '/curl-origin/' }).first().click();
      await page.waitForSelector('#detail:not([hidden])');
      const curl = await page.textContent('#detail-body pre.curl');
      assert.ok(curl.startsWith(`curl 'http://127.0.0.1:${demo.port}/curl-origin/x?a=1'`), curl);
      assert.ok(!curl.includes('evil.example'), curl);
      const har = JSON.parse(await exportText(page, 'export-har'));
      const entries = har.log.entries.filter((e) => e.request.url.includes('/curl-origin/'));
      assert.equal(entries.length, 1, JSON.stringify(har.log.entries.map((e) => e.request.url)));
      const req = entries[0].request;
      assert.equal(req.url, `http://127.0.0.1:${demo.port}/curl-origin/x?a=1`);
      assert.deepEqual(req.queryString, [{ name: 'a', value: '1' }]);
      assert.deepEqual(req.headers.filter((h) => h.name.toLowerCase() === 'host').map((h) => h.value), ['evil.example:9999'],
        'the captured Host stays a request header, as captured');
    } finally {
      await ctx.close();
    }
  });

  it('log out everywhere ends the sessions of every browser', async () => {
    const a = await browser.newContext();
    const b = await browser.newContext();
    try {
      const pa = await a.newPage();
      const pb = await b.newPage();
      await loginWithForm(pa, demo, KEY);
      await loginWithForm(pb, demo, KEY);
      const statusIn = (p) => p.evaluate(async () => (await fetch('api/stats')).status);
      assert.equal(await statusIn(pb), 200);
      pa.once('dialog', (d) => d.accept());
      await Promise.all([pa.waitForURL(/\/_clio\/login$/, { timeout: 15000 }), pa.click('#logout-all')]);
      assert.equal(await statusIn(pb), 401, 'the other browser is logged out too');
      await pb.reload();
      await pb.waitForURL(/\/_clio\/login$/, { timeout: 15000 });
      await loginWithForm(pa, demo, KEY);  // a new login works
    } finally {
      await a.close();
      await b.close();
    }
  });
});
