// The live group-by of the table's rows: per group the count, the arrival
// rate, the error share (4xx/5xx), wall-time p50/p95/p99 and response bytes.
// Incremental: one pass per row that the page takes in or discards, so the
// groups always summarise exactly the rows the page holds (those the table
// shows and those waiting while it is paused). Bounded: at most `cap` groups;
// rows of further values are counted in one "(other)" group.
// No DOM here (the panel is console-group-panel.js).
//
//   const groups = new GroupBy(keySpec('path'), { cap: 500 });
//   groups.add(entry);  groups.remove(entry);      // as rows enter and leave
//   const rows = groups.summary(performance.now() / 1000); // [{key, label, count, rate, ...}]
//   download('groups.csv', toCsv(rows, groups.spec), 'text/csv');
//   const q = queryFor(groups.spec, rows[0].key);   // a subscription query for a group

// ---------------------------------------------------------------- the keys

// A path with its ids collapsed: a segment of digits, of 8 or more hex
// digits, or a UUID becomes ":id" ("/api/v1/users/42" -> "/api/v1/users/:id").
const ID_SEGMENT = /^(?:[0-9]+|[0-9a-fA-F]{8,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/;
// The same rule in RE2 syntax, for a subscription on a path template.
const ID_RE2 = '(?:[0-9]+|[0-9a-fA-F]{8,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})';

// Templates of recent paths: most traffic repeats paths, and a hit allocates
// nothing. Cleared when full.
const templates = new Map();
const TEMPLATE_CACHE = 4096;

export function pathTemplate(path) {
  const p = typeof path === 'string' ? path : '';
  let t = templates.get(p);
  if (t === undefined) {
    if (templates.size >= TEMPLATE_CACHE) templates.clear();
    t = collapseIds(p);
    templates.set(p, t);
  }
  return t;
}

function collapseIds(p) {
  let out = '';
  let start = 0;
  for (;;) {
    const slash = p.indexOf('/', start);
    const seg = slash < 0 ? p.slice(start) : p.slice(start, slash);
    out += seg !== '' && ID_SEGMENT.test(seg) ? ':id' : seg;
    if (slash < 0) return out;
    out += '/';
    start = slash + 1;
  }
}

const text = (v) => (v === undefined || v === null ? '' : String(v));

// The keys a user can group by. `get` maps a record to its group's key (a
// string; '' when the record has no value).
const FIXED_KEYS = {
  path: { title: 'path template', get: (r) => pathTemplate(r.path) },
  status: { title: 'status', get: (r) => text(r.status_code) },
  method: { title: 'method', get: (r) => text(r.method) },
  client: { title: 'client', get: (r) => text(r.remote_ip) },
  ua: { title: 'user agent', get: (r) => text(r.user_agent) },
  host: { title: 'host', get: (r) => text(r.host) },
  instance: { title: 'instance', get: (r) => text(r.instance) },
};
export const FIXED_KEY_NAMES = Object.keys(FIXED_KEYS);

// A header or tag name as the record's JSON holds it: headers lower-cased.
const MAP_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/;

// Resolves a key name ("path", "status", "tag.user", "header.x-tenant", or
// the alias "h.NAME") to {name, title, get}; null for anything else.
export function keySpec(name) {
  const n = String(name || '');
  if (Object.hasOwn(FIXED_KEYS, n)) return { name: n, ...FIXED_KEYS[n] };
  const dot = n.indexOf('.');
  if (dot < 0) return null;
  const map = n.slice(0, dot).toLowerCase();
  const field = n.slice(dot + 1);
  if (!MAP_NAME.test(field)) return null;
  if (map === 'tag') return { name: `tag.${field}`, title: `tag.${field}`, map: 'tags', field, get: (r) => text(r.tags?.[field]) };
  if (map === 'header' || map === 'h') {
    const h = field.toLowerCase();
    return { name: `header.${h}`, title: `header.${h}`, map: 'headers', field: h, get: (r) => text(r.headers?.[h]) };
  }
  return null;
}

// ------------------------------------------------------ wall-time sketch

// Wall-time percentiles from logarithmic buckets (the DDSketch idea): a value
// v > MIN_MS lands in bucket ceil(log_GAMMA(v)) and is reported as the
// bucket's midpoint, within ALPHA (1%) of v. Buckets can be decremented, so a
// row leaving the table leaves the percentiles exactly as if never added.
export const ALPHA = 0.01;
const GAMMA = (1 + ALPHA) / (1 - ALPHA);
const LN_GAMMA = Math.log(GAMMA);
const MIN_MS = 1e-3;                                         // 1 µs and less: reported as 0
const MAX_MS = 1e7;                                          // about 2.8 hours: larger values are clamped
const OFFSET = -Math.ceil(Math.log(MIN_MS) / LN_GAMMA) + 1;  // bucket 0 holds v <= MIN_MS
const BUCKETS = OFFSET + Math.ceil(Math.log(MAX_MS) / LN_GAMMA) + 1;

function bucketOf(ms) {
  if (!(ms > MIN_MS)) return 0;
  if (ms >= MAX_MS) return BUCKETS - 1;
  return Math.min(BUCKETS - 1, Math.max(1, OFFSET + Math.ceil(Math.log(ms) / LN_GAMMA)));
}

function valueOf(bucket) {
  if (bucket === 0) return 0;
  return (2 * GAMMA ** (bucket - OFFSET)) / (GAMMA + 1);
}

class Sketch {
  constructor() {
    this.b = new Uint32Array(BUCKETS);
    this.n = 0;
    this.lo = BUCKETS; // lowest and highest bucket ever used: the walk's range
    this.hi = -1;
  }

  add(ms, d) {
    const i = bucketOf(ms);
    this.b[i] += d;
    this.n += d;
    if (i < this.lo) this.lo = i;
    if (i > this.hi) this.hi = i;
  }

  merge(o) {
    for (let i = o.lo; i <= o.hi; i++) this.b[i] += o.b[i];
    this.n += o.n;
    this.lo = Math.min(this.lo, o.lo);
    this.hi = Math.max(this.hi, o.hi);
  }

  // Nearest-rank percentiles: for each q (ascending), the value of rank
  // ceil(q * n) in sorted order. null when empty.
  quantiles(qs) {
    const out = qs.map(() => null);
    if (!this.n) return out;
    let k = 0;
    let seen = 0;
    let rank = Math.max(1, Math.ceil(qs[0] * this.n));
    for (let i = this.lo; i <= this.hi && k < qs.length; i++) {
      seen += this.b[i];
      while (k < qs.length && seen >= rank) {
        out[k++] = valueOf(i);
        if (k < qs.length) rank = Math.max(1, Math.ceil(qs[k] * this.n));
      }
    }
    return out;
  }
}

// ----------------------------------------------------------------- groups

const RATE_SECONDS = 10;   // the rate is measured over this many seconds of arrivals
export const OTHER = null; // the key of the "(other)" group

class Group {
  constructor(key) {
    this.key = key;        // string, or OTHER
    this.count = 0;
    this.errors = 0;       // rows with status 400-599
    this.bytes = 0;        // sum of response_bytes
    this.wall = new Sketch();
    this.slots = new Uint32Array(RATE_SECONDS); // arrivals per second, ring by second
    this.slotSec = new Float64Array(RATE_SECONDS).fill(-1);
  }

  arrive(at) {
    const sec = Math.floor(at);
    const i = sec % RATE_SECONDS;
    if (this.slotSec[i] !== sec) {
      if (this.slotSec[i] > sec) return; // older than the window
      this.slotSec[i] = sec;
      this.slots[i] = 0;
    }
    this.slots[i]++;
  }

  // Arrivals per second over the current second and the RATE_SECONDS - 1
  // before it, or since `first` (the first arrival counted) when later.
  rate(now, first) {
    const sec = Math.floor(now);
    let n = 0;
    for (let i = 0; i < RATE_SECONDS; i++) if (this.slotSec[i] > sec - RATE_SECONDS) n += this.slots[i];
    const span = now - Math.max(first, sec - RATE_SECONDS + 1);
    return n / Math.max(1, span);
  }
}

// Entries are the table's rows: {r: record, at: the second it arrived, on
// the clock of performance.now()}. The
// row's key and the group it was counted in are kept on the row (`e.k`,
// `e.g`, with `e.gen` naming this GroupBy), so removing it never recomputes
// its key.
// Owned by the page's main thread.
export class GroupBy {
  constructor(spec, { cap = 500, gen = 1 } = {}) {
    this.spec = spec;
    this.cap = cap;
    this.gen = gen;
    this.first = Infinity;   // the earliest arrival counted, for the rate
    this.groups = new Map(); // key -> Group
    this.other = null;
    this.total = 0;
    this.version = 0;        // bumps on every change, for redraws
  }

  // A key's group; "(other)" when `cap` groups exist, and as long as
  // "(other)" holds rows, so all held rows of a key are always in one group.
  group(key) {
    let g = this.groups.get(key);
    if (g) return g;
    if (this.groups.size < this.cap && !this.other) {
      g = new Group(key);
      this.groups.set(key, g);
      return g;
    }
    if (!this.other) this.other = new Group(OTHER);
    return this.other;
  }

  add(e) {
    const r = e.r;
    const key = this.spec.get(r);
    const g = this.group(key);
    e.k = key;
    e.g = g;
    e.gen = this.gen;
    this.total++;
    this.version++;
    g.count++;
    const st = Number(r.status_code);
    if (st >= 400 && st <= 599) g.errors++;
    const b = Number(r.response_bytes);
    if (b > 0) g.bytes += b;
    const w = Number(r.wall_time);
    if (Number.isFinite(w) && w >= 0) g.wall.add(w, 1);
    if (Number.isFinite(e.at)) {
      g.arrive(e.at);
      if (e.at < this.first) this.first = e.at;
    }
  }

  // Takes a row counted by this GroupBy back out; other rows are ignored.
  remove(e) {
    if (e.gen !== this.gen) return;
    e.gen = 0;
    const g = e.g;
    e.g = null;
    const r = e.r;
    this.total--;
    this.version++;
    g.count--;
    const st = Number(r.status_code);
    if (st >= 400 && st <= 599) g.errors--;
    const b = Number(r.response_bytes);
    if (b > 0) g.bytes -= b;
    const w = Number(r.wall_time);
    if (Number.isFinite(w) && w >= 0) g.wall.add(w, -1);
    if (g.count > 0) return;
    if (g === this.other) this.other = null;
    else this.groups.delete(g.key);
  }

  has(e) { return e.gen === this.gen; }

  // The groups as plain rows, sorted by count (largest first).
  summary(now = performance.now() / 1000) {
    const list = [...this.groups.values()];
    if (this.other) list.push(this.other);
    return list.map((g) => {
      const [p50, p95, p99] = g.wall.quantiles([0.5, 0.95, 0.99]);
      return {
        key: g.key,
        label: g.key === OTHER ? '(other)' : g.key === '' ? '(none)' : g.key,
        count: g.count,
        rate: g.rate(now, this.first),
        errors: g.count ? g.errors / g.count : 0,
        p50, p95, p99,
        bytes: g.bytes,
      };
    }).sort((a, b) => b.count - a.count || (a.label < b.label ? -1 : 1));
  }
}

// Sorts summary rows by a column ('label', 'count', 'rate', 'errors', 'p50',
// 'p95', 'p99', 'bytes'); dir 1 ascending, -1 descending. "(other)" stays last.
export function sortGroups(rows, col, dir) {
  const v = (x) => x[col] ?? -Infinity;
  return rows.sort((a, b) => {
    if ((a.key === OTHER) !== (b.key === OTHER)) return a.key === OTHER ? 1 : -1;
    const x = v(a); const y = v(b);
    if (x < y) return -dir;
    if (x > y) return dir;
    return b.count - a.count;
  });
}

// ------------------------------------------------------------------ CSV

// A cell: quoted when it holds a comma, quote or line break; text that a
// spreadsheet would run as a formula (= + - @ and control characters at the
// start) gets a leading apostrophe, since keys come from untrusted requests.
function cell(v) {
  if (typeof v === 'number') return Number.isFinite(v) ? String(Math.round(v * 1000) / 1000) : '';
  if (v === null || v === undefined) return '';
  let s = String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(rows, spec) {
  const head = [spec.name, 'count', 'rate_per_s', 'error_share', 'wall_p50_ms', 'wall_p95_ms', 'wall_p99_ms', 'response_bytes'];
  const lines = [head.join(',')];
  for (const g of rows) {
    lines.push([g.key === OTHER ? '(other)' : g.key, g.count, g.rate, g.errors, g.p50, g.p95, g.p99, g.bytes].map(cell).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

// -------------------------------------------- a subscription for a group

const quote = (s) => `"${String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
const RE2_META = /[\\.+*?()|[\]{}^$]/g;

// The query that matches exactly the records of group `key` under `spec`;
// null for "(other)" and a client that is not an address.
export function queryFor(spec, key) {
  if (key === OTHER) return null;
  switch (spec.name) {
    case 'path': {
      const segs = key.split('/');
      if (!segs.includes(':id')) return `path = ${quote(key)}`;
      const re = segs.map((s) => (s === ':id' ? ID_RE2 : s.replace(RE2_META, '\\$&'))).join('/');
      return `path ~ ${quote(`^${re}$`)}`;
    }
    case 'status': return `status = ${Number(key) || 0}`;
    case 'method': return `method = ${quote(key)}`;
    case 'client': return /^[0-9a-fA-F.:]+$/.test(key) ? `ip = ${key}` : null;
    case 'ua': return `user_agent = ${quote(key)}`;
    case 'host': return `host = ${quote(key)}`;
    case 'instance': return key ? `instance = ${quote(key)}` : `not instance:*`;
    default: {
      const field = `${spec.map === 'tags' ? 'tag' : 'header'}.${spec.field}`;
      return key ? `${field} = ${quote(key)}` : `not ${field}:*`;
    }
  }
}
