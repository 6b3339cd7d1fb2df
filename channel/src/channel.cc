// ChannelService: tokens, sessions, replay rings, sender threads.
//
// Threads and locks:
// - CivetWeb worker threads run the connect/ready/data/close callbacks; one
//   worker per open session for the whole session.
// - One sender thread per session writes its queue to the socket. It is the
//   only thread that writes to that socket, except the close echo written by
//   the data callback (under the session's write_mu).
// - One event thread delivers presence callbacks and runs housekeeping
//   (heartbeats, expiry, stalled writers, forgetting idle client ids).
// - mu_ guards all service state. Session::write_mu is held for the duration
//   of one socket write and by the close callback to retire the connection;
//   Session::conn_mu guards the pointer for mg_close_connection from other
//   threads. No thread holds two of these at once, and no user callback runs
//   under any of them.
#include "clio/channel/channel.h"

#include <civetweb.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "clio/channel/protocol.h"
#include "token.h"

namespace clio::channel {

namespace proto = protocol;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}
int64_t unix_millis() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

bool valid_client_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Writes a complete HTTP response on an upgrade request that is refused
// (mg_send_http_error would omit the status line here; notes §3.1).
void reject(const mg_connection* c, int status, const char* reason, const std::string& body) {
  mg_printf(const_cast<mg_connection*>(c),
            "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n%s",
            status, reason, body.size(), body.c_str());
}

using Payload = std::shared_ptr<const std::string>;

// One entry of an outbound queue.
struct Frame {
  enum class Kind { kMessage, kControl, kGap, kClose };
  Kind kind = Kind::kControl;
  Payload payload;        // kMessage, kControl, kClose (close payload: code + reason)
  uint64_t seq = 0;       // kMessage; kGap: first lost seq
  uint64_t gap_to = 0;    // kGap: last lost seq
  int opcode = MG_WEBSOCKET_OPCODE_TEXT;  // kControl: text, or pong
};

struct RingEntry {
  uint64_t seq;
  Clock::time_point at;
  Payload payload;
};

}  // namespace

// Const methods are thread-safe, non-const methods need external
// synchronization: each member group names the lock that guards it. One
// WebSocket connection.
struct Session {
  // Constant after construction.
  std::string client_id;
  mg_connection* conn = nullptr;

  // Guarded by ChannelService::Impl::mu_.
  std::deque<Frame> queue;
  size_t queued_bytes = 0;
  bool closing = false;        // a close frame is queued or the socket is being closed
  bool writer_exit = false;    // the sender thread must stop
  bool writing = false;
  Clock::time_point write_started;
  Clock::time_point last_send;
  Clock::time_point last_recv;
  int64_t expires_at = 0;      // unix seconds; refresh extends it
  std::condition_variable cv;  // waited on by the sender thread with mu_

  // Touched only by the session's CivetWeb worker thread (data callback).
  std::string fragments;
  bool in_fragmented = false;

  // Guarded by write_mu (held for the whole of one socket write).
  std::mutex write_mu;
  bool conn_gone = false;      // the close callback ran: conn must not be used
  bool close_written = false;

  // Guarded by conn_mu.
  std::mutex conn_mu;
  bool conn_valid = true;

  std::thread sender;  // joined by the close callback
};

// Const methods are thread-safe, non-const methods need external
// synchronization (ChannelService::Impl::mu_). What the service keeps per
// client id: the seq counter, the replay ring and the current session.
struct ClientState {
  // Guarded by ChannelService::Impl::mu_.
  uint64_t base_seq = 1;   // first seq this state assigned
  uint64_t next_seq = 1;   // seq of the next message
  uint64_t delivered = 0;  // highest seq handed to any session queue
  std::deque<RingEntry> ring;
  size_t ring_bytes = 0;
  std::shared_ptr<Session> session;
  Clock::time_point last_active;
};

class ChannelService::Impl {
 public:
  explicit Impl(ChannelOptions o);
  ~Impl();

