// The Clio console page: wires the query box, the subscription chips, the
// live table, the group-by panel, the charts and the row detail to the
// console HTTP API and the channel. Served under the console prefix (default
// /_clio/), which the page derives from its own URL. Record values reach the
// DOM only as text.
//
// Work per frame is bounded: the channel's items are queued as they arrive
// and taken in by the frame loop in time slices (INGEST_BUDGET_MS a frame,
// the rest carried to the next), the table is redrawn at most every
// TABLE_INTERVAL_MS, the group-by panel every GROUPS_INTERVAL_MS and the
// charts once a second. Frames right after an input take in less and draw
// first, so pause, scrolling and typing answer before ingestion.
//
// The view lives in the URL fragment so it can be bookmarked and shared:
//   #sub=status:5xx&sub=wall+%3E+200ms&cols=time,method,path,status&sort=wall:desc&group=path
// The client id lives in sessionStorage, so a reload resumes the same
// server-side subscriptions instead of creating new ones.

import { Api, ApiError, el, prefixFromLocation, colourOf, fmtInt, fmtMs, fmtBytes, download, stamp, copyText } from './console-util.js';
import { RowStore, COLUMNS, COLUMN_BY_KEY, DEFAULT_COLUMNS } from './console-rows.js';
import { VirtualTable } from './console-table.js';
import { GroupPanel } from './console-group-panel.js';
import { Charts } from './console-chart.js';
import { QueryBox } from './console-query.js';
import { toJsonLines, toHar, toCurl } from './console-export.js';

const $ = (id) => document.getElementById(id);
const CLIENT_KEY = 'clio.client_id';
const RETURN_KEY = 'clio.return_hash';
const BACKFILL = 200;        // stored records asked for with a new subscription
const STATS_EVERY_MS = 2000;

const api = new Api(prefixFromLocation());
// Copy as curl and the HAR export target the server's configured public
// origin (api/session), never the Host header a captured request carried.
let publicOrigin = location.origin;
const store = new RowStore({ cap: 100000 });
const charts = new Charts($('rate-chart'), $('lat-chart'));

const state = {
  clientId: '',
  token: '',
  subs: new Map(),        // id -> {id, query, normalized, skipped, paused, chip}
  counts: new Map(),      // subscription id -> matches received
  wanted: null,           // queries from the URL, created on the first connect
  autoPaused: false,
  gaps: 0,               // messages the channel reported lost
  gapUnknown: false,      // a loss of unknown size (server restart)
  serverDropped: 0,       // records the server told us were lost, where it knew how many
  dropUnknown: false,     // ... and whether some loss had no count (the record log restarted)
  dropWhy: new Map(),     // where they were lost ("web-3 (at the source)", "trimmed", ...) -> count
  channel: null,          // the channel, when it runs on this thread
  sock: null,
  worker: null,           // or the worker that runs it
  conn: { state: 'connecting', retryAt: 0 },
  colsChosen: false,      // the user (or the URL) chose the columns
};

// ---------------------------------------------------------------- URL state

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const cols = (p.get('cols') || '').split(',').filter((k) => COLUMN_BY_KEY.has(k));
  const [sk, sd] = (p.get('sort') || '').split(':');
  return {
    subs: p.getAll('sub').map((q) => q.trim()).filter(Boolean),
    cols: cols.length ? cols : DEFAULT_COLUMNS.slice(),
    sort: COLUMN_BY_KEY.get(sk)?.get ? { key: sk, dir: sd === 'asc' ? 1 : -1 } : null,
    charts: p.get('charts') !== '0',
    group: p.get('group') || '',
    colsChosen: cols.length > 0,
  };
}

function writeHash() {
  const p = new URLSearchParams();
  for (const s of state.subs.values()) p.append('sub', s.query);
  if (state.wanted) for (const q of state.wanted) p.append('sub', q);
  if (table.columns.join(',') !== DEFAULT_COLUMNS.join(',')) p.set('cols', table.columns.join(','));
  if (store.sort) p.set('sort', `${store.sort.key}:${store.sort.dir > 0 ? 'asc' : 'desc'}`);
  if ($('charts').hidden) p.set('charts', '0');
  if (groupPanel.key) p.set('group', groupPanel.key);
  const h = p.toString().replace(/%2C/gi, ',').replace(/%3A/gi, ':');
  history.replaceState(null, '', h ? `#${h}` : location.pathname + location.search);
}

// ------------------------------------------------------------------- table

