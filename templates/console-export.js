// Exports of captured rows: JSON lines (the record encoding, one per line),
// HAR 1.2 (for tools that read DevTools archives), and "copy as curl".
//
//   download('x.jsonl', toJsonLines(records), 'application/x-ndjson');
//   download('x.har', JSON.stringify(toHar(records, 'https://app.example')), 'application/json');
//   const cmd = toCurl(record, 'https://app.example');
//
// URLs are built on the server's public origin (api/session's `origin`, the
// configured one), never on the Host header a captured request carried: any
// client can send any Host, and an export or a pasted command must not send
// its requests (with their headers) to a host an attacker chose.

// One record per line, in the order given.
export function toJsonLines(records) {
  let out = '';
  for (const r of records) out += JSON.stringify(r) + '\n';
  return out;
}

function headerList(obj) {
  if (!obj || typeof obj !== 'object') return [];
  return Object.entries(obj).map(([name, value]) => ({ name, value: String(value) }));
}

function queryList(qs) {
  if (!qs) return [];
  const out = [];
  for (const part of String(qs).split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const raw = eq < 0 ? [part, ''] : [part.slice(0, eq), part.slice(eq + 1)];
    const dec = (s) => { try { return decodeURIComponent(s.replace(/\+/g, ' ')); } catch { return s; } };
    out.push({ name: dec(raw[0]), value: dec(raw[1]) });
  }
  return out;
}

// The request's URL on `origin` ("scheme://host[:port]", e.g. the server's
// public origin): the record's path and query string.
export function requestUrl(r, origin) {
  const base = new URL(origin).origin;
  const path = String(r.path || '/').split('/').map((seg) => encodeURIComponent(seg).replace(/%3A/gi, ':').replace(/%40/g, '@')).join('/');
  return `${base}${path}${r.query ? `?${r.query}` : ''}`;
}

// A HAR 1.2 log of the records. Clio does not keep bodies or response
// headers, so those parts are empty; the byte counts, timings, client and the
// record's own fields travel in the entries (Clio-specific members start with
// "_", as the HAR spec allows).
export function toHar(records, origin, version = '1') {
  const entries = records.map((r) => {
    const ver = `HTTP/${r.http_version || '1.1'}`;
    const wall = Number.isFinite(r.wall_time) ? Math.max(0, r.wall_time) : 0;
    return {
      startedDateTime: new Date((Number(r.time) || 0) * 1000).toISOString(),
      time: wall,
      request: {
        method: String(r.method || ''),
        url: requestUrl(r, origin),
        httpVersion: ver,
        cookies: [],
        headers: headerList(r.headers),
        queryString: queryList(r.query),
        headersSize: -1,
        bodySize: Number.isFinite(r.request_bytes) ? r.request_bytes : -1,
      },
      response: {
        status: Number(r.status_code) || 0,
        statusText: '',
        httpVersion: ver,
        cookies: [],
        headers: [],
        content: { size: 0, mimeType: 'x-unknown', comment: 'response body not captured' },
        redirectURL: '',
        headersSize: -1,
        bodySize: -1,
        _transferSize: Number.isFinite(r.response_bytes) ? r.response_bytes : -1,
      },
      cache: {},
      timings: { blocked: -1, dns: -1, connect: -1, send: 0, wait: wall, receive: 0, ssl: -1 },
      _clio: {
        id: r.id, instance: r.instance, cpu_time: r.cpu_time, remote_ip: r.remote_ip, tags: r.tags || {}, random: r.random,
      },
    };
  });
  return {
    log: {
      version: '1.2',
      creator: { name: 'Clio', version },
      pages: [],
      entries,
      comment: 'Exported from the Clio console. Request bodies, response headers and bodies are not captured.',
    },
  };
}

const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
const SKIP = new Set(['host', 'content-length', 'connection']);

// A curl command line that repeats the request (headers included; redacted
// values stay redacted, and no body is known).
export function toCurl(r, origin) {
  const parts = ['curl', shq(requestUrl(r, origin))];
  const m = String(r.method || 'GET');
  if (m !== 'GET') parts.push('-X', shq(m));
  if (r.headers && typeof r.headers === 'object') {
    for (const [k, v] of Object.entries(r.headers)) {
      if (!SKIP.has(k.toLowerCase())) parts.push('-H', shq(`${k}: ${v}`));
    }
  }
  if (r.http_version === '1.0') parts.push('--http1.0');
  return parts.join(' ');
}
