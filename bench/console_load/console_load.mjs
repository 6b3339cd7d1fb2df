// console_load: the console page under a firehose, measured in Chromium.
//
//   node bench/console_load/console_load.mjs [--demo [LABEL=]build/test/examples/demo/clio_demo]...
//        [--runs 3] [--rate 5000] [--seconds 30] [--group path|none] [--paths LIST]
//
// Each run starts the real demo server (its own traffic generator off), logs a
// headless Debian chromium into the console, subscribes to everything
// (`status >= 0`), opens the group-by panel, and sends RATE requests/s for
// SECONDS seconds from a separate load process, all on this machine. Meanwhile
// it clicks Pause/Resume every 1.5 s and types a query into the query box
// every 5 s, and traces the renderer. It prints per run, then medians and
// ranges:
//   - the longest main-thread task by CPU time (target <= 30 ms);
//   - Pause input-to-paint, p95 and max (Event Timing; target p95 <= 100 ms);
//   - per key typed in the query box, p95 and max (target < 100 ms);
//   - rows/s received, gaps, drops, row elements, and CPU per 1,000 rows of
//     the renderer's main thread, the demo server and the load generator.
// Several --demo binaries (e.g. built from two revisions) alternate per round.
// Needs tests/e2e/node_modules (scripts/test installs it).
import { mkdtemp, rm, readFile, readdir } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, startProcess, waitFor } from '../../tests/e2e/lib/harness.mjs';
import { startDemo, loginWithForm, subscribe, chipCount, sleep } from '../../tests/e2e/lib/console.mjs';
import {
  observePerformance, readPerformance, clickPause, typeInQueryBox, mainThreadTasks, withUnreported, quantile, median,
  EVENT_THRESHOLD_MS,
} from '../../tests/e2e/lib/perf.mjs';

const LOAD_SCRIPT = fileURLToPath(new URL('../../tests/e2e/lib/load.mjs', import.meta.url));
const DEFAULT_DEMO = fileURLToPath(new URL('../../build/test/examples/demo/clio_demo', import.meta.url));
const KEY = `bench-key-${process.pid}`;
// Paths the demo answers on a kept-alive connection (its 404s for unknown
// paths close the connection, which would measure reconnecting instead).
const MIX = '/api/hello,/api/status/200,/api/status/404,/static/app.css,/api/status/503,/api/hello?user={n}';

function parseArgs(argv) {
  const a = { demos: [], runs: 3, rate: 5000, seconds: 30, group: 'path', paths: MIX };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]; const v = argv[i + 1];
    const num = (lo, hi) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < lo || n > hi) throw new Error(`${k}: want a number from ${lo} to ${hi}, got '${v}'`);
      i++;
      return n;
    };
    if (k === '--demo') { a.demos.push(v); i++; } // [LABEL=]BINARY
    else if (k === '--runs') a.runs = num(1, 50);
    else if (k === '--rate') a.rate = num(1, 50000);
    else if (k === '--seconds') a.seconds = num(5, 600);
    else if (k === '--group') { a.group = v; i++; }
    else if (k === '--paths') { a.paths = v; i++; }
    else if (k === '--help' || k === '-h') { console.log(readUsage()); process.exit(0); }
    else throw new Error(`unknown argument '${k}' (see --help)`);
  }
  if (!a.demos.length) a.demos.push(DEFAULT_DEMO);
  return a;
}

function readUsage() {
  return 'usage: node bench/console_load/console_load.mjs [--demo [LABEL=]BIN]... [--runs N] [--rate R] [--seconds S] [--group KEY|none] [--paths LIST]';
}

// A process's parent and CPU time (user + system, ms), from /proc.
async function procStat(pid) {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpuMs: ((Number(f[11]) + Number(f[12])) * 1000) / 100 }; // at USER_HZ 100
  } catch { return null; }
}

async function processCpuMs(pid) { return (await procStat(pid))?.cpuMs ?? NaN; }

// CPU time of the browser: every process descending from this one except
// the demo server and the load generator (their own figures).
async function browserCpuMs(exclude) {
  const stats = new Map();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = await procStat(Number(name));
    if (st) stats.set(Number(name), st);
  }
  let total = 0;
  for (const [pid, st] of stats) {
    if (exclude.includes(pid)) continue;
    let p = st.ppid;
    while (p > 1 && p !== process.pid && !exclude.includes(p)) p = stats.get(p)?.ppid ?? 0;
    if (p === process.pid) total += st.cpuMs;
  }
  return total;
}

