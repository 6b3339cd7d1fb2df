// ChannelService: tokens, send_message, replay rings, the accounting of every
// message, queries and the facade. Threads and locks: see impl.h.
#include <algorithm>
#include <cstdio>

#include "impl.h"

namespace clio::channel {

namespace proto = protocol;

bool valid_client_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void respond(const mg_connection* c, int status, const char* reason, const char* type, const std::string& body) {
  mg_printf(const_cast<mg_connection*>(c),
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
            "Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n%s",
            status, reason, type, body.size(), body.c_str());
}

thread_local ChannelService::Impl::Pending ChannelService::Impl::pending_;

ChannelService::Impl::Impl(ChannelOptions o)
    : opt_(std::move(o)),
      clock_(clock_or_real(opt_.clock)),
      signer_(opt_.secret.empty() ? random_hex(32) : opt_.secret),
      epoch_(random_hex(8)),
      tick_(std::clamp(opt_.heartbeat_interval / 4, milliseconds(10), milliseconds(250))) {
  event_thread_ = std::thread([this] { event_loop(); });
}

ChannelService::Impl::~Impl() { shutdown(); }

Result<Token> ChannelService::Impl::create_channel(const std::string& id, std::chrono::seconds duration) {
  if (!valid_client_id(id)) {
    return Status::InvalidArgument(
        "client id must be 1 to 64 characters of A-Z a-z 0-9 . _ : @ -");
  }
  duration = std::clamp(duration, std::chrono::seconds(1), std::chrono::seconds(24 * 3600));
  const int64_t now_ms = unix_millis();
  const int64_t expires = now_ms / 1000 + duration.count();
  MutexLock lk(&mu_);
  auto it = clients_.find(id);
  if (it == clients_.end() && clients_.size() >= opt_.max_clients) {
    return Status::ResourceExhausted("too many client ids (max_clients)");
  }
  ClientState& c = it == clients_.end() ? new_client_locked(id) : it->second;
  c.last_active = steady_now();
  // A token issued in the same millisecond as a revocation must still work.
  auto r = revoked_.find(id);
  const int64_t issued = (r != revoked_.end() && r->second >= now_ms) ? r->second + 1 : now_ms;
  return Token{signer_.issue(id, issued, expires), expires};
}

ClientState& ChannelService::Impl::new_client_locked(const std::string& id) {
  // A forgotten id starts above every seq it was given, so stale resume
  // points are detected.
  return clients_.emplace(id, ClientState(next_state_base_, opt_.replay_max_messages)).first->second;
}

SendResult ChannelService::Impl::refuse(SendResult why) {
  MutexLock lk(&mu_);
  ++stats_.rejected;
  return why;
}

SendResult ChannelService::Impl::send_data(const std::string& id, std::string data, uint64_t weight) {
  const auto now = steady_now();
  MutexLock lk(&mu_);
  if (stopping_) {
    ++stats_.rejected;
    return SendResult::kDropped;
  }
  auto it = clients_.find(id);
  if (it == clients_.end()) {
    ++stats_.rejected;
    return SendResult::kNoSuchClient;
  }
  ClientState& c = it->second;
  const uint64_t seq = c.next_seq++;
  // Only the seq needs the lock; the data was encoded outside it.
  std::string text = proto::encode_message(epoch_, seq, data);
  const size_t n = text.size();
  c.ring_bytes += n;
  c.ring.push_back(RingEntry{seq, now, std::make_shared<const std::string>(std::move(text)), weight});
  count_locked(c, &MessageCounts::accepted, 1);
  count_locked(c, &MessageCounts::pending, 1);
  count_locked(c, &MessageCounts::weight_accepted, weight);
  count_locked(c, &MessageCounts::weight_pending, weight);
  Session* live = c.live();
  if (live) {
    add_backlog_locked(*live, n);
    live->cv.Signal();
  }
  prune_ring_locked(c, now);
  return live ? SendResult::kQueued : SendResult::kKept;
}

// ---------------------------------------------------------------------------
// Rings, queues and accounting

void ChannelService::Impl::prune_ring_locked(ClientState& c, Clock::time_point now) {
  Session* live = c.live();
  while (!c.ring.empty()) {
    const RingEntry& e = c.ring.front();
    const bool over = c.ring.size() > opt_.replay_max_messages || c.ring_bytes > opt_.replay_max_bytes ||
                      now - e.at > opt_.replay_max_age;
    if (!over) break;
    // A live session's unwritten messages stay while they fit its queue.
    const bool behind = live != nullptr && e.seq >= live->cursor;
    if (behind && live->backlog_bytes <= opt_.max_queue_bytes) break;
    const size_t n = e.payload->size();
    switch (c.ledger.evict(e.seq, behind, e.weight)) {
      case Ledger::Eviction::kUnsent:
        settle_locked(c, live ? &MessageCounts::dropped_overflow : &MessageCounts::dropped_window, 1, e.weight);
        break;
      case Ledger::Eviction::kAfterDelivery:
        count_lost_after_delivery_locked(c, {.messages = 1, .weight = e.weight});
        break;
      case Ledger::Eviction::kNone:
        break;
    }
    if (behind) {
      live->backlog_bytes -= n;
      stats_.queued_bytes -= n;
    }
    c.ring_bytes -= n;
    c.ring.pop_front();
  }
  if (live && c.ledger.runs() > kMaxLossRuns) {
    live->stalled = true;
    ++stats_.stalled_closed;
    close_locked(*live, proto::kTooSlow, "too slow: fell behind too often");
  }
}

void ChannelService::Impl::count_locked(ClientState& c, uint64_t MessageCounts::*field, uint64_t n) {
  c.counts.*field += n;
  stats_.*field += n;
}

void ChannelService::Impl::settle_locked(ClientState& c, uint64_t MessageCounts::*kind, uint64_t n,
                                         uint64_t weight) {
  if (n == 0) return;
  count_locked(c, kind, n);
  if (kind == &MessageCounts::delivered) {
    count_locked(c, &MessageCounts::weight_delivered, weight);
  } else {
    count_locked(c, &MessageCounts::messages_lost, n);
    count_locked(c, &MessageCounts::weight_lost, weight);
  }
  c.counts.pending -= n;
  stats_.pending -= n;
  c.counts.weight_pending -= weight;
  stats_.weight_pending -= weight;
}

void ChannelService::Impl::discard_unsent_locked(ClientState& c) {
  // What the ledger has not accounted is all still in the ring: an eviction
  // accounts what it drops.
  uint64_t weight = 0;
  for (auto e = c.ring.rbegin(); e != c.ring.rend() && e->seq > c.ledger.accounted(); ++e) weight += e->weight;
  settle_locked(c, &MessageCounts::dropped_discarded, c.ledger.discard(c.next_seq - 1), weight);
}

void ChannelService::Impl::count_lost_after_delivery_locked(ClientState& c, const Ledger::Loss& loss) {
  count_locked(c, &MessageCounts::lost_after_delivery, loss.messages);
  count_locked(c, &MessageCounts::messages_lost, loss.messages);
  count_locked(c, &MessageCounts::weight_lost_after_delivery, loss.weight);
  count_locked(c, &MessageCounts::weight_lost, loss.weight);
  count_locked(c, &MessageCounts::lost_unweighed, loss.unweighed);
}

void ChannelService::Impl::add_backlog_locked(Session& s, size_t n) {
  s.backlog_bytes += n;
  stats_.queued_bytes += n;
}

void ChannelService::Impl::release_queued_locked(Session& s) {
  stats_.queued_bytes -= s.backlog_bytes + s.control_bytes;
  s.backlog_bytes = 0;
  s.control_bytes = 0;
  s.control.clear();
}

void ChannelService::Impl::enqueue_control_locked(Session& s, std::string text, int opcode) {
  s.control_bytes += text.size();
  stats_.queued_bytes += text.size();
  s.control.push_back(Control{std::make_shared<const std::string>(std::move(text)), opcode});
  s.cv.Signal();
}

void ChannelService::Impl::close_locked(Session& s, int code, std::string_view reason) {
  if (s.closing) return;
  s.closing = true;
  release_queued_locked(s);  // its messages stay in the ring for a resume
  enqueue_control_locked(s, proto::close_payload(code, reason), MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE);
}

bool ChannelService::Impl::revoked_locked(const TokenClaims& claims) const {
  auto r = revoked_.find(claims.client_id);
  return r != revoked_.end() && claims.issued_at <= r->second;
}

void ChannelService::Impl::forget_client_locked(std::unordered_map<std::string, ClientState>::iterator it) {
  ClientState& c = it->second;
  discard_unsent_locked(c);
  next_state_base_ = std::max(next_state_base_, c.next_seq);
  clients_.erase(it);
}

// ---------------------------------------------------------------------------
// Queries and control

bool ChannelService::Impl::is_connected(const std::string& id) const {
  MutexLock lk(&mu_);
  auto it = clients_.find(id);
  return it != clients_.end() && it->second.session != nullptr;
}

bool ChannelService::Impl::has_client(const std::string& id) const {
  MutexLock lk(&mu_);
  return clients_.count(id) > 0;
}

size_t ChannelService::Impl::session_count() const {
  MutexLock lk(&mu_);
  return sessions_.size();
}

size_t ChannelService::Impl::session_limit() const {
  MutexLock lk(&mu_);
  return session_limit_;
}

std::vector<std::string> ChannelService::Impl::connected_clients() const {
  std::vector<std::string> out;
  {
    MutexLock lk(&mu_);
    for (const auto& [id, c] : clients_) {
      if (c.session) out.push_back(id);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

ChannelStats ChannelService::Impl::stats() const {
  MutexLock lk(&mu_);
  ChannelStats s = stats_;
  s.sessions = sessions_.size();
  s.session_limit = session_limit_;
  s.clients = clients_.size();
  return s;
}

ClientStats ChannelService::Impl::client_stats_locked(const std::string& id, const ClientState& c) {
  ClientStats s;
  static_cast<MessageCounts&>(s) = c.counts;
  s.client_id = id;
  s.connected = c.session != nullptr;
  s.last_seq = c.next_seq > c.base_seq ? c.next_seq - 1 : 0;
  if (c.session) s.queued_bytes = c.session->backlog_bytes + c.session->control_bytes;
  return s;
}

Result<ClientStats> ChannelService::Impl::client_stats(const std::string& id) const {
  MutexLock lk(&mu_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return Status::NotFound("no channel state for client id '" + id + "'");
  return client_stats_locked(id, it->second);
}

std::vector<ClientStats> ChannelService::Impl::all_client_stats() const {
  std::vector<ClientStats> out;
  {
    MutexLock lk(&mu_);
    out.reserve(clients_.size());
    for (const auto& [id, c] : clients_) out.push_back(client_stats_locked(id, c));
  }
  std::sort(out.begin(), out.end(), [](const ClientStats& a, const ClientStats& b) { return a.client_id < b.client_id; });
  return out;
}

void ChannelService::Impl::disconnect(const std::string& id, DisconnectReason reason) {
  MutexLock lk(&mu_);
  auto it = clients_.find(id);
  if (reason == DisconnectReason::kRevoked) revoked_[id] = unix_millis();
  if (it == clients_.end()) return;
  ClientState& c = it->second;
  if (c.session) {
    if (reason == DisconnectReason::kRevoked) {
      close_locked(*c.session, proto::kRevoked, "revoked");
    } else {
      close_locked(*c.session, proto::kReconnect, "reconnect");
    }
  }
  if (reason == DisconnectReason::kRevoked) {
    discard_unsent_locked(c);
    c.ring.clear();
    c.ring_bytes = 0;
  }
}

bool ChannelService::Impl::wait_sessions_closed(milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lk(&mu_);
  while (!sessions_.empty() && sessions_cv_.WaitUntil(&mu_, deadline)) {
  }
  return sessions_.empty();
}

void ChannelService::Impl::housekeeping_for_test() {
  MutexLock lk(&mu_);
  housekeeping_locked();
}

void ChannelService::Impl::shutdown() {
  {
    MutexLock lk(&mu_);
    if (!stopping_) {
      stopping_ = true;
      for (auto& [conn, s] : sessions_) close_locked(*s, proto::kShuttingDown, "server shutting down");
      // Nothing unsent will be sent now: the epoch ends with the process.
      for (auto& [id, c] : clients_) discard_unsent_locked(c);
    }
    event_exit_ = true;
    event_cv_.SignalAll();
  }
  if (event_thread_.joinable()) event_thread_.join();
  // Responsive clients answer the close frame at once; the rest are closed
  // by CivetWeb at its next read timeout or by mg_stop.
  const auto grace = std::min(milliseconds(2000), opt_.websocket_timeout + milliseconds(500));
  if (!wait_sessions_closed(grace)) {
    std::vector<std::shared_ptr<Session>> left;
    {
      MutexLock lk(&mu_);
      for (auto& [conn, s] : sessions_) left.push_back(s);
    }
    for (auto& s : left) force_close(*s);
  }
}

// ---------------------------------------------------------------------------
// Facade

ChannelService::ChannelService(ChannelOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

ChannelService::~ChannelService() {
  impl_->shutdown();
  // CivetWeb calls back into the service until every session has closed,
  // which mg_stop guarantees. Destroying it earlier would leave dangling
  // callbacks, so in that (documented as wrong) case the state is leaked.
  if (!impl_->wait_sessions_closed(std::chrono::seconds(15))) {
    std::fprintf(stderr, "clio::channel: destroyed with sessions open (call mg_stop first); leaking state\n");
    (void)impl_.release();
  }
}

Status ChannelService::mount(mg_context* ctx, const std::string& path) { return impl_->mount(ctx, path); }
std::string ChannelService::client_script() const { return impl_->client_script(); }
Status ChannelService::serve_client(mg_context* ctx, const std::string& uri) { return impl_->serve_client(ctx, uri); }
Result<Token> ChannelService::create_channel(const std::string& id, std::chrono::seconds d) {
  return impl_->create_channel(id, d);
}
SendResult ChannelService::send_message(const std::string& id, std::string m) {
  if (m.size() > impl_->max_message_bytes()) return impl_->refuse(SendResult::kTooLarge);
  return impl_->send_data(id, proto::text_data(m), 1);
}
SendResult ChannelService::send_json(const std::string& id, std::string json, uint64_t weight) {
  if (json.size() > impl_->max_message_bytes()) return impl_->refuse(SendResult::kTooLarge);
  if (!proto::validate_json_value(json).ok()) return impl_->refuse(SendResult::kInvalid);
  return impl_->send_data(id, std::move(json), weight);
}
bool ChannelService::is_connected(const std::string& id) const { return impl_->is_connected(id); }
bool ChannelService::has_client(const std::string& id) const { return impl_->has_client(id); }
size_t ChannelService::session_count() const { return impl_->session_count(); }
size_t ChannelService::session_limit() const { return impl_->session_limit(); }
std::vector<std::string> ChannelService::connected_clients() const { return impl_->connected_clients(); }
ChannelStats ChannelService::stats() const { return impl_->stats(); }
Result<ClientStats> ChannelService::client_stats(const std::string& id) const { return impl_->client_stats(id); }
std::vector<ClientStats> ChannelService::all_client_stats() const { return impl_->all_client_stats(); }
std::string ChannelService::epoch() const { return impl_->epoch(); }
void ChannelService::disconnect(const std::string& id, DisconnectReason r) { impl_->disconnect(id, r); }
void ChannelService::shutdown() { impl_->shutdown(); }
void ChannelService::housekeeping_for_test() { impl_->housekeeping_for_test(); }

const char* to_string(SendResult r) {
  switch (r) {
    case SendResult::kQueued: return "queued";
    case SendResult::kKept: return "kept";
    case SendResult::kTooLarge: return "too_large";
    case SendResult::kNoSuchClient: return "no_such_client";
    case SendResult::kDropped: return "dropped";
    case SendResult::kInvalid: return "invalid";
  }
  return "unknown";
}

void append_recommended_civetweb_options(std::vector<std::string>& options, const ChannelOptions& channel) {
  auto has = [&](std::string_view name) {
    for (size_t i = 0; i + 1 < options.size(); i += 2) {
      if (options[i] == name) return true;
    }
    return false;
  };
  auto add = [&](const char* name, std::string value) {
    if (!has(name)) {
      options.emplace_back(name);
      options.push_back(std::move(value));
    }
  };
  add("enable_websocket_ping_pong", "yes");
  add("websocket_timeout_ms", std::to_string(channel.websocket_timeout.count()));
  add("tcp_nodelay", "1");
  add("request_timeout_ms", std::to_string((channel.write_stall_timeout + std::chrono::seconds(10)).count()));
}

}  // namespace clio::channel