const table = new VirtualTable($('table'), store, {
  onSelect: (e) => showDetail(e),
  onColumnsChange: (cols) => { state.colsChosen = true; table.setColumns(cols); buildColumnsMenu(); writeHash(); },
  onSortChange: (sort) => {
    store.setSort(sort);
    table.buildHead();
    if (sort) table.root.scrollTop = 0; // a sorted view starts at its first row
    else table.ownScroll = -1;          // arrival order follows the live tail again
    table.render();
    writeHash();
  },
  onUserScroll: (atBottom) => {
    if (store.sort) return;
    if (!atBottom && !store.paused) setPaused(true, true);
    else if (atBottom && store.paused && state.autoPaused) setPaused(false);
  },
});
store.onEvict = (n) => table.shiftUp(n);
store.filter = (e) => e.subs.length === 0 || e.subs.some((id) => !state.subs.get(id)?.paused);
// Matches are counted by subscription id even before the subscription's
// chip exists: backfill can arrive on the channel before the POST returns.
store.onMatch = (r, ids) => {
  for (const id of ids) {
    state.counts.set(id, (state.counts.get(id) || 0) + 1);
    const s = state.subs.get(id);
    if (s && s.paused) s.skipped++;
  }
  charts.add(r, ids);
};
const countOf = (id) => state.counts.get(id) || 0;

const groupPanel = new GroupPanel($('groups'), store, {
  onNarrow: (label, pred) => setNarrow(label, pred),
  onSubscribe: (q) => createSub(q),
  onKeyChange: (key) => {
    $('groups-toggle').setAttribute('aria-pressed', String(!!key));
    if (!key) setNarrow(null, null);
    lastGroupsDraw = -Infinity;
    writeHash();
    scheduleFrame();
  },
});
// The instance column appears by itself once rows come from two instances,
// unless the columns were chosen.
const instances = new Set();
store.onAdd = (e) => {
  groupPanel.add(e);
  const inst = e.r.instance;
  if (inst === undefined || instances.size > 1 || instances.has(inst)) return;
  instances.add(inst);
  if (instances.size > 1 && !state.colsChosen && !table.columns.includes('instance')) {
    const cols = table.columns.slice();
    cols.splice(Math.max(0, cols.indexOf('client') + 1), 0, 'instance');
    table.setColumns(cols);
    buildColumnsMenu();
  }
};
store.onRemove = (e) => groupPanel.remove(e);

// Narrows the table to the rows `pred` keeps (a group of the panel), or
// shows all rows again.
function setNarrow(label, pred) {
  if (!pred) groupPanel.clearNarrow();
  store.setNarrow(pred);
  const b = $('narrow');
  b.hidden = !pred;
  b.textContent = pred ? `only ${label} ✕` : '';
  b.title = pred ? 'Showing only this group\'s rows. Click to show all rows.' : '';
  table.ownScroll = -1;
  lastDraw = -Infinity;
  updateCounters();
  scheduleFrame();
}

function setPaused(p, auto = false) {
  state.autoPaused = p && auto;
  store.setPaused(p);
  table.follow = !p;
  table.ownScroll = -1; // jump back to the live tail on resume
  if (!p) { lastDraw = -Infinity; lastGroupsDraw = -Infinity; } // pausing changes nothing drawn
  const b = $('pause');
  b.setAttribute('aria-pressed', String(p));
  b.textContent = p ? 'Resume' : 'Pause';
  b.title = p ? 'Resume live updates (P)' : 'Pause the table; new rows are kept (P)';
  scheduleFrame();
}

// The frame loop. Each frame takes in queued rows for INGEST_BUDGET_MS (more
// when a backlog builds up, less right after an input), then draws what is
// due: the table at most every TABLE_INTERVAL_MS (at thousands of rows per
// second every redraw replaces every visible row, and ten a second read the
// same as sixty), the group-by panel every GROUPS_INTERVAL_MS. User actions
// (scroll, selection, pause) redraw the table at once.
const INGEST_BUDGET_MS = 4;
const MAX_BUDGET_MS = 10;        // with a backlog of BACKLOG_ROWS or more
const BACKLOG_ROWS = 20000;
const INPUT_BUDGET_MS = 1;       // in frames within INPUT_QUIET_MS of an input
const INPUT_QUIET_MS = 150;
const TABLE_INTERVAL_MS = 100;
const GROUPS_INTERVAL_MS = 500;
let framePending = false;
let timerPending = false;
let lastDraw = -Infinity;
let lastGroupsDraw = -Infinity;
let lastInput = -Infinity;
for (const type of ['pointerdown', 'keydown', 'wheel', 'touchstart']) {
  window.addEventListener(type, () => { lastInput = performance.now(); }, { capture: true, passive: true });
}

function scheduleFrame() {
  if (framePending) return;
  framePending = true;
  requestAnimationFrame(frame);
}

