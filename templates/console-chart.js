// Live charts of the matches the page receives: matches per second for each
// subscription, and wall-time percentiles (p50/p95/p99), over the last five
// minutes (or since the first match, at least a minute), in one-second
// buckets, drawn on canvas.
//
//   const charts = new Charts(rateCanvas, latCanvas);
//   charts.add(record, [subscriptionId, ...]);   // for every matched record
//   charts.setSubscriptions([{id, colour}]);      // which lines to draw
//   charts.start();                               // redraws once a second

const WINDOW = 300;        // seconds kept and shown at most
const MIN_WINDOW = 60;     // seconds shown at least
const MAX_SAMPLES = 4096;  // wall-time samples kept per second (reservoir)

class Bucket {
  constructor(t) {
    this.t = t;
    this.perSub = new Map();
    this.samples = [];
    this.seen = 0;
    this.pct = null;
  }

  addWall(v, rnd) {
    this.seen++;
    this.pct = null;
    if (this.samples.length < MAX_SAMPLES) this.samples.push(v);
    else {
      const j = Math.floor(rnd * this.seen);
      if (j < MAX_SAMPLES) this.samples[j] = v;
    }
  }

  percentiles() {
    if (this.pct || !this.samples.length) return this.pct;
    const a = Float64Array.from(this.samples).sort();
    const at = (p) => a[Math.min(a.length - 1, Math.floor(p * a.length))];
    this.pct = [at(0.5), at(0.95), at(0.99)];
    return this.pct;
  }
}

// Owned by the page's main thread.
export class Charts {
  constructor(rateCanvas, latCanvas) {
    this.rate = rateCanvas;
    this.lat = latCanvas;
    this.buckets = new Map(); // second -> Bucket
    this.subs = [];
    this.timer = 0;
  }

  setSubscriptions(subs) {
    this.subs = subs.slice();
    this.draw();
  }

  add(record, subIds) {
    const now = Date.now() / 1000;
    let t = Number(record.time);
    if (!Number.isFinite(t) || t > now + 2) t = now; // a clock ahead of ours: count it now
    const sec = Math.floor(t);
    if (sec <= now - WINDOW - 1) return;
    let b = this.buckets.get(sec);
    if (!b) { b = new Bucket(sec); this.buckets.set(sec, b); }
    for (const id of subIds) b.perSub.set(id, (b.perSub.get(id) || 0) + 1);
    const w = Number(record.wall_time);
    if (Number.isFinite(w)) b.addWall(w, Math.random());
  }

  start() {
    if (this.timer) return;
    this.timer = setInterval(() => { if (!document.hidden) this.draw(); }, 1000);
    new ResizeObserver(() => this.draw()).observe(this.rate);
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => this.draw());
    this.draw();
  }

  prune(nowSec) {
    for (const t of this.buckets.keys()) if (t < nowSec - WINDOW - 1) this.buckets.delete(t);
  }

  draw() {
    if (!this.rate.isConnected || this.rate.offsetParent === null) return;
    const now = Math.floor(Date.now() / 1000) - 1; // the last complete second
    this.prune(now);
    const css = getComputedStyle(document.documentElement);
    const theme = {
      fg: css.getPropertyValue('--fg2').trim() || '#888',
      line: css.getPropertyValue('--line').trim() || '#ccc',
      p: ['--p50', '--p95', '--p99'].map((v) => css.getPropertyValue(v).trim() || '#888'),
    };
    // The axis spans the data seen so far: at least a minute, at most WINDOW.
    let oldest = now;
    for (const t of this.buckets.keys()) if (t < oldest) oldest = t;
    const span = Math.max(MIN_WINDOW, Math.min(WINDOW, now - oldest + 1));
    const xs = [];
    for (let t = now - span + 1; t <= now; t++) xs.push(t);
    const rateSeries = this.subs.map((s) => ({
      colour: s.colour,
      values: xs.map((t) => this.buckets.get(t)?.perSub.get(s.id) || 0),
    }));
    drawChart(this.rate, xs, rateSeries, theme, (v) => (v >= 1000 ? `${(v / 1000).toFixed(1)}k/s` : `${Math.round(v)}/s`));
    const latSeries = [0, 1, 2].map((k) => ({
      colour: theme.p[k],
      values: xs.map((t) => { const p = this.buckets.get(t)?.percentiles(); return p ? p[k] : null; }),
    }));
    drawChart(this.lat, xs, latSeries, theme, (v) => (v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`));
  }
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// Draws line series (null = no data) over the time axis `xs`.
function drawChart(canvas, xs, series, theme, fmt) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  let max = 0;
  for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
  max = niceMax(max);
  const left = 52; const right = 6; const top = 6; const bottom = 14;
  const pw = w - left - right; const ph = h - top - bottom;
  g.font = '10px system-ui, sans-serif';
  g.fillStyle = theme.fg;
  g.strokeStyle = theme.line;
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let i = 0; i <= 2; i++) {
    const y = Math.round(top + ph - (ph * i) / 2) + 0.5;
    g.beginPath(); g.moveTo(left, y); g.lineTo(left + pw, y); g.stroke();
    g.fillText(fmt((max * i) / 2), left - 4, y);
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  const n = xs.length;
  const step = [10, 15, 30, 60, 120].find((s) => n / s <= 6) || 60;
  for (let ago = 0; ago < n; ago += step) {
    const x = left + (pw * (n - 1 - ago)) / (n - 1);
    const label = ago === 0 ? 'now' : ago % 60 === 0 ? `-${ago / 60}m` : `-${ago}s`;
    g.fillText(label, Math.min(x, left + pw - 10), top + ph + 2);
  }
  g.lineWidth = 1.5;
  g.lineJoin = 'round';
  for (const s of series) {
    g.strokeStyle = s.colour;
    g.beginPath();
    let pen = false;
    for (let i = 0; i < n; i++) {
      const v = s.values[i];
      if (v === null) { pen = false; continue; }
      const x = left + (pw * i) / (n - 1);
      const y = top + ph - (ph * v) / max;
      if (pen) g.lineTo(x, y); else g.moveTo(x, y);
      pen = true;
    }
    g.stroke();
  }
}
