// A paced HTTP load generator for the browser tests and the console
// benchmark, run as its own process so it never competes with the test's
// event loop:
//   node load.mjs http://127.0.0.1:PORT RATE SECONDS [PATHS]
// Sends about RATE requests/s for SECONDS seconds, never more than
// RATE * SECONDS, over keep-alive connections to 127.0.0.1 (pipelined), then prints
// "sent N in S s (F failed, cpu C ms)" and exits. PATHS is a comma-separated
// list used in turn (default /api/hello); in a path, {n} becomes a counter
// and {hex} 12 hex digits of it, so paths carry ids.
//
// Plain sockets, pipelining and a minimal response reader keep the
// generator's own CPU low: it shares the machine with the server and the
// browser it loads. A response without Content-Length ends its connection
// (CivetWeb's own 404s do that), which is then opened again.
import net from 'node:net';

const [base, rateArg, secondsArg, pathsArg = '/api/hello'] = process.argv.slice(2);
const url = new URL(base);
if (url.hostname !== '127.0.0.1') throw new Error('load.mjs only talks to 127.0.0.1');
const rate = Number(rateArg);
const seconds = Number(secondsArg);
if (!(rate > 0 && rate <= 100000) || !(seconds > 0 && seconds <= 3600)) throw new Error('usage: load.mjs URL RATE(1..100000) SECONDS(1..3600) [PATHS]');
const limit = Math.floor(rate * seconds);
const paths = pathsArg.split(',').filter(Boolean);
const CONNECTIONS = 8;
const DEPTH = 8;             // requests in flight per connection (HTTP/1.1 pipelining)
const SLOT_MS = 10;          // requests are released in small slots to keep the pace even
const MAX_RESPONSE = 1 << 20;

const start = Date.now();
const deadline = start + seconds * 1000;
let sent = 0;
let done = 0;
let failed = 0;
const fixed = paths.map((p) => (p.includes('{') ? null : request(p)));

function request(p) {
  return `GET ${p} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: clio-load/1\r\n\r\n`;
}

function target(i) {
  const k = i % paths.length;
  if (fixed[k]) return fixed[k];
  return request(paths[k].replace('{n}', String(i)).replace('{hex}', (0x10000000000 + i).toString(16).slice(-12)));
}

// One keep-alive connection with up to DEPTH requests in flight.
class Conn {
  constructor() {
    this.inflight = 0;
    this.buf = Buffer.alloc(0);
    this.open();
  }

  open() {
    this.untilClose = false;
    this.sock = net.connect({ host: url.hostname, port: Number(url.port) });
    this.sock.setNoDelay(true);
    this.sock.on('data', (d) => this.onData(d));
    this.sock.on('error', () => {});
    this.sock.on('close', () => {
      // A response without a length ends with the connection; the rest failed.
      if (this.untilClose && this.inflight) { done++; this.inflight--; }
      failed += this.inflight;
      this.inflight = 0;
      this.buf = Buffer.alloc(0);
      if (Date.now() < deadline && sent < limit) this.open();
    });
  }

  send(text) {
    this.inflight++;
    return text;
  }

  // Completes responses once their headers and Content-Length bodies are in.
  onData(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.inflight && !this.untilClose) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.buf.length > MAX_RESPONSE) this.sock.destroy();
        return;
      }
      const head = this.buf.toString('latin1', 0, end);
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (!m) { this.untilClose = true; return; }
      const total = end + 4 + Number(m[1]);
      if (this.buf.length < total) return;
      this.buf = this.buf.subarray(total);
      this.inflight--;
      done++;
    }
  }
}

const conns = Array.from({ length: CONNECTIONS }, () => new Conn());

// Allowed requests by now: rate * elapsed, capped by the total limit.
const allowed = () => Math.min(limit, Math.floor((rate * (Date.now() - start)) / 1000));

// Releases the requests due, spread over the connections, one write each.
function pump() {
  if (Date.now() >= deadline) return;
  let may = allowed() - sent;
  for (let round = 0; round < DEPTH && may > 0; round++) {
    for (const c of conns) {
      if (may <= 0) break;
      if (c.inflight >= DEPTH || c.untilClose || c.sock.connecting || c.sock.destroyed) continue;
      c.out = (c.out || '') + c.send(target(sent++));
      may--;
    }
  }
  for (const c of conns) if (c.out) { c.sock.write(c.out); c.out = ''; }
}

const timer = setInterval(pump, SLOT_MS);
await new Promise((resolve) => {
  const check = setInterval(() => {
    const idle = conns.every((c) => !c.inflight);
    if (Date.now() >= deadline + 2000 || (Date.now() >= deadline && idle) || (sent >= limit && idle)) {
      clearInterval(check);
      resolve();
    }
  }, 50);
});
clearInterval(timer);
for (const c of conns) { failed += c.inflight; c.inflight = 0; c.sock.destroy(); }
const cpu = process.cpuUsage();
console.log(`sent ${done} in ${((Date.now() - start) / 1000).toFixed(1)} s (${failed} failed, cpu ${Math.round((cpu.user + cpu.system) / 1000)} ms)`);
