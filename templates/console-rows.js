// The rows the console page holds: the table's columns and a bounded row
// store. No DOM here (the view is console-table.js).
//
// RowStore keeps up to `cap` rows (default 100,000), deduplicated by record
// id, in arrival order or sorted by a column. Items from the channel are
// queued as they come and taken in by `ingest(deadline)`, which stops at the
// deadline, so the page bounds its work per frame. While paused, new rows
// wait in a buffer ("N new") and the view does not move. A narrowing filter
// limits the view to some rows without dropping the others.
//
//   const store = new RowStore({ cap: 100000 });
//   store.enqueue([{ subscriptions: [3], record }]);    // from the channel: cheap
//   const more = store.ingest(performance.now() + 4);  // each frame: a time slice
//   store.flush();                                      // before drawing: rows into the view
//   store.view                                          // the rows to draw

import { fmtTime, fmtMs, fmtBytes } from './console-util.js';

const str = (v) => (v === undefined || v === null ? '' : String(v));
const num = (v) => (Number.isFinite(v) ? v : -Infinity);

// Every column the table knows. `get` gives the sort key, `text` the cell text.
export const COLUMNS = [
  { key: 'time', title: 'Time', width: '114px', get: (r) => num(r.time), text: (r) => fmtTime(r.time) },
  { key: 'method', title: 'Method', width: '76px', get: (r) => str(r.method), text: (r) => str(r.method) },
  { key: 'path', title: 'Path', width: 'minmax(240px, 3fr)', get: (r) => str(r.path),
    text: (r) => (r.query ? `${str(r.path)}?${str(r.query)}` : str(r.path)) },
  { key: 'status', title: 'Status', width: '66px', num: true, get: (r) => num(r.status_code), text: (r) => str(r.status_code),
    cls: (r) => { const c = Math.floor(r.status_code / 100); return c >= 1 && c <= 5 ? `st${c}` : ''; } },
  { key: 'wall', title: 'Wall', width: '78px', num: true, get: (r) => num(r.wall_time), text: (r) => fmtMs(r.wall_time) },
  { key: 'cpu', title: 'CPU', width: '74px', num: true, get: (r) => num(r.cpu_time), text: (r) => fmtMs(r.cpu_time) },
  { key: 'bytes', title: 'Bytes', width: '78px', num: true, get: (r) => num(r.response_bytes), text: (r) => fmtBytes(r.response_bytes) },
  { key: 'client', title: 'Client', width: '118px', get: (r) => str(r.remote_ip), text: (r) => str(r.remote_ip) },
  { key: 'instance', title: 'Instance', width: '110px', get: (r) => str(r.instance), text: (r) => str(r.instance) },
  { key: 'ua', title: 'User agent', width: 'minmax(140px, 2fr)', get: (r) => str(r.user_agent), text: (r) => str(r.user_agent) },
  { key: 'subs', title: 'Matched', width: '82px', get: null, text: null },
  { key: 'host', title: 'Host', width: '140px', get: (r) => str(r.host), text: (r) => str(r.host) },
  { key: 'referer', title: 'Referer', width: '180px', get: (r) => str(r.referer), text: (r) => str(r.referer) },
  { key: 'version', title: 'HTTP', width: '48px', get: (r) => str(r.http_version), text: (r) => str(r.http_version) },
  { key: 'req_bytes', title: 'Req bytes', width: '84px', num: true, get: (r) => num(r.request_bytes), text: (r) => fmtBytes(r.request_bytes) },
  { key: 'id', title: 'ID', width: '84px', num: true, get: (r) => num(r.id), text: (r) => str(r.id) },
];
export const COLUMN_BY_KEY = new Map(COLUMNS.map((c) => [c.key, c]));
export const DEFAULT_COLUMNS = ['time', 'method', 'path', 'status', 'wall', 'cpu', 'bytes', 'client', 'ua', 'subs'];

// Items ingested between two looks at the clock.
const CLOCK_EVERY = 32;

// Record fields whose values repeat from row to row. Each row arrives with
// its own copies; keeping one copy of each value (and one array per set of
// subscription ids) leaves far fewer objects for the garbage collector to
// trace and move, which is what bounds its pauses with 100,000 rows held.
const SHARED_FIELDS = ['method', 'path', 'query', 'remote_ip', 'host', 'user_agent', 'referer', 'http_version', 'instance'];
const SHARED_MAX = 20000; // values kept; the table starts afresh when full

function deadPrefix(a) {
  let n = 0;
  while (n < a.length && a[n].dead) n++;
  return n;
}

