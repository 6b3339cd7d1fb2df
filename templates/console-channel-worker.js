// The console's channel, run in a dedicated worker so the WebSocket keeps
// being read while the page's main thread is busy drawing: the browser only
// reads a WebSocket as fast as its receiver takes the messages, and a stalled
// reader makes the server drop messages for this page (a gap).
//
// The console's messages arrive as values (the hub sends them with send_json,
// so the channel client parsed them once, with their frame). The worker
// batches "matches" items and posts them to the page at most every
// FLUSH_MS; other messages go at once. New
// tokens come from the page (which owns the session and the CSRF token).
//
// Protocol with the page (postMessage):
//   page → worker  {type: 'open', token, url}
//                  {type: 'token', id, token}        reply to 'need-token' (token null: failed)
//                  {type: 'close'}
//   worker → page  {type: 'items', items}            matched items, in arrival order
//                  {type: 'message', msg}            any other console message
//                  {type: 'state', state, retryInMs} {type: 'gap', lost}
//                  {type: 'error', code, description} {type: 'closed', code}
//                  {type: 'need-token', id}
/* global clio, importScripts */
importScripts('channel.js');

const FLUSH_MS = 40;
let sock = null;
let batch = [];
let timer = 0;
let nextId = 1;
const waiting = new Map(); // need-token id -> resolve

function flush() {
  timer = 0;
  if (!batch.length) return;
  const items = batch;
  batch = [];
  postMessage({ type: 'items', items });
}

function onChannelMessage(m) {
  const msg = m.data;
  if (!msg || typeof msg !== 'object') return;
  if (msg.kind === 'matches' && Array.isArray(msg.items)) {
    for (const it of msg.items) batch.push(it);
    if (!timer) timer = setTimeout(flush, FLUSH_MS);
    return;
  }
  flush(); // keep the order of notices and rows
  postMessage({ type: 'message', msg });
}

function refreshToken() {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    waiting.set(id, (token) => (token ? resolve(token) : reject(new Error('no token'))));
    postMessage({ type: 'need-token', id });
  });
}

self.onmessage = (ev) => {
  const m = ev.data || {};
  if (m.type === 'open' && !sock) {
    const ch = new clio.Channel(m.token, { url: m.url, refreshToken });
    sock = ch.open({
      onmessage: onChannelMessage,
      onerror: (e) => postMessage({ type: 'error', code: e && e.code, description: e && e.description }),
      onclose: (e) => { flush(); postMessage({ type: 'closed', code: e && e.code }); },
      ongap: (lost) => { flush(); postMessage({ type: 'gap', lost }); },
      onstatechange: (s) => postMessage({ type: 'state', state: s.state, retryInMs: s.retryInMs }),
    });
  } else if (m.type === 'token') {
    const done = waiting.get(m.id);
    waiting.delete(m.id);
    if (done) done(m.token);
  } else if (m.type === 'close' && sock) {
    sock.close();
  }
};
