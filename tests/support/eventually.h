// eventually: waits, bounded, for a condition that another thread will make
// true, checking it every 10 ms (or as often as asked). For waiting on an
// event the code under test offers no fence for; never for asserting that
// something did not happen.
//
//   REQUIRE(clio::test::eventually([&] { return stats().dispatched >= n; }));
#pragma once

#include <chrono>
#include <thread>

namespace clio::test {

// True as soon as `pred` holds; false if it still does not after `seconds`.
// `every` is how often it is checked.
template <typename Pred>
bool eventually(Pred pred, double seconds = 10, std::chrono::milliseconds every = std::chrono::milliseconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(every);
  }
  return pred();
}

}  // namespace clio::test