  Status mount(mg_context* ctx, const std::string& path);
  Result<Token> create_channel(const std::string& id, std::chrono::seconds duration);
  SendResult send_message(const std::string& id, std::string message);
  bool is_connected(const std::string& id) const;
  bool has_client(const std::string& id) const;
  size_t session_count() const;
  std::vector<std::string> connected_clients() const;
  ChannelStats stats() const;
  void disconnect(const std::string& id, DisconnectReason reason);
  void shutdown();
  // True once every session has closed (after shutdown and mg_stop).
  bool wait_sessions_closed(milliseconds timeout);

  const std::string& epoch() const { return epoch_; }

  // CivetWeb callbacks.
  int on_connect(const mg_connection* c);
  void on_ready(mg_connection* c);
  int on_data(mg_connection* c, int bits, char* data, size_t len);
  void on_close(const mg_connection* c);

 private:
  struct Pending {
    const mg_connection* conn = nullptr;
    TokenClaims claims;
    proto::Offer offer;
  };
  struct Event {
    bool connect;
    std::string client_id;
  };

  // All *_locked functions require mu_.
  void enqueue_locked(Session& s, Frame f);
  void close_locked(Session& s, int code, std::string_view reason);
  void push_ring_locked(ClientState& c, uint64_t seq, Payload p, Clock::time_point now);
  void prune_ring_locked(ClientState& c, Clock::time_point now);
  void forget_client_locked(std::unordered_map<std::string, ClientState>::iterator it);
  bool revoked_locked(const TokenClaims& claims) const;
  void replay_locked(Session& s, ClientState& c, const proto::Offer& offer);
  Payload control(std::string text) const { return std::make_shared<const std::string>(std::move(text)); }
  std::string gap_json(uint64_t from, uint64_t to, bool known) const;

  void sender_loop(std::shared_ptr<Session> s);
  void event_loop();
  // One housekeeping pass; returns sessions to close from outside mu_.
  void housekeeping(std::vector<std::shared_ptr<Session>>& to_force_close);
  static void force_close(Session& s);

  // Constant after construction.
  const ChannelOptions opt_;
  const TokenSigner signer_;
  const std::string epoch_;
  const milliseconds tick_;

  static thread_local Pending pending_;

  mutable std::mutex mu_;
  // Guarded by mu_.
  bool mounted_ = false;
  bool stopping_ = false;
  bool event_exit_ = false;
  std::unordered_map<std::string, ClientState> clients_;
  std::unordered_map<const mg_connection*, std::shared_ptr<Session>> sessions_;
  std::map<std::string, int64_t> revoked_;  // client id -> revoked at (unix ms)
  uint64_t next_state_base_ = 1;
  std::deque<Event> events_;
  std::condition_variable event_cv_;
  std::condition_variable sessions_cv_;  // signalled when a session closes
  ChannelStats stats_;

  std::thread event_thread_;  // started in the constructor, joined by shutdown
};

thread_local ChannelService::Impl::Pending ChannelService::Impl::pending_;

namespace {
// CivetWeb keeps this pointer: it must outlive every mount.
const char* kProtocols[] = {"clio.v1"};
mg_websocket_subprotocols kSubprotocols = {1, kProtocols};

}  // namespace

ChannelService::Impl::Impl(ChannelOptions o)
    : opt_(std::move(o)),
      signer_(opt_.secret.empty() ? random_hex(32) : opt_.secret),
      epoch_(random_hex(8)),
      tick_(std::clamp(opt_.heartbeat_interval / 4, milliseconds(10), milliseconds(250))) {
  event_thread_ = std::thread([this] { event_loop(); });
}

ChannelService::Impl::~Impl() { shutdown(); }

Status ChannelService::Impl::mount(mg_context* ctx, const std::string& path) {
  if (ctx == nullptr) return Status::InvalidArgument("mount: no CivetWeb context");
  if (path.empty() || path[0] != '/' || path.find_first_of("$*?|") != std::string::npos) {
    return Status::InvalidArgument("mount: path must start with '/' and hold no pattern characters: " + path);
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) return Status::Unavailable("mount: the channel service is shut down");
    if (mounted_) return Status::AlreadyExists("mount: the channel service is already mounted");
    mounted_ = true;
  }
  mg_set_websocket_handler_with_subprotocols(
      ctx, path.c_str(), &kSubprotocols,
      [](const mg_connection* c, void* d) { return static_cast<Impl*>(d)->on_connect(c); },
      [](mg_connection* c, void* d) { static_cast<Impl*>(d)->on_ready(c); },
      [](mg_connection* c, int bits, char* data, size_t len, void* d) {
        return static_cast<Impl*>(d)->on_data(c, bits, data, len);
      },
      [](const mg_connection* c, void* d) { static_cast<Impl*>(d)->on_close(c); }, this);
  return Status::Ok();
}