function ingestBudget(t0) {
  if (t0 - lastInput < INPUT_QUIET_MS) return INPUT_BUDGET_MS;
  const backlog = store.queued + (groupPanel.pendingRows ? groupPanel.pendingRows.length - groupPanel.pendingPos : 0);
  return INGEST_BUDGET_MS + (MAX_BUDGET_MS - INGEST_BUDGET_MS) * Math.min(1, backlog / BACKLOG_ROWS);
}

function frame(now) {
  framePending = false;
  const t0 = performance.now();
  const deadline = t0 + ingestBudget(t0);
  let more = store.ingest(deadline);
  if (!more) more = groupPanel.step(deadline);
  // Right after an input the frame paints what the input changed, and the
  // periodic redraws wait (a draw that an input asked for is due at once).
  const quiet = t0 - lastInput < INPUT_QUIET_MS;
  if (lastDraw === -Infinity || (!quiet && now - lastDraw >= TABLE_INTERVAL_MS)) {
    lastDraw = now;
    store.flush();
    table.render();
    updateCounters();
  }
  if (!store.paused && (lastGroupsDraw === -Infinity || (!quiet && now - lastGroupsDraw >= GROUPS_INTERVAL_MS))) {
    lastGroupsDraw = now;
    groupPanel.render();
  }
  if (more || (quiet && (store.incoming.length || store.changed))) { scheduleFrame(); return; }
  // Nothing queued: wake up when the next draw is due, if anything waits for it.
  const t = performance.now();
  let wait = Infinity;
  if (store.incoming.length || store.changed) wait = TABLE_INTERVAL_MS - (t - lastDraw);
  if (groupPanel.stale && !store.paused) wait = Math.min(wait, GROUPS_INTERVAL_MS - (t - lastGroupsDraw));
  if (wait === Infinity || timerPending) return;
  timerPending = true;
  setTimeout(() => { timerPending = false; scheduleFrame(); }, Math.max(0, wait));
}

let lastCounters = '';
function updateCounters() {
  const rcEl = $('row-count');
  const held = String(store.size);
  const queued = String(store.queued + store.incoming.length);
  if (rcEl.dataset.held !== held) rcEl.dataset.held = held;
  if (rcEl.dataset.queued !== queued) rcEl.dataset.queued = queued;
  const n = store.newCount;
  const nc = $('new-count');
  nc.hidden = !store.paused;
  const newText = `${fmtInt(n)} new`;
  if (nc.textContent !== newText) nc.textContent = newText;
  nc.dataset.count = String(n);
  let rc = store.narrow ? `${fmtInt(store.view.length)} of ${fmtInt(store.rows.length)} rows` : `${fmtInt(store.rows.length)} rows`;
  if (store.evicted) rc += ` · ${fmtInt(store.evicted)} older rows discarded (limit ${fmtInt(store.cap)})`;
  const key = `${rc}|${[...state.subs.values()].map((s) => countOf(s.id)).join(',')}`;
  if (key === lastCounters) return;
  lastCounters = key;
  rcEl.textContent = rc;
  rcEl.dataset.rows = String(store.rows.length);
  rcEl.dataset.shown = String(store.view.length);
  for (const s of state.subs.values()) updateChipCount(s);
}

// ------------------------------------------------------------------- chips

function addChip(sub) {
  let s = state.subs.get(sub.id);
  if (!s) {
    s = { id: sub.id, query: sub.query, normalized: sub.normalized || sub.query, skipped: 0, paused: false, chip: null };
    state.subs.set(sub.id, s);
  } else {
    s.query = sub.query;
    s.normalized = sub.normalized || s.normalized;
  }
  if (!s.chip) {
    const chip = el('span', 'chip');
    chip.style.setProperty('--c', colourOf(s.id));
    chip.dataset.id = String(s.id);
    const q = el('span', 'cq', s.query);
    const n = el('span', 'cn', '0');
    const pause = el('button', 'cp', '❚❚');
    pause.type = 'button';
    pause.setAttribute('aria-label', 'Pause this subscription');
    pause.addEventListener('click', () => toggleSubPause(s));
    const rm = el('button', 'cx', '✕');
    rm.type = 'button';
    rm.setAttribute('aria-label', `Remove subscription ${s.query}`);
    rm.title = 'Remove';
    rm.addEventListener('click', () => removeSub(s));
    chip.append(q, n, pause, rm);
    $('chips').append(chip);
    s.chip = chip;
  }
  s.chip.querySelector('.cq').textContent = s.query;
  s.chip.title = `#${s.id}: ${s.normalized}`;
  updateChipCount(s);
  chartsChanged();
  return s;
}