// Rows of the page. Owned by the page's main thread (single-threaded JS).
// An entry is {r: record, subs: [subscription ids], seq, at: the second
// it arrived (of performance.now()), ver: bumps when its subscriptions grow}.
export class RowStore {
  constructor({ cap = 100000 } = {}) {
    this.cap = cap;
    this.inbox = [];       // arrays of channel items not looked at yet
    this.inboxPos = 0;     // position in inbox[0]
    this.queued = 0;       // items in the inbox
    this.incoming = [];    // rows ingested since the last flush
    this.rows = [];        // shown rows, in view order
    this.pending = [];     // rows received while paused, arrival order
    this.held = [];        // every held row, in arrival order (evicted from the front)
    this.heldStart = 0;    // rows of `held` already evicted, dropped in chunks
    this.view = this.rows; // the rows to draw: `rows`, or those the narrowing keeps
    this.narrow = null;    // (entry) => bool, or null
    this.byId = new Map(); // record id -> entry, for every held row
    this.maxId = 0;        // the highest record id taken in (what to ask for after a server restart)
    this.seq = 0;
    this.paused = false;
    this.sort = null;      // {key, dir: 1 | -1} or null for arrival order
    this.evicted = 0;      // rows discarded because of the cap
    this.changed = true;   // the view needs a render
    this.onEvict = null;   // (countRemovedBeforeView) => void, to keep the scroll anchored
    this.filter = null;    // (entry) => bool: whether a new row is shown at all
    this.onMatch = null;   // (record, newSubscriptionIds) => void, for counts and charts
    this.onAdd = null;     // (entry) => void: a row is now held
    this.onRemove = null;  // (entry) => void: a held row was discarded
    this.shared = new Map();   // value -> the copy rows share
    this.sharedSubs = new Map(); // "3,7" -> a subscription id array rows share (never mutated)
  }

  share(v) {
    const c = this.shared.get(v);
    if (c !== undefined) return c;
    if (this.shared.size >= SHARED_MAX) this.shared.clear();
    this.shared.set(v, v);
    return v;
  }

  shareSubs(subs) {
    const k = subs.length === 1 ? subs[0] : subs.join(',');
    const c = this.sharedSubs.get(k);
    if (c !== undefined) return c;
    if (this.sharedSubs.size >= SHARED_MAX) this.sharedSubs.clear();
    Object.freeze(subs);
    this.sharedSubs.set(k, subs);
    return subs;
  }

  get size() { return this.held.length - this.heldStart; }
  get newCount() { return this.pending.length + (this.paused ? this.incoming.length : 0); }

  // Queues channel items ({subscriptions, record}) without looking at them.
  enqueue(items) {
    if (!Array.isArray(items) || !items.length) return;
    this.inbox.push(items);
    this.queued += items.length;
  }

  // Takes queued items in until `deadline` (a performance.now() time) and
  // returns whether some are left. A record already held only gains the new
  // subscription ids.
  ingest(deadline = Infinity) {
    const at = Math.floor(performance.now() / 1000); // a small integer: stored without a box
    let n = 0;
    while (this.inbox.length) {
      const batch = this.inbox[0];
      while (this.inboxPos < batch.length) {
        this.take(batch[this.inboxPos++], at);
        this.queued--;
        if (++n % CLOCK_EVERY === 0 && performance.now() >= deadline) {
          if (this.inboxPos >= batch.length) this.nextBatch();
          return this.inbox.length > 0;
        }
      }
      this.nextBatch();
    }
    return false;
  }

  nextBatch() {
    this.inbox.shift();
    this.inboxPos = 0;
  }

  take(it, at) {
    const r = it && it.record;
    if (!r || typeof r !== 'object') return;
    const subs = this.shareSubs(Array.isArray(it.subscriptions) ? it.subscriptions : []);
    const id = r.id;
    if (typeof id === 'number' && id > this.maxId) this.maxId = id;
    const old = id !== undefined ? this.byId.get(id) : undefined;
    if (old) {
      const more = subs.filter((s) => !old.subs.includes(s));
      if (more.length) {
        old.subs = this.shareSubs(old.subs.concat(more));
        old.ver++;
        this.changed = true;
        this.onMatch?.(old.r, more);
      }
      return;
    }
    for (const f of SHARED_FIELDS) {
      const v = r[f];
      if (typeof v === 'string') r[f] = this.share(v);
    }
    const e = { r, subs, seq: ++this.seq, at, ver: 0 };
    this.onMatch?.(r, e.subs);
    if (this.filter && !this.filter(e)) return;
    if (id !== undefined) this.byId.set(id, e);
    this.incoming.push(e);
    this.held.push(e);
    this.onAdd?.(e);
  }

