// JsonlSink: drains a RecordQueue on its own thread and writes each record as
// one JSON line (the record encoding of record.h) to a file or stdout: an
// access log in JSON, so the middleware is useful on its own.
//
//   clio::Capture capture;  capture.install(&callbacks);
//   auto sink = clio::JsonlSink::open(capture.queue(), "-");   // "-" = stdout
//   if (!sink.ok()) die(sink.status().message());
//   ... serve ...; stop the server; (*sink)->stop();
#pragma once

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "clio/base/status.h"
#include "clio/middleware/record_queue.h"

namespace clio {

// Owned by its writer thread; only stop() and stats() may be called from
// other threads. The queue must outlive the sink.
class JsonlSink {
 public:
  // Opens `path` for appending ("-" is stdout; a file is owner-only, see
  // private_file.h) and starts the writer thread.
  static Result<std::unique_ptr<JsonlSink>> open(RecordQueue& queue, const std::string& path);
  ~JsonlSink();  // calls stop()
  // Not copyable.
  JsonlSink(const JsonlSink&) = delete;
  JsonlSink& operator=(const JsonlSink&) = delete;

  // Writes what is queued, then stops the thread. Idempotent.
  void stop();

  uint64_t written() const { return written_.load(std::memory_order_relaxed); }
  uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }

 private:
  JsonlSink(RecordQueue& queue, std::FILE* out, bool owns);
  void run();

  // Constant after construction.
  RecordQueue& queue_;
  std::FILE* const out_;
  const bool owns_;
  // Safe for concurrent use.
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> write_errors_{0};
  std::thread thread_;
};

}  // namespace clio