function updateChipCount(s) {
  if (!s.chip) return;
  const n = s.chip.querySelector('.cn');
  const count = countOf(s.id);
  const t = fmtInt(count);
  if (n.textContent !== t) n.textContent = t;
  s.chip.dataset.count = String(count);
  const p = s.chip.querySelector('.cp');
  p.title = s.paused ? `Paused: ${fmtInt(s.skipped)} matches not added to the table. Click to resume.` : 'Pause: stop adding this subscription\'s matches to the table';
}

function dropChip(s) {
  s.chip?.remove();
  state.subs.delete(s.id);
  chartsChanged();
  writeHash();
}

function toggleSubPause(s) {
  s.paused = !s.paused;
  s.chip.classList.toggle('paused', s.paused);
  const p = s.chip.querySelector('.cp');
  p.textContent = s.paused ? '▶' : '❚❚';
  p.setAttribute('aria-label', s.paused ? 'Resume this subscription' : 'Pause this subscription');
  updateChipCount(s);
}

function chartsChanged() {
  const subs = [...state.subs.values()];
  charts.setSubscriptions(subs.map((s) => ({ id: s.id, colour: colourOf(s.id) })));
  const legend = $('rate-legend');
  legend.replaceChildren(...subs.map((s) => {
    const item = el('span', '');
    const sw = el('i', 'sw');
    sw.style.setProperty('--c', colourOf(s.id));
    item.append(sw, document.createTextNode(` ${s.query}`));
    return item;
  }));
}

// ----------------------------------------------------------- subscriptions

// Creates a subscription; returns true, or shows the error and returns false.
async function createSub(query, backfill = BACKFILL) {
  try {
    const res = await api.post('api/subscriptions', { client_id: state.clientId, query, backfill });
    addChip({ id: res.id, query: res.query ?? query, normalized: res.normalized });
    writeHash();
    return true;
  } catch (e) {
    if (e instanceof ApiError && e.body && e.body.error) {
      const err = e.body.error;
      if (e.status === 400) queryBox.showError(query, err);
      else queryBox.renderMessage(`${err.message || e.message}${err.hint ? ` — ${err.hint}` : ''}`, true);
    } else {
      queryBox.renderMessage(`could not subscribe: ${e.message}`, true);
    }
    return false;
  }
}

async function removeSub(s) {
  try {
    await api.del(`api/subscriptions/${encodeURIComponent(s.id)}`, { allow: [404] });
  } catch (e) {
    notify(`could not remove the subscription: ${e.message}`);
    return;
  }
  dropChip(s);
}

// Makes the server's subscriptions of this client and the page agree: shows
// the server's, re-creates ones the server lost (it removes a client's
// subscriptions after a long disconnect), and creates the URL's on first use.
let reconciling = null;
function reconcile() {
  if (!reconciling) {
    reconciling = reconcileOnce()
      .catch((e) => notify(`could not list subscriptions: ${e.message}`))
      .finally(() => { reconciling = null; });
  }
  return reconciling;
}

async function reconcileOnce() {
  const res = await api.get(`api/subscriptions?client_id=${encodeURIComponent(state.clientId)}`);
  const server = Array.isArray(res.subscriptions) ? res.subscriptions : [];
  const ids = new Set(server.map((s) => s.id));
  for (const s of server) addChip(s);
  for (const s of [...state.subs.values()]) {
    if (ids.has(s.id)) continue;
    const { query, paused } = s;
    dropChip(s);
    if (await createSub(query, 0) && paused) {
      const again = [...state.subs.values()].find((x) => x.query === query);
      if (again) toggleSubPause(again);
    }
  }
  if (state.wanted) {
    const wanted = state.wanted;
    state.wanted = null;
    for (const q of wanted) {
      const have = [...state.subs.values()].some((s) => s.query === q || s.normalized === q);
      if (!have) await createSub(q);
    }
  }
  writeHash();
}

// ------------------------------------------------------------------ channel

async function newToken() {
  const body = state.clientId ? { client_id: state.clientId } : {};
  let t;
  try {
    t = await api.post('api/token', body);
  } catch (e) {
    if (!state.clientId || e.status !== 400) throw e;
    t = await api.post('api/token', {}); // the server refuses this client id: start afresh
  }
  state.clientId = t.client_id;
  state.token = t.token;
  try { sessionStorage.setItem(CLIENT_KEY, t.client_id); } catch { /* private mode */ }
  return t.token;
}