  // Moves ingested rows into the view (or the pause buffer) and applies the cap.
  flush() {
    if (this.incoming.length) {
      if (this.paused) {
        for (const e of this.incoming) this.pending.push(e);
      } else {
        this.merge(this.incoming);
      }
      this.incoming = [];
      this.changed = true;
    }
    this.enforceCap();
  }

  merge(batch) {
    if (this.narrow && this.view !== this.rows) this.view = this.mergeInto(this.view, batch.filter(this.narrow));
    this.rows = this.mergeInto(this.rows, batch);
    if (!this.narrow) this.view = this.rows;
  }

  mergeInto(a, batch) {
    if (!this.sort) {
      for (const e of batch) a.push(e);
      return a;
    }
    const cmp = this.comparator();
    batch.sort(cmp);
    const out = new Array(a.length + batch.length);
    let i = 0; let j = 0; let k = 0;
    while (i < a.length && j < batch.length) out[k++] = cmp(a[i], batch[j]) <= 0 ? a[i++] : batch[j++];
    while (i < a.length) out[k++] = a[i++];
    while (j < batch.length) out[k++] = batch[j++];
    return out;
  }

  comparator() {
    const { key, dir } = this.sort;
    const get = COLUMN_BY_KEY.get(key).get;
    return (x, y) => {
      const a = get(x.r); const b = get(y.r);
      if (a < b) return -dir;
      if (a > b) return dir;
      return x.seq - y.seq;
    };
  }

  // Drops the oldest rows once the store holds more than `cap` (down to 99%
  // of it, so the cost is paid in chunks and stays linear).
  enforceCap() {
    if (this.size <= this.cap) return;
    const remove = this.size - Math.floor(this.cap * 0.99);
    this.evicted += remove;
    this.changed = true;
    const from = this.heldStart;
    this.heldStart += remove;
    for (let i = from; i < this.heldStart; i++) {
      const e = this.held[i];
      e.dead = true;
      if (e.r.id !== undefined && this.byId.get(e.r.id) === e) this.byId.delete(e.r.id);
      this.onRemove?.(e);
    }
    if (this.heldStart > this.cap / 4) {
      this.held = this.held.slice(this.heldStart);
      this.heldStart = 0;
    }
    // The oldest rows are in `rows` first, then `pending`, then `incoming`;
    // in arrival order the discarded ones are a prefix of each.
    const alive = (e) => !e.dead;
    const narrowed = this.view !== this.rows;
    if (!this.sort) {
      const n = deadPrefix(this.rows);
      const v = narrowed ? deadPrefix(this.view) : n;
      if (n) this.rows.splice(0, n);
      if (narrowed && v) this.view.splice(0, v);
      if (v) this.onEvict?.(v);
    } else {
      this.rows = this.rows.filter(alive);
      if (narrowed) this.view = this.view.filter(alive);
    }
    if (!narrowed) this.view = this.rows;
    if (this.pending.length && this.pending[0].dead) this.pending.splice(0, deadPrefix(this.pending));
    if (this.incoming.length && this.incoming[0].dead) this.incoming.splice(0, deadPrefix(this.incoming));
  }

  setPaused(p) {
    if (this.paused === p) return;
    this.paused = p;
    if (!p) {
      const buffered = this.pending;
      this.pending = [];
      this.merge(buffered);
      this.flush();
    }
    this.changed = true;
  }

  setSort(sort) {
    this.sort = sort && COLUMN_BY_KEY.get(sort.key)?.get ? sort : null;
    const cmp = this.sort ? this.comparator() : (a, b) => a.seq - b.seq;
    this.rows.sort(cmp);
    if (this.view !== this.rows) this.view.sort(cmp);
    else this.view = this.rows;
    this.changed = true;
  }

  // Limits the view to the rows `pred` keeps (null: all rows).
  setNarrow(pred) {
    this.narrow = pred || null;
    this.view = this.narrow ? this.rows.filter(this.narrow) : this.rows;
    this.changed = true;
  }

  // Forgets every row (without calling onRemove: what was derived from the
  // rows is reset by the caller).
  clear() {
    this.inbox = [];
    this.inboxPos = 0;
    this.queued = 0;
    this.rows = [];
    this.view = this.narrow ? [] : this.rows;
    this.pending = [];
    this.incoming = [];
    this.held = [];
    this.heldStart = 0;
    this.byId.clear();
    this.changed = true;
  }

  // Every held row in arrival order (for export and recomputation).
  all() { return this.held.slice(this.heldStart); }
}
