// The channel: server push to browser clients over WebSocket, modelled on the
// App Engine Channel API. The app hands a client a token bound to a client id;
// the client connects with it (token in Sec-WebSocket-Protocol, never a URL);
// the app sends strings to that client id and the channel delivers them in
// order, resumes after reconnects without loss or duplicates inside a bounded
// replay window, and tells the client exactly what was lost beyond it.
// The wire protocol is in channel/PROTOCOL.md.
//
//   clio::channel::ChannelService ch({.secret = stored_secret});
//   ch.mount(ctx, "/channel");                       // after mg_start
//   ch.serve_client(ctx, "/_ah/channel/jsapi");      // the JS client, if wanted
//   auto tok = ch.create_channel("user-42");         // -> tok->token to the page
//   ch.send_message("user-42", "hello");              // never blocks: kQueued, kKept
//   ch.send_json("user-42", R"({"hello":1})");        // arrives as a parsed value
//   ch.shutdown(); mg_stop(ctx);                     // in this order
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "clio/base/clock.h"
#include "clio/base/status.h"

struct mg_context;

namespace clio::channel {

// Limits and timings of a ChannelService. Every bound on what a client or the
// app can make the service hold lives here; the defaults suit production, and
// tests shorten the timings.
struct ChannelOptions {
  // HMAC-SHA256 key for tokens. Empty: a random key is generated, so tokens do
  // not survive a restart. Keep it (e.g. in the app's database) to let tokens
  // outlive the process.
  std::string secret;
  // Largest app message accepted by send_message, in bytes (default 32 KiB).
  size_t max_message_bytes = 32 * 1024;
  // Replay ring per client id: at most this many messages, this many bytes,
  // this old. It holds what the client was sent, whether or not it is
  // connected; a resume inside these bounds loses nothing, and beyond them the
  // client is told exactly how many messages it missed.
  size_t replay_max_messages = 1000;
  size_t replay_max_bytes = 4 * 1024 * 1024;
  std::chrono::milliseconds replay_max_age{std::chrono::minutes(5)};
  // How far a connected client may fall behind beyond the replay ring: the
  // ring keeps messages not yet written to its socket past the bounds above
  // while they total at most this many bytes (default 1 MiB). Past both, the
  // oldest unwritten messages are dropped and the client gets a gap notice in
  // their place. A replay after a resume is paced by the socket and never
  // counts against this.
  size_t max_queue_bytes = 1024 * 1024;
  // The server sends a heartbeat frame after this much outbound silence and
  // asks the client to do the same; a session that has received nothing for
  // heartbeat_timeout is closed (close code 4102, reconnect).
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(15)};
  std::chrono::milliseconds heartbeat_timeout{std::chrono::seconds(35)};
  // Slow clients: a session whose socket has not finished taking one write
  // (at most 256 KiB) for this long is too slow. It is sent nothing more but
  // close code 4101 (reconnect), written as soon as the socket takes it; if
  // the socket takes nothing for CivetWeb's request_timeout_ms, the
  // connection is dropped instead. Either way it counts in stalled_closed, and
  // its unsent messages stay in the replay ring for its resume.
  std::chrono::milliseconds write_stall_timeout{std::chrono::seconds(10)};
  // CivetWeb's websocket_timeout_ms as configured on the server (the read
  // poll period): after closing a session from outside its worker thread the
  // service waits up to about this long for CivetWeb to notice.
  std::chrono::milliseconds websocket_timeout{std::chrono::seconds(5)};
  // Sessions: CivetWeb holds one worker thread per open WebSocket, so mount()
  // reads the server's num_threads and admits at most num_threads minus
  // reserved_http_threads sessions (and never more than max_sessions). The
  // next upgrade is answered at once with 503 and a reason, and HTTP keeps
  // its reserved threads. mount() fails if num_threads leaves no thread for
  // sessions.
  size_t max_sessions = 1000;
  size_t reserved_http_threads = 8;
  // Known client ids (create_channel fails with kResourceExhausted beyond).
  size_t max_clients = 100000;
  // Largest frame accepted from a client (refresh and heartbeat frames are
  // small); larger ones close the session with 1009.
  size_t max_client_frame_bytes = 16 * 1024;
  // Presence: a client id went from not connected to connected, and back.
  // Called in order on the service's event thread, never under a channel
  // lock, so they may call send_message. A new connection that supersedes an
  // old one for the same client id is a handover and fires neither.
  std::function<void(const std::string& client_id)> on_connect;
  std::function<void(const std::string& client_id)> on_disconnect;
  // The time every expiry and timeout above is measured by (tokens,
  // heartbeats, slow writes, replay age, revocations). Null: the real clock.
  // Borrowed; it must outlive the service. Tests pass a clock they advance.
  const Clock* clock = nullptr;
};