function channelUrl() {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${api.prefix}channel`;
}

// What the channel reports, wherever it runs.
const channelEvents = {
  items(items) {
    store.enqueue(items);
    if (document.hidden) { // no frames in a hidden tab, and nobody waiting for one
      store.ingest();
      if (store.incoming.length > 2000) store.flush();
      return;
    }
    scheduleFrame();
  },
  message: (msg) => onConsoleMessage(msg),
  error(e) { if (e && e.description) notify(`channel: ${e.description}`); },
  closed(e) { setConn({ state: 'closed', detail: e && e.code ? `closed (${e.code})` : '' }); },
  // null: an unknown number (the server restarted and lost its buffer).
  gap(n) {
    if (typeof n === 'number') state.gaps += n;
    else recoverAfterRestart();
    showNotices();
  },
  state(s) {
    setConn({ state: s.state, retryInMs: s.retryInMs });
    // Every (re)connect: make sure the server still has our subscriptions.
    if (s.state === 'open') reconcile();
  },
};

// The server restarted: its channel buffer is gone, but the records are
// stored. Ask it for our subscriptions' matches after the newest record held
// (api/matches); only what it no longer holds stays a gap, with its count.
// With no row yet there is nothing to resume from: the gap stays unknown.
let recovering = false;
async function recoverAfterRestart() {
  state.gapUnknown = true;
  if (recovering || !state.clientId) return;
  store.ingest();  // queued items count for the newest id held
  if (!store.maxId) return;
  recovering = true;
  try {
    const res = await api.get(`api/matches?client_id=${encodeURIComponent(state.clientId)}&after=${store.maxId}`);
    if (Array.isArray(res.items) && res.items.length) channelEvents.items(res.items);
    state.gaps += (Number(res.lost) || 0) + (Number(res.truncated) || 0);
    state.gapUnknown = false;
  } catch { /* the unknown gap stays on screen */ }
  recovering = false;
  showNotices();
}

// Opens the channel in a worker (console-channel-worker.js), so a busy main
// thread never stalls reading the socket; without workers, on this thread.
function openChannel() {
  if (typeof Worker !== 'function') { openChannelHere(); return; }
  let worker;
  try {
    worker = new Worker('console-channel-worker.js', { name: 'clio-channel' });
  } catch {
    openChannelHere();
    return;
  }
  let heard = false;
  worker.onerror = (ev) => {
    ev.preventDefault();
    if (heard) { notify('the channel worker failed; reload the page'); return; }
    worker.terminate();
    openChannelHere();
  };
  worker.onmessage = async (ev) => {
    heard = true;
    const m = ev.data;
    switch (m.type) {
      case 'items': channelEvents.items(m.items); break;
      case 'message': channelEvents.message(m.msg); break;
      case 'state': channelEvents.state(m); break;
      case 'gap': channelEvents.gap(m.lost); break;
      case 'error': channelEvents.error(m); break;
      case 'closed': channelEvents.closed(m); break;
      case 'need-token': {
        let token = null;
        try { token = await newToken(); } catch (e) { notify(`could not renew the channel token: ${e.message}`); }
        worker.postMessage({ type: 'token', id: m.id, token });
        break;
      }
      default: break;
    }
  };
  worker.postMessage({ type: 'open', token: state.token, url: channelUrl() });
  state.worker = worker;
}

function openChannelHere() {
  const Channel = window.clio && window.clio.Channel;
  if (typeof Channel !== 'function') {
    setConn({ state: 'error', detail: 'channel client (channel.js) not loaded' });
    return;
  }
  state.channel = new Channel(state.token, { url: channelUrl(), refreshToken: () => newToken() });
  state.sock = state.channel.open({
    onmessage: (m) => {
      const msg = m.data;  // a value: parsed once, with its frame
      if (msg && typeof msg === 'object' && msg.kind === 'matches') {
        if (Array.isArray(msg.items)) channelEvents.items(msg.items);
      } else if (msg && typeof msg === 'object') {
        onConsoleMessage(msg);
      }
    },
    onerror: channelEvents.error,
    onclose: channelEvents.closed,
    ongap: channelEvents.gap,
    onstatechange: channelEvents.state,
  });
}

function onConsoleMessage(msg) {
  switch (msg.kind) {
    case 'dropped': {
      // count is null when the server cannot know it (the record log restarted empty).
      const n = msg.count == null ? 0 : Number(msg.count) || 0;
      if (msg.count == null) state.dropUnknown = true;
      state.serverDropped += n;
      const why = msg.reason === 'source' && msg.instance ? `${msg.instance} (at the source)` : String(msg.reason || 'queue');
      state.dropWhy.set(why, (state.dropWhy.get(why) || 0) + n);
      showNotices();
      break;
    }
    case 'subscription_removed': {
      const s = state.subs.get(msg.id);
      if (s) {
        dropChip(s);
        notify(`subscription "${s.query}" was removed by the server${msg.reason ? ` (${msg.reason})` : ''}`);
      }
      break;
    }
    default:
      break;
  }
}

let countdown = 0;
function setConn({ state: st, retryInMs, detail }) {
  state.conn = { state: st, retryAt: retryInMs ? Date.now() + retryInMs : 0, detail };
  clearInterval(countdown);
  paintConn();
  if (state.conn.retryAt) countdown = setInterval(paintConn, 250);
}

function paintConn() {
  const { state: st, retryAt, detail } = state.conn;
  const c = $('conn');
  let text;
  let shown = st;
  if (st === 'open' || st === 'connected') { text = 'connected'; shown = 'open'; }
  else if (st === 'reconnecting' || (retryAt && st !== 'closed')) {
    const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    text = retryAt && s > 0 ? `reconnecting in ${s} s` : 'reconnecting…';
    shown = 'reconnecting';
  } else if (st === 'connecting') text = 'connecting…';
  else if (st === 'closed') text = detail ? `disconnected: ${detail}` : 'disconnected';
  else text = detail || st;
  c.dataset.state = shown;
  if (c.textContent !== text) c.textContent = text;
}

function showNotices() {
  const g = $('gap-notice');
  g.hidden = state.gaps === 0 && !state.gapUnknown;
  g.textContent = state.gapUnknown
    ? `gap: an unknown number of messages lost${state.gaps ? ` (at least ${fmtInt(state.gaps)})` : ''} — the server restarted`
    : `gap of ${fmtInt(state.gaps)} message${state.gaps === 1 ? '' : 's'}`;
  const d = $('drop-notice');
  d.hidden = state.serverDropped === 0 && !state.dropUnknown;
  d.textContent = `${fmtInt(state.serverDropped)} record${state.serverDropped === 1 ? '' : 's'} dropped by the server` +
    (state.dropUnknown ? ', and more: the record log restarted (count unknown)' : '');
  d.title = [...state.dropWhy].map(([why, n]) => `${why}: ${fmtInt(n)}`).join('\n');
}

let noticeTimer = 0;
function notify(text) {
  const m = $('q-msg');
  m.replaceChildren(el('span', 'err', text));
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { if (m.textContent === text) m.replaceChildren(); }, 8000);
}

// -------------------------------------------------------------------- stats

async function pollStats() {
  if (!document.hidden) {
    try {
      const s = await api.get('api/stats');
      const parts = [
        `captured ${fmtInt(s.captured ?? 0)}`,
        `matched ${fmtInt(s.matched ?? 0)}`,
        `dropped ${fmtInt(s.dropped_queue ?? 0)} queue / ${fmtInt(s.dropped_channel ?? 0)} channel`,
        `queue ${fmtInt(s.queue_depth ?? 0)}`,
        `${fmtInt(s.subscriptions ?? 0)} subs`,
        `${fmtInt(s.sessions ?? 0)} sessions`,
      ];
      // A fleet: the instances, and the record log's health.
      const inst = Array.isArray(s.instances) ? s.instances : [];
      if (inst.length > 1) parts.push(`${fmtInt(inst.length)} instances`);
      if (s.log && s.log.connected === false) parts.push('record log unreachable');
      if (s.log && s.log.gaps > 0) parts.push(`log gaps ${fmtInt(s.log.gaps)}`);
      $('stats').title = inst.map((i) => `${i.instance}: ${fmtInt(i.records)} records, ${fmtInt(i.dropped)} dropped at the source`).join('\n');
      $('stats').textContent = parts.join(' · ');
    } catch { /* shown by the connection state */ }
  }
  setTimeout(pollStats, STATS_EVERY_MS);
}

// ------------------------------------------------------------------- detail

function kv(pairs) {
  const dl = el('dl', 'kv');
  for (const [k, v] of pairs) dl.append(el('dt', '', k), el('dd', '', v));
  return dl;
}

let detailEntry = null;
function showDetail(e) {
  detailEntry = e;
  const r = e.r;
  $('detail').hidden = false;
  $('detail-title').textContent = `${r.method ?? ''} ${r.path ?? ''}`;
  $('copy-msg').textContent = '';
  const body = $('detail-body');
  const time = Number(r.time) ? new Date(r.time * 1000) : null;
  const fields = [
    ['status', String(r.status_code ?? '')],
    ['method', r.method ?? ''],
    ['path', r.path ?? ''],
    ['query', r.query ?? ''],
    ['time', time ? `${time.toISOString()} (${time.toLocaleString()})` : ''],
    ['wall_time', fmtMs(r.wall_time)],
    ['cpu_time', fmtMs(r.cpu_time)],
    ['response_bytes', `${r.response_bytes ?? ''} (${fmtBytes(r.response_bytes)})`],
    ['request_bytes', String(r.request_bytes ?? '')],
    ['remote_ip', r.remote_ip ?? ''],
    ['host', r.host ?? ''],
    ['user_agent', r.user_agent ?? ''],
    ['referer', r.referer ?? ''],
    ['http_version', r.http_version ?? ''],
    ['random', String(r.random ?? '')],
    ['id', String(r.id ?? '')],
  ];
  const matched = el('div', 'dmatched');
  for (const id of e.subs) {
    const s = state.subs.get(id);
    const chip = el('span', 'chip');
    chip.style.setProperty('--c', colourOf(id));
    chip.append(el('span', 'cq', s ? s.query : `#${id} (removed)`));
    matched.append(chip, document.createTextNode(' '));
  }
  const headers = r.headers && typeof r.headers === 'object' ? Object.entries(r.headers) : [];
  const tags = r.tags && typeof r.tags === 'object' ? Object.entries(r.tags) : [];
  const curl = el('pre', 'curl', toCurl(r, publicOrigin));
  body.replaceChildren(
    el('h3', '', 'Record'), kv(fields),
    el('h3', '', 'Matched subscriptions'), matched,
    el('h3', '', `Request headers (${headers.length})`), headers.length ? kv(headers) : el('p', 'muted', 'none'),
    el('h3', '', `Tags (${tags.length})`), tags.length ? kv(tags) : el('p', 'muted', 'none'),
    el('h3', '', 'curl'), curl,
  );
  body.querySelector('dl').id = 'detail-fields';
}