Result<Token> ChannelService::Impl::create_channel(const std::string& id, std::chrono::seconds duration) {
  if (!valid_client_id(id)) {
    return Status::InvalidArgument(
        "client id must be 1 to 64 characters of A-Z a-z 0-9 . _ : @ -");
  }
  duration = std::clamp(duration, std::chrono::seconds(1), std::chrono::seconds(24 * 3600));
  const int64_t now_ms = unix_millis();
  const int64_t expires = now_ms / 1000 + duration.count();
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = clients_.find(id);
    if (it == clients_.end()) {
      if (clients_.size() >= opt_.max_clients) {
        return Status::ResourceExhausted("too many client ids (max_clients)");
      }
      it = clients_.emplace(id, ClientState{}).first;
      it->second.base_seq = it->second.next_seq = next_state_base_;
      it->second.delivered = next_state_base_ - 1;
    }
    it->second.last_active = Clock::now();
    // A token issued in the same millisecond as a revocation must still work.
    auto r = revoked_.find(id);
    const int64_t issued = (r != revoked_.end() && r->second >= now_ms) ? r->second + 1 : now_ms;
    return Token{signer_.issue(id, issued, expires), expires};
  }
}

SendResult ChannelService::Impl::send_message(const std::string& id, std::string message) {
  if (message.size() > opt_.max_message_bytes) {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.rejected;
    return SendResult::kTooLarge;
  }
  // Escape outside the lock; only the seq is filled in under it.
  std::string tail = R"(,"data":)";
  proto::append_json_string(tail, message);
  tail.push_back('}');
  const auto now = Clock::now();
  std::lock_guard<std::mutex> lk(mu_);
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
  std::string text;
  text.reserve(tail.size() + epoch_.size() + 40);
  text.append(R"({"t":"msg","epoch":")").append(epoch_).append(R"(","seq":)").append(std::to_string(seq));
  text.append(tail);
  Payload p = std::make_shared<const std::string>(std::move(text));
  push_ring_locked(c, seq, p, now);
  if (c.session && !c.session->closing) {
    enqueue_locked(*c.session, Frame{Frame::Kind::kMessage, std::move(p), seq, 0});
    c.delivered = seq;
  }
  ++stats_.accepted;
  return SendResult::kQueued;
}

void ChannelService::Impl::push_ring_locked(ClientState& c, uint64_t seq, Payload p, Clock::time_point now) {
  c.ring_bytes += p->size();
  c.ring.push_back(RingEntry{seq, now, std::move(p)});
  prune_ring_locked(c, now);
}

void ChannelService::Impl::prune_ring_locked(ClientState& c, Clock::time_point now) {
  while (!c.ring.empty() &&
         (c.ring.size() > opt_.replay_max_messages || c.ring_bytes > opt_.replay_max_bytes ||
          now - c.ring.front().at > opt_.replay_max_age)) {
    c.ring_bytes -= c.ring.front().payload->size();
    c.ring.pop_front();
  }
}

