// The group-by panel: a live table of the groups of the rows the page holds
// (console-groups.js does the counting), a key selector that offers the keys
// the rows carry, sorting by any column, CSV export, and per group a click
// that narrows the table to it and a button that subscribes to it.
//
//   const panel = new GroupPanel(document.getElementById('groups'), store, {
//     onNarrow: (label, pred) => ..., onSubscribe: (query) => ... });
//   panel.open('path');                  // starts counting the held rows, in slices
//   panel.step(deadline);  panel.render();   // from the page's frame loop
//   store.onAdd = (e) => panel.add(e);  store.onRemove = (e) => panel.remove(e);

import { el, fmtInt, fmtMs, fmtBytes, download, stamp } from './console-util.js';
import { GroupBy, keySpec, FIXED_KEY_NAMES, OTHER, sortGroups, toCsv, queryFor } from './console-groups.js';

const CAP = 500;          // groups kept; rows of further values count in "(other)"
const SHOWN = 100;        // group rows drawn; the CSV has them all
const MAX_NAMES = 64;     // tag and header names offered as keys
const CLOCK_EVERY = 64;   // rows counted between two looks at the clock

const COLS = [
  { key: 'label', title: 'key', cls: 'gk' },
  { key: 'count', title: 'count', num: true, fmt: (v) => fmtInt(v) },
  { key: 'rate', title: 'rate/s', num: true, fmt: (v) => (v >= 100 ? fmtInt(Math.round(v)) : v.toFixed(1)) },
  { key: 'errors', title: 'errors', num: true, fmt: (v) => `${(v * 100).toFixed(v > 0 && v < 0.1 ? 1 : 0)}%`, title2: 'share of 4xx and 5xx' },
  { key: 'p50', title: 'p50', num: true, fmt: fmtMs },
  { key: 'p95', title: 'p95', num: true, fmt: fmtMs },
  { key: 'p99', title: 'p99', num: true, fmt: fmtMs },
  { key: 'bytes', title: 'bytes', num: true, fmt: fmtBytes },
];

// Owned by the page's main thread.
export class GroupPanel {
  constructor(root, store, { onNarrow, onSubscribe, onKeyChange }) {
    Object.assign(this, { root, store, onNarrow, onSubscribe, onKeyChange });
    this.select = root.querySelector('#group-key');
    this.info = root.querySelector('#groups-info');
    this.headRow = root.querySelector('#groups-headrow');
    this.body = root.querySelector('#groups-body');
    this.groups = null;      // the GroupBy, while open
    this.gen = 0;
    this.pendingRows = null; // held rows still to count after a key change
    this.pendingPos = 0;
    this.sort = { col: 'count', dir: -1 };
    this.narrowKey = undefined;
    this.drawn = -1;         // groups.version last drawn
    this.drawnAt = 0;
    this.summary = [];
    this.tagNames = new Set();
    this.headerNames = new Set();
    this.hasInstance = false;
    this.buildHead();
    this.select.addEventListener('change', () => this.open(this.select.value));
    root.querySelector('#groups-csv').addEventListener('click', () => this.exportCsv());
    this.body.addEventListener('click', (ev) => {
      const tr = ev.target.closest('tr');
      if (!tr || !tr._group) return;
      if (ev.target.closest('.gsub')) this.subscribe(tr._group);
      else this.toggleNarrow(tr._group);
    });
  }

  get key() { return this.groups ? this.groups.spec.name : ''; }

  // Whether the drawn groups are behind the counts.
  get stale() { return !!this.groups && (this.drawn !== this.groups.version || !!this.pendingRows); }

  // Starts grouping by `name` (falls back to the path template); counts the
  // rows already held in slices (see step).
  open(name) {
    const spec = keySpec(name) || keySpec('path');
    this.gen++;
    this.groups = new GroupBy(spec, { cap: CAP, gen: this.gen });
    this.pendingRows = this.store.all();
    this.pendingPos = 0;
    this.drawn = -1;
    this.narrowKey = undefined;
    if (spec.map === 'tags') this.tagNames.add(spec.field);
    if (spec.map === 'headers') this.headerNames.add(spec.field);
    this.buildOptions();
    this.root.hidden = false;
    this.onKeyChange?.(spec.name);
  }

  close() {
    this.groups = null;
    this.pendingRows = null;
    this.root.hidden = true;
    this.onKeyChange?.('');
  }

  // Forgets every count (the rows were cleared).
  reset() { if (this.groups) this.open(this.key); }

  // A row arrived (store.onAdd): count it, and learn the keys it offers.
  add(e) {
    const r = e.r;
    if (!this.hasInstance && r.instance !== undefined) { this.hasInstance = true; this.buildOptions(); }
    if (this.tagNames.size < MAX_NAMES && r.tags) this.learn(this.tagNames, r.tags);
    if (this.headerNames.size < MAX_NAMES && r.headers) this.learn(this.headerNames, r.headers);
    if (this.groups) this.groups.add(e);
  }

  remove(e) { this.groups?.remove(e); }

  learn(set, obj) {
    let grew = false;
    for (const k in obj) {
      if (set.size >= MAX_NAMES) break;
      if (!set.has(k)) { set.add(k); grew = true; }
    }
    if (grew) this.optionsStale = true;
  }

  // Counts held rows left over from a key change until `deadline`; returns
  // whether some are left.
  step(deadline) {
    if (this.optionsStale) this.buildOptions();
    const rows = this.pendingRows;
    if (!rows) return false;
    const g = this.groups;
    let n = 0;
    while (this.pendingPos < rows.length) {
      const e = rows[this.pendingPos++];
      if (!e.dead && e.gen !== g.gen) g.add(e);
      if (++n % CLOCK_EVERY === 0 && performance.now() >= deadline) return true;
    }
    this.pendingRows = null;
    return false;
  }

