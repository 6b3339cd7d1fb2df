// Small shared pieces of the console page: the JSON API client (prefix and
// CSRF header), element helpers that only ever set text, number formatting,
// UTF-8 offsets, downloads and the clipboard.
//
//   const api = new Api('/_clio/');
//   await api.init();                                  // reads the CSRF token
//   const subs = await api.get('api/subscriptions');   // {status, body}
//   el('span', 'cls', record.path);                    // text only, never HTML

// Subscription colours; a subscription's colour is fixed by its id.
const PALETTE = ['#2f7de1', '#d9480f', '#2b8a3e', '#ae3ec9', '#0c8599', '#c2255c', '#5c940d', '#a87b00'];
export function colourOf(id) {
  let n = Number(id);
  if (!Number.isSafeInteger(n)) {
    n = 0;
    for (const ch of String(id)) n = (n * 31 + ch.codePointAt(0)) >>> 0;
  }
  return PALETTE[Math.abs(n) % PALETTE.length];
}

// Creates an element with a class and text content (never markup).
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// Error thrown by Api for non-2xx replies; `body` is the parsed JSON, if any.
export class ApiError extends Error {
  constructor(status, body) {
    const msg = body && body.error && body.error.message ? body.error.message : `HTTP ${status}`;
    super(msg);
    this.status = status;
    this.body = body;
  }
}

// The console's HTTP API. Relative paths resolve under the prefix; POST and
// DELETE carry the CSRF header; a 401 sends the browser to the login page.
export class Api {
  constructor(prefix) {
    this.prefix = prefix;
    this.csrf = '';
  }

  async init() {
    const s = await this.request('GET', 'api/session');
    this.csrf = s.csrf || '';
    if (typeof s.prefix === 'string' && s.prefix.startsWith('/')) this.prefix = s.prefix;
    return s;
  }

  url(path) { return this.prefix + path; }

  async request(method, path, body, { signal, allow = [] } = {}) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET') headers['X-Clio-CSRF'] = this.csrf;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(this.url(path), {
      method, headers, signal, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let parsed = null;
    const text = await res.text();
    if (text) {
      try { parsed = JSON.parse(text); } catch { parsed = null; }
    }
    if (res.status === 401) {
      this.onUnauthorized?.();
      throw new ApiError(401, parsed);
    }
    if (!res.ok && !allow.includes(res.status)) throw new ApiError(res.status, parsed);
    return parsed ?? {};
  }

  get(path, opts) { return this.request('GET', path, undefined, opts); }
  post(path, body, opts) { return this.request('POST', path, body ?? {}, opts); }
  del(path, opts) { return this.request('DELETE', path, undefined, opts); }
}

// The console's prefix, from this page's own URL ("/_clio/").
export function prefixFromLocation(loc = window.location) {
  const p = loc.pathname;
  return p.endsWith('/') ? p : p.slice(0, p.lastIndexOf('/') + 1);
}

// Converts a UTF-8 byte offset in `s` to a JavaScript string index.
export function byteToIndex(s, byteOffset) {
  let bytes = 0;
  let i = 0;
  while (i < s.length && bytes < byteOffset) {
    const c = s.codePointAt(i);
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    i += c >= 0x10000 ? 2 : 1;
  }
  return i;
}

// Formatting of record values for the table.
const pad2 = (n) => (n < 10 ? '0' : '') + n;
export function fmtTime(sec) {
  if (!Number.isFinite(sec) || sec <= 0) return '';
  const d = new Date(sec * 1000);
  const ms = d.getMilliseconds();
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}`;
}
export function fmtMs(ms) {
  if (!Number.isFinite(ms)) return '';
  if (ms >= 10000) return (ms / 1000).toFixed(1) + ' s';
  if (ms >= 100) return Math.round(ms) + ' ms';
  if (ms >= 10) return ms.toFixed(1) + ' ms';
  return ms.toFixed(2) + ' ms';
}
export function fmtBytes(n) {
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
  if (n < 1024 * 1024 * 1024) return (n / 1048576).toFixed(1) + ' MiB';
  return (n / 1073741824).toFixed(2) + ' GiB';
}
const nf = new Intl.NumberFormat('en-US');
export const fmtInt = (n) => nf.format(n);

// Starts a download of `text` as a file.
export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

// A file-name-safe local timestamp, e.g. 20260122-201530.
export function stamp(d = new Date()) {
  return `${d.getFullYear()}${pad2(d.getMonth() + 1)}${pad2(d.getDate())}-${pad2(d.getHours())}${pad2(d.getMinutes())}${pad2(d.getSeconds())}`;
}

// Copies text; falls back to a hidden textarea where the async clipboard is
// unavailable (plain http on a non-local host).
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch { /* fall back below */ }
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.style.position = 'fixed';
  ta.style.opacity = '0';
  document.body.append(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  ta.remove();
  return ok;
}
