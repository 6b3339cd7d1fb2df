// Inspector: Clio's composition root. One object an app creates: it installs
// capture into the app's CivetWeb callbacks, mounts the admin console, its
// HTTP API and the channel under a prefix (default "/_clio/") on the app's
// own server, and runs the dispatcher that carries records from capture
// through the matcher to the admins' browsers.
//
//   auto inspector = clio::console::Inspector::create({.db_path = "clio.db"});
//   if (!inspector.ok()) die(inspector.status().message());
//   mg_callbacks cb{};                                  // the app's callbacks
//   (*inspector)->install(&cb);                         // 1. before mg_start
//   mg_context* ctx = mg_start(&cb, nullptr, options);  //    (options: see README)
//   (*inspector)->attach(ctx);                          // 2. after mg_start
//   ... serve ...
//   (*inspector)->shutdown();                           // 3. before mg_stop
//   mg_stop(ctx);                                       // 4. then destroy the inspector
//
// The order above never hangs: shutdown() stops the dispatcher and closes
// channel sessions without holding anything CivetWeb's threads need.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "clio/base/status.h"
#include "clio/channel/channel.h"
#include "clio/matcher/query.h"
#include "clio/middleware/capture.h"

struct mg_callbacks;
struct mg_context;

namespace clio::console {

// Configuration of an Inspector. A plain value: const methods are
// thread-safe, non-const methods need external synchronization.
struct InspectorOptions {
  // SQLite database for subscriptions, recent records and server secrets.
  // ":memory:" keeps nothing across restarts (tests).
  std::string db_path = "clio.db";
  // Where the console lives on the app's server; must start and end with '/'.
  std::string prefix = "/_clio/";
  // The admin key. Empty: the CLIO_ADMIN_KEY environment variable, else a key
  // generated at first start and kept in the database.
  std::string admin_key;
  // Capture settings (exclude_prefixes gets the console prefix added).
  CaptureOptions capture;
  // Limits, each refused with a clear error.
  size_t max_subscriptions_per_client = 100;
  size_t max_subscriptions = 10000;
  size_t max_body_bytes = 64 * 1024;
  size_t max_backfill = 1000;
  matcher::QueryOptions query;
  // A client's subscriptions are removed when it stays disconnected this long.
  std::chrono::seconds grace_period{5 * 60};
  // Recent records: the newest `memory_records` in memory (backfill, search),
  // and up to `stored_records` / `stored_record_age` in SQLite.
  size_t memory_records = 10000;
  size_t stored_records = 100000;
  std::chrono::seconds stored_record_age{24 * 3600};
  // Admin sessions and channel tokens.
  std::chrono::seconds session_ttl{12 * 3600};
  std::chrono::seconds token_duration{2 * 3600};
  // Mark the session cookie Secure (set when a TLS proxy fronts the app).
  bool secure_cookies = false;
  // Origins, besides the server's own, allowed to open the console's
  // WebSocket with a session cookie (e.g. "https://admin.example.com").
  std::vector<std::string> allowed_origins;
  // Channel tuning (its secret is managed by the inspector: kept in the
  // database so tokens survive restarts). Large messages are split by the
  // dispatcher, so max_message_bytes here only bounds one record.
  channel::ChannelOptions channel;
  // Also write every record as a JSON line here ("-" = stdout; "" = off).
  std::string jsonl_path;
};

// Counters since start (queue_depth, subscriptions, sessions are current).
struct InspectorStats {
  uint64_t captured = 0;         // records taken from requests
  uint64_t dispatched = 0;       // records stamped with an id by the dispatcher
  uint64_t matched = 0;          // (record, subscription) matches
  uint64_t delivered = 0;        // matches handed to the channel
  uint64_t dropped_queue = 0;    // records lost to a full capture queue
  uint64_t dropped_channel = 0;  // matches the channel refused (client gone, too large)
  uint64_t stored = 0;           // records written to SQLite
  uint64_t store_dropped = 0;    // records the store's writer queue refused
  uint64_t store_errors = 0;     // failed store batches
  size_t queue_depth = 0;
  size_t subscriptions = 0;
  size_t sessions = 0;
  uint64_t last_id = 0;
};

// Safe for concurrent use by multiple threads after attach(); install() and
// attach() are called once each by the thread that starts the server.
class Inspector {
 public:
  // Opens the database (a clear error when it cannot be opened or written),
  // loads subscriptions and secrets, prepares capture and the channel.
  static Result<std::unique_ptr<Inspector>> create(InspectorOptions options);
  ~Inspector();  // calls shutdown(); destroy only after mg_stop
  // Not copyable.
  Inspector(const Inspector&) = delete;
  Inspector& operator=(const Inspector&) = delete;

  // Installs capture into the app's callbacks (chaining the app's own).
  Status install(mg_callbacks* callbacks);
  // Mounts the console, its API, admin auth and the channel on `ctx`, and
  // starts the dispatcher.
  Status attach(mg_context* ctx);
  // Stops the dispatcher and the channel. Call before mg_stop. Idempotent.
  void shutdown();

  // A one-time login code: GET <prefix>login?code=CODE logs a browser in once.
  std::string new_login_code();
  const std::string& prefix() const;
  // Whether the admin key was generated (and stored) rather than configured.
  bool admin_key_generated() const;
  InspectorStats stats() const;
  // The capture in use (for its stats or to switch it off).
  Capture& capture();

  // Waits until every record captured so far has been dispatched (matched,
  // sent, stored). For tests and orderly shutdown; bounded by `timeout`.
  bool drain_for_test(std::chrono::milliseconds timeout);
  // Holds the dispatcher between batches (records pile up in the capture
  // queue) until called again with false. For tests of overflow.
  void pause_dispatcher_for_test(bool paused);

  class Impl;

 private:
  explicit Inspector(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clio::console
