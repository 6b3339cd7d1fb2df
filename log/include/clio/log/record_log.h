// The record log: what carries records from the app side (capture) to the
// console side (the hub). Two interfaces, one per side, so the hub never
// knows which engine it reads:
//
//   app side:  Capture -> Publisher (publisher.h) -> LogWriter::append
//   hub side:  LogReader::read -> the hub's dispatcher
//
// Engines: in-process (in_process_log.h: the default, one process, the
// capture queue read directly) and Redis Streams (redis_log.h: several app
// instances, one console). A third engine implements LogWriter and
// LogReader and plugs into Publisher and the hub unchanged.
//
//   std::unique_ptr<clio::log::LogReader> reader = ...;   // any engine
//   reader->start({.position = saved, .last_id = highest_stored});
//   clio::log::LogBatch batch;
//   reader->read(batch, 1024, std::chrono::milliseconds(20));
//   for (auto& r : batch.records) use(*r);  // ids assigned, instance set
//
// Ids. A record's id is its position in the log: the same in every console
// and across console restarts, increasing in log order, never reused, and
// below 2^53 so browsers hold it exactly. Each engine documents how.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "clio/base/status.h"
#include "clio/middleware/record.h"

namespace clio::log {

// Records the log lost before the records that follow it in a batch (a
// trimmed stream, a log that restarted empty, an entry that did not decode).
// A plain value type.
struct LogGap {
  std::optional<uint64_t> count;  // records lost, when the log can tell
  std::string reason;             // "trimmed", "reset", "malformed"
};

// What an app instance reported about itself with its records: totals since
// that instance started. A plain value type.
struct SourceReport {
  std::string instance;
  uint64_t published = 0;  // records the instance handed to the log
  uint64_t dropped = 0;    // records it dropped at the source (queue full, log unreachable)
};

// One read. Thread-compatible: const methods are thread-safe, non-const
// methods need external synchronization.
struct LogBatch {
  // Ids strictly increase, also from batch to batch; `instance` is set.
  std::vector<std::unique_ptr<Record>> records;
  std::vector<LogGap> gaps;            // lost before these records
  std::vector<SourceReport> sources;   // the newest report of each instance seen
  // Where to resume after this batch (LogResume::position); unchanged from
  // the previous batch when nothing moved.
  std::string position;

  void clear() {
    records.clear();
    gaps.clear();
    sources.clear();
  }
  bool empty() const { return records.empty() && gaps.empty() && sources.empty(); }
};

// Durable storage of reserved ids, for an engine that numbers records
// itself (the in-process log): it reserves ids in blocks before handing
// them out, as database sequences do, so that ids handed out before a
// crash are never handed out again. The hub implements it on its database.
// Safe for concurrent use by multiple threads.
class IdReservations {
 public:
  virtual ~IdReservations() = default;
  // The highest id reserved so far (0 if none).
  virtual Result<uint64_t> reserved() = 0;
  // Raises the reservation to `through`; returns once it survives a crash
  // of the process.
  virtual Status reserve(uint64_t through) = 0;
};

// Where a reader starts. A plain value type.
struct LogResume {
  // A LogBatch::position saved by an earlier hub; "" (or one written by
  // another engine) starts the way the engine documents.
  std::string position;
  // The highest record id the hub already holds. Records at or below it are
  // skipped, so ids only grow even when the saved position is behind.
  uint64_t last_id = 0;
  // Where an engine that numbers records itself reserves ids (borrowed; it
  // outlives the reader). Engines whose log numbers records ignore it.
  IdReservations* ids = nullptr;
};

// Counters of a reader since start. A plain value type.
struct LogReaderStats {
  bool connected = true;        // false while the log cannot be reached
  std::string last_error;       // the latest failure ("" if none)
  uint64_t entries = 0;         // log entries read (an entry holds one or more records)
  uint64_t records = 0;         // records delivered to read()
  uint64_t malformed = 0;       // entries skipped because they did not decode
  uint64_t stale = 0;           // records skipped because their id was not above the last one
  uint64_t gaps = 0;            // gaps reported
  uint64_t records_lost = 0;    // records those gaps counted (known counts only)
  uint64_t resets = 0;          // times the log restarted empty under the reader
  size_t backlog = 0;           // records read from the log, not yet taken by read()
};

// The hub's side of a log. Owned by one thread (the hub's dispatcher):
// start(), read() and recycle() are called from it only; stats() and
// describe() are safe from any thread; close() may be called from any
// thread and wakes a blocked read().
class LogReader {
 public:
  virtual ~LogReader() = default;
  // Starts reading (an engine may connect in the background and report
  // failures through stats(); read() then returns nothing until it can).
  virtual Status start(const LogResume& resume) = 0;
  // Appends to `out` what arrived, waiting up to `wait` when nothing has:
  // at most `max_records` records, with the gaps and source reports before
  // them, and sets out.position.
  virtual void read(LogBatch& out, size_t max_records, std::chrono::milliseconds wait) = 0;
  // Takes back records the hub is done with, for reuse (empties `records`).
  virtual void recycle(std::vector<std::unique_ptr<Record>>& records) = 0;
  // Stops reading; read() returns at once from then on. Idempotent.
  virtual void close() = 0;
  virtual LogReaderStats stats() const = 0;
  // Reports of instances this reader can see directly, as of now (the
  // in-process log's own capture); others report through read() only.
  // Safe from any thread.
  virtual std::vector<SourceReport> live_sources() const { return {}; }
  // The engine and where it reads, without secrets: "in-process",
  // "redis://10.0.0.5:6379/0 stream clio:records".
  virtual std::string describe() const = 0;
};

// The app's side of a log. Owned by one thread (a Publisher's thread).
class LogWriter {
 public:
  virtual ~LogWriter() = default;
  // Appends `records` (in order; ids are left to the log) as coming from
  // `report.instance`, with the instance's totals, and sets `appended` to
  // how many the log took. Blocks at most the engine's I/O timeouts. On a
  // failure (kUnavailable when the log cannot be reached) the records not
  // taken are lost: the caller counts them as dropped. An empty `records`
  // is a heartbeat carrying only the report.
  virtual Status append(const std::vector<std::unique_ptr<Record>>& records, const SourceReport& report,
                        size_t& appended) = 0;
  // Drops the connection (if any); the next append() reconnects.
  virtual void disconnect() = 0;
  virtual std::string describe() const = 0;
};

}  // namespace clio::log
