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
//   auto tok = ch.create_channel("user-42");         // -> tok->token to the page
//   ch.send_message("user-42", R"({"hello":1})");    // never blocks
//   ch.shutdown(); mg_stop(ctx);                     // in this order
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

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
  // Outbound bytes one session may have queued before the oldest messages are
  // dropped and the client is sent a gap notice (default 1 MiB).
  size_t max_queue_bytes = 1024 * 1024;
  // Replay ring per client id: at most this many messages, this many bytes,
  // this old. A resume inside these bounds loses nothing; beyond them the
  // client is told how many messages it missed.
  size_t replay_max_messages = 1000;
  size_t replay_max_bytes = 4 * 1024 * 1024;
  std::chrono::milliseconds replay_max_age{std::chrono::minutes(5)};
  // The server sends a heartbeat frame after this much outbound silence and
  // asks the client to do the same; a session that has received nothing for
  // heartbeat_timeout is closed (close code 4102, reconnect).
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(15)};
  std::chrono::milliseconds heartbeat_timeout{std::chrono::seconds(35)};
  // A session whose socket accepts nothing for this long (a reader that
  // stopped reading) is closed with 4101. The blocked write itself is bounded
  // by CivetWeb's request_timeout_ms.
  std::chrono::milliseconds write_stall_timeout{std::chrono::seconds(10)};
  // CivetWeb's websocket_timeout_ms as configured on the server (the read
  // poll period): after closing a session from outside its worker thread the
  // service waits up to about this long for CivetWeb to notice.
  std::chrono::milliseconds websocket_timeout{std::chrono::seconds(5)};
  // Hard caps: open sessions (new upgrades beyond get 503) and known client
  // ids (create_channel fails with kResourceExhausted beyond).
  size_t max_sessions = 1000;
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
};

// A token for one client id. `token` is secret: hand it to that client only.
struct Token {
  std::string token;
  int64_t expires_at = 0;  // unix seconds
};

// What became of a message given to send_message.
enum class SendResult {
  kQueued,        // accepted: it is in the client's replay ring and, if a
                  // session is open, in its outbound queue
  kTooLarge,      // larger than ChannelOptions::max_message_bytes; not kept
  kNoSuchClient,  // no create_channel for that id, or its state expired
                  // (disconnected for longer than replay_max_age)
  kDropped,       // the service is shut down (or not mounted yet); not kept
};
const char* to_string(SendResult r);

// Counters since construction (sessions and queued_bytes are current values).
struct ChannelStats {
  size_t sessions = 0;           // open WebSocket sessions
  size_t clients = 0;            // client ids with state (ring, session)
  size_t queued_bytes = 0;       // bytes waiting in all outbound queues
  uint64_t accepted = 0;         // send_message -> kQueued
  uint64_t rejected = 0;         // send_message -> anything else
  uint64_t frames_sent = 0;      // frames written to sockets (all kinds)
  uint64_t dropped_overflow = 0; // messages dropped from a full session queue
  uint64_t gaps_reported = 0;    // gap notices sent (overflow or resume)
  uint64_t messages_lost = 0;    // messages covered by those gap notices
  uint64_t replayed = 0;         // messages re-sent on resume
  uint64_t superseded = 0;       // sessions replaced by a newer connection
  uint64_t auth_failures = 0;    // upgrades refused with 401
  uint64_t stalled_closed = 0;   // sessions closed because writes stalled
  uint64_t heartbeat_closed = 0; // sessions closed for silence
  uint64_t write_errors = 0;     // failed or short writes (session closed)
};

// Why disconnect() was called; sent to the client as a close code.
enum class DisconnectReason {
  kRevoked,   // 4001: do not reconnect; tokens issued before now stop working
  kReconnect, // 4103: the client should reconnect (e.g. to pick up new state)
};

// ChannelService is safe for concurrent use by multiple threads. It is the
// channel: tokens, sessions, replay rings and delivery. Each open session has its own sender thread, so a slow reader only
// slows itself; the service also runs one event thread (presence callbacks,
// heartbeats, expiry, stall detection).
//
// CivetWeb requirements (see recommended_civetweb_options): one worker thread
// per open session plus your HTTP concurrency (num_threads),
// enable_websocket_ping_pong=yes, websocket_timeout_ms, tcp_nodelay=1, and a
// finite request_timeout_ms (it bounds one blocked write to a stuck reader).
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
  // characters). One mount per service.
  Status mount(mg_context* ctx, const std::string& path);

  // A token for `client_id` (1..64 chars of [A-Za-z0-9._:@-]) valid for
  // `duration` (clamped to 1 s .. 24 h). Registers the client id, so messages
  // sent before it connects are kept in its replay ring.
  Result<Token> create_channel(const std::string& client_id,
                               std::chrono::seconds duration = std::chrono::hours(2));

  // Queues `message` (usually JSON, any UTF-8 text) for `client_id`. Never
  // blocks and never touches a socket.
  SendResult send_message(const std::string& client_id, std::string message);

  bool is_connected(const std::string& client_id) const;
  // Whether the service holds state for `client_id`: a token was created for
  // it (or it connected) and it has not been forgotten since (see
  // kNoSuchClient). send_message to any other id is kNoSuchClient.
  bool has_client(const std::string& client_id) const;
  size_t session_count() const;
  // Client ids with an open session, sorted.
  std::vector<std::string> connected_clients() const;
  ChannelStats stats() const;
  // The server epoch (random per start), as sent to clients.
  std::string epoch() const;

  // Closes `client_id`'s session, if any, with the reason's close code.
  // kRevoked also rejects every token for that id issued before this call
  // (until the service restarts) and forgets its replay ring.
  void disconnect(const std::string& client_id,
                  DisconnectReason reason = DisconnectReason::kRevoked);

  // Refuses new sessions, tells open ones to reconnect later (close 4104),
  // waits briefly for them to close and stops the service's threads. Prompt
  // even with sessions open; idempotent. Call before mg_stop.
  void shutdown();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Appends the CivetWeb options the channel needs that `options` (a flat
// name, value, name, value... list) does not already set:
// enable_websocket_ping_pong=yes, websocket_timeout_ms (from `channel`),
// tcp_nodelay=1, request_timeout_ms=10000.
void append_recommended_civetweb_options(std::vector<std::string>& options,
                                         const ChannelOptions& channel = {});

}  // namespace clio::channel
