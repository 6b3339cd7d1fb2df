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
  // While records keep arriving the consumer takes them once every
  // kPollInterval: a call within an interval of the last batch first sleeps
  // out the rest of it (unless that batch was cut at `max`), and an empty
  // queue is polled at that interval, so producers never wake anyone and the
  // consumer wakes at most 250 times a second at any rate. A wakeup costs
  // 20-30 us of CPU in this project's 2-core VM: polling every 1 ms cost the
  // dispatcher about 6 us per record at 5,000 records/s. A record waits at
  // most about one interval. After kIdleBeforeSleep with no record the
  // consumer sleeps until a producer wakes it.
  size_t pop_batch(std::vector<std::unique_ptr<Record>>& out, size_t max,
                   std::chrono::milliseconds wait);

  static constexpr std::chrono::milliseconds kPollInterval{4};
  static constexpr std::chrono::milliseconds kIdleBeforeSleep{200};

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
  // Owned by the consumer thread.
  std::chrono::steady_clock::time_point last_nonempty_{};
  bool last_was_full_ = false;  // the last batch stopped at `max`: more may wait
};

}  // namespace clio
