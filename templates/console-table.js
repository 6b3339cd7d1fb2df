// The live table: a bounded row store and a virtualised view of it.
//
// RowStore keeps up to `cap` rows (default 100,000) deduplicated by record id,
// in arrival order or sorted by a column; while paused, new rows wait in a
// buffer ("N new") and the view does not move. VirtualTable draws only the
// rows in sight (a small pool of row elements, reused), so the DOM stays
// small however many rows are held. Cells are filled with textContent only.
//
//   const store = new RowStore({ cap: 100000 });
//   const table = new VirtualTable(document.getElementById('table'), store, { onSelect });
//   store.receive([{ subscriptions: [3], record }]);   // from the channel
//   requestAnimationFrame(() => { store.flush(); table.render(); });

import { el, fmtTime, fmtMs, fmtBytes, colourOf } from './console-util.js';

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

// Rows of the page. Owned by the page's main thread (single-threaded JS).
export class RowStore {
  constructor({ cap = 100000 } = {}) {
    this.cap = cap;
    this.rows = [];        // shown rows, in view order
    this.pending = [];     // rows received while paused, arrival order
    this.incoming = [];    // rows received since the last flush
    this.byId = new Map(); // record id -> entry, for every held row
    this.seq = 0;
    this.paused = false;
    this.sort = null;      // {key, dir: 1 | -1} or null for arrival order
    this.evicted = 0;      // rows discarded because of the cap
    this.changed = true;   // the view needs a render
    this.onEvict = null;   // (countRemovedBeforeView) => void, to keep the scroll anchored
    this.filter = null;    // (entry) => bool: whether a new row is shown at all
    this.onMatch = null;   // (record, newSubscriptionIds) => void, for counts and charts
  }

  get size() { return this.rows.length + this.pending.length + this.incoming.length; }
  get newCount() { return this.pending.length + (this.paused ? this.incoming.length : 0); }

  // Adds channel items ({subscriptions, record}). A record already held only
  // gains the new subscription ids. Returns how many rows are new.
  receive(items) {
    let added = 0;
    for (const it of items) {
      const r = it && it.record;
      if (!r || typeof r !== 'object') continue;
      const subs = Array.isArray(it.subscriptions) ? it.subscriptions : [];
      const id = r.id;
      const old = id !== undefined ? this.byId.get(id) : undefined;
      if (old) {
        let grew = false;
        const more = subs.filter((s) => !old.subs.includes(s));
        if (more.length) {
          for (const s of more) old.subs.push(s);
          old.ver++;
          this.changed = true;
          this.onMatch?.(old.r, more);
        }
        continue;
      }
      const e = { r, subs: subs.slice(), seq: ++this.seq, ver: 0 };
      this.onMatch?.(r, e.subs);
      if (this.filter && !this.filter(e)) continue;
      if (id !== undefined) this.byId.set(id, e);
      this.incoming.push(e);
      added++;
    }
    return added;
  }

  // Moves received rows into the view (or the pause buffer) and applies the cap.
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
    if (!this.sort) {
      for (const e of batch) this.rows.push(e);
      return;
    }
    const cmp = this.comparator();
    batch.sort(cmp);
    const a = this.rows;
    const out = new Array(a.length + batch.length);
    let i = 0; let j = 0; let k = 0;
    while (i < a.length && j < batch.length) out[k++] = cmp(a[i], batch[j]) <= 0 ? a[i++] : batch[j++];
    while (i < a.length) out[k++] = a[i++];
    while (j < batch.length) out[k++] = batch[j++];
    this.rows = out;
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
  // of it, so the cost is paid in chunks).
  enforceCap() {
    const total = this.rows.length + this.pending.length;
    if (total <= this.cap) return;
    const remove = total - Math.floor(this.cap * 0.99);
    this.evicted += remove;
    this.changed = true;
    // The oldest rows are in `rows` (pending ones arrived later).
    const fromRows = Math.min(remove, this.rows.length);
    if (fromRows > 0 && !this.sort) {
      for (let i = 0; i < fromRows; i++) this.byId.delete(this.rows[i].r.id);
      this.rows.splice(0, fromRows);
      this.onEvict?.(fromRows);
    } else if (fromRows > 0) {
      const seqs = Float64Array.from(this.rows, (e) => e.seq).sort();
      const cutoff = seqs[fromRows - 1];
      this.rows = this.rows.filter((e) => {
        if (e.seq > cutoff) return true;
        this.byId.delete(e.r.id);
        return false;
      });
    }
    const fromPending = remove - fromRows;
    if (fromPending > 0) {
      for (let i = 0; i < fromPending; i++) this.byId.delete(this.pending[i].r.id);
      this.pending.splice(0, fromPending);
    }
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
    if (this.sort) this.rows.sort(this.comparator());
    else this.rows.sort((a, b) => a.seq - b.seq);
    this.changed = true;
  }

  clear() {
    this.rows = [];
    this.pending = [];
    this.incoming = [];
    this.byId.clear();
    this.changed = true;
  }

  // Every held row in arrival order (for export).
  all() {
    const out = this.rows.concat(this.pending, this.incoming);
    if (this.sort) out.sort((a, b) => a.seq - b.seq);
    return out;
  }
}

