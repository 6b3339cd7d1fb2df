// Hub: the console side of Clio. It reads records from a record log (any
// engine: clio/log), keeps the recent ones (memory and SQLite), matches them
// against the admins' subscriptions, pushes the matches over the channel,
// and serves the console page, its API and admin auth under a prefix of a
// CivetWeb server. The Inspector (inspector.h) composes it with capture in
// one process; `clio serve` runs it alone, reading a Redis stream.
//
//   auto reader = clio::log::make_redis_reader({.url = "redis://10.0.0.5:6379"});
//   HubOptions o;  o.db_path = "console.db";
//   auto hub = clio::console::Hub::create(o, std::move(*reader));
//   if (!hub.ok()) die(hub.status().message());
//   mg_context* ctx = mg_start(&callbacks, nullptr, options);
//   (*hub)->attach(ctx);     // mounts the console, starts reading the log
//   ... (*hub)->shutdown(); mg_stop(ctx);
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "clio/base/clock.h"
#include "clio/base/status.h"
#include "clio/channel/channel.h"
#include "clio/log/record_log.h"
#include "clio/matcher/matcher.h"
#include "clio/matcher/query.h"

struct mg_context;

namespace clio::console {

// Configuration of a hub. A plain value: const methods are thread-safe,
// non-const methods need external synchronization.
struct HubOptions {
  // SQLite database for subscriptions, recent records, the log position and
  // server secrets. ":memory:" keeps nothing across restarts (tests).
  std::string db_path = "clio.db";
  // Where the console lives on the server; must start and end with '/'.
  std::string prefix = "/_clio/";
  // The admin key. Empty: the CLIO_ADMIN_KEY environment variable, else a key
  // generated at first start and kept in the database.
  std::string admin_key;
  // Limits, each refused with a clear error.
  size_t max_subscriptions_per_client = 100;
  size_t max_subscriptions = 10000;
  size_t max_body_bytes = 64 * 1024;
  size_t max_backfill = 1000;
  matcher::QueryOptions query;
  // How long a subscribe or unsubscribe waits for the dispatcher to take it
  // (between two batches) before the API answers 503; a subscribe that
  // timed out is undone and never runs late.
  std::chrono::milliseconds command_timeout{10000};
  // A client's subscriptions are removed when it stays disconnected this long.
  std::chrono::seconds grace_period{5 * 60};
  // The time that leases, login codes, sessions, throttles and the channel's
  // tokens and heartbeats are measured by (unless `channel.clock` is set).
  // Null: the real clock. Borrowed; it must outlive the hub. Tests pass a
  // clock they advance.
  const Clock* clock = nullptr;
  // Recent records: the newest `memory_records` in memory (backfill, search),
  // and up to `stored_records` / `stored_record_age` in SQLite.
  size_t memory_records = 10000;
  size_t stored_records = 100000;
  std::chrono::seconds stored_record_age{24 * 3600};
  // Admin sessions and channel tokens.
  std::chrono::seconds session_ttl{12 * 3600};
  std::chrono::seconds token_duration{2 * 3600};
  // Mark the session cookie Secure (set when a TLS proxy fronts the server).
  bool secure_cookies = false;
  // The origin browsers reach this server at: "scheme://host[:port]", e.g.
  // "https://admin.example.com" behind a TLS proxy. A cookie-authenticated
  // WebSocket upgrade must come from it (or from allowed_origins), the
  // page's CSP lets it connect only there, and "Copy as curl" targets it.
  // Never taken from a request's Host header. Empty: the listening address,
  // found at attach(): http://ADDR:PORT, and for a loopback or wildcard
  // address http://127.0.0.1:PORT and http://localhost:PORT.
  std::string public_origin;
  // Other origins allowed to open the console's WebSocket with a session
  // cookie (e.g. a second name of the same console).
  std::vector<std::string> allowed_origins;
  // Failed credential attempts (the login form's key, a Bearer key, a
  // one-time login code) allowed per client address and minute; further
  // attempts from that address get 429 until the minute ends, whatever
  // they carry. Other addresses are not affected.
  int max_auth_failures_per_minute = 20;
  // Count those per the last X-Forwarded-For hop instead of the TCP peer:
  // set it behind a reverse proxy you run (it appends the address it saw).
  bool trust_x_forwarded_for = false;
  // Channel tuning (its secret is managed by the hub: kept in the database
  // so tokens survive restarts). Large messages are split by the hub, so
  // max_message_bytes here only bounds one record.
  channel::ChannelOptions channel;
  // Also write every record as a JSON line here ("-" = stdout; "" = off).
  std::string jsonl_path;
};

// What the hub knows of one app instance. A plain value type.
struct InstanceStats {
  std::string instance;
  uint64_t records = 0;    // records of it this hub dispatched
  uint64_t published = 0;  // records it published (its own count, as last reported)
  uint64_t dropped = 0;    // records it dropped at the source (as last reported)
  double last_seen = 0;    // unix time this hub last heard from it
};

// What one console (a channel client id) was sent, counted where it
// happened, in (record, subscription) pairs. A plain value type.
struct ConsoleDelivery {
  std::string client_id;
  bool connected = false;
  uint64_t delivered = 0;  // pairs handed to its socket (less those it never read, known
                           // when it resumed and the ring no longer held them)
  uint64_t dropped = 0;    // pairs lost: announced to it as gaps (it fell behind, or was
                           // away longer than the replay window), or discarded (revoked)
  uint64_t pending = 0;    // pairs accepted, not yet delivered or lost
  // The channel's message counts (channel::MessageCounts): delivered (and
  // read), lost, and lost messages whose pairs are not known (see there).
  uint64_t messages_delivered = 0;
  uint64_t messages_lost = 0;
  uint64_t messages_unweighed = 0;
};

// Counters since start (subscriptions, sessions and backlog are current).
// A plain value type. At rest (nothing queued in the log, the channel or the
// store) these hold exactly:
//   captured == dispatched + dropped_queue     (captured = published() + dropped_at_source(),
//                                               plus log_records_lost when the log lost some)
//   matched == delivered + dropped_channel     (pending_channel == 0)
//   stored + store_dropped + store_lost == dispatched   (store_queued == 0)
struct HubStats {
  uint64_t dispatched = 0;       // records taken from the log and matched
  uint64_t matched = 0;          // (record, subscription) pairs sent to consoles: live
                                 // matches, and the backfill and catch-up of new subscriptions
  uint64_t delivered = 0;        // pairs handed to a console's socket (and not lost after)
  uint64_t dropped_channel = 0;  // pairs lost on the way: refused by the channel (client gone,
                                 // too large) or lost by it after accepting them (gaps, discards)
  uint64_t pending_channel = 0;  // pairs the channel holds, not yet delivered or lost
  uint64_t stored = 0;           // records written to SQLite
  uint64_t store_dropped = 0;    // records the store's writer queue refused
  uint64_t store_errors = 0;     // failed store batches
  uint64_t store_lost = 0;       // records in those batches (not stored)
  size_t store_queued = 0;       // records waiting for the store's writer
  uint64_t log_gaps = 0;         // gaps the log reported (trimmed, reset, malformed)
  uint64_t log_records_lost = 0; // records those gaps counted, where known
  size_t subscriptions = 0;
  size_t sessions = 0;
  // Client connects and disconnects the hub has handled (each starts or
  // ends the grace period of that client's subscriptions).
  uint64_t presence_events = 0;
  uint64_t last_id = 0;
  // Failed credential attempts since start, by kind, and attempts refused
  // unchecked because their address had used up its failures (429).
  uint64_t auth_failures_login_key = 0;
  uint64_t auth_failures_bearer = 0;
  uint64_t auth_failures_login_code = 0;
  uint64_t auth_refused = 0;
  std::string log_engine;        // LogReader::describe()
  log::LogReaderStats log;
  matcher::MatcherStats matcher;
  std::vector<InstanceStats> instances;  // by name
  std::vector<ConsoleDelivery> consoles;  // by client id: those the channel keeps state for
  // Sums over `instances`.
  uint64_t published() const;
  uint64_t dropped_at_source() const;
};

// Safe for concurrent use by multiple threads after attach(); attach() is
// called once by the thread that starts the server.
class Hub {
 public:
  // Opens the database (a clear error when it cannot be opened or written),
  // loads subscriptions, secrets and the saved log position, prepares the
  // channel. Takes the reader; does not start it.
  static Result<std::unique_ptr<Hub>> create(HubOptions options, std::unique_ptr<log::LogReader> reader);
  ~Hub();  // calls shutdown(); destroy only after mg_stop
  // Not copyable.
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Mounts the console, its API, admin auth and the channel on `ctx`, and
  // starts reading the log and dispatching.
  Status attach(mg_context* ctx);
  // Stops the dispatcher, the reader and the channel. Call before mg_stop.
  // Idempotent.
  void shutdown();

  // A one-time login code: GET <prefix>login?code=CODE logs a browser in once.
  std::string new_login_code();
  const std::string& prefix() const;
  // Whether the admin key was generated (and stored) rather than configured.
  bool admin_key_generated() const;
  HubStats stats() const;
  // The reader this hub was created with.
  log::LogReader& reader();

  // Holds the dispatcher between batches (records pile up in the log, and
  // subscribes and unsubscribes wait) until called again with false. Tests.
  void pause_dispatcher_for_test(bool paused);

  class Impl;

 private:
  explicit Hub(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clio::console
