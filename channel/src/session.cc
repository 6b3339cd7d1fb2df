// ChannelService sessions: the CivetWeb callbacks, the sender thread of each
// session, and the event thread (presence, heartbeats, expiry, slow
// clients). Threads and locks: see impl.h.
#include <algorithm>
#include <cstdlib>

#include "impl.h"

namespace clio::channel {

namespace proto = protocol;

namespace {
// CivetWeb keeps this pointer: it must outlive every mount.
const char* kProtocols[] = {"clio.v1"};
mg_websocket_subprotocols kSubprotocols = {1, kProtocols};
// Sender batches: one socket write takes at most about this much.
constexpr size_t kBatchBytes = 256 * 1024;
// An admission whose handshake never completed is forgotten after this.
constexpr auto kAdmissionTimeout = std::chrono::seconds(30);
}  // namespace

Status ChannelService::Impl::mount(mg_context* ctx, const std::string& path) {
  if (ctx == nullptr) return Status::InvalidArgument("mount: no CivetWeb context");
  if (path.empty() || path[0] != '/' || path.find_first_of("$*?|") != std::string::npos) {
    return Status::InvalidArgument("mount: path must start with '/' and hold no pattern characters: " + path);
  }
  // One worker thread per session: keep some for HTTP (docs/ARCHITECTURE.md, CivetWeb facts).
  const char* threads_opt = mg_get_option(ctx, "num_threads");
  const long threads = threads_opt && *threads_opt ? std::strtol(threads_opt, nullptr, 10) : 50;
  if (threads <= 0 || static_cast<size_t>(threads) <= opt_.reserved_http_threads) {
    return Status::InvalidArgument("mount: num_threads " + std::to_string(threads) + " leaves no worker thread for "
                                   "channel sessions after the " + std::to_string(opt_.reserved_http_threads) +
                                   " reserved for HTTP (ChannelOptions::reserved_http_threads); raise num_threads");
  }
  {
    MutexLock lk(&mu_);
    if (stopping_) return Status::Unavailable("mount: the channel service is shut down");
    if (mounted_) return Status::AlreadyExists("mount: the channel service is already mounted");
    mounted_ = true;
    session_limit_ = std::min(opt_.max_sessions, static_cast<size_t>(threads) - opt_.reserved_http_threads);
    script_ = make_client_script(path);
  }
  mg_set_websocket_handler_with_subprotocols(
      ctx, path.c_str(), &kSubprotocols,
      [](const mg_connection* c, void* d) { return static_cast<Impl*>(d)->on_connect(c); },
      [](mg_connection* c, void* d) { static_cast<Impl*>(d)->on_ready(c); },
      [](mg_connection* c, int bits, char* data, size_t len, void* d) {
        return static_cast<Impl*>(d)->on_data(c, bits, data, len);
      },
      [](const mg_connection* c, void* d) { static_cast<Impl*>(d)->on_close(c); }, this);
  // "$" anchors the pattern: CivetWeb matches handler URIs as prefixes.
  mg_set_request_handler(
      ctx, (path + "$").c_str(), [](mg_connection* c, void* d) { return static_cast<Impl*>(d)->on_probe(c); }, this);
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// CivetWeb callbacks

int ChannelService::Impl::refusal_locked(const Result<TokenClaims>& claims, std::string* why) const {
  if (stopping_) {
    *why = "channel is shutting down";
    return 503;
  }
  if (!claims.ok() || !valid_client_id(claims->client_id) || revoked_locked(*claims)) {
    *why = claims.ok() ? std::string("token revoked") : claims.status().message();
    return 401;
  }
  if (sessions_.size() + admitting_.size() >= session_limit_) {
    *why = "too many channel sessions: this server admits " + std::to_string(session_limit_) +
           " (CivetWeb num_threads minus " + std::to_string(opt_.reserved_http_threads) + " kept for HTTP)";
    return 503;
  }
  return 0;
}

int ChannelService::Impl::on_connect(const mg_connection* c) {
  const char* h = mg_get_header(c, "Sec-WebSocket-Protocol");
  auto offer = proto::parse_offer(h ? h : "");
  MutexLock lk(&mu_);
  if (!stopping_ && (!offer.ok() || !offer->has_protocol)) {
    respond(c, 400, "Bad Request", "text/plain; charset=utf-8",
            (offer.ok() ? "offer the subprotocol clio.v1" : offer.status().message()) + "\n");
    return 1;
  }
  auto claims = signer_.verify(offer.ok() ? offer->token : "", unix_seconds());
  std::string why;
  switch (refusal_locked(claims, &why)) {
    case 0:
      break;
    case 401:
      ++stats_.auth_failures;
      respond(c, 401, "Unauthorized", "text/plain; charset=utf-8", why + "\n");
      return 1;
    default:
      if (!stopping_) ++stats_.refused_full;
      respond(c, 503, "Service Unavailable", "text/plain; charset=utf-8", why + "\n");
      return 1;
  }
  admitting_[c] = steady_now();
  ++stats_.upgrades;
  // connect and ready run back to back on this worker thread.
  pending_ = Pending{c, ++admissions_, std::move(*claims), std::move(*offer)};
  return 0;
}

void ChannelService::Impl::start_session_locked(Session& s, ClientState& c, const proto::Offer& offer) {
  // Where delivery continues: the first seq this connection should get.
  uint64_t from;
  bool resumed = false;
  std::vector<std::string> pre;  // gap notices whose loss is unknown
  if (offer.has_resume && offer.epoch == epoch_) {
    resumed = true;
    from = offer.seq + 1;
    if (from < c.base_seq) {
      // This client id's state was forgotten since: how much it missed then is unknown.
      pre.push_back(proto::encode_gap(epoch_, from, c.base_seq - 1, false));
      from = c.base_seq;
    }
    // A client cannot hold what was never sent: clamp a position from the future.
    from = std::min(from, c.ledger.accounted() + 1);
    // What it lacks below the ring was delivered to a connection it did not read.
    count_lost_after_delivery_locked(c, c.ledger.resume(offer.seq, c.ring_first()));
  } else if (offer.has_resume) {
    // The server restarted: whatever the old epoch still held is gone.
    pre.push_back(proto::encode_epoch_gap(epoch_));
    from = c.base_seq;
  } else {
    // A first connection gets what no earlier connection was handed.
    from = c.written_hw + 1;
  }
  std::string w = proto::encode_welcome({.epoch = epoch_,
                                         .client_id = s.client_id,
                                         .seq = from - 1,
                                         .resumed = resumed,
                                         .expires_at = s.expires_at,
                                         .now = unix_seconds(),
                                         .heartbeat_ms = opt_.heartbeat_interval.count(),
                                         .heartbeat_timeout_ms = opt_.heartbeat_timeout.count(),
                                         .max_message_bytes = opt_.max_message_bytes});
  enqueue_control_locked(s, std::move(w));
  for (std::string& g : pre) {
    ++stats_.gaps_reported;
    enqueue_control_locked(s, std::move(g));
  }
  // The sender writes from the cursor at the pace the socket takes; a gap
  // notice covers whatever the ring no longer holds when it gets there.
  s.cursor = from;
  s.replay_end = resumed ? c.next_seq - 1 : 0;
  for (const RingEntry& e : c.ring) {
    if (e.seq >= from) add_backlog_locked(s, e.payload->size());
  }
}

void ChannelService::Impl::on_ready(mg_connection* conn) {
  if (pending_.conn != conn) {
    mg_close_connection(conn);  // cannot happen: connect always precedes ready
    return;
  }
  Pending p = std::move(pending_);
  pending_ = Pending{};
  auto s = std::make_shared<Session>();
  s->client_id = p.claims.client_id;
  s->conn = conn;
  s->admitted = p.admitted;
  s->expires_at = p.claims.expires_at;
  s->last_recv = s->last_send = steady_now();
  {
    MutexLock lk(&mu_);
    admitting_.erase(conn);
    sessions_[conn] = s;
    if (stopping_) {
      close_locked(*s, proto::kShuttingDown, "server shutting down");
    } else {
      auto it = clients_.find(s->client_id);
      ClientState& c = it == clients_.end() ? new_client_locked(s->client_id) : it->second;
      c.last_active = steady_now();
      if (c.session && c.session->admitted > s->admitted) {
        // A later upgrade for this id got here first (worker threads race
        // between handshake and ready): this older one is superseded.
        close_locked(*s, proto::kSuperseded, "superseded by a newer connection");
        ++stats_.superseded;
      } else {
        if (c.session) {
          close_locked(*c.session, proto::kSuperseded, "superseded by a newer connection");
          ++stats_.superseded;
        } else {
          events_.push_back(Event{true, s->client_id});
          event_cv_.Signal();
        }
        prune_ring_locked(c, steady_now());  // to the replay bounds: no live session now
        c.session = s;
        start_session_locked(*s, c, p.offer);
      }
    }
  }
  s->sender = std::thread([this, s] { sender_loop(s); });
}

int ChannelService::Impl::on_data(mg_connection* conn, int bits, char* data, size_t len) {
  const int opcode = bits & 0x0F;
  const bool fin = (bits & 0x80) != 0;
  std::shared_ptr<Session> s;
  {
    MutexLock lk(&mu_);
    auto it = sessions_.find(conn);
    if (it == sessions_.end()) return 0;
    s = it->second;
    s->last_recv = steady_now();
  }
  switch (opcode) {
    case MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE: {
      // CivetWeb does not answer a client's Close (docs/ARCHITECTURE.md, CivetWeb facts): echo it,
      // unless this side already sent one.
      {
        MutexLock wl(&s->write_mu);
        if (!s->conn_gone && !s->close_written) {
          s->close_written = true;
          mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, data, std::min<size_t>(len, 125));
        }
      }
      MutexLock lk(&mu_);
      s->closing = true;
      s->writer_exit = true;
      release_queued_locked(*s);
      s->cv.Signal();
      return 0;
    }
    case MG_WEBSOCKET_OPCODE_PING: {
      MutexLock lk(&mu_);
      // Answered through the sender so it stays the only writer.
      if (!s->closing) {
        enqueue_control_locked(*s, std::string(data, std::min<size_t>(len, 125)), MG_WEBSOCKET_OPCODE_PONG);
      }
      return 1;
    }
    case MG_WEBSOCKET_OPCODE_PONG:
      return 1;
    case MG_WEBSOCKET_OPCODE_TEXT:
    case MG_WEBSOCKET_OPCODE_CONTINUATION:
      break;
    default: {  // binary frames are not part of the protocol
      MutexLock lk(&mu_);
      close_locked(*s, proto::kProtocolError, "binary frames are not accepted");
      return 1;
    }
  }
  if (opcode == MG_WEBSOCKET_OPCODE_TEXT) {
    s->fragments.assign(data, len);
    s->in_fragmented = !fin;
  } else {
    if (!s->in_fragmented) {
      MutexLock lk(&mu_);
      close_locked(*s, proto::kProtocolError, "continuation without a start");
      return 1;
    }
    s->fragments.append(data, len);
    s->in_fragmented = !fin;
  }
  if (s->fragments.size() > opt_.max_client_frame_bytes) {
    s->fragments.clear();
    s->in_fragmented = false;
    MutexLock lk(&mu_);
    close_locked(*s, proto::kMessageTooBig, "client frame too large");
    return 1;
  }
  if (!fin) return 1;
  auto frame = proto::parse_client_frame(s->fragments, opt_.max_client_frame_bytes);
  s->fragments.clear();
  MutexLock lk(&mu_);
  if (!frame.ok()) {
    close_locked(*s, proto::kProtocolError, frame.status().message());
    return 1;
  }
  if (frame->type == proto::ClientFrame::Type::kRefresh && !s->closing) {
    auto claims = signer_.verify(frame->token, unix_seconds());
    std::string reply;
    if (claims.ok() && claims->client_id == s->client_id && !revoked_locked(*claims)) {
      s->expires_at = std::max(s->expires_at, claims->expires_at);
      reply = proto::encode_refreshed(s->expires_at);
    } else {
      std::string why = claims.ok() ? (claims->client_id != s->client_id ? "token is for another client id"
                                                                          : "token revoked")
                                    : claims.status().message();
      reply = proto::encode_error("refresh_rejected", why);
    }
    enqueue_control_locked(*s, std::move(reply));
  }
  return 1;
}

void ChannelService::Impl::on_close(const mg_connection* conn) {
  std::shared_ptr<Session> s;
  {
    MutexLock lk(&mu_);
    auto it = sessions_.find(conn);
    if (it == sessions_.end()) return;
    s = it->second;
    sessions_.erase(it);
    s->closing = true;
    s->writer_exit = true;
    release_queued_locked(*s);
    s->cv.Signal();
    auto c = clients_.find(s->client_id);
    if (c != clients_.end() && c->second.session == s) {
      c->second.session.reset();
      c->second.last_active = steady_now();
      if (!stopping_) {
        events_.push_back(Event{false, s->client_id});
        event_cv_.Signal();
      }
    }
    sessions_cv_.SignalAll();
  }
  {
    MutexLock cl(&s->conn_mu);
    s->conn_valid = false;
  }
  {
    // Waits for a write in progress; afterwards nobody touches conn.
    MutexLock wl(&s->write_mu);
    s->conn_gone = true;
  }
  if (s->sender.joinable()) s->sender.join();
}

// ---------------------------------------------------------------------------
// Threads

void ChannelService::Impl::force_close(Session& s) {
  MutexLock cl(&s.conn_mu);
  // For a server websocket this only sets a flag; the read loop exits at its
  // next read timeout (docs/ARCHITECTURE.md, CivetWeb facts).
  if (s.conn_valid) mg_close_connection(s.conn);
}

ClientState* ChannelService::Impl::owner_locked(const Session& s) {
  auto it = clients_.find(s.client_id);
  return it != clients_.end() && it->second.session.get() == &s ? &it->second : nullptr;
}

size_t ChannelService::Impl::take_batch_locked(Session& s, std::string& buf, bool& wrote_close) {
  size_t frames = 0;
  wrote_close = false;
  while (!s.control.empty() && buf.size() < kBatchBytes && !wrote_close) {
    Control f = std::move(s.control.front());
    s.control.pop_front();
    s.control_bytes -= f.payload->size();
    stats_.queued_bytes -= f.payload->size();
    proto::append_frame_header(buf, f.opcode, f.payload->size());
    buf.append(*f.payload);
    wrote_close = f.opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE;
    ++frames;
  }
  ClientState* c = wrote_close || s.closing ? nullptr : owner_locked(s);
  if (c == nullptr) return frames;
  const uint64_t first = c->ring_first();
  if (s.cursor < first && s.cursor < c->next_seq) {
    // Gone from the ring before this session wrote them (already counted).
    const std::string g = proto::encode_gap(epoch_, s.cursor, first - 1, true);
    proto::append_frame_header(buf, MG_WEBSOCKET_OPCODE_TEXT, g.size());
    buf.append(g);
    ++stats_.gaps_reported;
    ++frames;
    s.cursor = first;
  }
  for (size_t i = s.cursor - first; i < c->ring.size() && buf.size() < kBatchBytes; ++i) {
    const RingEntry& e = c->ring[i];
    const size_t n = e.payload->size();
    proto::append_frame_header(buf, MG_WEBSOCKET_OPCODE_TEXT, n);
    buf.append(*e.payload);
    ++frames;
    if (c->ledger.deliver(e.seq)) settle_locked(*c, &MessageCounts::delivered, 1, e.weight);
    if (e.seq <= s.replay_end) count_locked(*c, &MessageCounts::replayed, 1);
    c->written_hw = std::max(c->written_hw, e.seq);
    s.backlog_bytes -= n;
    stats_.queued_bytes -= n;
    s.cursor = e.seq + 1;
  }
  return frames;
}

bool ChannelService::Impl::sender_has_work_locked(const Session& s) {
  if (s.writer_exit || !s.control.empty()) return true;
  const ClientState* c = s.closing ? nullptr : owner_locked(s);
  return c != nullptr && s.cursor < c->next_seq;
}

void ChannelService::Impl::sender_loop(std::shared_ptr<Session> s) {
  std::string buf;
  for (;;) {
    bool wrote_close = false;
    size_t frames = 0;
    Clock::time_point taken;  // when the batch left the queue
    buf.clear();
    {
      MutexLock lk(&mu_);
      while (!sender_has_work_locked(*s)) s->cv.Wait(&mu_);
      if (s->writer_exit) return;
      frames = take_batch_locked(*s, buf, wrote_close);
      if (buf.empty()) continue;
      s->writing = true;
      s->write_started = taken = steady_now();
    }
    bool ok = false;
    bool gone = false;
    {
      MutexLock wl(&s->write_mu);
      if (s->conn_gone || s->close_written) {
        gone = true;
      } else {
        mg_lock_connection(s->conn);
        const int r = mg_write(s->conn, buf.data(), buf.size());
        mg_unlock_connection(s->conn);
        ok = r >= 0 && static_cast<size_t>(r) == buf.size();
        if (wrote_close) s->close_written = true;
        // A short write leaves a corrupt stream (docs/ARCHITECTURE.md, CivetWeb facts): say nothing more.
        if (!ok || wrote_close) mg_close_connection(s->conn);
      }
    }
    MutexLock lk(&mu_);
    s->writing = false;
    // The time the batch was taken, not now: once a client has read a frame,
    // its send time is what the heartbeat judges idleness by, whatever the
    // clock reads by the time this thread is back.
    s->last_send = taken;
    if (gone) return;
    if (ok) {
      stats_.frames_sent += frames;
    } else {
      ++stats_.write_errors;
    }
    if (!ok || wrote_close) {
      s->closing = true;
      s->writer_exit = true;
      release_queued_locked(*s);
      return;
    }
  }
}

void ChannelService::Impl::housekeeping_locked() {
  const auto now = steady_now();
  const int64_t now_unix = unix_seconds();
  for (auto& [conn, s] : sessions_) {
    if (s->writing && !s->stalled && now - s->write_started > opt_.write_stall_timeout) {
      // Too slow: nothing more but the close frame, written once the socket
      // takes the write in progress (or the write fails and the connection
      // is dropped).
      s->stalled = true;
      ++stats_.stalled_closed;
      close_locked(*s, proto::kTooSlow, "too slow: the socket took nothing for " +
                                            std::to_string(opt_.write_stall_timeout.count()) + " ms");
      continue;
    }
    if (s->closing) continue;
    if (now - s->last_recv > opt_.heartbeat_timeout) {
      ++stats_.heartbeat_closed;
      close_locked(*s, proto::kHeartbeatTimeout, "no heartbeat from the client");
    } else if (now_unix >= s->expires_at) {
      close_locked(*s, proto::kTokenExpired, "token expired");
    } else if (!s->writing && s->control.empty() && s->backlog_bytes == 0 &&
               now - s->last_send >= opt_.heartbeat_interval) {
      s->last_send = now;
      enqueue_control_locked(*s, std::string(proto::kHeartbeatFrame));
    }
  }
  for (auto it = clients_.begin(); it != clients_.end();) {
    ClientState& c = it->second;
    prune_ring_locked(c, now);
    if (!c.session && now - c.last_active > opt_.replay_max_age) {
      auto dead = it++;
      forget_client_locked(dead);
    } else {
      ++it;
    }
  }
  for (auto it = admitting_.begin(); it != admitting_.end();) {
    it = now - it->second > kAdmissionTimeout ? admitting_.erase(it) : std::next(it);
  }
  const int64_t now_ms = unix_millis();
  for (auto it = revoked_.begin(); it != revoked_.end();) {
    // Tokens live at most 24 h, so older revocations cover nothing.
    it = now_ms - it->second > 25LL * 3600 * 1000 ? revoked_.erase(it) : std::next(it);
  }
}

void ChannelService::Impl::event_loop() {
  auto next_housekeeping = std::chrono::steady_clock::now();
  MutexLock lk(&mu_);
  for (;;) {
    while (!event_exit_ && events_.empty() && event_cv_.WaitUntil(&mu_, next_housekeeping)) {
    }
    if (event_exit_) return;
    while (!events_.empty()) {
      Event e = std::move(events_.front());
      events_.pop_front();
      const auto& cb = e.connect ? opt_.on_connect : opt_.on_disconnect;
      if (!cb) continue;
      mu_.Unlock();
      cb(e.client_id);  // never under a channel lock
      mu_.Lock();
      if (event_exit_) return;
    }
    if (std::chrono::steady_clock::now() >= next_housekeeping) {
      housekeeping_locked();
      next_housekeeping = std::chrono::steady_clock::now() + tick_;
    }
  }
}

}  // namespace clio::channel