void ChannelService::Impl::enqueue_locked(Session& s, Frame f) {
  const bool was_empty = s.queue.empty();
  const size_t n = f.payload ? f.payload->size() : 0;
  s.queue.push_back(std::move(f));
  s.queued_bytes += n;
  stats_.queued_bytes += n;
  // Overflow: drop the oldest messages, leaving a gap marker in their place
  // so the client learns exactly which seqs it lost, in order.
  size_t i = 0;
  while (s.queued_bytes > opt_.max_queue_bytes && i < s.queue.size()) {
    Frame& q = s.queue[i];
    if (q.kind != Frame::Kind::kMessage) {
      ++i;
      continue;
    }
    const size_t sz = q.payload->size();
    s.queued_bytes -= sz;
    stats_.queued_bytes -= sz;
    ++stats_.dropped_overflow;
    const uint64_t seq = q.seq;
    if (i > 0 && s.queue[i - 1].kind == Frame::Kind::kGap && s.queue[i - 1].gap_to + 1 == seq) {
      s.queue[i - 1].gap_to = seq;
      s.queue.erase(s.queue.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      q = Frame{Frame::Kind::kGap, nullptr, seq, seq};
      ++i;
    }
  }
  if (was_empty) s.cv.notify_one();
}

void ChannelService::Impl::close_locked(Session& s, int code, std::string_view reason) {
  if (s.closing) return;
  s.closing = true;
  for (const Frame& f : s.queue) {
    const size_t n = f.payload ? f.payload->size() : 0;
    stats_.queued_bytes -= n;
  }
  s.queue.clear();
  s.queued_bytes = 0;
  std::string payload;
  payload.push_back(static_cast<char>((code >> 8) & 0xFF));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(reason.substr(0, 120));
  s.queue.push_back(Frame{Frame::Kind::kClose, control(std::move(payload)), 0, 0});
  s.cv.notify_one();
}

std::string ChannelService::Impl::gap_json(uint64_t from, uint64_t to, bool known) const {
  std::string g = R"({"t":"gap","epoch":")" + epoch_ + R"(","from":)" + std::to_string(from) +
                  R"(,"to":)" + std::to_string(to) + R"(,"lost":)";
  g += known ? std::to_string(to - from + 1) : "null";
  g += "}";
  return g;
}

bool ChannelService::Impl::revoked_locked(const TokenClaims& claims) const {
  auto r = revoked_.find(claims.client_id);
  return r != revoked_.end() && claims.issued_at <= r->second;
}

void ChannelService::Impl::forget_client_locked(std::unordered_map<std::string, ClientState>::iterator it) {
  next_state_base_ = std::max(next_state_base_, it->second.next_seq);
  clients_.erase(it);
}

// ---------------------------------------------------------------------------
// CivetWeb callbacks

int ChannelService::Impl::on_connect(const mg_connection* c) {
  const char* h = mg_get_header(c, "Sec-WebSocket-Protocol");
  auto offer = proto::parse_offer(h ? h : "");
  const int64_t now = unix_seconds();
  std::lock_guard<std::mutex> lk(mu_);
  if (stopping_) {
    reject(c, 503, "Service Unavailable", "channel is shutting down\n");
    return 1;
  }
  if (!offer.ok() || !offer->has_protocol) {
    reject(c, 400, "Bad Request",
           offer.ok() ? "offer the subprotocol clio.v1\n" : offer.status().message() + "\n");
    return 1;
  }
  auto claims = signer_.verify(offer->token, now);
  if (!claims.ok() || !valid_client_id(claims->client_id) || revoked_locked(*claims)) {
    ++stats_.auth_failures;
    reject(c, 401, "Unauthorized",
           (claims.ok() ? std::string("token revoked") : claims.status().message()) + "\n");
    return 1;
  }
  if (sessions_.size() >= opt_.max_sessions) {
    reject(c, 503, "Service Unavailable", "too many channel sessions\n");
    return 1;
  }
  // connect and ready run back to back on this worker thread.
  pending_ = Pending{c, std::move(*claims), std::move(*offer)};
  return 0;
}

void ChannelService::Impl::replay_locked(Session& s, ClientState& c, const proto::Offer& offer) {
  uint64_t from;
  bool resumed = false;
  std::vector<std::string> pre;  // gap notices that precede the replay
  if (offer.has_resume && offer.epoch == epoch_) {
    resumed = true;
    from = offer.seq + 1;
    if (from < c.base_seq) {
      // This client id's state was forgotten since: how much it missed then is unknown.
      pre.push_back(gap_json(from, c.base_seq - 1, false));
      from = c.base_seq;
    }
    from = std::min(from, c.next_seq);
  } else if (offer.has_resume) {
    // The server restarted: whatever the old epoch still held is gone.
    pre.push_back(R"({"t":"gap","epoch":")" + epoch_ + R"(","from":null,"to":null,"lost":null,"reason":"epoch"})");
    from = c.base_seq;
  } else {
    from = c.delivered + 1;
  }
  const uint64_t ring_first = c.ring.empty() ? c.next_seq : c.ring.front().seq;
  const uint64_t welcome_seq = from - 1;
  if (from < ring_first) {
    pre.push_back(gap_json(from, ring_first - 1, true));
    ++stats_.gaps_reported;
    stats_.messages_lost += ring_first - from;
    from = ring_first;
  }
  std::string w = R"({"t":"welcome","epoch":")" + epoch_ + R"(","client_id":)";
  proto::append_json_string(w, s.client_id);
  w += R"(,"seq":)" + std::to_string(welcome_seq) + R"(,"resumed":)" + (resumed ? "true" : "false") +
       R"(,"expires_at":)" + std::to_string(s.expires_at) + R"(,"now":)" + std::to_string(unix_seconds()) +
       R"(,"heartbeat_ms":)" + std::to_string(opt_.heartbeat_interval.count()) +
       R"(,"heartbeat_timeout_ms":)" + std::to_string(opt_.heartbeat_timeout.count()) +
       R"(,"max_message_bytes":)" + std::to_string(opt_.max_message_bytes) + "}";
  enqueue_locked(s, Frame{Frame::Kind::kControl, control(std::move(w)), 0, 0});
  for (std::string& g : pre) enqueue_locked(s, Frame{Frame::Kind::kControl, control(std::move(g)), 0, 0});
  for (const RingEntry& e : c.ring) {
    if (e.seq < from) continue;
    enqueue_locked(s, Frame{Frame::Kind::kMessage, e.payload, e.seq, 0});
    if (resumed || e.seq <= c.delivered) ++stats_.replayed;
  }
  c.delivered = c.next_seq - 1;
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
  s->expires_at = p.claims.expires_at;
  s->last_recv = s->last_send = Clock::now();
  {
    std::lock_guard<std::mutex> lk(mu_);
    sessions_[conn] = s;
    if (stopping_) {
      close_locked(*s, proto::kShuttingDown, "server shutting down");
    } else {
      auto it = clients_.find(s->client_id);
      if (it == clients_.end()) {
        it = clients_.emplace(s->client_id, ClientState{}).first;
        it->second.base_seq = it->second.next_seq = next_state_base_;
        it->second.delivered = next_state_base_ - 1;
      }
      ClientState& c = it->second;
      c.last_active = Clock::now();
      if (c.session) {
        close_locked(*c.session, proto::kSuperseded, "superseded by a newer connection");
        ++stats_.superseded;
      } else {
        events_.push_back(Event{true, s->client_id});
        event_cv_.notify_one();
      }
      c.session = s;
      prune_ring_locked(c, Clock::now());
      replay_locked(*s, c, p.offer);
    }
  }
  s->sender = std::thread([this, s] { sender_loop(s); });
}

int ChannelService::Impl::on_data(mg_connection* conn, int bits, char* data, size_t len) {
  const int opcode = bits & 0x0F;
  const bool fin = (bits & 0x80) != 0;
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = sessions_.find(conn);
    if (it == sessions_.end()) return 0;
    s = it->second;
    s->last_recv = Clock::now();
  }
  switch (opcode) {
    case MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE: {
      // CivetWeb does not answer a client's Close (notes §3.1): echo it,
      // unless this side already sent one.
      {
        std::lock_guard<std::mutex> wl(s->write_mu);
        if (!s->conn_gone && !s->close_written) {
          s->close_written = true;
          mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, data, std::min<size_t>(len, 125));
        }
      }
      std::lock_guard<std::mutex> lk(mu_);
      s->closing = true;
      s->writer_exit = true;
      s->cv.notify_one();
      return 0;
    }
    case MG_WEBSOCKET_OPCODE_PING: {
      std::lock_guard<std::mutex> lk(mu_);
      std::string payload(data, std::min<size_t>(len, 125));
      // Answered through the queue so the sender stays the only writer.
      if (!s->closing) {
        enqueue_locked(*s, Frame{Frame::Kind::kControl, control(std::move(payload)), 0, 0,
                                 MG_WEBSOCKET_OPCODE_PONG});
      }
      return 1;
    }
    case MG_WEBSOCKET_OPCODE_PONG:
      return 1;
    case MG_WEBSOCKET_OPCODE_TEXT:
    case MG_WEBSOCKET_OPCODE_CONTINUATION:
      break;
    default: {  // binary frames are not part of the protocol
      std::lock_guard<std::mutex> lk(mu_);
      close_locked(*s, proto::kProtocolError, "binary frames are not accepted");
      return 1;
    }
  }
  if (opcode == MG_WEBSOCKET_OPCODE_TEXT) {
    s->fragments.assign(data, len);
    s->in_fragmented = !fin;
  } else {
    if (!s->in_fragmented) {
      std::lock_guard<std::mutex> lk(mu_);
      close_locked(*s, proto::kProtocolError, "continuation without a start");
      return 1;
    }
    s->fragments.append(data, len);
    s->in_fragmented = !fin;
  }
  if (s->fragments.size() > opt_.max_client_frame_bytes) {
    s->fragments.clear();
    s->in_fragmented = false;
    std::lock_guard<std::mutex> lk(mu_);
    close_locked(*s, proto::kMessageTooBig, "client frame too large");
    return 1;
  }
  if (!fin) return 1;
  auto frame = proto::parse_client_frame(s->fragments, opt_.max_client_frame_bytes);
  s->fragments.clear();
  std::lock_guard<std::mutex> lk(mu_);
  if (!frame.ok()) {
    close_locked(*s, proto::kProtocolError, frame.status().message());
    return 1;
  }
  if (frame->type == proto::ClientFrame::Type::kRefresh) {
    auto claims = signer_.verify(frame->token, unix_seconds());
    std::string reply;
    if (claims.ok() && claims->client_id == s->client_id && !revoked_locked(*claims)) {
      s->expires_at = std::max(s->expires_at, claims->expires_at);
      reply = R"({"t":"refreshed","expires_at":)" + std::to_string(s->expires_at) + "}";
    } else {
      std::string why = claims.ok() ? (claims->client_id != s->client_id ? "token is for another client id"
                                                                          : "token revoked")
                                    : claims.status().message();
      reply = R"({"t":"error","code":"refresh_rejected","message":)";
      proto::append_json_string(reply, why);
      reply += "}";
    }
    if (!s->closing) enqueue_locked(*s, Frame{Frame::Kind::kControl, control(std::move(reply)), 0, 0});
  }
  return 1;
}

