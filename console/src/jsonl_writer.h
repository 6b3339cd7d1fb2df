// JsonlWriter: the hub's optional JSON-lines log of every record, written
// by its own thread so the dispatcher never waits on a file.
//
//   auto w = JsonlWriter::open("records.jsonl");       // "-" = stdout
//   if (!w.ok()) return w.status();
//   (*w)->post(batch);                                 // never blocks
#pragma once

#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "clio/base/mutex.h"
#include "clio/base/status.h"
#include "recent_records.h"

namespace clio::console {

// Safe for concurrent use by multiple threads: post() from any thread (the
// dispatcher), stats() from any; one writer thread does the I/O.
class JsonlWriter {
 public:
  // Opens `path` for appending ("-" = stdout; a file is owner-only, see
  // private_file.h). kUnavailable naming the path when it cannot.
  static Result<std::unique_ptr<JsonlWriter>> open(const std::string& path);
  ~JsonlWriter();  // writes what was posted, then closes
  // Not copyable.
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;

  // Queues a batch to write; false (and its records counted as dropped)
  // when kMaxQueued batches are already waiting.
  bool post(std::shared_ptr<const RecordBatch> batch);
  // Waits until everything posted before the call is written.
  void flush();

  struct Stats {
    uint64_t written = 0;  // records written
    uint64_t dropped = 0;  // records refused by post() or lost to a write error
    std::string last_error;
  };
  Stats stats() const;
  static constexpr size_t kMaxQueued = 256;

 private:
  JsonlWriter(std::FILE* f, bool owned, std::string path);
  void run() CLIO_EXCLUDES(mu_);

  // Constant after construction.
  std::FILE* const file_;
  const bool owned_;
  const std::string path_;

  mutable Mutex mu_;
  CondVar cv_;
  // Guarded by mu_.
  std::deque<std::shared_ptr<const RecordBatch>> queue_ CLIO_GUARDED_BY(mu_);
  uint64_t posted_ CLIO_GUARDED_BY(mu_) = 0;  // batches
  uint64_t done_ CLIO_GUARDED_BY(mu_) = 0;
  bool stopping_ CLIO_GUARDED_BY(mu_) = false;
  Stats stats_ CLIO_GUARDED_BY(mu_);

  std::thread thread_;
};

}  // namespace clio::console
