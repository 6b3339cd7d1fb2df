#include "throttle.h"

#include <algorithm>

namespace clio::console {

bool FailureThrottle::throttled(std::string_view address, int64_t now) {
  MutexLock lock(&mu_);
  auto it = entries_.find(std::string(address));
  if (it == entries_.end()) return false;
  const Entry& e = it->second;
  if (now - e.window_start >= options_.window.count() || e.failures < options_.max_failures) return false;
  ++stats_.refused;
  return true;
}

void FailureThrottle::note_failure(std::string_view address, Kind kind, int64_t now) {
  MutexLock lock(&mu_);
  ++stats_.failures[kind];
  auto it = entries_.find(std::string(address));
  if (it == entries_.end()) {
    if (entries_.size() >= options_.max_addresses) make_room_locked(now);
    it = entries_.emplace(std::string(address), Entry{now, now, 0}).first;
  }
  Entry& e = it->second;
  if (now - e.window_start >= options_.window.count()) e = Entry{now, now, 0};
  e.last_failure = now;
  ++e.failures;
}

// Drops every address whose window has ended; if none has, the one whose
// last failure is the oldest.
void FailureThrottle::make_room_locked(int64_t now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = now - it->second.window_start >= options_.window.count() ? entries_.erase(it) : std::next(it);
  }
  if (entries_.size() < options_.max_addresses || entries_.empty()) return;
  auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
    return a.second.last_failure < b.second.last_failure;
  });
  entries_.erase(oldest);
}

FailureThrottle::Stats FailureThrottle::stats() const {
  MutexLock lock(&mu_);
  Stats s = stats_;
  s.addresses = entries_.size();
  return s;
}

const char* FailureThrottle::kind_name(Kind k) {
  switch (k) {
    case kLoginKey: return "login_key";
    case kBearer: return "bearer";
    case kLoginCode: return "login_code";
    case kKinds: break;
  }
  return "unknown";
}

}  // namespace clio::console