function closeDetail() {
  $('detail').hidden = true;
  detailEntry = null;
  table.select(null, false);
  $('table').focus();
}

// -------------------------------------------------------------- menus, etc.

function buildColumnsMenu() {
  const menu = $('cols-menu');
  const order = table.columns.concat(COLUMNS.map((c) => c.key).filter((k) => !table.columns.includes(k)));
  menu.replaceChildren(...order.map((key) => {
    const c = COLUMN_BY_KEY.get(key);
    const row = el('div', 'colrow');
    const label = el('label');
    const cb = el('input');
    cb.type = 'checkbox';
    cb.checked = table.columns.includes(key);
    cb.addEventListener('change', () => {
      const cols = cb.checked ? order.filter((k) => k === key || table.columns.includes(k)) : table.columns.filter((k) => k !== key);
      if (cols.length) { state.colsChosen = true; table.setColumns(cols); writeHash(); }
      buildColumnsMenu();
    });
    label.append(cb, document.createTextNode(c.title));
    const move = (d) => {
      const cols = table.columns.slice();
      const i = cols.indexOf(key);
      const j = i + d;
      if (i < 0 || j < 0 || j >= cols.length) return;
      [cols[i], cols[j]] = [cols[j], cols[i]];
      state.colsChosen = true;
      table.setColumns(cols);
      buildColumnsMenu();
      writeHash();
    };
    const up = el('button', '', '↑');
    up.type = 'button';
    up.setAttribute('aria-label', `Move ${c.title} left`);
    up.addEventListener('click', () => move(-1));
    const down = el('button', '', '↓');
    down.type = 'button';
    down.setAttribute('aria-label', `Move ${c.title} right`);
    down.addEventListener('click', () => move(1));
    row.append(label, up, down);
    return row;
  }), el('button', 'menuitem', 'Reset columns'));
  menu.lastChild.type = 'button';
  menu.lastChild.addEventListener('click', () => { table.setColumns(DEFAULT_COLUMNS.slice()); buildColumnsMenu(); writeHash(); });
}