// The virtualised view. Owned by the page's main thread.
export class VirtualTable {
  constructor(root, store, { onSelect, onColumnsChange, onSortChange, onUserScroll } = {}) {
    this.root = root;
    this.store = store;
    this.head = root.querySelector('.thead');
    this.spacer = root.querySelector('.tbody-spacer');
    this.empty = root.querySelector('.empty');
    this.onSelect = onSelect;
    this.onColumnsChange = onColumnsChange;
    this.onSortChange = onSortChange;
    this.onUserScroll = onUserScroll;
    this.columns = DEFAULT_COLUMNS.slice();
    this.pool = [];
    this.selected = null;
    this.rowH = parseFloat(getComputedStyle(root).getPropertyValue('--row-h')) || 24;
    this.follow = true;
    this.lastIntent = 0;
    this.ownScroll = -1;   // the scrollTop this view last set itself
    this.spacerH = -1;
    this.buildHead();

    const intent = () => { this.lastIntent = performance.now(); };
    root.addEventListener('wheel', (ev) => { intent(); if (ev.deltaY < 0) this.onUserScroll?.(false); }, { passive: true });
    root.addEventListener('touchstart', intent, { passive: true });
    root.addEventListener('pointerdown', intent, { passive: true });
    root.addEventListener('keydown', (ev) => {
      if (['ArrowUp', 'ArrowDown', 'PageUp', 'PageDown', 'Home', 'End'].includes(ev.key)) intent();
      if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') { ev.preventDefault(); this.moveSelection(ev.key === 'ArrowDown' ? 1 : -1); }
      if (ev.key === 'Enter' && this.selected) this.onSelect?.(this.selected);
    });
    root.addEventListener('scroll', () => {
      if (performance.now() - this.lastIntent < 800) this.onUserScroll?.(this.distanceFromBottom() <= this.rowH * 2);
      if (this.follow && !this.store.paused && !this.store.sort && root.scrollTop === this.ownScroll) return; // ours
      this.store.changed = true;
      this.render();
    }, { passive: true });
    this.spacer.addEventListener('click', (ev) => {
      const tr = ev.target.closest('.tr');
      if (tr && tr._entry) this.select(tr._entry, true);
    });
    new ResizeObserver(() => { this.viewH = root.clientHeight; this.store.changed = true; this.render(); }).observe(root);
  }

  distanceFromBottom() {
    return this.root.scrollHeight - this.root.clientHeight - this.root.scrollTop;
  }

  setColumns(keys) {
    const valid = keys.filter((k, i) => COLUMN_BY_KEY.has(k) && keys.indexOf(k) === i);
    this.columns = valid.length ? valid : DEFAULT_COLUMNS.slice();
    this.buildHead();
    for (const tr of this.pool) tr.remove();
    this.pool = [];
    this.store.changed = true;
    this.render();
  }

