// Clio channel client: receives the messages a Clio ChannelService sends to
// one client id, over a WebSocket that reconnects, resumes without loss or
// duplicates, and refreshes its token in-band. Classic script, no
// dependencies; defines window.clio.Channel and the App Engine compatible
// alias goog.appengine.Channel. Wire protocol: channel/PROTOCOL.md.
//
//   const ch = new clio.Channel(token, {refreshToken: async () => (await fetchToken()).token});
//   const sock = ch.open({onmessage: (m) => show(m.data)});
//   sock.ongap = (lost) => warn(lost === null ? 'some messages lost' : lost + ' lost');
//   sock.onstatechange = (e) => status(e.state, e.retryInMs);
//   sock.close();
//
// Where it connects: `url` if given; otherwise `path` resolved against
// `server`, or else against the URL this script was loaded from, so a page
// that loads the script from the channel's server (even from another origin)
// finds its endpoint. Options of new clio.Channel(token, options):
//   url           WebSocket URL, absolute (ws:, wss:, http:, https:) or a path
//                 on this page's origin.
//   server        the channel server's base URL, e.g. 'https://chat.example'.
//   path          default: the data-channel-path attribute of this script's
//                 <script> tag, else the path of the service that served the
//                 script (ChannelService::client_script), else '/_clio/channel'.
//   refreshToken  async () => new token string. Called before the token
//                 expires (in-band refresh, no reconnect), and when the server
//                 refuses the token. Without it, the socket closes (onerror,
//                 then onclose) when the token expires or is refused.
//
// Socket handlers (in open({...}) or as properties): onopen() once, when first
// connected; onmessage({data}) with the app's message: the string it gave
// send_message, or the value itself (parsed once, with the frame) for
// send_json; onerror({code,
// description}); onclose() once, when the socket is closed for good; ongap(n)
// n messages lost (null: unknown, after a server restart);
// onstatechange({state, retryInMs}) with state 'connecting' | 'open' |
// 'reconnecting' | 'closed'.
//
// Giving up: after a connection attempt fails before opening, the client asks
// the endpoint why (a POST probe, PROTOCOL.md section 2). No channel there
// (404), or a token the server refuses that refreshToken cannot replace, ends
// the socket with onerror then onclose, as the App Engine client did. A
// network failure, a busy server (503) or an answer it cannot read means
// retry with backoff.
(function (global) {
  'use strict';

  const SUBPROTOCOL = 'clio.v1';
  const BACKOFF_FIRST_MS = 250;
  const BACKOFF_CAP_MS = 5000;
  const CONNECT_TIMEOUT_MS = 10000;
  const PROBE_TIMEOUT_MS = 5000;
  // The channel path of the service that served this file, filled in by
  // ChannelService::client_script(); empty in the file as stored.
  const SERVED_PATH = '' /* clio:served-path */;
  const script = global.document && global.document.currentScript;
  const SCRIPT_URL = (script && script.src) || '';
  const ATTR_PATH = (script && script.dataset && script.dataset.channelPath) || '';

  function resolveUrl(options) {
    const page = global.location ? global.location.href : undefined;
    const u = options.url
      ? new URL(options.url, page)
      : new URL(options.path || ATTR_PATH || SERVED_PATH || '/_clio/channel', options.server || SCRIPT_URL || page);
    if (u.protocol === 'http:') u.protocol = 'ws:';
    if (u.protocol === 'https:') u.protocol = 'wss:';
    return u.href;
  }

  // Asks the channel endpoint whether `token` would be accepted now (the
  // browser hides why an upgrade failed). Resolves to 'ok', 'token' (refused,
  // with .why), 'missing' (no channel at that URL), 'busy', or 'unknown'.
  async function probe(wsUrl, token) {
    const url = new URL(wsUrl);
    url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
    const abort = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = abort && setTimeout(() => abort.abort(), PROBE_TIMEOUT_MS);
    try {
      const r = await fetch(url.href, {
        method: 'POST', body: token, cache: 'no-store', headers: { 'Content-Type': 'text/plain' },
        signal: abort ? abort.signal : undefined,
      });
      if (r.status === 404) return { verdict: 'missing', why: 'no channel endpoint at ' + url.href };
      let j = null;
      try { j = await r.json(); } catch (e) { /* not a channel answer */ }
      if (!j || j.t !== 'probe') return { verdict: 'unknown' };
      if (j.ok) return { verdict: 'ok' };
      if (r.status === 401) return { verdict: 'token', why: String(j.error || 'token refused') };
      return { verdict: r.status === 503 ? 'busy' : 'unknown', why: String(j.error || '') };
    } catch (e) {
      return { verdict: 'unknown' };  // unreachable: a network failure, for now
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  // Calls a handler without letting its exception break the socket's state.
  function fire(fn, self, arg) {
    if (typeof fn !== 'function') return;
    try {
      fn.call(self, arg);
    } catch (e) {
      setTimeout(() => { throw e; }, 0);
    }
  }

  // Close codes 4000-4099: do not reconnect (superseded, revoked, protocol error).
  function isFinal(code) { return code >= 4000 && code < 4100; }
  const CLOSE_TOKEN_EXPIRED = 4100;

  class Socket {
    constructor(channel, handlers) {
      handlers = handlers || {};
      this.onopen = handlers.onopen || null;
      this.onmessage = handlers.onmessage || null;
      this.onerror = handlers.onerror || null;
      this.onclose = handlers.onclose || null;
      this.ongap = handlers.ongap || null;
      this.onstatechange = handlers.onstatechange || null;
      this.state = 'connecting';
      this.epoch = null;      // server epoch of the last frame
      this.lastSeq = 0;       // last seq received (or skipped by a gap)
      this.expiresAt = 0;     // token expiry, unix seconds (server clock)
      this._channel = channel;
      this._token = channel.token;
      this._url = resolveUrl(channel.options);
      this._ws = null;
      this._opened = false;       // onopen fired
      this._welcomed = false;     // current ws got its welcome
      this._attempt = 0;          // consecutive failed attempts
      this._closed = false;
      this._timers = {};
      this._heartbeatMs = 15000;
      this._heartbeatTimeoutMs = 35000;
      this._lastRecv = 0;
      this._refreshing = null;
      this._refreshError = '';
      this._probes = 0;               // probes started (only the latest counts)
      this._refusedAfterRefresh = false;
      this._onWake = () => this._wake();
      this._onVisible = () => { if (!global.document || global.document.visibilityState === 'visible') this._wake(); };
      if (global.addEventListener) global.addEventListener('online', this._onWake);
      if (global.document && global.document.addEventListener) {
        global.document.addEventListener('visibilitychange', this._onVisible);
      }
      this._connect();
    }

    // Closes the socket for good. onclose fires once.
    close() {
      if (this._closed) return;
      this._finish(null);
    }

    _setState(state, retryInMs) {
      this.state = state;
      fire(this.onstatechange, this, retryInMs === undefined ? { state } : { state, retryInMs });
    }

    _clearTimer(name) {
      if (this._timers[name]) {
        clearTimeout(this._timers[name]);
        clearInterval(this._timers[name]);
        delete this._timers[name];
      }
    }

    _connect() {
      this._clearTimer('retry');
      if (this._closed) return;
      this._setState(this._opened ? 'reconnecting' : 'connecting');
      const protocols = [SUBPROTOCOL, 'clio-token.' + this._token];
      if (this.epoch) protocols.push('clio-resume.' + this.epoch + '.' + this.lastSeq);
      let ws;
      try {
        ws = new WebSocket(this._url, protocols);
      } catch (e) {
        this._fail(0, String(e && e.message || e));
        return;
      }
      this._ws = ws;
      this._welcomed = false;
      ws.onmessage = (ev) => { if (this._ws === ws) this._onFrame(ev.data); };
      ws.onclose = (ev) => { if (this._ws === ws) this._onClose(ev.code, ev.reason); };
      ws.onerror = () => {};  // a close event always follows
      this._timers.connect = setTimeout(() => {
        if (this._ws === ws && !this._welcomed) this._abandon(ws, 'connect timeout');
      }, CONNECT_TIMEOUT_MS);
    }

    // Gives up on a connection that looks dead and reconnects.
    _abandon(ws, why) {
      this._detach(ws);
      try { ws.close(); } catch (e) { /* already closing */ }
      this._onClose(1006, why);
    }

    _detach(ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
      if (this._ws === ws) this._ws = null;
      this._clearTimer('heartbeat');
      this._clearTimer('liveness');
      this._clearTimer('connect');
      this._clearTimer('refresh');
    }

    _send(obj) {
      if (this._ws && this._ws.readyState === 1) this._ws.send(JSON.stringify(obj));
    }

    _onFrame(text) {
      this._lastRecv = Date.now();
      let f;
      try {
        f = JSON.parse(text);
      } catch (e) {
        return;  // the server only sends JSON; ignore anything else
      }
      switch (f.t) {
        case 'welcome': return this._onWelcome(f);
        case 'msg':
          if (f.epoch === this.epoch && f.seq <= this.lastSeq) return;  // duplicate
          this.epoch = f.epoch;
          this.lastSeq = f.seq;
          fire(this.onmessage, this, { data: f.data });
          return;
        case 'gap':
          if (typeof f.to === 'number') this.lastSeq = f.to;
          if (f.epoch) this.epoch = f.epoch;
          fire(this.ongap, this, typeof f.lost === 'number' ? f.lost : null);
          return;
        case 'refreshed':
          this._setExpiry(f.expires_at, Math.floor(Date.now() / 1000) + this._clockSkew);
          return;
        case 'error':
          fire(this.onerror, this, { code: 0, description: f.message || f.code || 'channel error' });
          return;
        default:
          return;  // 'hb' and frames of newer servers
      }
    }

    _onWelcome(f) {
      this._clearTimer('connect');
      this._welcomed = true;
      this._attempt = 0;
      this._refusedAfterRefresh = false;
      this.epoch = f.epoch;
      this.lastSeq = f.seq;
      this._heartbeatMs = f.heartbeat_ms || this._heartbeatMs;
      this._heartbeatTimeoutMs = f.heartbeat_timeout_ms || this._heartbeatTimeoutMs;
      this._clockSkew = (f.now || Math.floor(Date.now() / 1000)) - Math.floor(Date.now() / 1000);
      this._setExpiry(f.expires_at, f.now);
      const ws = this._ws;
      this._timers.heartbeat = setInterval(() => this._send({ t: 'hb' }), this._heartbeatMs);
      this._timers.liveness = setInterval(() => {
        if (Date.now() - this._lastRecv > this._heartbeatTimeoutMs) this._abandon(ws, 'no heartbeat from the server');
      }, Math.min(1000, this._heartbeatMs));
      this._setState('open');
      if (!this._opened) {
        this._opened = true;
        fire(this.onopen, this);
      }
    }

    // Schedules the in-band refresh before the token expires.
    _setExpiry(expiresAt, serverNow) {
      this.expiresAt = expiresAt || 0;
      this._clearTimer('refresh');
      if (!this.expiresAt || !this._channel.options.refreshToken) return;
      const remaining = this.expiresAt - (serverNow || Math.floor(Date.now() / 1000));
      const delayS = remaining > 300 ? remaining - 60 : Math.max(remaining * 0.5, 0.2);
      this._timers.refresh = setTimeout(() => this._refreshInBand(), delayS * 1000);
    }

    // Gets a new token from the app; false (with the reason in
    // this._refreshError) when it cannot.
    async _newToken() {
      const fn = this._channel.options.refreshToken;
      if (typeof fn !== 'function') return false;
      if (!this._refreshing) {
        this._refreshing = (async () => {
          try {
            const t = await fn();
            if (typeof t === 'string' && t) {
              this._token = t;
              return true;
            }
            this._refreshError = 'refreshToken gave no token';
          } catch (e) {
            this._refreshError = 'refreshToken failed: ' + (e && e.message || e);
          }
          return false;
        })();
        this._refreshing.finally(() => { this._refreshing = null; });
      }
      return this._refreshing;
    }

    async _refreshInBand() {
      if (await this._newToken()) {
        this._send({ t: 'refresh', token: this._token });
      } else {
        fire(this.onerror, this, { code: 0, description: this._refreshError });
      }
    }

    _onClose(code, reason) {
      const ws = this._ws;
      if (ws) this._detach(ws);
      if (this._closed) return;
      const openedThisTime = this._welcomed;
      this._welcomed = false;
      if (isFinal(code)) {
        this._fail(code, reason || 'closed by the server');
        return;
      }
      const hasRefresh = typeof this._channel.options.refreshToken === 'function';
      const expired = code === CLOSE_TOKEN_EXPIRED ||
          (this.expiresAt && Date.now() / 1000 + (this._clockSkew || 0) >= this.expiresAt);
      if (expired && !hasRefresh) {
        // Like App Engine: an expired token ends the socket.
        this._fail(CLOSE_TOKEN_EXPIRED, 'token expired');
        return;
      }
      if (openedThisTime || expired) {
        this._retry(code === CLOSE_TOKEN_EXPIRED ? 0 : null, expired);
        return;
      }
      // The attempt failed before opening: ask the endpoint why.
      const asked = ++this._probes;
      probe(this._url, this._token).then(async (p) => {
        if (this._closed || asked !== this._probes) return;
        if (p.verdict === 'missing') {
          this._fail(404, p.why);
        } else if (p.verdict === 'token') {
          // Refused: only a new token can help, and only if the server takes it.
          if (!hasRefresh) return this._fail(401, 'token refused: ' + p.why);
          if (this._refusedAfterRefresh) return this._fail(401, 'token refused after a refresh: ' + p.why);
          if (!(await this._newToken())) {
            if (!this._closed) this._fail(401, 'token refused: ' + p.why + '; ' + this._refreshError);
            return;
          }
          this._refusedAfterRefresh = true;
          this._retry(0, false);
        } else {
          // Reachable with a good token, busy, or unknown: retry. An unknown
          // answer may hide a stale token, so get a fresh one if the app can
          // (its failure is not final here).
          const stale = p.verdict === 'unknown' && hasRefresh;
          this._retry(null, stale);
        }
      });
    }

    // Retries after `delayMs` (null: jittered exponential backoff), getting
    // a new token first when `needToken`.
    _retry(delayMs, needToken) {
      const base = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * Math.pow(2, this._attempt));
      const delay = delayMs !== null ? delayMs : Math.round(base * (0.5 + Math.random() * 0.5));
      this._attempt++;
      this._setState('reconnecting', delay);
      this._timers.retry = setTimeout(async () => {
        delete this._timers.retry;
        if (needToken && !(await this._newToken())) {
          fire(this.onerror, this, { code: 0, description: this._refreshError });
        }
        if (!this._closed) this._connect();
      }, delay);
    }

    // Gives up for good: onerror, then onclose.
    _fail(code, description) {
      fire(this.onerror, this, { code, description });
      this._finish(code);
    }

    // The page came back online or visible: retry now instead of waiting.
    _wake() {
      if (this._closed || !this._timers.retry) return;
      this._clearTimer('retry');
      this._attempt = 0;
      this._connect();
    }

    _finish(code) {
      this._closed = true;
      for (const name of Object.keys(this._timers)) this._clearTimer(name);
      const ws = this._ws;
      if (ws) {
        this._detach(ws);
        try { ws.close(1000); } catch (e) { /* already closed */ }
      }
      if (global.removeEventListener) global.removeEventListener('online', this._onWake);
      if (global.document && global.document.removeEventListener) {
        global.document.removeEventListener('visibilitychange', this._onVisible);
      }
      this._setState('closed');
      fire(this.onclose, this, code === null ? undefined : { code });
    }
  }

  class Channel {
    constructor(token, options) {
      this.token = token;
      this.options = options || {};
    }

    // Opens the socket; handlers may also be set on it afterwards.
    open(handlers) {
      return new Socket(this, handlers);
    }
  }

  const clio = global.clio = global.clio || {};
  clio.Channel = Channel;
  const goog = global.goog = global.goog || {};
  goog.appengine = goog.appengine || {};
  goog.appengine.Channel = Channel;
})(typeof window !== 'undefined' ? window : globalThis);
