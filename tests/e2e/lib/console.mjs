// Helpers for the console's browser tests: starting clio_demo on a fixed admin
// key, logging in, driving the query box and chips, reading the table, and
// sending requests to the demo app from node (127.0.0.1 only).
import { readFile } from 'node:fs/promises';
import { startProcess, waitFor } from './harness.mjs';

export const DEMO_BIN = process.env.CLIO_DEMO_BIN;

// Starts clio_demo (`bin`, default $CLIO_DEMO_BIN); resolves to {proc, port,
// base, console, loginUrl}. `loginUrl` is the one-time login link the demo prints.
export async function startDemo({ key, db, traffic = 0, port = 0, extraArgs = [], bin = DEMO_BIN }) {
  const proc = startProcess(bin, ['--port', String(port), '--db', db, '--traffic', String(traffic), ...extraArgs], {
    readyPattern: /listening on http:\/\/127\.0\.0\.1:(\d+)\//,
    env: { CLIO_ADMIN_KEY: key },
  });
  const p = Number(await proc.ready);
  const base = `http://127.0.0.1:${p}`;
  // The console and one-time login lines follow the listening line.
  const loginUrl = await waitFor(() => (proc.output().match(/login[^:\n]*: (http:\/\/\S+)/) || [])[1],
    { timeoutMs: 10000, what: 'the one-time login line' }).catch(() => null);
  return { proc, port: p, base, console: `${base}/_clio/`, loginUrl };
}

// Logs in through the form and waits for the console to connect.
export async function loginWithForm(page, demo, key) {
  await page.goto(`${demo.base}/_clio/login`);
  await page.fill('#key', key);
  await Promise.all([page.waitForURL(/\/_clio\/(#.*)?$/, { timeout: 15000 }), page.click('button[type=submit]')]);
  await waitConnected(page);
}

export async function waitConnected(page, timeout = 20000) {
  await page.waitForSelector('#conn[data-state="open"]', { timeout });
}

// Types a query into the box, presses Enter and waits for its chip.
// Returns the chip's subscription id.
export async function subscribe(page, query) {
  const before = await page.$$eval('#chips .chip', (cs) => cs.map((c) => c.dataset.id));
  await page.fill('#q', query);
  await page.press('#q', 'Escape');
  await page.press('#q', 'Enter');
  const id = await waitFor(async () => {
    const ids = await page.$$eval('#chips .chip', (cs) => cs.map((c) => c.dataset.id));
    return ids.find((x) => !before.includes(x));
  }, { timeoutMs: 10000, what: `a chip for ${query}` });
  return id;
}

export async function removeChip(page, id) {
  await page.click(`#chips .chip[data-id="${id}"] .cx`);
  await page.waitForSelector(`#chips .chip[data-id="${id}"]`, { state: 'detached', timeout: 10000 });
}

export const chipCount = (page, id) => page.$eval(`#chips .chip[data-id="${id}"]`, (c) => Number(c.dataset.count));
export const rowCount = (page) => page.$eval('#row-count', (e) => Number(e.dataset.rows || 0));
export const newCount = (page) => page.$eval('#new-count', (e) => Number(e.dataset.count || 0));

// The row counts the page last drew, read at once: rows in the table, rows
// held (with those waiting while paused), rows received but not in either yet.
export const tableState = (page) => page.$eval('#row-count', (e) => ({
  rows: Number(e.dataset.rows || 0), held: Number(e.dataset.held || 0), queued: Number(e.dataset.queued || 0),
}));

// Waits until every row the page has received is in the table (or the pause
// buffer): nothing queued, nothing between the two.
export function waitDrained(page, timeoutMs = 15000) {
  return waitFor(async () => {
    const s = await tableState(page);
    return s.queued === 0 && s.held >= s.rows;
  }, { timeoutMs, what: 'the page to take in every row it received' });
}

// The cells of the rows currently drawn, as {column: text} objects.
export function visibleRows(page) {
  return page.$$eval('#table .tr:not([hidden])', (trs) => trs.map((tr) => {
    const o = {};
    for (const td of tr.children) {
      const k = [...td.classList].find((c) => c.startsWith('c-'));
      if (k) o[k.slice(2)] = td.textContent;
    }
    return o;
  }));
}

// Runs `action` (clicks that start a download) and returns the downloaded
// text. Once in about twenty runs of the suite on a loaded machine, no
// download had started 15 s after the clicks (cause not found; no page
// error); the action is then repeated once, as a user would click again, and
// the test log says so. Page errors fail at once.
export async function downloadText(page, action, what = 'a download') {
  const errors = [];
  const onError = (e) => errors.push(e.message);
  page.on('pageerror', onError);
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 15000 }), action()]);
        return await readFile(await dl.path(), 'utf8');
      } catch (e) {
        if (attempt > 1 || errors.length || e.name !== 'TimeoutError') {
          throw new Error(`${what}: ${e.message}${errors.length ? `; page errors: ${errors.join(' | ')}` : ''}`);
        }
        console.log(`# ${what}: no download after 15 s; clicking again`);
      }
    }
  } finally {
    page.off('pageerror', onError);
  }
}

// A fence: subscribes to a marker path, requests it and waits for its row,
// so every match the server sent before has reached the page; then removes
// the subscription and waits until the page has taken every row in.
export async function fence(page, base, name) {
  const id = await subscribe(page, `path:/fence-${name}`);
  await hit(base, `/fence-${name}/1`);
  await waitFor(async () => (await chipCount(page, id)) >= 1, { timeoutMs: 15000, what: `the fence row ${name}` });
  await removeChip(page, id);
  await waitDrained(page);
}

// Clicks an export menu item and returns the downloaded text.
export function exportText(page, itemId) {
  return downloadText(page, async () => {
    if (await page.isHidden('#export-menu')) await page.click('#export-btn');
    await page.click(`#${itemId}`);
  }, `export ${itemId}`);
}

// Sends one request to the demo app; resolves to the status.
export async function hit(base, path, { method = 'GET', headers = {}, body } = {}) {
  const res = await fetch(base + path, { method, headers, body });
  await res.arrayBuffer();
  return res.status;
}

// Sends a request for each of `paths` (a path, or {path, method, headers}),
// at most `concurrency` at a time.
export async function hitMany(base, paths, concurrency = 8) {
  const queue = paths.slice();
  const workers = Array.from({ length: concurrency }, async () => {
    while (queue.length) {
      const p = queue.shift();
      await (typeof p === 'string' ? hit(base, p) : hit(base, p.path, p));
    }
  });
  await Promise.all(workers);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
