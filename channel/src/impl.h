// ChannelService::Impl and its state, shared by the channel's source files:
//   channel.cc   tokens, send_message, replay rings, accounting, queries
//   session.cc   CivetWeb callbacks, sender threads, the event thread
//   http.cc      the upgrade probe and the JS client script
//
// Threads and locks:
// - CivetWeb worker threads run the connect/ready/data/close callbacks; one
//   worker per open session for the whole session.
// - One sender thread per session writes to its socket: control frames, then
//   the client's replay ring from the session's cursor, so a resume replays
//   at the pace the socket takes. It is the only thread that writes to that
//   socket, except the close echo written by the data callback (under the
//   session's write_mu).
// - One event thread delivers presence callbacks and runs housekeeping
//   (heartbeats, expiry, slow clients, forgetting idle client ids).
// - mu_ guards all service state (see its declaration for who takes it and
//   for how long). Session::write_mu is held for the duration of one socket
//   write and by the close callback to retire the connection;
//   Session::conn_mu guards the pointer for mg_close_connection from other
//   threads. No thread holds two of these at once, and no user callback runs
//   under any of them. clang's -Wthread-safety checks the annotations below.
#pragma once

#include <civetweb.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "clio/base/clock.h"
#include "clio/base/mutex.h"
#include "clio/channel/channel.h"
#include "clio/channel/protocol.h"
#include "ledger.h"
#include "token.h"

namespace clio::channel {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using Payload = std::shared_ptr<const std::string>;

bool valid_client_id(const std::string& id);

// Writes a complete HTTP response with a status line (mg_send_http_error
// omits it on upgrade requests; docs/ARCHITECTURE.md, CivetWeb facts), readable from any origin.
void respond(const mg_connection* c, int status, const char* reason, const char* type, const std::string& body);
// templates/channel.js with `path` as the channel path it connects to (http.cc).
std::string make_client_script(const std::string& path);

// A frame the sender writes before any message: welcome, gap notices of a
// resume, heartbeats, refresh replies, pongs, and the close frame.
struct Control {
  Payload payload;
  int opcode = MG_WEBSOCKET_OPCODE_TEXT;
};

struct RingEntry {
  uint64_t seq;
  Clock::time_point at;
  Payload payload;
  uint64_t weight;  // see MessageCounts::weight_accepted
};

// Const methods are thread-safe, non-const methods need external
// synchronization: each member group names the lock that guards it. One
// WebSocket connection.
struct Session {
  // Constant after construction.
  std::string client_id;
  mg_connection* conn = nullptr;
  uint64_t admitted = 0;  // order in which upgrades were accepted: the later one wins

  // Guarded by ChannelService::Impl::mu_.
  std::deque<Control> control;
  size_t control_bytes = 0;
  uint64_t cursor = 0;         // next seq of the ring to write
  uint64_t replay_end = 0;     // seqs <= this are replays (sent before this session began)
  size_t backlog_bytes = 0;    // ring entries from cursor on, while the session is live
  bool closing = false;        // no more messages: a close frame is queued or the socket is going
  bool writer_exit = false;    // the sender thread must stop
  bool writing = false;
  bool stalled = false;        // closed as too slow
  Clock::time_point write_started;
  Clock::time_point last_send;
  Clock::time_point last_recv;
  int64_t expires_at = 0;      // unix seconds; refresh extends it
  CondVar cv;  // waited on by the sender thread with mu_

  // Touched only by the session's CivetWeb worker thread (data callback).
  std::string fragments;
  bool in_fragmented = false;

  // Guarded by write_mu (held for the whole of one socket write).
  Mutex write_mu;
  bool conn_gone CLIO_GUARDED_BY(write_mu) = false;  // the close callback ran: conn must not be used
  bool close_written CLIO_GUARDED_BY(write_mu) = false;

  // Guarded by conn_mu.
  Mutex conn_mu;
  bool conn_valid CLIO_GUARDED_BY(conn_mu) = true;

  std::thread sender;  // joined by the close callback
};

// Const methods are thread-safe, non-const methods need external
// synchronization (ChannelService::Impl::mu_). What the service keeps per
// client id: the seq counter, the replay ring, the current session and the
// accounting of its messages.
struct ClientState {
  // `max_weighed`: see Ledger.
  ClientState(uint64_t first_seq, size_t max_weighed)
      : base_seq(first_seq), next_seq(first_seq), written_hw(first_seq - 1), ledger(first_seq, max_weighed) {}

