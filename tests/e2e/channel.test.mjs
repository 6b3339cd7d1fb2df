// Browser tests of the channel JS client (templates/channel.js) and the chat
// example, in Debian's headless chromium. The JS client runs against
// channel_js_test_server, whose proxy can sever sockets like a network drop;
// the chat runs as the real clio_chat binary with two browser contexts, also
// behind the App Engine page of seed 003 served from another origin.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { launchBrowser, startProcess, waitFor } from './lib/harness.mjs';

const SERVER_BIN = process.env.CLIO_CHANNEL_TEST_SERVER;
const CHAT_BIN = process.env.CLIO_CHAT_BIN;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function post(url) {
  const r = await fetch(url, { method: 'POST' });
  assert.equal(r.status, 200, `${url} -> ${r.status}`);
  return r.json();
}

describe('channel JS client', { skip: SERVER_BIN ? false : 'CLIO_CHANNEL_TEST_SERVER is not set (ctest sets it)' }, () => {
  let server; let base; let ctl; let browser; let page;

  before(async () => {
    server = startProcess(SERVER_BIN, [], { readyPattern: /listening on (http:\S+) control (http:\S+)/ });
    await server.ready;
    const m = server.output().match(/listening on (http:\S+) control (http:\S+)/);
    base = m[1].replace(/\/$/, '');
    ctl = m[2].replace(/\/$/, '');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  // A fresh page with the client loaded and a recorder for everything the
  // socket reports.
  async function freshPage() {
    if (page) await page.close();
    page = await browser.newPage();
    page.on('pageerror', (e) => { throw e; });
    await page.goto(base + '/');
    await page.evaluate(() => {
      window.log = { opened: 0, closed: 0, errors: [], gaps: [], states: [], got: [], refreshes: 0 };
    });
    return page;
  }

  it('opens with the App Engine alias, handlers set as properties, and receives in order', async () => {
    await freshPage();
    const { token } = await post(`${ctl}/token?client_id=js-basic`);
    await page.evaluate((tok) => {
      // The seed's snippet, unchanged apart from the recorder.
      const channel = new goog.appengine.Channel(tok);
      const socket = channel.open();
      socket.onopen = () => { window.log.opened++; };
      socket.onmessage = (m) => { window.log.got.push(JSON.parse(m.data).n); };
      socket.onerror = (e) => { window.log.errors.push(e); };
      socket.onclose = () => { window.log.closed++; };
      window.socket = socket;
    }, token);
    await page.waitForFunction(() => window.log.opened === 1, null, { timeout: 10000 });
    await post(`${ctl}/send?client_id=js-basic&count=50`);
    await page.waitForFunction(() => window.log.got.length >= 50, null, { timeout: 10000 });
    const log = await page.evaluate(() => window.log);
    assert.deepEqual(log.got, Array.from({ length: 50 }, (_, i) => i + 1));
    assert.equal(log.errors.length, 0);
    assert.equal(await page.evaluate(() => window.clio.Channel === window.goog.appengine.Channel), true);
  });

  it('hands send_json values over parsed, and send_message text as a string', async () => {
    await freshPage();
    const { token } = await post(`${ctl}/token?client_id=js-json`);
    await page.evaluate((tok) => {
      const socket = new clio.Channel(tok).open({
        onopen: () => { window.log.opened++; },
        onmessage: (m) => { window.log.got.push(m.data); },
      });
      window.socket = socket;
    }, token);
    await page.waitForFunction(() => window.log.opened === 1, null, { timeout: 10000 });
    await post(`${ctl}/send?client_id=js-json&count=2&as=json`);
    await post(`${ctl}/send?client_id=js-json&count=1`);
    await page.waitForFunction(() => window.log.got.length >= 3, null, { timeout: 10000 });
    const got = await page.evaluate(() => window.log.got);
    assert.deepEqual(got, [{ n: 1 }, { n: 2 }, '{"n":3}']);
  });

  it('reconnects after the server side drops the socket and resumes without loss or duplicates', async () => {
    await freshPage();
    const { token } = await post(`${ctl}/token?client_id=js-drop`);
    await page.evaluate((tok) => {
      const ch = new clio.Channel(tok);
      window.socket = ch.open({
        onopen: () => { window.log.opened++; },
        onmessage: (m) => { window.log.got.push(JSON.parse(m.data).n); },
        onerror: (e) => { window.log.errors.push(e); },
        onclose: () => { window.log.closed++; },
        ongap: (n) => { window.log.gaps.push(n); },
        onstatechange: (e) => { window.log.states.push(e); },
      });
    }, token);
    await page.waitForFunction(() => window.socket.state === 'open', null, { timeout: 10000 });
    let sent = 0;
    for (let round = 0; round < 3; round++) {
      await post(`${ctl}/send?client_id=js-drop&count=20`);
      sent += 20;
      const { dropped } = await post(`${ctl}/drop`);
      assert.ok(dropped >= 1, 'the proxy severed the channel socket');
      // Sent while the client is disconnected (or not yet noticed): must arrive after resume.
      await post(`${ctl}/send?client_id=js-drop&count=30`);
      sent += 30;
      await page.waitForFunction((n) => window.log.got.length >= n, sent, { timeout: 20000 });
    }
    const log = await page.evaluate(() => window.log);
    assert.deepEqual(log.got, Array.from({ length: sent }, (_, i) => i + 1));
    assert.deepEqual(log.gaps, []);
    assert.equal(log.opened, 1, 'onopen fires once; reconnects show in onstatechange');
    assert.equal(log.closed, 0);
    // Each drop: 'reconnecting' with the backoff delay, then 'reconnecting'
    // again as the attempt starts, then 'open'.
    const reconnecting = log.states.filter((s) => s.state === 'reconnecting' && s.retryInMs !== undefined);
    assert.ok(reconnecting.length >= 3, `reconnecting states: ${JSON.stringify(log.states)}`);
    for (const s of reconnecting) {
      assert.ok(s.retryInMs >= 0 && s.retryInMs <= 5000, `backoff capped near 5 s: ${s.retryInMs}`);
    }
    assert.equal(await page.evaluate(() => window.socket.state), 'open');
  });

  it('refreshes its token in-band before expiry without losing messages or reconnecting', async () => {
    await freshPage();
    const { token } = await post(`${ctl}/token?client_id=js-refresh&seconds=2`);
    const before = await (await fetch(`${ctl}/stats`)).json();
    await page.evaluate((tok) => {
      const ch = new clio.Channel(tok, {
        refreshToken: async () => {
          window.log.refreshes++;
          const r = await fetch('/token?client_id=js-refresh&seconds=2', { method: 'POST' });
          return (await r.json()).token;
        },
      });
      window.socket = ch.open({
        onmessage: (m) => { window.log.got.push(JSON.parse(m.data).n); },
        onerror: (e) => { window.log.errors.push(e); },
        ongap: (n) => { window.log.gaps.push(n); },
        onstatechange: (e) => { window.log.states.push(e.state); },
      });
    }, token);
    await page.waitForFunction(() => window.socket.state === 'open', null, { timeout: 10000 });
    // Stream for about 5 s: two and a half token lifetimes.
    let sent = 0;
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      await post(`${ctl}/send?client_id=js-refresh&count=5`);
      sent += 5;
      await sleep(50);
    }
    await page.waitForFunction((n) => window.log.got.length >= n, sent, { timeout: 10000 });
    const log = await page.evaluate(() => window.log);
    assert.deepEqual(log.got, Array.from({ length: sent }, (_, i) => i + 1));
    assert.ok(log.refreshes >= 2, `refreshToken called ${log.refreshes} times`);
    assert.deepEqual(log.states, ['connecting', 'open'], 'no reconnect: the refresh is in-band');
    assert.deepEqual(log.gaps, []);
    assert.deepEqual(log.errors, []);
    const afterStats = await (await fetch(`${ctl}/stats`)).json();
    assert.equal(afterStats.superseded, before.superseded);
  });

  it('a revoked client gets onerror and onclose and does not reconnect', async () => {
    await freshPage();
    const { token } = await post(`${ctl}/token?client_id=js-revoke`);
    await page.evaluate((tok) => {
      window.socket = new clio.Channel(tok).open({
        onerror: (e) => { window.log.errors.push(e); },
        onclose: () => { window.log.closed++; },
        onstatechange: (e) => { window.log.states.push(e.state); },
      });
    }, token);
    await page.waitForFunction(() => window.socket.state === 'open', null, { timeout: 10000 });
    await post(`${ctl}/disconnect?client_id=js-revoke&reason=revoke`);
    await page.waitForFunction(() => window.log.closed === 1, null, { timeout: 10000 });
    // No reconnect can follow: the client holds no timer (a retry is one).
    assert.deepEqual(await page.evaluate(() => Object.keys(window.socket._timers)), []);
    const log = await page.evaluate(() => window.log);
    assert.equal(log.errors.length, 1);
    assert.equal(log.errors[0].code, 4001);
    assert.equal(log.closed, 1);
    assert.deepEqual(log.states, ['connecting', 'open', 'closed']);
  });

  it('retries at once when the page comes back online or visible, instead of waiting out the backoff', async () => {
    await freshPage();
    const { token } = await post(`${ctl}/token?client_id=js-wake`);
    await page.evaluate((tok) => {
      window.socket = new clio.Channel(tok).open({
        onmessage: (m) => { window.log.got.push(JSON.parse(m.data).n); },
        onstatechange: (e) => { window.log.states.push(e); },
      });
    }, token);
    await page.waitForFunction(() => window.socket.state === 'open', null, { timeout: 10000 });
    for (const wake of ['online', 'visible']) {
      await post(`${ctl}/block`);
      await post(`${ctl}/drop`);
      // Failed attempts back off until a retry is at least 1.5 s away.
      await page.waitForFunction(() => {
        const last = window.log.states[window.log.states.length - 1];
        return last && last.state === 'reconnecting' && last.retryInMs >= 1500;
      }, null, { timeout: 30000 });
      await post(`${ctl}/unblock`);
      await post(`${ctl}/send?client_id=js-wake&count=5`);
      const attempted = await page.evaluate((how) => {
        const before = window.log.states.length;
        if (how === 'online') {
          window.dispatchEvent(new Event('online'));
        } else {
          Object.defineProperty(document, 'visibilityState', { value: 'visible', configurable: true });
          document.dispatchEvent(new Event('visibilitychange'));
        }
        // The new attempt starts synchronously: no timer is left pending.
        const started = window.log.states.slice(before);
        return { started, pending: Boolean(window.socket._timers.retry) };
      }, wake);
      assert.deepEqual(attempted.started, [{ state: 'reconnecting' }], `${wake}: ${JSON.stringify(attempted)}`);
      assert.equal(attempted.pending, false);
      await page.waitForFunction(() => window.socket.state === 'open', null, { timeout: 10000 });
    }
    await page.waitForFunction(() => window.log.got.length >= 10, null, { timeout: 10000 });
    assert.deepEqual(await page.evaluate(() => window.log.got), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  // Opens a socket that records its handlers in order into window.log.events.
  async function openRecorded(token, options) {
    await page.evaluate(({ tok, opts }) => {
      const o = { ...opts };
      if (o.refreshWith) {
        const how = o.refreshWith;
        delete o.refreshWith;
        o.refreshToken = async () => {
          window.log.refreshes++;
          if (how === 'throw') throw new Error('the app refused the refresh');
          return how;  // a token string
        };
      }
      window.log.events = [];
      window.socket = new clio.Channel(tok, o).open({
        onopen: () => window.log.events.push('open'),
        onerror: (e) => window.log.events.push('error:' + e.code),
        onclose: () => window.log.events.push('close'),
        onstatechange: (e) => window.log.states.push(e.state),
      });
    }, { tok: token, opts: options });
  }

  it('gives up with onerror then onclose when there is no channel at its path', async () => {
    await freshPage();
    const { token } = await post(`${ctl}/token?client_id=js-nopath`);
    await openRecorded(token, { path: '/no-channel-here' });
    await page.waitForFunction(() => window.log.events.includes('close'), null, { timeout: 15000 });
    const before = await (await fetch(`${ctl}/stats`)).json();
    // No retry follows: the client holds no timer (a retry is one).
    assert.deepEqual(await page.evaluate(() => Object.keys(window.socket._timers)), []);
    const log = await page.evaluate(() => window.log);
    assert.deepEqual(log.events, ['error:404', 'close']);
    assert.equal(log.states[log.states.length - 1], 'closed');
    assert.equal(await page.evaluate(() => window.socket.state), 'closed');
    assert.equal((await (await fetch(`${ctl}/stats`)).json()).sessions, before.sessions);
  });

  it('gives up with onerror then onclose when the server refuses its token and it cannot get another', async () => {
    for (const refreshWith of [undefined, 'throw']) {
      await freshPage();
      const id = `js-refused-${refreshWith ?? 'none'}`;
      const { token } = await post(`${ctl}/token?client_id=${id}`);
      await post(`${ctl}/disconnect?client_id=${id}&reason=revoke`);  // every older token is refused
      await openRecorded(token, refreshWith ? { refreshWith } : {});
      await page.waitForFunction(() => window.log.events.includes('close'), null, { timeout: 15000 });
      const log = await page.evaluate(() => window.log);
      assert.deepEqual(log.events, ['error:401', 'close'], `refreshToken: ${refreshWith}`);
      assert.equal(log.refreshes, refreshWith ? 1 : 0);
    }
  });

  it('a refused token that refreshToken replaces connects', async () => {
    await freshPage();
    const { token } = await post(`${ctl}/token?client_id=js-replaced`);
    await post(`${ctl}/disconnect?client_id=js-replaced&reason=revoke`);
    const fresh = (await post(`${ctl}/token?client_id=js-replaced`)).token;
    await openRecorded(token, { refreshWith: fresh });
    await page.waitForFunction(() => window.log.events.includes('open'), null, { timeout: 15000 });
    await post(`${ctl}/send?client_id=js-replaced&count=1`);
    assert.deepEqual(await page.evaluate(() => window.log.events), ['open']);
    assert.equal(await page.evaluate(() => window.log.refreshes), 1);
  });

  it('sock.close() closes for good', async () => {
    await freshPage();
    const { token } = await post(`${ctl}/token?client_id=js-close`);
    await page.evaluate((tok) => {
      window.socket = new clio.Channel(tok).open({
        onopen: () => window.socket.close(),
        onclose: () => { window.log.closed++; },
      });
    }, token);
    await page.waitForFunction(() => window.log.closed === 1, null, { timeout: 10000 });
    await waitFor(async () => (await (await fetch(`${ctl}/stats`)).json()).sessions === 0,
      { timeoutMs: 10000, what: 'the server to see the close' });
    assert.equal(await page.evaluate(() => window.socket.state), 'closed');
  });
});

describe('chat example', { skip: CHAT_BIN ? false : 'CLIO_CHAT_BIN is not set (ctest sets it)' }, () => {
  let chat; let base; let browser;

  before(async () => {
    chat = startProcess(CHAT_BIN, ['--port', '0', '--cors', '*'], { readyPattern: /listening on (http:\S+)/ });
    base = (await chat.ready).replace(/\/$/, '');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await chat?.stop();
  });

  it('two users see each other join, chat as plain text, and see a leave', async () => {
    const ctxA = await browser.newContext();
    const ctxB = await browser.newContext();
    const a = await ctxA.newPage();
    const b = await ctxB.newPage();
    for (const p of [a, b]) {
      p.on('pageerror', (e) => { throw e; });
      await p.goto(base + '/');
      await p.click('#login');
      await p.waitForSelector('#state[data-state="open"]', { timeout: 10000 });
    }
    for (const p of [a, b]) {
      await p.waitForFunction(() => document.querySelectorAll('#users li').length === 2, null, { timeout: 10000 });
    }
    const evil = '<img src=x onerror="window.pwned=1"><b>bold</b> & "quotes"';
    await a.fill('#message', evil);
    await a.press('#message', 'Enter');
    for (const p of [a, b]) {
      await p.waitForFunction(() => document.querySelectorAll('#output li .text').length >= 1, null, { timeout: 10000 });
      const texts = await p.$$eval('#output li .text', (els) => els.map((e) => e.textContent));
      assert.deepEqual(texts, [evil]);
      assert.equal(await p.$$eval('#output img, #output b', (els) => els.length), 0, 'no HTML injected');
      assert.equal(await p.evaluate(() => window.pwned), undefined);
    }
    // B answers; A sees it with B's client id.
    await b.fill('#message', 'hello from b');
    await b.press('#message', 'Enter');
    await a.waitForFunction(() => document.querySelectorAll('#output li .text').length >= 2, null, { timeout: 10000 });
    assert.equal(await a.$eval('#output li:last-child .text', (e) => e.textContent), 'hello from b');

    // B leaves: A's presence list drops to one.
    await ctxB.close();
    await a.waitForFunction(() => document.querySelectorAll('#users li').length === 1, null, { timeout: 15000 });
    assert.equal(await a.$eval('#users li', (e) => e.className), 'me');
    await ctxA.close();
  });

  it('speaks the seed contract over plain HTTP', async () => {
    for (const method of ['GET', 'POST']) {
      const r = await fetch(`${base}/login`, { method });
      assert.equal(r.status, 200);
      const j = await r.json();
      assert.match(j.client_id, /^[0-9a-f]{32}$/);
      assert.ok(j.token.length > 40);
    }
    const bad = await fetch(`${base}/post`, {
      method: 'POST', body: new URLSearchParams({ client_id: 'nobody', value: 'x' }),
    });
    assert.equal(bad.status, 403);
    const missing = await fetch(`${base}/post`, { method: 'POST', body: new URLSearchParams({ value: 'x' }) });
    assert.equal(missing.status, 400);
    const { client_id } = await (await fetch(`${base}/login`)).json();
    const ok = await fetch(`${base}/post`, { method: 'POST', body: new URLSearchParams({ client_id, value: 'hi' }) });
    assert.equal(ok.status, 200);
    const msg = (await ok.json()).message;
    assert.equal(msg.value, 'hi');
    assert.equal(msg.client_id, client_id);
    assert.ok(!Number.isNaN(Date.parse(msg.datetime)));
  });

  // Serves the seed 003 page (tests/e2e/fixtures/seed003.html) from another
  // origin, with its App Engine host replaced by `server`.
  async function serveSeedPage(server) {
    const html = readFileSync(new URL('./fixtures/seed003.html', import.meta.url), 'utf8')
      .replaceAll('http://{アプリケーション名}.appspot.com', server);
    const site = http.createServer((req, res) => {
      if (req.url !== '/') { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(html);
    });
    await new Promise((r) => site.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${site.address().port}/`, close: () => new Promise((r) => site.close(r)) };
  }

  // A page of the seed: its console lines (the page logs onopen, onerror, onclose).
  async function seedPage(ctx, url) {
    const p = await ctx.newPage();
    p.lines = [];
    p.on('console', (m) => p.lines.push(m.text()));
    p.on('pageerror', (e) => { throw e; });
    await p.goto(url);
    await p.click('#login');
    await waitFor(() => p.lines.includes('onopen'), { timeoutMs: 15000, what: 'the seed page to log onopen' });
    return p;
  }

  it('runs the seed 003 App Engine page unchanged but for its host, from another origin, between two contexts', async () => {
    const site = await serveSeedPage(base);
    const ctxA = await browser.newContext();
    const ctxB = await browser.newContext();
    try {
      const a = await seedPage(ctxA, site.url);
      const b = await seedPage(ctxB, site.url);
      assert.notEqual(new URL(site.url).origin, new URL(base).origin);
      await a.fill('#message', 'hello from A');
      await a.click('#send');
      await b.waitForFunction(() => document.getElementById('output').textContent.includes('hello from A'), null,
        { timeout: 10000 });
      await b.fill('#message', 'and from B');
      await b.click('#send');
      await a.waitForFunction(() => document.getElementById('output').textContent.includes('and from B'), null,
        { timeout: 10000 });
      assert.equal(await a.$eval('#output', (e) => e.textContent), 'hello from Anand from B');  // the seed joins with "n"
      for (const p of [a, b]) assert.deepEqual(p.lines.filter((l) => /^on/.test(l)), ['onopen']);
    } finally {
      await ctxA.close();
      await ctxB.close();
      await site.close();
    }
  });

  it('after a restart with a new secret, the chat page and the seed page end with onerror then onclose', async () => {
    // A chat of its own, restarted on the same port: its users and secret are gone.
    let own = startProcess(CHAT_BIN, ['--port', '0', '--cors', '*'], { readyPattern: /listening on (http:\S+)/ });
    const ownBase = (await own.ready).replace(/\/$/, '');
    const site = await serveSeedPage(ownBase);
    const ctx = await browser.newContext();
    try {
      const chatPage = await ctx.newPage();
      chatPage.on('pageerror', (e) => { throw e; });
      await chatPage.goto(ownBase + '/');
      await chatPage.click('#login');
      await chatPage.waitForSelector('#state[data-state="open"]', { timeout: 10000 });
      const seed = await seedPage(ctx, site.url);
      await own.stop();
      own = startProcess(CHAT_BIN, ['--port', new URL(ownBase).port, '--cors', '*'],
        { readyPattern: /listening on (http:\S+)/ });
      await own.ready;
      // The chat page's refreshToken is refused (403: unknown user), so it gives up.
      await chatPage.waitForSelector('#state[data-state="closed"]', { timeout: 30000 });
      const notices = await chatPage.$$eval('#output .notice', (els) => els.map((e) => e.textContent));
      assert.match(notices[notices.length - 2], /^channel error: token refused/);
      assert.equal(notices[notices.length - 1], 'disconnected; reload to join again');
      // The seed page has no refreshToken: onerror, then onclose, like App Engine.
      await waitFor(() => seed.lines.includes('onclose'), { timeoutMs: 30000, what: 'the seed page to log onclose' });
      assert.deepEqual(seed.lines.filter((l) => /^on/.test(l)), ['onopen', 'onerror', 'onclose']);
    } finally {
      await ctx.close();
      await site.close();
      await own.stop();
    }
  });
});
