// A bounded multi-producer queue after Dmitry Vyukov's well-known design:
// each slot carries a sequence number telling producers and the consumer
// whose turn it is, so a push is one CAS on the tail plus two stores.
#include "clio/middleware/record_queue.h"

#include <algorithm>
#include <thread>

namespace clio {
namespace {

size_t round_up_pow2(size_t n) {
  size_t p = 2;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

RecordQueue::RecordQueue(size_t capacity)
    : mask_(round_up_pow2(capacity) - 1), slots_(new Slot[mask_ + 1]) {
  for (size_t i = 0; i <= mask_; ++i) {
    slots_[i].seq.store(i, std::memory_order_relaxed);
    slots_[i].value = nullptr;
  }
}

RecordQueue::~RecordQueue() {
  std::unique_ptr<Record> r;
  while (pop_one(r)) r.reset();
}

bool RecordQueue::try_push(std::unique_ptr<Record> r) {
  uint64_t pos = tail_.load(std::memory_order_relaxed);
  for (;;) {
    Slot& s = slots_[pos & mask_];
    const uint64_t seq = s.seq.load(std::memory_order_acquire);
    const auto diff = static_cast<int64_t>(seq - pos);
    if (diff == 0) {
      if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
        s.value = r.release();
        s.seq.store(pos + 1, std::memory_order_release);
        break;
      }
    } else if (diff < 0) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;  // full
    } else {
      pos = tail_.load(std::memory_order_relaxed);
    }
  }
  pushed_.fetch_add(1, std::memory_order_relaxed);
  // Dekker-style handshake with the consumer: it sets sleeping_ and then
  // re-checks the queue; we publish the slot and then read sleeping_. The
  // fences make sure at least one of us sees the other.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_relaxed)) {
    MutexLock lock(&mu_);
    cv_.Signal();
  }
  return true;
}

bool RecordQueue::pop_one(std::unique_ptr<Record>& out) {
  const uint64_t pos = head_.load(std::memory_order_relaxed);
  Slot& s = slots_[pos & mask_];
  const uint64_t seq = s.seq.load(std::memory_order_acquire);
  if (static_cast<int64_t>(seq - (pos + 1)) < 0) return false;  // empty
  out.reset(s.value);
  s.value = nullptr;
  head_.store(pos + 1, std::memory_order_relaxed);
  s.seq.store(pos + mask_ + 1, std::memory_order_release);
  return true;
}

size_t RecordQueue::pop_batch(std::vector<std::unique_ptr<Record>>& out, size_t max,
                              std::chrono::milliseconds wait) {
  using Clock = std::chrono::steady_clock;
  auto drain = [&] {
    size_t n = 0;
    std::unique_ptr<Record> r;
    while (n < max && pop_one(r)) {
      out.push_back(std::move(r));
      ++n;
    }
    return n;
  };
  auto now = Clock::now();
  const auto deadline = now + wait;
  // One batch an interval while records flow: sleep out the rest of this one.
  if (!last_was_full_ && now - last_nonempty_ < kPollInterval) {
    std::this_thread::sleep_until(std::min(last_nonempty_ + kPollInterval, deadline));
    now = Clock::now();
  }
  size_t n = drain();
  // Records stopped: keep polling for kIdleBeforeSleep, so a pause between
  // requests costs the producers no system call; then park on the condition
  // variable and let the next push wake us.
  while (n == 0 && now < deadline && !closed_.load(std::memory_order_acquire)) {
    if (now - last_nonempty_ < kIdleBeforeSleep) {
      std::this_thread::sleep_for(std::min<Clock::duration>(kPollInterval, deadline - now));
    } else {
      MutexLock lock(&mu_);
      sleeping_.store(true, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      const uint64_t pos = head_.load(std::memory_order_relaxed);
      const uint64_t seq = slots_[pos & mask_].seq.load(std::memory_order_acquire);
      const bool empty = static_cast<int64_t>(seq - (pos + 1)) < 0;
      if (empty && !closed_.load(std::memory_order_acquire)) cv_.WaitUntil(&mu_, deadline);
      sleeping_.store(false, std::memory_order_relaxed);
    }
    n = drain();
    now = Clock::now();
  }
  if (n > 0) {
    last_nonempty_ = now;
    last_was_full_ = n == max;
  }
  return n;
}

void RecordQueue::close() {
  closed_.store(true, std::memory_order_release);
  MutexLock lock(&mu_);
  cv_.SignalAll();
}

size_t RecordQueue::depth() const {
  const uint64_t t = tail_.load(std::memory_order_relaxed);
  const uint64_t h = head_.load(std::memory_order_relaxed);
  return t > h ? static_cast<size_t>(t - h) : 0;
}

}  // namespace clio