function wireMenu(button, menu) {
  button.addEventListener('click', (ev) => {
    ev.stopPropagation();
    const open = menu.hidden;
    for (const m of document.querySelectorAll('.menu')) m.hidden = true;
    for (const b of document.querySelectorAll('[aria-haspopup="true"]')) b.setAttribute('aria-expanded', 'false');
    menu.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
  });
  menu.addEventListener('click', (ev) => ev.stopPropagation());
}

function closeMenus() {
  for (const m of document.querySelectorAll('.menu')) m.hidden = true;
  for (const b of document.querySelectorAll('[aria-haspopup="true"]')) b.setAttribute('aria-expanded', 'false');
}

// The rows an export holds: those the table shows when narrowed, else all held.
function records() {
  const rows = store.narrow ? store.all().filter(store.narrow) : store.all();
  return rows.map((e) => e.r);
}

const queryBox = new QueryBox({
  input: $('q'),
  overlay: $('q-overlay'),
  list: $('q-complete'),
  msg: $('q-msg'),
  wrap: document.querySelector('.qwrap'),
  historyButton: $('q-history'),
  addButton: $('q-add'),
  api,
  onSubmit: (q) => createSub(q),
});

function wireControls() {
  $('pause').addEventListener('click', () => setPaused(!store.paused));
  $('new-count').addEventListener('click', () => setPaused(false));
  $('clear').addEventListener('click', () => {
    store.clear();
    store.evicted = 0;
    groupPanel.reset();
    if (detailEntry) closeDetail();
    scheduleFrame();
  });
  $('groups-toggle').addEventListener('click', () => {
    if (groupPanel.key) groupPanel.close(); else groupPanel.open('path');
    scheduleFrame();
  });
  $('groups-close').addEventListener('click', () => groupPanel.close());
  $('narrow').addEventListener('click', () => setNarrow(null, null));
  $('charts-toggle').addEventListener('click', () => {
    const hide = !$('charts').hidden;
    $('charts').hidden = hide;
    $('charts-toggle').setAttribute('aria-pressed', String(!hide));
    if (!hide) charts.draw();
    writeHash();
  });
  wireMenu($('cols-btn'), $('cols-menu'));
  wireMenu($('export-btn'), $('export-menu'));
  document.addEventListener('click', closeMenus);
  $('export-jsonl').addEventListener('click', () => {
    closeMenus();
    download(`clio-${stamp()}.jsonl`, toJsonLines(records()), 'application/x-ndjson');
  });
  $('export-har').addEventListener('click', () => {
    closeMenus();
    download(`clio-${stamp()}.har`, JSON.stringify(toHar(records(), publicOrigin), null, 1), 'application/json');
  });
  $('detail-close').addEventListener('click', closeDetail);
  $('copy-curl').addEventListener('click', async () => {
    if (!detailEntry) return;
    $('copy-msg').textContent = (await copyText(toCurl(detailEntry.r, publicOrigin))) ? 'copied' : 'select the command below to copy it';
  });
  $('copy-json').addEventListener('click', async () => {
    if (!detailEntry) return;
    $('copy-msg').textContent = (await copyText(JSON.stringify(detailEntry.r, null, 2))) ? 'copied' : 'copy failed';
  });
  $('gap-notice').addEventListener('click', () => { state.gaps = 0; state.gapUnknown = false; showNotices(); });
  $('logout-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try { await api.post('logout', {}); } catch { /* leave anyway */ }
    try { sessionStorage.removeItem(CLIENT_KEY); } catch { /* ignore */ }
    location.href = `${api.prefix}login`;
  });
  $('logout-all').addEventListener('click', async () => {
    if (!window.confirm('Log out every admin session, in every browser?')) return;
    try { await api.del('api/sessions'); } catch { /* leave anyway */ }
    location.href = `${api.prefix}login`;
  });
  document.addEventListener('keydown', (ev) => {
    const typing = ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement;
    if (ev.key === 'Escape' && !$('detail').hidden && !typing) { closeDetail(); return; }
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === '/') { ev.preventDefault(); $('q').focus(); }
    else if (ev.key === 'p' || ev.key === 'P') { ev.preventDefault(); setPaused(!store.paused); }
  });
}

