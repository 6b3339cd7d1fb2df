// ManualClock: a clio::Clock that moves only when the test advances it, so
// that expiry, grace periods and heartbeats happen on the test's word instead
// of after a sleep.
//
//   clio::test::ManualClock clock;             // starts at the real time
//   ChannelOptions o;  o.clock = &clock;
//   clock.advance(std::chrono::seconds(2));    // the token has now expired
//   svc.housekeeping_for_test();               // fence: what is due is done
#pragma once

#include <chrono>

#include "clio/base/clock.h"
#include "clio/base/mutex.h"

namespace clio::test {

// Safe for concurrent use by multiple threads.
class ManualClock final : public Clock {
 public:
  ManualClock() : steady_(std::chrono::steady_clock::now()), wall_(std::chrono::system_clock::now()) {}

  std::chrono::steady_clock::time_point steady() const override {
    MutexLock l(&mu_);
    return steady_;
  }
  std::chrono::system_clock::time_point wall() const override {
    MutexLock l(&mu_);
    return wall_;
  }
  // Moves both clocks forward by `d`.
  void advance(std::chrono::nanoseconds d) {
    MutexLock l(&mu_);
    steady_ += d;
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  }

 private:
  mutable Mutex mu_;
  std::chrono::steady_clock::time_point steady_ CLIO_GUARDED_BY(mu_);
  std::chrono::system_clock::time_point wall_ CLIO_GUARDED_BY(mu_);
};

}  // namespace clio::test