  uint64_t base_seq;    // first seq this state assigned
  uint64_t next_seq;    // seq of the next message
  uint64_t written_hw;  // highest seq taken for writing by any session
  std::deque<RingEntry> ring;  // contiguous seqs, oldest first
  size_t ring_bytes = 0;
  std::shared_ptr<Session> session;
  Clock::time_point last_active;
  Ledger ledger;
  MessageCounts counts;

  uint64_t ring_first() const { return ring.empty() ? next_seq : ring.front().seq; }
  // The session that takes messages now, or null.
  Session* live() const { return session && !session->closing ? session.get() : nullptr; }
};

class [[gnu::visibility("hidden")]] ChannelService::Impl {
 public:
  explicit Impl(ChannelOptions o);
  ~Impl();

  Status mount(mg_context* ctx, const std::string& path);
  std::string client_script() const;
  Status serve_client(mg_context* ctx, const std::string& uri);
  Result<Token> create_channel(const std::string& id, std::chrono::seconds duration);
  // Accepts a message whose data (protocol::text_data, or validated JSON)
  // is already encoded.
  SendResult send_data(const std::string& id, std::string data, uint64_t weight);
  SendResult refuse(SendResult why);
  bool is_connected(const std::string& id) const;
  bool has_client(const std::string& id) const;
  size_t session_count() const;
  size_t session_limit() const;
  std::vector<std::string> connected_clients() const;
  ChannelStats stats() const;
  Result<ClientStats> client_stats(const std::string& id) const;
  std::vector<ClientStats> all_client_stats() const;
  void disconnect(const std::string& id, DisconnectReason reason);
  void shutdown();
  // True once every session has closed (after shutdown and mg_stop).
  bool wait_sessions_closed(milliseconds timeout);
  void housekeeping_for_test() CLIO_EXCLUDES(mu_);

  const std::string& epoch() const { return epoch_; }
  size_t max_message_bytes() const { return opt_.max_message_bytes; }

  // CivetWeb callbacks (session.cc, http.cc).
  int on_connect(const mg_connection* c);
  void on_ready(mg_connection* c);
  int on_data(mg_connection* c, int bits, char* data, size_t len);
  void on_close(const mg_connection* c);
  int on_probe(mg_connection* c);
  int on_client_script(mg_connection* c);

 private:
  struct Pending {
    const mg_connection* conn = nullptr;
    uint64_t admitted = 0;  // order of on_connect
    TokenClaims claims;
    protocol::Offer offer;
  };
  struct Event {
    bool connect;
    std::string client_id;
  };
  // A session that keeps falling behind leaves a run of lost seqs each time;
  // past this many it is closed as too slow, so its client resumes and
  // confirms a position (which bounds what the ledger holds).
  static constexpr size_t kMaxLossRuns = 1024;

  // All *_locked functions require mu_.
  ClientState& new_client_locked(const std::string& id) CLIO_REQUIRES(mu_);
  ClientState* owner_locked(const Session& s) CLIO_REQUIRES(mu_);
  void enqueue_control_locked(Session& s, std::string text, int opcode = MG_WEBSOCKET_OPCODE_TEXT) CLIO_REQUIRES(mu_);
  void close_locked(Session& s, int code, std::string_view reason) CLIO_REQUIRES(mu_);
  void add_backlog_locked(Session& s, size_t n) CLIO_REQUIRES(mu_);
  void release_queued_locked(Session& s) CLIO_REQUIRES(mu_);
  void prune_ring_locked(ClientState& c, Clock::time_point now) CLIO_REQUIRES(mu_);
  void forget_client_locked(std::unordered_map<std::string, ClientState>::iterator it) CLIO_REQUIRES(mu_);
  bool revoked_locked(const TokenClaims& claims) const CLIO_REQUIRES(mu_);
  // Why a session for `claims` would be refused now (status, reason), or 0.
  int refusal_locked(const Result<TokenClaims>& claims, std::string* why) const CLIO_REQUIRES(mu_);
  void start_session_locked(Session& s, ClientState& c, const protocol::Offer& offer) CLIO_REQUIRES(mu_);
  // Accounting: `field` of c.counts and of the totals grows by n.
  void count_locked(ClientState& c, uint64_t MessageCounts::*field, uint64_t n) CLIO_REQUIRES(mu_);
  // n messages weighing `weight` in all, never accounted before, are now
  // delivered, or lost as `kind`.
  void settle_locked(ClientState& c, uint64_t MessageCounts::*kind, uint64_t n, uint64_t weight) CLIO_REQUIRES(mu_);
  // Discards every message of c not accounted yet (revoked, forgotten, shut down).
  void discard_unsent_locked(ClientState& c) CLIO_REQUIRES(mu_);
  void count_lost_after_delivery_locked(ClientState& c, const Ledger::Loss& loss) CLIO_REQUIRES(mu_);
  static ClientStats client_stats_locked(const std::string& id, const ClientState& c);
  // Appends the next batch for `s` to `buf` (control frames, then messages);
  // returns the number of frames, and whether a close frame ended it.
  size_t take_batch_locked(Session& s, std::string& buf, bool& wrote_close) CLIO_REQUIRES(mu_);
  // Whether the sender of `s` has a frame to write or must stop.
  bool sender_has_work_locked(const Session& s) CLIO_REQUIRES(mu_);