  buildHead() {
    const widths = this.columns.map((k) => COLUMN_BY_KEY.get(k).width);
    this.root.style.setProperty('--cols', widths.join(' '));
    // The narrowest the table may get before it scrolls sideways.
    const minW = widths.reduce((sum, w) => sum + (parseFloat(w.replace(/^minmax\(/, '')) || 0), 0);
    this.root.style.setProperty('--minw', `${minW}px`);
    this.head.replaceChildren();
    const sort = this.store.sort;
    for (const key of this.columns) {
      const c = COLUMN_BY_KEY.get(key);
      const th = el('div', 'th', c.title);
      th.setAttribute('role', 'columnheader');
      th.dataset.key = key;
      th.draggable = true;
      th.title = c.get ? `Sort by ${c.title.toLowerCase()}; drag to reorder` : 'Drag to reorder';
      if (sort && sort.key === key) th.setAttribute('aria-sort', sort.dir > 0 ? 'ascending' : 'descending');
      if (c.num) th.style.textAlign = 'right';
      th.addEventListener('click', () => {
        if (!c.get) return;
        const cur = this.store.sort;
        let next;
        if (!cur || cur.key !== key) next = { key, dir: c.num || key === 'time' ? -1 : 1 };
        else if ((cur.dir === -1) === (c.num || key === 'time')) next = { key, dir: -cur.dir };
        else next = null;
        this.onSortChange?.(next);
      });
      th.addEventListener('dragstart', (ev) => { ev.dataTransfer.setData('text/x-clio-col', key); ev.dataTransfer.effectAllowed = 'move'; });
      th.addEventListener('dragover', (ev) => {
        if (ev.dataTransfer.types.includes('text/x-clio-col')) { ev.preventDefault(); th.classList.add('drop-target'); }
      });
      th.addEventListener('dragleave', () => th.classList.remove('drop-target'));
      th.addEventListener('drop', (ev) => {
        ev.preventDefault();
        th.classList.remove('drop-target');
        const from = ev.dataTransfer.getData('text/x-clio-col');
        if (!from || from === key) return;
        const cols = this.columns.filter((k) => k !== from);
        cols.splice(cols.indexOf(key), 0, from);
        this.onColumnsChange?.(cols);
      });
      this.head.append(th);
    }
  }

  makeRow() {
    const tr = el('div', 'tr');
    tr.setAttribute('role', 'row');
    for (const key of this.columns) {
      const c = COLUMN_BY_KEY.get(key);
      const td = el('div', `td c-${key}${c.num ? ' num' : ''}`);
      td.setAttribute('role', 'gridcell');
      tr.append(td);
    }
    tr._entry = null;
    tr._ver = -1;
    this.spacer.append(tr);
    return tr;
  }

  fill(tr, e) {
    tr._entry = e;
    tr._ver = e.ver;
    const cells = tr.children;
    for (let i = 0; i < this.columns.length; i++) {
      const c = COLUMN_BY_KEY.get(this.columns[i]);
      const td = cells[i];
      if (c.key === 'subs') {
        const key = e.subs.join(',');
        if (td._subs === key) continue;
        td._subs = key;
        const dots = el('span', 'dots');
        for (const id of e.subs) {
          const d = el('span', 'dot');
          d.style.setProperty('--c', colourOf(id));
          d.title = `subscription ${id}`;
          dots.append(d);
        }
        td.replaceChildren(dots);
        continue;
      }
      td.textContent = c.text(e.r);
      if (c.cls) {
        const cls = `td c-${c.key} num ${c.cls(e.r)}`;
        if (td.className !== cls) td.className = cls;
      }
    }
    // A stripe per matched subscription (up to four) at the row's left edge.
    const stripe = e.subs.length === 1 ? e.subs[0] : e.subs.slice(0, 4).join(',');
    if (tr._stripe !== stripe) {
      tr._stripe = stripe;
      tr.style.boxShadow = e.subs.slice(0, 4).map((id, i) => `inset ${3 * (i + 1)}px 0 0 ${colourOf(id)}`).join(', ');
    }
  }

  // Re-draws the rows in sight when something changed. Cheap when nothing did.
  // Row elements are recycled by index (row i is drawn by pool[i % size]), so
  // while following the live tail only the newly visible rows are written.
  // Layout is read at most once per call: the scroll target is computed.
  render() {
    const store = this.store;
    if (!store.changed) return;
    store.changed = false;
    const rows = store.rows;
    const h = rows.length * this.rowH;
    const viewH = this.viewH || (this.viewH = this.root.clientHeight);
    const maxTop = Math.max(0, this.rowH + h - viewH); // the header is one row high
    const follow = this.follow && !store.paused && !store.sort;
    const top = follow ? maxTop : Math.min(this.root.scrollTop, maxTop);
    const size = Math.ceil(viewH / this.rowH) + 4;
    if (this.pool.length !== size) {
      while (this.pool.length < size) this.pool.push(this.makeRow());
      while (this.pool.length > size) this.pool.pop().remove();
      for (const tr of this.pool) tr._entry = null;
    }
    const first = Math.max(0, Math.floor(top / this.rowH) - 2);
    const end = Math.min(rows.length, first + size);
    for (let j = 0; j < size; j++) {
      const tr = this.pool[j];
      const idx = first + ((j - (first % size)) + size) % size;
      if (idx >= end) {
        if (!tr.hidden) { tr.hidden = true; tr._entry = null; }
        continue;
      }
      const e = rows[idx];
      if (tr.hidden) tr.hidden = false;
      if (tr._entry !== e || tr._ver !== e.ver) this.fill(tr, e);
      const y = idx * this.rowH;
      if (tr._y !== y) { tr.style.transform = `translateY(${y}px)`; tr._y = y; }
      const sel = e === this.selected;
      if (tr._sel !== sel) { tr.classList.toggle('selected', sel); tr._sel = sel; tr.setAttribute('aria-selected', String(sel)); }
    }
    const empty = store.size > 0;
    if (this.empty.hidden !== empty) this.empty.hidden = empty;
    if (h !== this.spacerH) { this.spacer.style.height = `${h}px`; this.spacerH = h; }
    if (follow && this.ownScroll !== maxTop) { this.ownScroll = maxTop; this.root.scrollTop = maxTop; }
  }

  // Keeps the same rows in sight when `n` rows were removed above them.
  shiftUp(n) {
    if (this.follow && !this.store.paused) return;
    this.root.scrollTop = Math.max(0, this.root.scrollTop - n * this.rowH);
  }

  select(e, open) {
    this.selected = e;
    this.store.changed = true;
    this.render();
    if (open) this.onSelect?.(e);
  }

  moveSelection(delta) {
    const rows = this.store.rows;
    if (!rows.length) return;
    let i = this.selected ? rows.indexOf(this.selected) : -1;
    i = i < 0 ? (delta > 0 ? 0 : rows.length - 1) : Math.min(rows.length - 1, Math.max(0, i + delta));
    const e = rows[i];
    const y = i * this.rowH;
    const view = this.root.clientHeight - this.rowH;
    if (y < this.root.scrollTop) this.root.scrollTop = y;
    else if (y > this.root.scrollTop + view - this.rowH) this.root.scrollTop = y - view + this.rowH;
    this.select(e, true);
  }
}
