// The in-process record log, the default: one process, nothing else to run.
// The hub reads the capture queue of its own process directly; ids come from
// a counter that resumes after the highest id the hub holds.
//
//   clio::Capture capture;
//   clio::log::InProcessLog log(capture, "web-1:8080");
//   log.start({.last_id = highest_stored_id});
//   clio::log::LogBatch batch;
//   log.read(batch, 1024, std::chrono::milliseconds(20));
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "clio/log/record_log.h"
#include "clio/middleware/capture.h"

namespace clio::log {

// Owned by one thread (the hub's dispatcher), like every LogReader; stats(),
// describe() and close() may be called from any thread. Borrows `capture`,
// which must outlive it.
//
// Positions are the last id handed out, in decimal; a restarted hub resumes
// above max(position, LogResume::last_id). Records still in the capture
// queue when the process stops are lost with it (they are a cache).
// Source reports (the instance's captured and dropped counts, from the
// capture's stats) come with the first read and then at most every 250 ms.
class InProcessLog final : public LogReader {
 public:
  InProcessLog(Capture& capture, std::string instance);
  // Not copyable.
  InProcessLog(const InProcessLog&) = delete;
  InProcessLog& operator=(const InProcessLog&) = delete;

  // The instance name records get. Call before start() only (the hub reads
  // it from other threads afterwards).
  void set_instance(std::string instance) { instance_ = std::move(instance); }
  const std::string& instance() const { return instance_; }

  Status start(const LogResume& resume) override;
  void read(LogBatch& out, size_t max_records, std::chrono::milliseconds wait) override;
  void recycle(std::vector<std::unique_ptr<Record>>& records) override { capture_.recycle(records); }
  void close() override { closed_.store(true, std::memory_order_release); }
  LogReaderStats stats() const override;
  // The capture's counts as of now.
  std::vector<SourceReport> live_sources() const override;
  std::string describe() const override { return "in-process"; }

 private:
  // Constant after start().
  Capture& capture_;
  std::string instance_;
  // Owned by the reading thread.
  uint64_t last_id_ = 0;
  std::chrono::steady_clock::time_point next_report_{};
  // Readable from any thread.
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> records_{0};
};

}  // namespace clio::log