  buildOptions() {
    this.optionsStale = false;
    const names = FIXED_KEY_NAMES.filter((k) => k !== 'instance' || this.hasInstance || this.key === 'instance');
    const titles = { path: 'path template', status: 'status', method: 'method', client: 'client', ua: 'user agent', host: 'host', instance: 'instance' };
    const opts = names.map((k) => [k, titles[k]]);
    for (const t of [...this.tagNames].sort()) opts.push([`tag.${t}`, `tag.${t}`]);
    for (const h of [...this.headerNames].sort()) opts.push([`header.${h}`, `header.${h}`]);
    const cur = this.key;
    const sig = opts.map((o) => o[0]).join('\n');
    if (sig !== this.optionsSig) {
      this.optionsSig = sig;
      this.select.replaceChildren(...opts.map(([v, t]) => { const o = el('option', '', t); o.value = v; return o; }));
    }
    if (cur) this.select.value = cur;
  }

  buildHead() {
    const ths = COLS.map((c) => {
      const th = el('th', c.num ? 'num' : '', c.title);
      th.dataset.col = c.key;
      th.title = `Sort by ${c.title2 || c.title}`;
      th.addEventListener('click', () => {
        this.sort = this.sort.col === c.key ? { col: c.key, dir: -this.sort.dir } : { col: c.key, dir: c.num ? -1 : 1 };
        this.render(true);
      });
      return th;
    });
    const act = el('th', '', '');
    act.setAttribute('aria-label', 'Subscribe');
    this.headRow.replaceChildren(...ths, act);
  }

  // Redraws when the counts changed or a second passed (rates move), or when
  // `force`d. Cheap when nothing changed.
  render(force = false) {
    const g = this.groups;
    if (!g) return;
    const now = performance.now();
    if (!force && this.drawn === g.version && now - this.drawnAt < 1000) return;
    this.drawn = g.version;
    this.drawnAt = now;
    this.summary = sortGroups(g.summary(performance.now() / 1000), this.sort.col, this.sort.dir);
    for (const th of this.headRow.children) {
      if (th.dataset.col === this.sort.col) th.setAttribute('aria-sort', this.sort.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
    const shown = this.summary.slice(0, SHOWN);
    while (this.body.children.length < shown.length) this.body.append(this.makeRow());
    while (this.body.children.length > shown.length) this.body.lastChild.remove();
    shown.forEach((s, i) => this.fill(this.body.children[i], s));
    const counting = this.pendingRows ? ` · counting held rows ${Math.round((100 * this.pendingPos) / this.pendingRows.length)}%` : '';
    const more = this.summary.length > SHOWN ? ` (top ${SHOWN} shown; all in the CSV)` : '';
    const paused = this.store.paused ? ' · paused' : '';
    const text = `${fmtInt(g.total)} rows in ${fmtInt(this.summary.length)} groups${more}${counting}${paused}`;
    if (this.info.textContent !== text) this.info.textContent = text;
    this.info.dataset.total = this.pendingRows ? '' : String(g.total);
  }

  makeRow() {
    const tr = el('tr');
    for (const c of COLS) tr.append(el('td', `${c.num ? 'num' : ''} ${c.cls || ''}`.trim()));
    const td = el('td', 'gact');
    const b = el('button', 'gsub', '+');
    b.type = 'button';
    td.append(b);
    tr.append(td);
    return tr;
  }

  fill(tr, s) {
    tr._group = s;
    const cells = tr.children;
    COLS.forEach((c, i) => {
      const v = s[c.key];
      const t = c.fmt ? (v === null ? '' : c.fmt(v)) : v;
      if (cells[i].textContent !== t) cells[i].textContent = t;
    });
    cells[0].title = s.label;
    tr.classList.toggle('other', s.key === OTHER);
    const sel = s.key !== OTHER && s.key === this.narrowKey;
    if (tr._sel !== sel) { tr._sel = sel; tr.setAttribute('aria-selected', String(sel)); }
    const b = cells[COLS.length].firstChild;
    const q = queryFor(this.groups.spec, s.key);
    b.hidden = !q;
    b.title = q ? `Subscribe: ${q}` : '';
    b.setAttribute('aria-label', q ? `Subscribe to ${s.label}` : '');
  }

  // A click on a group: show only its rows in the table (again: all rows).
  toggleNarrow(s) {
    if (s.key === OTHER) return;
    if (this.narrowKey === s.key) { this.clearNarrow(); this.onNarrow?.(null, null); return; }
    const g = this.groups;
    const { spec, gen } = g;
    const key = s.key;
    this.narrowKey = key;
    this.onNarrow?.(`${spec.title} = ${s.label}`, (e) => (e.gen === gen ? e.k : spec.get(e.r)) === key);
    this.render(true);
  }

  clearNarrow() {
    this.narrowKey = undefined;
    this.render(true);
  }

  subscribe(s) {
    const q = queryFor(this.groups.spec, s.key);
    if (q) this.onSubscribe?.(q);
  }

  exportCsv() {
    if (!this.groups) return;
    const rows = sortGroups(this.groups.summary(performance.now() / 1000), this.sort.col, this.sort.dir);
    const name = this.key.replace(/[^A-Za-z0-9._-]/g, '_');
    download(`clio-groups-${name}-${stamp()}.csv`, toCsv(rows, this.groups.spec), 'text/csv');
  }
}
