// FleetPublisher: what an app instance of a fleet uses instead of the
// Inspector. It captures every request (as the Inspector does) and
// publishes the records to a Redis stream, where one console
// (`clio serve --redis URL`) reads the records of every instance.
//
//   auto fleet = clio::log::FleetPublisher::create(
//       {.log = {.url = "redis://10.0.0.5:6379"}, .instance = "web-3"});
//   if (!fleet.ok()) die(fleet.status().message());
//   (*fleet)->install(&callbacks);                      // 1. before mg_start
//   mg_context* ctx = mg_start(&callbacks, nullptr, options);
//   (*fleet)->attach(ctx);                              // 2. starts publishing
//   ... serve ...
//   mg_stop(ctx); (*fleet)->shutdown();                 // 3. publishes the rest
//
// Redis may be down when the app starts, or go away later: the app starts
// and serves all the same, records are dropped and counted (stats()), and
// publishing resumes by itself when Redis is back.
#pragma once

#include <memory>
#include <string>

#include "clio/base/status.h"
#include "clio/log/publisher.h"
#include "clio/log/redis_log.h"
#include "clio/middleware/capture.h"

struct mg_callbacks;
struct mg_context;

namespace clio::log {

// A plain value type.
struct FleetOptions {
  RedisLogOptions log;     // where: url, stream; and the log's tuning
  std::string instance;    // "" = "<hostname>:<port>", chosen at attach()
  CaptureOptions capture;  // what capture records, and its queue
  PublisherOptions publisher;  // batching, heartbeat, retry (its instance is set from above)
};

// Safe for concurrent use by multiple threads after attach(); install() and
// attach() are called once each by the thread that starts the server.
class FleetPublisher {
 public:
  // Checks the options (a bad URL is an error here); does not connect.
  static Result<std::unique_ptr<FleetPublisher>> create(FleetOptions options);
  ~FleetPublisher();  // shutdown(); destroy after mg_stop
  // Not copyable.
  FleetPublisher(const FleetPublisher&) = delete;
  FleetPublisher& operator=(const FleetPublisher&) = delete;

  // Installs capture into the app's callbacks (chaining the app's own).
  Status install(mg_callbacks* callbacks);
  // Names the instance (default from ctx's port) and starts publishing.
  Status attach(mg_context* ctx);
  // Stops publishing after one last attempt for what is queued. Idempotent.
  void shutdown();

  const std::string& instance() const { return instance_; }
  PublisherStats stats() const;
  Capture& capture() { return *capture_; }
  std::string describe() const;

 private:
  FleetPublisher(FleetOptions options, std::unique_ptr<LogWriter> writer);

  // Constant after attach().
  FleetOptions options_;
  std::string instance_;
  std::unique_ptr<Capture> capture_;
  std::unique_ptr<LogWriter> writer_;  // handed to publisher_ at attach()
  std::unique_ptr<Publisher> publisher_;
};

}  // namespace clio::log