  // The time of opt_.clock (the real clock by default), which every expiry
  // and timeout decision reads. The event thread's wake-ups and the waits
  // for threads run on the real clock.
  Clock::time_point steady_now() const { return clock_.steady(); }
  int64_t unix_seconds() const { return clock_.wall_seconds(); }
  int64_t unix_millis() const { return clock_.wall_millis(); }

  void sender_loop(std::shared_ptr<Session> s) CLIO_EXCLUDES(mu_);
  void event_loop() CLIO_EXCLUDES(mu_);
  void housekeeping_locked() CLIO_REQUIRES(mu_);
  static void force_close(Session& s);

  // Constant after construction.
  const ChannelOptions opt_;
  const clio::Clock& clock_;
  const TokenSigner signer_;
  const std::string epoch_;
  const milliseconds tick_;

  static thread_local Pending pending_;

  // The service lock. It guards the members below and every Session and
  // ClientState field listed as guarded by it (those are not annotated: the
  // analysis cannot name another object's lock). Who takes it, and for how long:
  // - CivetWeb workers, once per callback: on_connect for the admission check
  //   (token verification, one HMAC, and a refusal's short HTTP response are
  //   written under it); on_ready to register the session and queue its
  //   welcome and any gap notices; on_data per client frame (ack, refresh,
  //   ping); on_close to retire the session. Each is a few map operations.
  // - Application threads in send_message: append one pre-built frame to the
  //   ring (the payload is escaped before the lock) and prune the ring;
  //   stats(), connected_clients() and the other queries copy counters
  //   (connected_clients() is O(clients)).
  // - Each session's sender thread: take_batch_locked copies up to
  //   kBatchBytes (256 KiB) of frames into its buffer, then the lock is
  //   dropped for the socket write and taken again to account for it.
  // - The event thread: waits on event_cv_ with it, drops it around every
  //   presence callback, and holds it for housekeeping_locked once per tick
  //   (heartbeat_interval / 4, 10 to 250 ms), which walks every session,
  //   client ring and admission: O(sessions + clients).
  // Kept as one lock on purpose: a message's seq, ring entry, ledger entry,
  // counts and the live session's backlog change together, and the sender
  // reads all of them to build a batch. Splitting it would need a lock order
  // between client and session state; the costs above are what it buys.
  mutable Mutex mu_;
  // Guarded by mu_.
  bool mounted_ CLIO_GUARDED_BY(mu_) = false;
  bool stopping_ CLIO_GUARDED_BY(mu_) = false;
  bool event_exit_ CLIO_GUARDED_BY(mu_) = false;
  size_t session_limit_ CLIO_GUARDED_BY(mu_) = 0;
  std::string script_ CLIO_GUARDED_BY(mu_);  // client_script(), set by mount
  std::unordered_map<std::string, ClientState> clients_ CLIO_GUARDED_BY(mu_);
  std::unordered_map<const mg_connection*, std::shared_ptr<Session>> sessions_ CLIO_GUARDED_BY(mu_);
  // Upgrades accepted by on_connect whose on_ready has not run yet (they hold
  // a worker thread too); stale entries (a failed handshake) expire.
  std::unordered_map<const mg_connection*, Clock::time_point> admitting_ CLIO_GUARDED_BY(mu_);
  std::map<std::string, int64_t> revoked_ CLIO_GUARDED_BY(mu_);  // client id -> revoked at (unix ms)
  uint64_t next_state_base_ CLIO_GUARDED_BY(mu_) = 1;
  uint64_t admissions_ CLIO_GUARDED_BY(mu_) = 0;
  std::deque<Event> events_ CLIO_GUARDED_BY(mu_);
  CondVar event_cv_;
  CondVar sessions_cv_;  // signalled when a session closes
  ChannelStats stats_ CLIO_GUARDED_BY(mu_);

  std::thread event_thread_;  // started in the constructor, joined by shutdown
};

}  // namespace clio::channel