// --------------------------------------------------------------------- start

async function start() {
  api.onUnauthorized = () => {
    try { if (location.hash) sessionStorage.setItem(RETURN_KEY, location.hash); } catch { /* ignore */ }
    location.href = `${api.prefix}login`;
  };
  try {
    const saved = sessionStorage.getItem(RETURN_KEY);
    if (saved && !location.hash) history.replaceState(null, '', saved);
    sessionStorage.removeItem(RETURN_KEY);
    state.clientId = sessionStorage.getItem(CLIENT_KEY) || '';
  } catch { /* storage disabled */ }

  const view = readHash();
  state.wanted = view.subs;
  $('charts').hidden = !view.charts;
  $('charts-toggle').setAttribute('aria-pressed', String(view.charts));
  store.setSort(view.sort);
  state.colsChosen = view.colsChosen;
  table.setColumns(view.cols);
  if (view.group) groupPanel.open(view.group);
  buildColumnsMenu();
  wireControls();
  // A view pasted into this tab's address bar: load it (the page's own URL
  // updates use replaceState, which fires no hashchange).
  window.addEventListener('hashchange', () => location.reload());
  charts.start();
  updateCounters();

  try {
    const { origin } = await api.init();
    if (origin) publicOrigin = new URL(origin).origin;
  } catch (e) {
    setConn({ state: 'error', detail: `cannot reach the console API: ${e.message}` });
    return;
  }
  queryBox.loadSchema();
  pollStats();
  try {
    await newToken();
  } catch (e) {
    setConn({ state: 'error', detail: `no channel token: ${e.message}` });
    return;
  }
  openChannel();
}

start();
