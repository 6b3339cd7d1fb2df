// Publisher: the app side of a record log. A thread takes the records
// capture queued and appends them to a LogWriter (any engine), in batches.
// It never blocks a request thread: while the log is slow the capture queue
// fills and drops (counted by capture); while it is unreachable the
// publisher drops what capture queued (counted here) and retries with
// backoff, so the flow resumes by itself.
//
//   clio::Capture capture;
//   auto writer = clio::log::make_redis_writer(options);     // or another engine
//   clio::log::Publisher pub(capture, std::move(*writer), {.instance = "web-3"});
//   pub.start();            // after capture.install(), any time
//   ... pub.stats() ...
//   pub.stop();             // publishes what is queued (one attempt), then stops
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "clio/base/mutex.h"
#include "clio/log/record_log.h"
#include "clio/middleware/capture.h"

namespace clio::log {

// A plain value type.
struct PublisherOptions {
  // The name records are published under (the `instance` field). Required.
  std::string instance;
  // Records per append (the writer cuts them into entries).
  size_t max_batch = 1024;
  // Appends are at least this far apart (unless max_batch records wait), so
  // a busy app sends fewer, larger batches: each append is a round trip to
  // the log, which costs the app tens of microseconds of CPU in a VM. Adds
  // up to `linger` to a record's latency.
  std::chrono::milliseconds linger{2};
  // With no records to publish, a heartbeat carries the instance's counts
  // this often, so the console sees it alive and sees its drops.
  std::chrono::milliseconds heartbeat{1000};
  // After a failed append, records are dropped without trying the log for
  // retry_min, doubling up to retry_max while failures continue.
  std::chrono::milliseconds retry_min{100};
  std::chrono::milliseconds retry_max{5000};
};

// Counters since start. A plain value type.
struct PublisherStats {
  uint64_t published = 0;      // records the log took
  uint64_t dropped_log = 0;    // records dropped because the log was unreachable or refused them
  uint64_t dropped_queue = 0;  // records capture dropped because its queue was full
  uint64_t appends = 0;        // appends tried (batches and heartbeats)
  uint64_t failures = 0;       // failed appends
  bool connected = false;      // the last append (or heartbeat) succeeded
  std::string last_error;      // the latest failure ("" if none)
  uint64_t dropped() const { return dropped_log + dropped_queue; }
};

// Safe for concurrent use by multiple threads: start() and stop() by the
// thread that owns the server, stats() from any thread. Borrows `capture`,
// which must outlive it.
class Publisher {
 public:
  Publisher(Capture& capture, std::unique_ptr<LogWriter> writer, PublisherOptions options);
  ~Publisher();  // stop()
  // Not copyable.
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Starts the publishing thread. Once only.
  Status start();
  // Stops the thread after one last attempt to publish what capture had
  // queued (bounded by the writer's timeouts). Idempotent.
  void stop();
  PublisherStats stats() const;
  std::string describe() const { return writer_->describe(); }

 private:
  void run();
  // Appends one batch (or a heartbeat when empty); returns false on failure.
  bool publish(std::vector<std::unique_ptr<Record>>& batch);

  // Constant after construction.
  Capture& capture_;
  const std::unique_ptr<LogWriter> writer_;  // used by the publishing thread only
  const PublisherOptions options_;

  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> published_{0}, dropped_log_{0}, appends_{0}, failures_{0};
  std::atomic<bool> connected_{false};
  mutable Mutex error_mu_;
  std::string last_error_ CLIO_GUARDED_BY(error_mu_);
};

}  // namespace clio::log
