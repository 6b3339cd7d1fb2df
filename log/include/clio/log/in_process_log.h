// The in-process record log, the default: one process, nothing else to run.
// The hub reads the capture queue of its own process directly; ids come from
// a counter that resumes above every id handed out before, crash or not.
//
//   clio::Capture capture;
//   clio::log::InProcessLog log(capture, "web-1:8080");
//   log.start({.last_id = highest_stored_id, .ids = &reservations});
//   clio::log::LogBatch batch;
//   log.read(batch, 1024, std::chrono::milliseconds(20));
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "clio/base/mutex.h"
#include "clio/log/record_log.h"
#include "clio/middleware/capture.h"

namespace clio::log {

// Owned by one thread (the hub's dispatcher), like every LogReader; stats(),
// describe() and close() may be called from any thread. Borrows `capture`,
// which must outlive it.
//
// Ids. Positions are the last id handed out, in decimal. With
// LogResume::ids, ids are handed out only from a durably reserved block
// (kIdBlock ids): start() reserves the first block above max(position,
// LogResume::last_id, the stored reservation), and a helper thread reserves
// the next one when half of the current block is used, so the dispatcher
// never waits on the database unless the reservation falls behind (then
// records wait in the capture queue). After a crash (even SIGKILL) the
// restarted log starts above the whole reserved block: the ids the crashed
// process handed out, stored or not, are never handed out again; the rest
// of its block is skipped. Without LogResume::ids (tests), ids resume above
// max(position, last_id) only.
//
// Records still in the capture queue when the process stops are lost with
// it (they are a cache). Source reports (the instance's captured and
// dropped counts, from the capture's stats) come with the first read and
// then at most every 250 ms.
class InProcessLog final : public LogReader {
 public:
  static constexpr uint64_t kIdBlock = 65536;

  InProcessLog(Capture& capture, std::string instance);
  ~InProcessLog() override;  // close(), and joins the reservation thread
  // Not copyable.
  InProcessLog(const InProcessLog&) = delete;
  InProcessLog& operator=(const InProcessLog&) = delete;

  // The instance name records get. Call before start() only (the hub reads
  // it from other threads afterwards).
  void set_instance(std::string instance) { instance_ = std::move(instance); }
  const std::string& instance() const { return instance_; }

  // Reserves the first block when LogResume::ids is set: its failure (the
  // database) is returned.
  Status start(const LogResume& resume) override;
  void read(LogBatch& out, size_t max_records, std::chrono::milliseconds wait) override;
  void recycle(std::vector<std::unique_ptr<Record>>& records) override { capture_.recycle(records); }
  void close() override;
  // `connected` is false and `last_error` says why while a reservation fails.
  LogReaderStats stats() const override;
  // The capture's counts as of now.
  std::vector<SourceReport> live_sources() const override;
  std::string describe() const override { return "in-process"; }

 private:
  // Ids the reader may hand out now, waiting up to `wait` when none.
  uint64_t available_ids(std::chrono::milliseconds wait) CLIO_EXCLUDES(ids_mu_);
  void run_reservations() CLIO_EXCLUDES(ids_mu_);

  // Constant after start().
  Capture& capture_;
  std::string instance_;
  IdReservations* ids_ = nullptr;
  // Owned by the reading thread.
  uint64_t last_id_ = 0;
  std::chrono::steady_clock::time_point next_report_{};
  // Readable from any thread.
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> records_{0};

  // Reservations: the reading thread asks, the reservation thread stores.
  mutable Mutex ids_mu_;
  CondVar ids_cv_;
  uint64_t reserved_ CLIO_GUARDED_BY(ids_mu_) = 0;  // ids up to this are durably reserved
  uint64_t wanted_ CLIO_GUARDED_BY(ids_mu_) = 0;    // the reservation the reading thread asked for
  std::string reserve_error_ CLIO_GUARDED_BY(ids_mu_);
  std::thread reserver_;
};

}  // namespace clio::log