void ChannelService::Impl::on_close(const mg_connection* conn) {
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = sessions_.find(conn);
    if (it == sessions_.end()) return;
    s = it->second;
    sessions_.erase(it);
    s->closing = true;
    s->writer_exit = true;
    for (const Frame& f : s->queue) stats_.queued_bytes -= f.payload ? f.payload->size() : 0;
    s->queue.clear();
    s->queued_bytes = 0;
    s->cv.notify_one();
    auto c = clients_.find(s->client_id);
    if (c != clients_.end() && c->second.session == s) {
      c->second.session.reset();
      c->second.last_active = Clock::now();
      if (!stopping_) {
        events_.push_back(Event{false, s->client_id});
        event_cv_.notify_one();
      }
    }
    sessions_cv_.notify_all();
  }
  {
    std::lock_guard<std::mutex> cl(s->conn_mu);
    s->conn_valid = false;
  }
  {
    // Waits for a write in progress; afterwards nobody touches conn.
    std::lock_guard<std::mutex> wl(s->write_mu);
    s->conn_gone = true;
  }
  if (s->sender.joinable()) s->sender.join();
}

// ---------------------------------------------------------------------------
// Threads

void ChannelService::Impl::force_close(Session& s) {
  std::lock_guard<std::mutex> cl(s.conn_mu);
  // For a server websocket this only sets a flag; the read loop exits at its
  // next read timeout (notes §6.14).
  if (s.conn_valid) mg_close_connection(s.conn);
}