async function oneRun(demoBin, args) {
  const dir = await mkdtemp(join(tmpdir(), 'clio-bench-console-'));
  const demo = await startDemo({ key: KEY, db: join(dir, 'clio.db'), traffic: 0, bin: demoBin });
  const browser = await launchBrowser();
  let load = null;
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    await observePerformance(page);
    await loginWithForm(page, demo, KEY);
    if (args.group !== 'none') {
      await page.goto(`${demo.console}#group=${encodeURIComponent(args.group)}`);
      await page.waitForSelector('#conn[data-state="open"]', { timeout: 20000 });
    }
    const id = await subscribe(page, 'status >= 0');
    await sleep(1000);
    load = startProcess(process.execPath, [LOAD_SCRIPT, demo.base, String(args.rate), String(args.seconds + 5), args.paths],
      { readyPattern: /(sent \d+.*)/, timeoutMs: (args.seconds + 60) * 1000 });
    load.ready.catch(() => {});
    await waitFor(async () => (await chipCount(page, id)) >= 1000, { timeoutMs: 30000, what: 'the first thousand rows' });
    const tracePath = join(dir, 'trace.json');
    await browser.startTracing(page, { path: tracePath, categories: ['toplevel', 'devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8'] });
    const start = {
      at: Date.now(), n: await chipCount(page, id), pageMs: await page.evaluate(() => performance.now()),
      demoCpu: await processCpuMs(demo.proc.child.pid),
      browserCpu: await browserCpuMs([demo.proc.child.pid, load.child.pid]),
    };
    let clicks = 0; let keys = 0; let nextType = start.at + 2500;
    const roundTrips = [];
    while (Date.now() - start.at < args.seconds * 1000) {
      await sleep(1500);
      roundTrips.push(await clickPause(page));
      clicks++;
      if (Date.now() >= nextType) {
        keys += await typeInQueryBox(page, 'status:5xx');
        nextType = Date.now() + 5000;
      }
    }
    if ((await page.getAttribute('#pause', 'aria-pressed')) === 'true') { roundTrips.push(await clickPause(page)); clicks++; }
    const end = {
      at: Date.now(), n: await chipCount(page, id), demoCpu: await processCpuMs(demo.proc.child.pid),
      browserCpu: await browserCpuMs([demo.proc.child.pid, load.child.pid]),
    };
    await browser.stopTracing();
    const seen = await readPerformance(page, start.pageMs);
    const state = await page.evaluate(() => ({
      domRows: document.querySelectorAll('#table .tr').length,
      held: Number(document.getElementById('row-count').dataset.rows),
      dropped: document.getElementById('drop-notice').hidden ? '' : document.getElementById('drop-notice').textContent,
      gaps: document.getElementById('gap-notice').hidden ? '' : document.getElementById('gap-notice').textContent,
      groups: document.querySelectorAll('#groups-body tr').length,
    }));
    const cpu = await mainThreadTasks(tracePath);
    const loadLine = await load.ready.catch(() => '');
    const rows = end.n - start.n;
    const pause = withUnreported(seen.pause, clicks);
    const typed = withUnreported(seen.keys, keys);
    return {
      rate: (rows * 1000) / (end.at - start.at),
      maxTaskCpu: cpu.maxCpu,
      maxTaskWall: cpu.wallOfMax,
      longestInside: cpu.longestInside,
      tasksOver30: cpu.cpuOver30,
      gc: `minor ${cpu.minorGc.n}, longest ${cpu.minorGc.maxCpu} ms CPU; major ${cpu.majorGc.n}, longest ${cpu.majorGc.maxCpu} ms CPU`,
      busy: cpu.busyCpuPct,
      mainCpuPer1k: (cpu.cpuMs * 1000) / Math.max(1, rows),
      demoCpuPer1k: ((end.demoCpu - start.demoCpu) * 1000) / Math.max(1, rows),
      browserCpuPer1k: ((end.browserCpu - start.browserCpu) * 1000) / Math.max(1, rows),
      pauseP95: quantile(pause, 0.95),
      pauseMax: pause.at(-1),
      pauseShown: seen.pause.length,
      clicks,
      keyP95: quantile(typed, 0.95),
      keyMax: typed.at(-1),
      keysShown: seen.keys.length,
      keys,
      roundTripMedian: median(roundTrips),
      longtasksWall: seen.longtasks.length ? Math.max(...seen.longtasks) : 0,
      ...state,
      load: loadLine,
    };
  } finally {
    await load?.stop();
    await browser.close();
    await demo.proc.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : '-');