// A token for one client id. `token` is secret: hand it to that client only.
struct Token {
  std::string token;
  int64_t expires_at = 0;  // unix seconds
};

// What became of a message given to send_message. kQueued and kKept accept
// the message (accepted() is true); the others refuse it and keep nothing.
enum class SendResult {
  kQueued,        // the client is connected: it is on its way (and in the
                  // replay ring)
  kKept,          // the client id is known but not connected right now (not
                  // yet, or between reconnects): it waits in the replay ring
                  // and is delivered when the client connects or resumes
                  // inside the replay window
  kTooLarge,      // larger than ChannelOptions::max_message_bytes
  kNoSuchClient,  // no create_channel for that id, or its state expired
                  // (disconnected for longer than replay_max_age)
  kDropped,       // the service is shut down
  kInvalid,       // send_json only: not exactly one valid JSON value in UTF-8
};
const char* to_string(SendResult r);
inline bool accepted(SendResult r) { return r == SendResult::kQueued || r == SendResult::kKept; }

// Where every accepted message ends up. Each is counted once, when its fate is
// known: `delivered` when it is first handed to the client's socket, or
// `messages_lost` when it can no longer reach the client. A message handed to
// a connection that died before the client read it, and gone from the ring
// when the client resumed, is counted in both (and in lost_after_delivery):
// the server learns of that loss only from the resume. So at every moment
//   accepted == delivered + messages_lost - lost_after_delivery + pending
// and at rest (pending == 0, clients caught up) the client was told of every
// loss: what it received plus the `lost` of its gap notices equals accepted.
// A message delivered to a client that never comes back counts as delivered.
struct MessageCounts {
  uint64_t accepted = 0;             // send_message -> kQueued or kKept
  uint64_t delivered = 0;            // first handed to a socket (replays are not counted again)
  uint64_t messages_lost = 0;        // = the four kinds below
  uint64_t dropped_overflow = 0;     //   connected but behind by more than the ring and
                                     //   max_queue_bytes: dropped unsent, announced by a gap
  uint64_t dropped_window = 0;       //   left the replay ring unsent while the client was
                                     //   away: announced by the gap when it resumes
  uint64_t dropped_discarded = 0;    //   unsent when the client was revoked or forgotten, or
                                     //   the service shut down: nobody is left to tell
  uint64_t lost_after_delivery = 0;  //   delivered to a connection the client did not read,
                                     //   gone from the ring when it resumed: announced then
  uint64_t replayed = 0;             // written again to a resumed session (once per write)
  uint64_t pending = 0;              // current: accepted, not yet delivered or lost

  // The same accounting in the weights given to send_json (send_message
  // weighs 1), for apps whose messages carry several items each: at every
  // moment
  //   weight_accepted == weight_delivered + weight_lost
  //                      - weight_lost_after_delivery + weight_pending
  // weight_lost sums dropped_overflow, dropped_window, dropped_discarded and
  // lost_after_delivery by weight. A message lost after delivery is weighed
  // when the client resumes from at most replay_max_messages messages before
  // the ring's oldest (its weight is remembered that long); one lost from
  // further back counts in lost_unweighed instead, never silently.
  uint64_t weight_accepted = 0;
  uint64_t weight_delivered = 0;
  uint64_t weight_lost = 0;
  uint64_t weight_lost_after_delivery = 0;
  uint64_t lost_unweighed = 0;       // messages (of lost_after_delivery) of unknown weight
  uint64_t weight_pending = 0;
};