void ChannelService::Impl::sender_loop(std::shared_ptr<Session> s) {
  constexpr size_t kBatchBytes = 256 * 1024;
  std::string buf;
  std::vector<Payload> hold;  // keeps payloads alive while buf is built
  for (;;) {
    bool wrote_close = false;
    size_t frames = 0;
    buf.clear();
    {
      std::unique_lock<std::mutex> lk(mu_);
      s->cv.wait(lk, [&] { return s->writer_exit || !s->queue.empty(); });
      if (s->writer_exit) return;
      while (!s->queue.empty() && buf.size() < kBatchBytes) {
        Frame f = std::move(s->queue.front());
        s->queue.pop_front();
        const size_t n = f.payload ? f.payload->size() : 0;
        s->queued_bytes -= n;
        stats_.queued_bytes -= n;
        ++frames;
        switch (f.kind) {
          case Frame::Kind::kMessage:
            proto::append_frame_header(buf, MG_WEBSOCKET_OPCODE_TEXT, n);
            buf.append(*f.payload);
            break;
          case Frame::Kind::kGap: {
            const std::string g = gap_json(f.seq, f.gap_to, true);
            ++stats_.gaps_reported;
            stats_.messages_lost += f.gap_to - f.seq + 1;
            proto::append_frame_header(buf, MG_WEBSOCKET_OPCODE_TEXT, g.size());
            buf.append(g);
            break;
          }
          case Frame::Kind::kControl:
            proto::append_frame_header(buf, f.opcode, n);
            buf.append(*f.payload);
            break;
          case Frame::Kind::kClose:
            proto::append_frame_header(buf, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, n);
            buf.append(*f.payload);
            wrote_close = true;
            break;
        }
        if (wrote_close) break;
      }
      s->writing = true;
      s->write_started = Clock::now();
    }
    bool ok = false;
    bool gone = false;
    {
      std::lock_guard<std::mutex> wl(s->write_mu);
      if (s->conn_gone || s->close_written) {
        gone = true;
      } else {
        mg_lock_connection(s->conn);
        const int r = mg_write(s->conn, buf.data(), buf.size());
        mg_unlock_connection(s->conn);
        ok = r >= 0 && static_cast<size_t>(r) == buf.size();
        if (wrote_close) s->close_written = true;
        // A short write leaves a corrupt stream (notes §3.3): say nothing more.
        if (!ok || wrote_close) mg_close_connection(s->conn);
      }
    }
    std::lock_guard<std::mutex> lk(mu_);
    s->writing = false;
    s->last_send = Clock::now();
    if (gone) return;
    if (ok) {
      stats_.frames_sent += frames;
    } else {
      ++stats_.write_errors;
    }
    if (!ok || wrote_close) {
      s->closing = true;
      s->writer_exit = true;
      return;
    }
  }
}