function printRun(label, i, r) {
  console.log(`[${label} run ${i}] ${fmt(r.rate)} rows/s; longest main-thread task ${r.maxTaskCpu} ms CPU (${r.maxTaskWall} ms wall; ` +
    `inside: ${r.longestInside || '-'}); tasks over 30 ms CPU: ${r.tasksOver30}; GCs ${r.gc}; main thread busy ${r.busy}% CPU; ` +
    `pause p95 ${r.pauseP95} ms, max ${r.pauseMax} ms (${r.clicks} clicks, ${r.pauseShown} of them >= ${EVENT_THRESHOLD_MS} ms); ` +
    `keys p95 ${r.keyP95} ms, max ${r.keyMax} ms (${r.keys} keys, ${r.keysShown} >= ${EVENT_THRESHOLD_MS} ms); ` +
    `pause round trip from the test median ${r.roundTripMedian} ms; longest task wall (PerformanceObserver) ${r.longtasksWall} ms; ` +
    `CPU per 1,000 rows: page main thread ${fmt(r.mainCpuPer1k, 1)} ms, whole browser ${fmt(r.browserCpuPer1k, 1)} ms, ` +
    `demo server ${fmt(r.demoCpuPer1k, 1)} ms; ` +
    `${r.domRows} row elements for ${r.held} rows held; ${r.groups} group rows; ${r.dropped || 'no drops'}; ${r.gaps || 'no gaps'}; ` +
    `load: ${r.load}; load avg ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}

function summary(label, runs) {
  const line = (name, key, unit, d = 0) => {
    const v = runs.map((r) => r[key]).filter(Number.isFinite);
    if (!v.length) return `  ${name}: -`;
    return `  ${name}: median ${fmt(median(v), d)}${unit} (range ${fmt(Math.min(...v), d)}-${fmt(Math.max(...v), d)}${unit})`;
  };
  console.log(`${label}: ${runs.length} runs`);
  for (const l of [
    line('rows/s received', 'rate', ''),
    line('longest main-thread task, CPU', 'maxTaskCpu', ' ms'),
    line('pause input-to-paint p95', 'pauseP95', ' ms'),
    line('pause input-to-paint max', 'pauseMax', ' ms'),
    line('query box per key p95', 'keyP95', ' ms'),
    line('query box per key max', 'keyMax', ' ms'),
    line('main thread busy', 'busy', '% CPU'),
    line('page main-thread CPU per 1,000 rows', 'mainCpuPer1k', ' ms', 1),
    line('whole browser CPU per 1,000 rows', 'browserCpuPer1k', ' ms', 1),
    line('demo server CPU per 1,000 rows', 'demoCpuPer1k', ' ms', 1),
  ]) console.log(l);
}

const args = parseArgs(process.argv.slice(2));
const labels = args.demos.map((d, i) => (/^[\w.-]+=/.test(d) ? d.slice(0, d.indexOf('=')) : args.demos.length > 1 ? `demo${i + 1}` : 'console'));
args.demos = args.demos.map((d) => (/^[\w.-]+=/.test(d) ? d.slice(d.indexOf('=') + 1) : d));
const results = labels.map(() => []);
console.log(`console_load: ${args.rate} rows/s for ${args.seconds} s, ${args.runs} run(s) per binary, group-by ${args.group}; ` +
  `${args.demos.map((d, i) => `${labels[i]}=${d}`).join(' ')}`);
for (let round = 0; round < args.runs; round++) {
  const order = labels.map((_, i) => i);
  if (round % 2) order.reverse(); // alternate which binary goes first
  for (const i of order) {
    const r = await oneRun(args.demos[i], args);
    results[i].push(r);
    printRun(labels[i], round + 1, r);
  }
}
labels.forEach((l, i) => summary(l, results[i]));
console.log('Targets: longest task <= 30 ms CPU; pause p95 <= 100 ms; keys < 100 ms. ' +
  'Server, load generator and browser share this machine\'s cores.');
