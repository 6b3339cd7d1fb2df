// A paced HTTP load generator for the browser tests, run as its own process
// so it never competes with the test's event loop:
//   node load.mjs http://127.0.0.1:PORT RATE SECONDS [PATH]
// Sends about RATE requests/s of GET PATH (default /api/hello) over
// keep-alive connections to 127.0.0.1 for SECONDS seconds, never more than
// RATE * SECONDS requests, then prints "sent N in S s" and exits.
import http from 'node:http';

const [base, rateArg, secondsArg, path = '/api/hello'] = process.argv.slice(2);
const url = new URL(base);
if (url.hostname !== '127.0.0.1') throw new Error('load.mjs only talks to 127.0.0.1');
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const limit = Math.floor(rate * seconds);
const CONNECTIONS = 16;
const SLOT_MS = 20; // requests are released in small slots to keep the pace even
const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });

let sent = 0;
let done = 0;
let failed = 0;
const start = Date.now();
const deadline = start + seconds * 1000;

function request() {
  return new Promise((resolve) => {
    const req = http.request({ host: url.hostname, port: url.port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => { done++; resolve(); });
    });
    req.on('error', () => { failed++; resolve(); });
    req.end();
  });
}

// Allowed requests by now: rate * elapsed, capped by the total limit.
const allowed = () => Math.min(limit, Math.floor((rate * (Date.now() - start)) / 1000));

async function worker() {
  while (Date.now() < deadline && sent < limit) {
    if (sent >= allowed()) {
      await new Promise((r) => setTimeout(r, SLOT_MS));
      continue;
    }
    sent++;
    await request();
  }
}

await Promise.all(Array.from({ length: CONNECTIONS }, worker));
agent.destroy();
console.log(`sent ${done} in ${((Date.now() - start) / 1000).toFixed(1)} s (${failed} failed)`);
