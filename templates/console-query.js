// The query box: validates as the user types (POST api/check, so a query of
// any allowed length fits: a GET's URL would be limited), underlines
// the error's span and shows its message and hint, completes field names,
// aliases, keywords and operators from api/schema, and keeps a query history
// (localStorage; ↑/↓ in the box, or the History button).
//
//   const box = new QueryBox({ input, overlay, list, msg, historyButton, api,
//                              onSubmit: async (q) => { ... } });
//   await box.loadSchema();
//   box.showError(query, error);   // e.g. from a 400 of api/subscriptions

import { el, byteToIndex } from './console-util.js';

const HISTORY_KEY = 'clio.history';
const HISTORY_MAX = 50;
const CHECK_DELAY_MS = 120;

// Used until api/schema answers (and if it cannot): the record's field names (docs/ARCHITECTURE.md).
const FALLBACK_SCHEMA = {
  fields: [
    { name: 'time', type: 'float', aliases: ['ts'] }, { name: 'method', type: 'string', aliases: ['m'] },
    { name: 'path', type: 'string', aliases: ['url', 'u'] }, { name: 'query', type: 'string', aliases: ['qs'] },
    { name: 'status_code', type: 'int', aliases: ['status', 'code', 'c'] },
    { name: 'wall_time', type: 'float', aliases: ['wall', 'duration', 'latency'] },
    { name: 'cpu_time', type: 'float', aliases: ['cpu'] }, { name: 'remote_ip', type: 'ip', aliases: ['ip', 'client'] },
    { name: 'host', type: 'string', aliases: [] }, { name: 'user_agent', type: 'string', aliases: ['ua'] },
    { name: 'referer', type: 'string', aliases: [] }, { name: 'http_version', type: 'string', aliases: ['version'] },
    { name: 'request_bytes', type: 'int', aliases: ['req_bytes'] },
    { name: 'response_bytes', type: 'int', aliases: ['bytes', 'size'] },
    { name: 'random', type: 'float', aliases: [] }, { name: 'id', type: 'int', aliases: [] },
  ],
  maps: [{ name: 'header', aliases: ['h'] }, { name: 'tag', aliases: [] }],
  operators: [':', '=', '!=', '<', '<=', '>', '>=', '~', '!~'],
  keywords: ['and', 'or', 'not', 'in'],
};

const OPERATOR_HELP = {
  ':': 'contains / class / CIDR', '=': 'equals', '==': 'equals', '!=': 'differs', '<': 'less than', '<=': 'at most',
  '>': 'greater than', '>=': 'at least', '~': 'matches regex', '!~': 'does not match regex', in: 'one of (…)',
};

// The server may say how it will match a query (`plan`); a query it must
// check on every record costs the server more, which the box says quietly.
// Anything else in `plan`, or no plan, shows nothing.
export function planWarning(plan) {
  if (!plan || typeof plan !== 'object' || plan.every_record !== true) return '';
  const reason = typeof plan.reason === 'string' && plan.reason.trim() ? plan.reason.trim().slice(0, 200) : 'no indexable term';
  return `checked on every record: ${reason}`;
}

function loadHistory() {
  try {
    const h = JSON.parse(localStorage.getItem(HISTORY_KEY) || '[]');
    return Array.isArray(h) ? h.filter((q) => typeof q === 'string') : [];
  } catch { return []; }
}

function saveHistory(h) {
  try { localStorage.setItem(HISTORY_KEY, JSON.stringify(h.slice(0, HISTORY_MAX))); } catch { /* storage full or off */ }
}

