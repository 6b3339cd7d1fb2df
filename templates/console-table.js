// The live table: a virtualised view of a RowStore (console-rows.js).
// VirtualTable draws only the rows in sight (a small pool of row elements,
// reused), so the DOM stays small however many rows are held. Cells are
// filled with textContent only.
//
//   const store = new RowStore({ cap: 100000 });
//   const table = new VirtualTable(document.getElementById('table'), store, { onSelect });
//   store.enqueue(items);                                // from the channel
//   requestAnimationFrame(() => { store.ingest(performance.now() + 4); store.flush(); table.render(); });

import { el, colourOf } from './console-util.js';
import { COLUMN_BY_KEY, DEFAULT_COLUMNS } from './console-rows.js';

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
    const rows = store.view;
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
    const rows = this.store.view;
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