// Counters since construction (sessions, clients, queued_bytes and pending are
// current values). See MessageCounts for the message accounting.
struct ChannelStats : MessageCounts {
  size_t sessions = 0;           // open WebSocket sessions
  size_t session_limit = 0;      // sessions admitted at most (see ChannelOptions)
  size_t clients = 0;            // client ids with state (ring, session)
  size_t queued_bytes = 0;       // bytes waiting to be written to open sessions
                                 // (messages and control frames); 0 when idle
  uint64_t rejected = 0;         // send_message -> anything not accepted
  uint64_t frames_sent = 0;      // frames written to sockets (all kinds)
  uint64_t gaps_reported = 0;    // gap notices written or queued (a loss may be
                                 // announced again if the client missed the notice)
  uint64_t upgrades = 0;         // upgrades accepted (answered 101)
  uint64_t superseded = 0;       // sessions replaced by a newer connection: the one
                                 // whose upgrade was accepted later wins
  uint64_t auth_failures = 0;    // upgrades refused with 401
  uint64_t refused_full = 0;     // upgrades refused with 503: session_limit reached
  uint64_t stalled_closed = 0;   // sessions closed as too slow (close code 4101)
  uint64_t heartbeat_closed = 0; // sessions closed for silence
  uint64_t write_errors = 0;     // failed or short writes (session closed)
};

// One client id's counters, over all its sessions, while the service keeps
// its state (see replay_max_age); the totals in ChannelStats keep counting
// after that.
struct ClientStats : MessageCounts {
  std::string client_id;
  bool connected = false;
  uint64_t last_seq = 0;        // seq of the latest message sent to it (0: none yet)
  size_t queued_bytes = 0;      // waiting to be written to its open session
};

// Why disconnect() was called; sent to the client as a close code.
enum class DisconnectReason {
  kRevoked,   // 4001: do not reconnect; tokens issued before now stop working
  kReconnect, // 4103: the client should reconnect (e.g. to pick up new state)
};

// ChannelService is safe for concurrent use by multiple threads. It is the
// channel: tokens, sessions, replay rings and delivery. Each open session has
// its own sender thread, so a slow reader only slows itself; the service also
// runs one event thread (presence callbacks, heartbeats, expiry, slow-client
// detection).
//
// CivetWeb requirements (see append_recommended_civetweb_options): one worker
// thread per open session plus your HTTP concurrency (num_threads; the
// service admits num_threads - reserved_http_threads sessions),
// enable_websocket_ping_pong=yes, websocket_timeout_ms, tcp_nodelay=1, and a
// finite request_timeout_ms longer than write_stall_timeout (it bounds one
// blocked write to a stuck reader).
//
// Lifetime: mount after mg_start; call shutdown() before mg_stop (never while
// holding a lock a presence callback needs); destroy the service after
// mg_stop, because CivetWeb keeps a pointer to it in the handler.
class ChannelService {
 public:
  explicit ChannelService(ChannelOptions options = {});
  ~ChannelService();  // calls shutdown()
  // Not copyable.
  ChannelService(const ChannelService&) = delete;
  ChannelService& operator=(const ChannelService&) = delete;

  // Registers the WebSocket endpoint at `path` (an exact CivetWeb handler URI
  // such as "/channel"; must start with '/' and contain no pattern
  // characters), and at the same path the probe a client uses to learn why an
  // upgrade failed (POST, see PROTOCOL.md). Reads num_threads to set the
  // session limit. One mount per service. CivetWeb tries handler patterns in
  // the order they were set, so set a catch-all handler ("/") after mount and
  // serve_client, or it answers their paths.
  Status mount(mg_context* ctx, const std::string& path);