// Owned by the page's main thread.
export class QueryBox {
  constructor({ input, overlay, list, msg, wrap, historyButton, addButton, api, onSubmit }) {
    Object.assign(this, { input, overlay, list, msg, wrap, api, onSubmit });
    this.schema = FALLBACK_SCHEMA;
    this.names = [];
    this.items = [];
    this.active = -1;
    this.timer = 0;
    this.abort = null;
    this.histPos = -1;
    this.draft = '';
    this.lastChecked = null;
    this.indexSchema();

    input.addEventListener('input', () => {
      this.histPos = -1;
      this.scheduleCheck();
      this.complete();
      this.syncScroll();
    });
    input.addEventListener('keydown', (ev) => this.onKey(ev));
    input.addEventListener('scroll', () => this.syncScroll());
    input.addEventListener('click', () => this.syncScroll());
    input.addEventListener('blur', () => setTimeout(() => this.close(), 150));
    list.addEventListener('mousedown', (ev) => ev.preventDefault());
    list.addEventListener('click', (ev) => {
      const li = ev.target.closest('li');
      if (li) this.accept(Number(li.dataset.i));
    });
    historyButton.addEventListener('click', () => {
      if (!this.list.hidden && this.mode === 'history') { this.close(); return; }
      this.input.focus();
      this.showHistory();
    });
    addButton.addEventListener('click', () => this.submit());
  }

  async loadSchema() {
    try {
      const s = await this.api.get('api/schema');
      if (s && Array.isArray(s.fields)) {
        this.schema = {
          fields: s.fields,
          maps: Array.isArray(s.maps) ? s.maps : FALLBACK_SCHEMA.maps,
          operators: Array.isArray(s.operators) && s.operators.length ? s.operators : FALLBACK_SCHEMA.operators,
          keywords: Array.isArray(s.keywords) && s.keywords.length ? s.keywords : FALLBACK_SCHEMA.keywords,
        };
        this.indexSchema();
      }
    } catch { /* keep the built-in names */ }
  }

  indexSchema() {
    const names = [];
    for (const f of this.schema.fields) {
      names.push({ label: f.name, kind: f.type || 'field', field: true });
      for (const a of f.aliases || []) names.push({ label: a, kind: `→ ${f.name}`, field: true });
    }
    for (const m of this.schema.maps) {
      names.push({ label: `${m.name}.`, kind: `${m.name}.NAME`, map: true });
      for (const a of m.aliases || []) names.push({ label: `${a}.`, kind: `→ ${m.name}.NAME`, map: true });
    }
    for (const k of this.schema.keywords) names.push({ label: k, kind: 'keyword' });
    this.names = names;
    this.fieldSet = new Set(names.filter((n) => n.field).map((n) => n.label.toLowerCase()));
    this.mapPrefixes = names.filter((n) => n.map).map((n) => n.label.toLowerCase());
  }

  isField(word) {
    const w = word.toLowerCase();
    return this.fieldSet.has(w) || this.mapPrefixes.some((p) => w.startsWith(p) && w.length > p.length);
  }

  // ---- validation -------------------------------------------------------

