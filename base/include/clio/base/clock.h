// Clock: the time that drives behaviour (token and lease expiry, grace
// periods, heartbeats), behind a seam so that tests advance it instead of
// sleeping. Components take a `const Clock*` in their options; null means
// the real clock.
//
//   ChannelOptions o;
//   o.clock = &manual;                         // tests: a clock they advance
//   const Clock& clock = clio::clock_or_real(o.clock);
//   if (clock.wall_seconds() >= expires_at) close();
//   auto stalled = clock.steady() - started > timeout;
#pragma once

#include <chrono>
#include <cstdint>

namespace clio {

// Safe for concurrent use by multiple threads (implementations must be).
class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for timeouts, intervals and ages.
  virtual std::chrono::steady_clock::time_point steady() const = 0;
  // Calendar time, for expiry times that are stored or sent (unix epoch).
  virtual std::chrono::system_clock::time_point wall() const = 0;

  int64_t wall_seconds() const {
    return std::chrono::duration_cast<std::chrono::seconds>(wall().time_since_epoch()).count();
  }
  int64_t wall_millis() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(wall().time_since_epoch()).count();
  }
  double wall_seconds_f() const { return std::chrono::duration<double>(wall().time_since_epoch()).count(); }
};

// Safe for concurrent use by multiple threads. The process's clocks.
class RealClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point steady() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point wall() const override { return std::chrono::system_clock::now(); }
};

// `clock` if set, else the real clock (a process-wide instance).
inline const Clock& clock_or_real(const Clock* clock) {
  static const RealClock real;
  return clock != nullptr ? *clock : real;
}

}  // namespace clio
