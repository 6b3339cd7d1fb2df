// A plain recomputation of the console's group-by, to check the page's
// incremental one: group records by a key, then count, sum and sort.
//
//   const want = recompute(records, (r) => pathTemplate(r.path));
//   checkGroups(rowsFromCsv(csvText), want, { alpha: 0.01 });   // throws on a mismatch
import assert from 'node:assert/strict';

// Nearest-rank quantile of sorted numbers: the value of rank ceil(q * n).
export function nearestRank(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

// Map key -> {count, errors, bytes, walls (sorted)} over `records`.
export function recompute(records, keyOf) {
  const out = new Map();
  for (const r of records) {
    const k = keyOf(r);
    let g = out.get(k);
    if (!g) { g = { count: 0, errors: 0, bytes: 0, walls: [] }; out.set(k, g); }
    g.count++;
    if (r.status_code >= 400 && r.status_code <= 599) g.errors++;
    if (r.response_bytes > 0) g.bytes += r.response_bytes;
    if (Number.isFinite(r.wall_time) && r.wall_time >= 0) g.walls.push(r.wall_time);
  }
  for (const g of out.values()) g.walls.sort((a, b) => a - b);
  return out;
}

// Parses the panel's CSV into rows {key, count, errors, p50, p95, p99, bytes}
// (key null for "(other)"), undoing the formula guard.
export function rowsFromCsv(text) {
  const records = [];
  let row = []; let cell = ''; let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') quoted = false; else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; } else if (c === '\r') { /* part of \r\n */ } else if (c === '\n') {
      row.push(cell); records.push(row); row = []; cell = '';
    } else cell += c;
  }
  const [head, ...body] = records;
  assert.deepEqual(head.slice(1), ['count', 'rate_per_s', 'error_share', 'wall_p50_ms', 'wall_p95_ms', 'wall_p99_ms', 'response_bytes']);
  const num = (s) => (s === '' ? null : Number(s));
  return body.map((f) => ({
    key: f[0] === '(other)' ? null : f[0].replace(/^'(?=[=+\-@\t\r])/, ''),
    count: num(f[1]), rate: num(f[2]), errors: num(f[3]), p50: num(f[4]), p95: num(f[5]), p99: num(f[6]), bytes: num(f[7]),
  }));
}

// Checks the page's groups against a recomputation: each named group exactly
// (percentiles within `alpha` relative, plus `slack` for rounding), and
// "(other)" as the union of every key without a group of its own.
export function checkGroups(rows, want, { alpha = 0.01, slack = 0.0011 } = {}) {
  const named = new Map(rows.filter((r) => r.key !== null).map((r) => [r.key, r]));
  const rest = { count: 0, errors: 0, bytes: 0, walls: [] };
  for (const [k, g] of want) {
    if (named.has(k)) continue;
    rest.count += g.count; rest.errors += g.errors; rest.bytes += g.bytes; rest.walls.push(...g.walls);
  }
  rest.walls.sort((a, b) => a - b);
  for (const k of named.keys()) assert.ok(want.has(k), `the page has a group '${k}' that no held row has`);
  const other = rows.find((r) => r.key === null);
  assert.equal(other ? other.count : 0, rest.count, 'rows in (other) = rows of the keys without a group');
  const compare = (label, got, g) => {
    assert.equal(got.count, g.count, `${label}: count`);
    assert.equal(got.bytes, g.bytes, `${label}: bytes`);
    assert.ok(Math.abs(got.errors - g.errors / g.count) <= slack, `${label}: error share ${got.errors} vs ${g.errors}/${g.count}`);
    for (const [q, name] of [[0.5, 'p50'], [0.95, 'p95'], [0.99, 'p99']]) {
      const exact = nearestRank(g.walls, q);
      if (exact === null) { assert.equal(got[name], null, `${label}: ${name} of no values`); continue; }
      const tol = exact <= 0.001 ? 0.001 + slack : alpha * exact * 1.0001 + slack;
      assert.ok(Math.abs(got[name] - exact) <= tol, `${label}: ${name} ${got[name]} vs exact ${exact} (tolerance ${tol})`);
    }
  };
  for (const [k, got] of named) compare(`group '${k}'`, got, want.get(k));
  if (other) compare('(other)', other, rest);
  return { groups: named.size, other: rest.count };
}
