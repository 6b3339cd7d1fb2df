// Responsiveness of the console page as the browser measures it, shared by
// the load test (loose bounds) and bench/console_load (the strict figures):
// Event Timing of the pause button and of keys typed in the query box, long
// tasks, and the CPU time of each main-thread task from a Chrome trace.
//
//   await observePerformance(page);             // before the page loads
//   await clickPause(page);  await typeInQueryBox(page, 'status:5xx');
//   const seen = await readPerformance(page);   // {pause: [ms], keys: [ms], longtasks: [ms]}
//   const cpu = await mainThreadTasks(tracePath);   // {count, maxCpu, ...}
import { readFile } from 'node:fs/promises';

// Event Timing only reports interactions that took at least this long; the
// others are known to be faster and are counted as this value.
export const EVENT_THRESHOLD_MS = 16;

// Installs the observers. An interaction's duration is the longest of its
// events (pointerdown, pointerup, click; keydown, keyup): from the input to
// the next paint after its handlers ran.
export async function observePerformance(page) {
  await page.addInitScript((threshold) => {
    const perf = { longtasks: [], interactions: new Map() };
    window.__clioPerf = perf;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) perf.longtasks.push({ at: e.startTime, ms: e.duration });
    }).observe({ type: 'longtask', buffered: true });
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (!e.interactionId) continue;
        const id = e.target && e.target.id;
        const kind = id === 'pause' ? 'pause' : id === 'q' ? 'key' : null;
        if (!kind) continue;
        const cur = perf.interactions.get(e.interactionId);
        if (!cur || e.duration > cur.ms) perf.interactions.set(e.interactionId, { kind, ms: e.duration, at: e.startTime });
      }
    }).observe({ type: 'event', durationThreshold: threshold, buffered: true });
  }, EVENT_THRESHOLD_MS);
}

// What the observers saw since page time `since` (ms): Event Timing
// durations by kind, and long tasks (wall ms).
export function readPerformance(page, since = 0) {
  return page.evaluate((t0) => {
    const perf = window.__clioPerf;
    const out = { pause: [], keys: [], longtasks: perf.longtasks.filter((x) => x.at >= t0).map((x) => Math.round(x.ms)) };
    for (const x of perf.interactions.values()) {
      if (x.at < t0) continue;
      (x.kind === 'pause' ? out.pause : out.keys).push(Math.round(x.ms));
    }
    return out;
  }, since);
}

// Durations of `n` interactions of which `reported` were listed: the rest
// were under the threshold and count as EVENT_THRESHOLD_MS.
export function withUnreported(reported, n) {
  const out = reported.slice();
  while (out.length < n) out.push(EVENT_THRESHOLD_MS);
  return out.sort((a, b) => a - b);
}

// The nearest-rank q-quantile of numbers.
export function quantile(values, q) {
  if (!values.length) return NaN;
  const a = values.slice().sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.max(0, Math.ceil(q * a.length) - 1))];
}

export const median = (values) => quantile(values, 0.5);

// Clicks Pause (or Resume) and waits until the button says so; resolves to
// the round trip seen from the test, in ms.
export async function clickPause(page, timeout = 10000) {
  const t0 = Date.now();
  const want = (await page.getAttribute('#pause', 'aria-pressed')) === 'true' ? 'false' : 'true';
  await page.click('#pause');
  await page.waitForSelector(`#pause[aria-pressed="${want}"]`, { timeout });
  return Date.now() - t0;
}

// Types `text` into the query box a key at a time, presses Escape and clears
// the box; resolves to the number of keys pressed.
export async function typeInQueryBox(page, text, delayMs = 90) {
  await page.focus('#q');
  await page.keyboard.type(text, { delay: delayMs });
  await page.keyboard.press('Escape');
  await page.fill('#q', '');
  await page.locator('#q').blur();
  return text.length + 1;
}

// Tasks of the renderer's main thread in a Chrome trace: how many, the
// longest by thread CPU time (and what ran inside it), and how busy the
// thread was.
export async function mainThreadTasks(path) {
  const { traceEvents } = JSON.parse(await readFile(path, 'utf8'));
  const mains = new Set(traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args.name === 'CrRendererMain')
    .map((e) => `${e.pid}:${e.tid}`));
  const onMain = traceEvents.filter((e) => e.ph === 'X' && mains.has(`${e.pid}:${e.tid}`));
  const tasks = onMain.filter((e) => e.name === 'RunTask');
  let longest = null; let cpuOver30 = 0; let cpuOver50 = 0; let cpuSum = 0; let first = Infinity; let last = 0;
  for (const e of tasks) {
    const c = (e.tdur ?? e.dur) / 1000;
    cpuSum += c;
    first = Math.min(first, e.ts);
    last = Math.max(last, e.ts + e.dur);
    if (c > 30) cpuOver30++;
    if (c > 50) cpuOver50++;
    if (!longest || c > (longest.tdur ?? longest.dur) / 1000) longest = e;
  }
  // What the longest task spent its time on: the self time (wall) of the
  // events inside it, by name.
  const inside = new Map();
  if (longest) {
    const end = longest.ts + longest.dur;
    const evs = onMain.filter((e) => e.pid === longest.pid && e.tid === longest.tid && e.ts >= longest.ts && e.ts + e.dur <= end)
      .sort((a, b) => a.ts - b.ts || b.dur - a.dur);
    const stack = [];
    const self = new Map(evs.map((e) => [e, e.dur]));
    for (const e of evs) {
      while (stack.length && stack.at(-1).ts + stack.at(-1).dur < e.ts + e.dur) stack.pop();
      if (stack.length) self.set(stack.at(-1), self.get(stack.at(-1)) - e.dur);
      stack.push(e);
    }
    for (const [e, us] of self) inside.set(e.name, (inside.get(e.name) || 0) + Math.max(0, us) / 1000);
  }
  // Garbage collections on the main thread (with devtools.timeline traced).
  const gc = (name) => {
    const evs = onMain.filter((e) => e.name === name);
    return { n: evs.length, maxCpu: Math.round(Math.max(0, ...evs.map((e) => (e.tdur ?? e.dur) / 1000))) };
  };
  return {
    minorGc: gc('MinorGC'),
    majorGc: gc('MajorGC'),
    count: tasks.length,
    maxCpu: longest ? Math.round((longest.tdur ?? longest.dur) / 1000) : 0,
    wallOfMax: longest ? Math.round(longest.dur / 1000) : 0,
    longestInside: [...inside].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([n, ms]) => `${n} ${ms.toFixed(1)}`).join(', '),
    cpuOver30,
    cpuOver50,
    cpuMs: Math.round(cpuSum),
    busyCpuPct: Math.round((100 * cpuSum * 1000) / Math.max(1, last - first)),
  };
}
