// FailureThrottle: failed credential attempts counted per client address,
// so that one address guessing keys is slowed down while the right key from
// any other address always works. Every kind of guess (login form key,
// Bearer key, one-time login code) counts against the same address.
//
//   FailureThrottle t({.max_failures = 20, .window = 60s, .max_addresses = 4096});
//   if (t.throttled(addr, now)) return answer_429();
//   if (!key_ok) t.note_failure(addr, FailureThrottle::kBearer, now);
//
// Memory is bounded: at most max_addresses addresses are tracked. When the
// table is full, addresses whose window has ended go first, then the one
// whose last failure is the oldest; so an attacker with more addresses than
// that can escape the per-address count, but never lock anyone else out.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "clio/base/mutex.h"

namespace clio::console {

// Safe for concurrent use by multiple threads.
class FailureThrottle {
 public:
  enum Kind { kLoginKey = 0, kBearer = 1, kLoginCode = 2, kKinds = 3 };
  struct Options {
    int max_failures = 20;                     // per address and window; more are refused
    std::chrono::seconds window{60};           // a fixed window starting at the first failure
    size_t max_addresses = 4096;               // addresses tracked at once
  };
  explicit FailureThrottle(Options options) : options_(options) {}

  // Whether `address` has used up its failures for the current window.
  // Counts the refusal in Stats::refused when it has.
  bool throttled(std::string_view address, int64_t now);
  void note_failure(std::string_view address, Kind kind, int64_t now);

  struct Stats {
    std::array<uint64_t, kKinds> failures{};  // by Kind, since start
    uint64_t refused = 0;                     // attempts answered "too many" without being checked
    size_t addresses = 0;                     // addresses tracked now
  };
  Stats stats() const;
  static const char* kind_name(Kind k);

 private:
  struct Entry {
    int64_t window_start = 0;
    int64_t last_failure = 0;
    int failures = 0;
  };
  void make_room_locked(int64_t now) CLIO_REQUIRES(mu_);

  // Constant after construction.
  const Options options_;

  mutable Mutex mu_;
  // Guarded by mu_.
  std::unordered_map<std::string, Entry> entries_ CLIO_GUARDED_BY(mu_);
  Stats stats_ CLIO_GUARDED_BY(mu_);
};

}  // namespace clio::console