  // The JS client (templates/channel.js) set up for this service: served by
  // this server from any path, it connects to the mounted path on the origin
  // it was loaded from. Empty before mount.
  std::string client_script() const;
  // Serves client_script() at `uri`, readable from any origin, e.g. at
  // "/_ah/channel/jsapi" so App Engine pages load it unchanged. After mount.
  Status serve_client(mg_context* ctx, const std::string& uri);

  // A token for `client_id` (1..64 chars of [A-Za-z0-9._:@-]) valid for
  // `duration` (clamped to 1 s .. 24 h). Registers the client id, so messages
  // sent before it connects are kept in its replay ring.
  Result<Token> create_channel(const std::string& client_id,
                               std::chrono::seconds duration = std::chrono::hours(2));

  // Gives `message` (any text; invalid UTF-8 bytes become U+FFFD) to
  // `client_id`: kQueued if it is connected, kKept if it is known but away.
  // The client receives it as a string (onmessage({data}) with data the
  // text, as the App Engine Channel API did). Never blocks and never touches
  // a socket.
  SendResult send_message(const std::string& client_id, std::string message);
  // Gives `json`, exactly one JSON value the app encoded (an object, say), to
  // `client_id`; the frame carries it as is, so the client parses it once
  // and receives the value itself (onmessage({data}) with data an object).
  // Checked before it is accepted: not one value, not UTF-8 or nested deeper
  // than protocol::kMaxJsonDepth is kInvalid (keeping nothing), so one bad
  // message cannot break a client's stream; linear in its size, bounded by
  // max_message_bytes. `weight` is what the message counts for in the
  // weight_* counters (e.g. the items it carries). Otherwise as send_message.
  SendResult send_json(const std::string& client_id, std::string json, uint64_t weight = 1);

  bool is_connected(const std::string& client_id) const;
  // Whether the service holds state for `client_id`: a token was created for
  // it (or it connected) and it has not been forgotten since (see
  // kNoSuchClient). send_message to any other id is kNoSuchClient.
  bool has_client(const std::string& client_id) const;
  size_t session_count() const;
  // Sessions admitted at most: min(max_sessions, num_threads -
  // reserved_http_threads) once mounted.
  size_t session_limit() const;
  // Client ids with an open session, sorted.
  std::vector<std::string> connected_clients() const;
  ChannelStats stats() const;
  // One client id's counters; kNotFound if the service keeps no state for it.
  Result<ClientStats> client_stats(const std::string& client_id) const;
  // Every client id's counters, sorted by id (at most max_clients).
  std::vector<ClientStats> all_client_stats() const;
  // The server epoch (random per start), as sent to clients.
  std::string epoch() const;

  // Closes `client_id`'s session, if any, with the reason's close code.
  // kRevoked also rejects every token for that id issued before this call
  // (until the service restarts) and discards its replay ring.
  void disconnect(const std::string& client_id,
                  DisconnectReason reason = DisconnectReason::kRevoked);

  // Refuses new sessions, tells open ones to reconnect later (close 4104),
  // waits briefly for them to close and stops the service's threads; unsent
  // messages count as dropped_discarded. Prompt even with sessions open;
  // idempotent. Call before mg_stop.
  void shutdown();

  // Runs one housekeeping pass now (heartbeats, expiry, slow clients,
  // forgetting idle ids), as the service's event thread does every
  // heartbeat_interval / 4 (10 to 250 ms): with a clock the test advanced,
  // what is due is acted on before this returns.
  void housekeeping_for_test();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Appends the CivetWeb options the channel needs that `options` (a flat
// name, value, name, value... list) does not already set:
// enable_websocket_ping_pong=yes, websocket_timeout_ms (from `channel`),
// tcp_nodelay=1, request_timeout_ms (write_stall_timeout + 10 s, so a close
// 4101 can still reach a client that reads again).
void append_recommended_civetweb_options(std::vector<std::string>& options,
                                         const ChannelOptions& channel = {});

}  // namespace clio::channel
