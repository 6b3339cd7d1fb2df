// RecordQueue: the bounded multi-producer queue that carries records off the
// request threads. Pushing never blocks and never allocates; when the queue
// is full the record is dropped and counted.
//
//   clio::RecordQueue q(1024);
//   q.try_push(std::make_unique<clio::Record>(...));       // any thread
//   std::vector<std::unique_ptr<clio::Record>> batch;
//   q.pop_batch(batch, 256, std::chrono::milliseconds(100));  // the one consumer
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "clio/base/mutex.h"
#include "clio/middleware/record.h"

namespace clio {

// Safe for concurrent use by multiple threads: any number of producers call
// try_push(); pop_batch() must be called by one consumer thread at a time.
class RecordQueue {
 public:
  // `capacity` is rounded up to a power of two (at least 2).
  explicit RecordQueue(size_t capacity);
  ~RecordQueue();
  // Not copyable.
  RecordQueue(const RecordQueue&) = delete;
  RecordQueue& operator=(const RecordQueue&) = delete;

  // Takes ownership of `r` on success. On a full queue returns false, counts
  // the drop, and destroys the record. Lock-free unless the consumer sleeps,
  // in which case it takes the consumer's mutex briefly to wake it.
  bool try_push(std::unique_ptr<Record> r);

  // Moves up to `max` records into `out` (appending), waiting up to `wait`
  // for the first one. Returns the number moved; 0 on timeout or after close().
  // While records keep arriving the consumer polls (so producers never wake
  // anyone): every kMinPollInterval, so a record waits about 1 ms; when more
  // than kBusyRecordsPerMs arrive per millisecond of polling, the interval
  // doubles up to kMaxPollInterval (a wakeup costs several microseconds of
  // CPU in some virtual machines; at 20,000 records/s that is 1% of a core
  // saved), and halves again when the rate falls below a quarter of that.
  // After kIdleBeforeSleep with no record it sleeps until a producer wakes it.
  size_t pop_batch(std::vector<std::unique_ptr<Record>>& out, size_t max,
                   std::chrono::milliseconds wait);

  static constexpr std::chrono::milliseconds kMinPollInterval{1};
  static constexpr std::chrono::milliseconds kMaxPollInterval{4};
  static constexpr size_t kBusyRecordsPerMs = 16;
  static constexpr std::chrono::milliseconds kIdleBeforeSleep{200};
  // The consumer's current polling interval (for tests and benchmarks).
  std::chrono::milliseconds poll_interval() const { return poll_interval_.load(std::memory_order_relaxed); }

  // Wakes the consumer; later pops return what is left without waiting.
  void close();

  size_t capacity() const { return mask_ + 1; }
  size_t depth() const;
  uint64_t pushed() const { return pushed_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // Whether the consumer is parked, waiting for a push to wake it (a fence
  // for tests: a push after this reads true must wake it).
  bool consumer_parked() const { return sleeping_.load(std::memory_order_acquire); }

 private:
  struct Slot {
    std::atomic<uint64_t> seq;
    Record* value;
  };
  bool pop_one(std::unique_ptr<Record>& out);

  // Constant after construction.
  const size_t mask_;
  std::unique_ptr<Slot[]> slots_;
  // Lock-free state (Vyukov's bounded queue), on separate cache lines.
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) std::atomic<uint64_t> head_{0};
  alignas(64) std::atomic<uint64_t> pushed_{0};
  std::atomic<uint64_t> dropped_{0};
  // Consumer sleep/wake; mu_ guards nothing but the wait itself.
  Mutex mu_;
  CondVar cv_;
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> closed_{false};
  // Owned by the consumer thread (poll_interval_ is atomic only to be read).
  std::chrono::steady_clock::time_point last_nonempty_{};
  std::atomic<std::chrono::milliseconds> poll_interval_{kMinPollInterval};
};

}  // namespace clio
