// Inspector: Clio in one process, the default. One object an app creates: it
// installs capture into the app's CivetWeb callbacks and runs a hub
// (hub.h) on the app's own server, reading capture's records through the
// in-process log: the admin console, its HTTP API and the channel under a
// prefix (default "/_clio/"). A fleet of app instances uses
// clio::log::FleetPublisher and one `clio serve` instead.
//
//   clio::console::InspectorOptions o;  o.db_path = "clio.db";
//   auto inspector = clio::console::Inspector::create(o);
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
#include "clio/console/hub.h"
#include "clio/middleware/capture.h"

struct mg_callbacks;
struct mg_context;

namespace clio::log {
class InProcessLog;
}

namespace clio::console {

// Configuration of an Inspector: the hub's (hub.h) plus capture's. A plain
// value: const methods are thread-safe, non-const methods need external
// synchronization.
struct InspectorOptions : HubOptions {
  // Capture settings (exclude_prefixes gets the console prefix added;
  // capture.trust_x_forwarded_for also sets the hub's).
  CaptureOptions capture;
  // The `instance` of this process's records; "" = "<hostname>:<port>".
  std::string instance;
};

// The hub's counters plus capture's. A plain value type.
struct InspectorStats : HubStats {
  uint64_t captured = 0;       // records taken from requests
  uint64_t dropped_queue = 0;  // records lost to a full capture queue
  size_t queue_depth = 0;      // records waiting in the capture queue
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

  // Waits until every request that began has its record captured, and every
  // record captured so far has been dispatched (matched, sent, queued for
  // the store). Requests in flight are waited for: CivetWeb records a
  // request (log_access) after its response has reached the client. For
  // tests and orderly shutdown; bounded by `timeout`.
  bool drain_for_test(std::chrono::milliseconds timeout);
  // Holds the dispatcher between batches (records pile up in the capture
  // queue, and subscribes and unsubscribes wait) until called again with
  // false. Tests.
  void pause_dispatcher_for_test(bool paused);
  // The hub this inspector runs.
  Hub& hub();

 private:
  Inspector() = default;

  // Constant after create(). Declared in this order so that the hub, which
  // hands records back to capture, is destroyed first.
  std::unique_ptr<Capture> capture_;
  log::InProcessLog* log_ = nullptr;  // owned by hub_
  std::unique_ptr<Hub> hub_;
};

}  // namespace clio::console