void ChannelService::Impl::housekeeping(std::vector<std::shared_ptr<Session>>& to_force_close) {
  const auto now = Clock::now();
  const int64_t now_unix = unix_seconds();
  for (auto& [conn, s] : sessions_) {
    if (s->writing && now - s->write_started > opt_.write_stall_timeout && !s->writer_exit) {
      // The socket accepts nothing: no close frame can get through either.
      s->closing = true;
      ++stats_.stalled_closed;
      to_force_close.push_back(s);
      continue;
    }
    if (s->closing) continue;
    if (now - s->last_recv > opt_.heartbeat_timeout) {
      ++stats_.heartbeat_closed;
      close_locked(*s, proto::kHeartbeatTimeout, "no heartbeat from the client");
    } else if (now_unix >= s->expires_at) {
      close_locked(*s, proto::kTokenExpired, "token expired");
    } else if (!s->writing && s->queue.empty() && now - s->last_send >= opt_.heartbeat_interval) {
      s->last_send = now;
      enqueue_locked(*s, Frame{Frame::Kind::kControl, control(R"({"t":"hb"})"), 0, 0});
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
  const int64_t now_ms = unix_millis();
  for (auto it = revoked_.begin(); it != revoked_.end();) {
    // Tokens live at most 24 h, so older revocations cover nothing.
    if (now_ms - it->second > 25LL * 3600 * 1000) {
      it = revoked_.erase(it);
    } else {
      ++it;
    }
  }
}

void ChannelService::Impl::event_loop() {
  auto next_housekeeping = Clock::now();
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    event_cv_.wait_until(lk, next_housekeeping, [&] { return event_exit_ || !events_.empty(); });
    if (event_exit_) return;
    while (!events_.empty()) {
      Event e = std::move(events_.front());
      events_.pop_front();
      const auto& cb = e.connect ? opt_.on_connect : opt_.on_disconnect;
      if (!cb) continue;
      lk.unlock();
      cb(e.client_id);  // never under a channel lock
      lk.lock();
      if (event_exit_) return;
    }
    if (Clock::now() >= next_housekeeping) {
      std::vector<std::shared_ptr<Session>> stalled;
      housekeeping(stalled);
      next_housekeeping = Clock::now() + tick_;
      if (!stalled.empty()) {
        lk.unlock();
        for (auto& s : stalled) force_close(*s);
        lk.lock();
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Queries and control

bool ChannelService::Impl::is_connected(const std::string& id) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = clients_.find(id);
  return it != clients_.end() && it->second.session != nullptr;
}

bool ChannelService::Impl::has_client(const std::string& id) const {
  std::lock_guard<std::mutex> lk(mu_);
  return clients_.count(id) > 0;
}

size_t ChannelService::Impl::session_count() const {
  std::lock_guard<std::mutex> lk(mu_);
  return sessions_.size();
}

std::vector<std::string> ChannelService::Impl::connected_clients() const {
  std::vector<std::string> out;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [id, c] : clients_) {
      if (c.session) out.push_back(id);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

ChannelStats ChannelService::Impl::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  ChannelStats s = stats_;
  s.sessions = sessions_.size();
  s.clients = clients_.size();
  return s;
}

void ChannelService::Impl::disconnect(const std::string& id, DisconnectReason reason) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = clients_.find(id);
  if (reason == DisconnectReason::kRevoked) revoked_[id] = unix_millis();
  if (it == clients_.end()) return;
  if (it->second.session) {
    if (reason == DisconnectReason::kRevoked) {
      close_locked(*it->second.session, proto::kRevoked, "revoked");
    } else {
      close_locked(*it->second.session, proto::kReconnect, "reconnect");
    }
  }
  if (reason == DisconnectReason::kRevoked) {
    it->second.ring.clear();
    it->second.ring_bytes = 0;
  }
}

bool ChannelService::Impl::wait_sessions_closed(milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  return sessions_cv_.wait_for(lk, timeout, [&] { return sessions_.empty(); });
}

void ChannelService::Impl::shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!stopping_) {
      stopping_ = true;
      for (auto& [conn, s] : sessions_) close_locked(*s, proto::kShuttingDown, "server shutting down");
    }
    event_exit_ = true;
    event_cv_.notify_all();
  }
  if (event_thread_.joinable()) event_thread_.join();
  // Responsive clients answer the close frame at once; the rest are closed
  // by CivetWeb at its next read timeout or by mg_stop.
  const auto grace = std::min(milliseconds(2000), opt_.websocket_timeout + milliseconds(500));
  if (!wait_sessions_closed(grace)) {
    std::vector<std::shared_ptr<Session>> left;
    {
      std::lock_guard<std::mutex> lk(mu_);
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
Result<Token> ChannelService::create_channel(const std::string& id, std::chrono::seconds d) {
  return impl_->create_channel(id, d);
}
SendResult ChannelService::send_message(const std::string& id, std::string m) {
  return impl_->send_message(id, std::move(m));
}
bool ChannelService::is_connected(const std::string& id) const { return impl_->is_connected(id); }
bool ChannelService::has_client(const std::string& id) const { return impl_->has_client(id); }
size_t ChannelService::session_count() const { return impl_->session_count(); }
std::vector<std::string> ChannelService::connected_clients() const { return impl_->connected_clients(); }
ChannelStats ChannelService::stats() const { return impl_->stats(); }
std::string ChannelService::epoch() const { return impl_->epoch(); }
void ChannelService::disconnect(const std::string& id, DisconnectReason r) { impl_->disconnect(id, r); }
void ChannelService::shutdown() { impl_->shutdown(); }

const char* to_string(SendResult r) {
  switch (r) {
    case SendResult::kQueued: return "queued";
    case SendResult::kTooLarge: return "too_large";
    case SendResult::kNoSuchClient: return "no_such_client";
    case SendResult::kDropped: return "dropped";
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
  add("request_timeout_ms", "10000");
}

}  // namespace clio::channel