  scheduleCheck() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check(), CHECK_DELAY_MS);
  }

  async check() {
    const q = this.input.value;
    if (q === this.lastChecked) return;
    this.abort?.abort();
    if (!q.trim()) { this.lastChecked = q; this.render(q, null, null); return; }
    const ctrl = new AbortController();
    this.abort = ctrl;
    try {
      const res = await this.api.post('api/check', { query: q }, { signal: ctrl.signal });
      if (ctrl.signal.aborted || this.input.value !== q) return;
      this.lastChecked = q;
      if (res.valid) this.render(q, null, res.normalized, planWarning(res.plan));
      else this.render(q, res.error || { message: 'invalid query' }, null);
    } catch (e) {
      if (e.name !== 'AbortError') this.renderMessage(`cannot check the query: ${e.message}`, true);
    }
  }

  // Shows `error` ({code, offset, length, message, hint}) for query `q`, or
  // the normalized form when valid (with `warning`, if any, under it).
  render(q, error, normalized, warning = '') {
    this.wrap.classList.toggle('invalid', !!error);
    this.wrap.classList.toggle('valid', !error && !!normalized);
    this.overlay.replaceChildren();
    this.msg.replaceChildren();
    if (error) {
      const start = byteToIndex(q, Number(error.offset) || 0);
      const end = byteToIndex(q, (Number(error.offset) || 0) + (Number(error.length) || 0));
      const span = el('span', `err-span${end <= start ? ' empty' : ''}`, q.slice(start, end));
      this.overlay.append(document.createTextNode(q.slice(0, start)), span, document.createTextNode(q.slice(end)));
      const m = el('span', 'err', error.message || 'invalid query');
      m.dataset.code = error.code || '';
      this.msg.append(m);
      if (error.hint) this.msg.append(el('span', 'hint', error.hint));
      this.syncScroll();
    } else if (normalized) {
      this.msg.append(el('span', 'muted', 'valid · '), el('span', 'norm', normalized),
        el('span', 'muted', '  — Enter subscribes'));
      if (warning) this.msg.append(el('span', 'plan-warn', warning));
    }
  }

  renderMessage(text, isError) {
    this.msg.replaceChildren(el('span', isError ? 'err' : 'muted', text));
  }

  showError(q, error) {
    if (this.input.value !== q) this.input.value = q;
    this.lastChecked = q;
    this.render(q, error, null);
  }

  syncScroll() {
    this.overlay.scrollLeft = this.input.scrollLeft;
  }

  // ---- submit and history -----------------------------------------------

  async submit() {
    const q = this.input.value.trim();
    if (!q) { this.input.focus(); return; }
    this.close();
    const ok = await this.onSubmit(q);
    if (ok) {
      this.remember(q);
      this.input.value = '';
      this.lastChecked = '';
      this.render('', null, null);
    }
  }

  remember(q) {
    const h = loadHistory().filter((x) => x !== q);
    h.unshift(q);
    saveHistory(h);
  }

  showHistory() {
    const h = loadHistory();
    this.mode = 'history';
    this.open(h.length ? h.map((q) => ({ label: q, kind: '', replace: true }))
      : [{ label: 'No history yet', kind: '', disabled: true }], 8);
  }

  stepHistory(dir) {
    const h = loadHistory();
    if (!h.length) return;
    if (this.histPos === -1) this.draft = this.input.value;
    this.histPos = Math.max(-1, Math.min(h.length - 1, this.histPos + dir));
    this.input.value = this.histPos === -1 ? this.draft : h[this.histPos];
    this.input.setSelectionRange(this.input.value.length, this.input.value.length);
    this.scheduleCheck();
  }

  // ---- completion ----------------------------------------------------------

  complete() {
    const v = this.input.value;
    const caret = this.input.selectionStart ?? v.length;
    const before = v.slice(0, caret);
    const word = (before.match(/[A-Za-z_][\w.-]*$/) || [''])[0];
    const pre = before.slice(0, before.length - word.length);
    const prevTok = (pre.trimEnd().match(/([A-Za-z_][\w.-]*|"[^"]*"|[^\sA-Za-z_"]+)$/) || [''])[0];
    // A name starts at the beginning, after a space, "(", "!" or a "-" that negates.
    const boundary = pre === '' || /[\s(!]$/.test(pre) || /(^|[\s(])-$/.test(pre);
    const inString = (before.split('"').length - 1) % 2 === 1;
    const afterOp = /^(=|==|!=|<|<=|>|>=|~|!~|:)$/.test(prevTok) || /(^|[\s(])in\s*\($/i.test(pre.trimEnd());
    const items = [];
    if (inString || (word && !boundary) || afterOp) {
      // typing a value: nothing to complete
    } else if (word) {
      const w = word.toLowerCase();
      const seen = new Set();
      for (const n of this.names) {
        const l = n.label.toLowerCase();
        if (l.startsWith(w) && l !== w && !seen.has(l)) { seen.add(l); items.push({ ...n, insert: n.label, word }); }
      }
      if (this.isField(word)) for (const op of this.operatorItems(word, false)) items.push(op);
    } else if (/\s$/.test(pre) && prevTok && this.isField(prevTok)) {
      for (const op of this.operatorItems('', true)) items.push(op);
    }
    this.mode = 'complete';
    if (items.length) this.open(items.slice(0, 40), this.caretX(before.length - word.length));
    else this.close();
  }

  operatorItems(word, spaced) {
    const ops = [...new Set(this.schema.operators.concat(['in']))].filter((o) => o !== '==');
    return ops.map((op) => ({
      label: op, kind: OPERATOR_HELP[op] || 'operator',
      insert: op === ':' ? `${word}:` : spaced ? (op === 'in' ? 'in (' : `${op} `) : `${word} ${op === 'in' ? 'in (' : `${op} `}`,
      word,
    }));
  }

  // Reads the box's font once: a style read on every key would make the
  // browser recompute the page's styles in the middle of typing.
  caretX(chars) {
    if (!this.measure) {
      this.measure = document.createElement('canvas').getContext('2d');
      this.measure.font = getComputedStyle(this.input).font;
    }
    const x = 9 + this.measure.measureText(this.input.value.slice(0, chars)).width - this.input.scrollLeft;
    return Math.max(0, Math.min(x, this.input.clientWidth - 240));
  }

  open(items, x) {
    this.items = items;
    this.active = items[0]?.disabled ? -1 : 0;
    const lis = items.map((it, i) => {
      const li = el('li');
      li.setAttribute('role', 'option');
      li.dataset.i = String(i);
      li.id = `q-opt-${i}`;
      li.append(el('span', '', it.label));
      if (it.kind) li.append(el('span', 'kind', it.kind));
      return li;
    });
    this.list.replaceChildren(...lis);
    this.list.style.left = `${x}px`;
    this.list.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
    this.list.scrollTop = 0;
    this.highlight(false);
  }

  close() {
    this.list.hidden = true;
    this.items = [];
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
  }

  highlight(scroll = true) {
    [...this.list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === this.active)));
    const li = this.list.children[this.active];
    if (!li) return;
    if (scroll) li.scrollIntoView({ block: 'nearest' });
    this.input.setAttribute('aria-activedescendant', li.id);
  }

  accept(i) {
    const it = this.items[i];
    if (!it || it.disabled) return;
    const v = this.input.value;
    if (it.replace) {
      this.input.value = it.label;
      this.input.setSelectionRange(it.label.length, it.label.length);
    } else {
      const caret = this.input.selectionStart ?? v.length;
      const start = caret - (it.word || '').length;
      const ins = it.insert;
      this.input.value = v.slice(0, start) + ins + v.slice(caret);
      const pos = start + ins.length;
      this.input.setSelectionRange(pos, pos);
    }
    this.close();
    this.input.focus();
    this.scheduleCheck();
    if (!it.replace) this.complete();
    this.syncScroll();
  }

  onKey(ev) {
    const open = !this.list.hidden && this.items.length;
    if (open && (ev.key === 'ArrowDown' || ev.key === 'ArrowUp')) {
      ev.preventDefault();
      const n = this.items.length;
      this.active = ((this.active < 0 ? (ev.key === 'ArrowDown' ? -1 : 0) : this.active) + (ev.key === 'ArrowDown' ? 1 : -1) + n) % n;
      this.highlight();
    } else if (open && (ev.key === 'Tab' || (ev.key === 'Enter' && this.active >= 0))) {
      ev.preventDefault();
      this.accept(this.active);
    } else if (open && ev.key === 'Escape') {
      ev.preventDefault();
      this.close();
    } else if (ev.key === 'Enter') {
      ev.preventDefault();
      this.submit();
    } else if (ev.key === 'ArrowUp' || ev.key === 'ArrowDown') {
      ev.preventDefault();
      this.stepHistory(ev.key === 'ArrowUp' ? 1 : -1);
    }
  }
}
