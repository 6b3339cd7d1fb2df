// Shared pieces of the browser tests: launching Debian's chromium through
// playwright-core (never a downloaded browser), starting a project binary on
// port 0 and reading the port it prints, and bounded waiting.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-quic',
];

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CLIO_CHROMIUM || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    headless: true,
  });
}

// Starts `bin` with `args`; resolves once a stdout/stderr line matches
// `readyPattern` (its first capture group, if any, is returned as `match`).
// The process is killed when `stop()` is called or the test process exits.
export function startProcess(bin, args, { readyPattern, env = {}, timeoutMs = 20000 } = {}) {
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const killer = () => { try { child.kill('SIGKILL'); } catch { /* already gone */ } };
  process.on('exit', killer);
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${bin} not ready after ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const onData = (chunk) => {
      output += chunk.toString();
      const m = readyPattern ? output.match(readyPattern) : [''];
      if (m) { clearTimeout(timer); resolve(m[1] ?? m[0]); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${bin} exited (${code}) before ready:\n${output}`)); });
  });
  return {
    child,
    ready,
    output: () => output,
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (child.exitCode !== null) return child.exitCode;
      const done = new Promise((r) => child.once('exit', (code, sig) => r(code ?? sig)));
      child.kill(signal);
      const t = setTimeout(killer, graceMs);
      const r = await done;
      clearTimeout(t);
      process.off('exit', killer);
      return r;
    },
  };
}

// Polls `fn` until it returns a truthy value or `timeoutMs` passes.
export async function waitFor(fn, { timeoutMs = 10000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
