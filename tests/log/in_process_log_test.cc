// The in-process log hands out ids only from durably reserved blocks, so a
// restart after a crash never hands out an id twice.
#include <doctest/doctest.h>

#include <chrono>
#include <mutex>

#include "clio/log/in_process_log.h"

namespace clio::log {
namespace {

using namespace std::chrono_literals;

// An IdReservations in memory, as the database would keep it; it can fail.
class MemoryReservations : public IdReservations {
 public:
  Result<uint64_t> reserved() override {
    std::lock_guard<std::mutex> lock(mu);
    return value;
  }
  Status reserve(uint64_t through) override {
    std::lock_guard<std::mutex> lock(mu);
    ++calls;
    if (failing) return Status::Unavailable("disk full");
    value = std::max(value, through);
    return Status::Ok();
  }
  std::mutex mu;
  uint64_t value = 0;
  int calls = 0;
  bool failing = false;
};

// Pushes n records into the capture's queue.
void push(Capture& capture, int n) {
  for (int i = 0; i < n; ++i) REQUIRE(capture.queue().try_push(std::make_unique<Record>()));
}

std::vector<uint64_t> read_ids(InProcessLog& log, size_t n) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < 600 && ids.size() < n; ++i) {
    LogBatch b;
    log.read(b, n - ids.size(), 10ms);
    for (auto& r : b.records) ids.push_back(r->id);
  }
  return ids;
}

}  // namespace

TEST_CASE("ids come from a reserved block, and a restart starts above the whole block") {
  MemoryReservations store;
  Capture capture;
  uint64_t last = 0;
  {
    InProcessLog log(capture, "web-1");
    REQUIRE(log.start({"", 0, &store}).ok());
    CHECK(store.value == InProcessLog::kIdBlock);
    push(capture, 10);
    auto ids = read_ids(log, 10);
    REQUIRE(ids.size() == 10);
    CHECK(ids.front() == 1);
    last = ids.back();
    // "Crash": the log goes away without the hub storing anything.
  }
  InProcessLog again(capture, "web-1");
  // The store says nothing was written (last_id 0, no position).
  REQUIRE(again.start({"", 0, &store}).ok());
  push(capture, 3);
  auto ids = read_ids(again, 3);
  REQUIRE(ids.size() == 3);
  CHECK(ids.front() > last);
  CHECK(ids.front() == InProcessLog::kIdBlock + 1);
  CHECK(store.value == 2 * InProcessLog::kIdBlock);
}

TEST_CASE("the next block is reserved ahead; without one, records wait and the failure shows") {
  MemoryReservations store;
  Capture capture(CaptureOptions{.queue_capacity = 1 << 17});
  InProcessLog log(capture, "web-1");
  REQUIRE(log.start({"", 0, &store}).ok());
  // Use more than half the block: the next one is asked for in the background.
  const size_t n = InProcessLog::kIdBlock / 2 + 10;
  push(capture, static_cast<int>(n));
  size_t got = 0;
  for (int i = 0; i < 1000 && got < n; ++i) {
    LogBatch b;
    log.read(b, 4096, 10ms);
    got += b.records.size();
  }
  REQUIRE(got == n);
  for (int i = 0; i < 200; ++i) {
    LogBatch b;
    log.read(b, 1, 5ms);  // nothing queued: lets the reservation thread run
    std::lock_guard<std::mutex> lock(store.mu);
    if (store.value == 2 * InProcessLog::kIdBlock) break;
  }
  CHECK(store.value == 2 * InProcessLog::kIdBlock);
  // The store fails: the ids left in the block are used, then records wait.
  store.failing = true;
  const size_t left = 2 * InProcessLog::kIdBlock - n;
  push(capture, static_cast<int>(left / 2));
  push(capture, static_cast<int>(left - left / 2));
  got = 0;
  for (int i = 0; i < 1000 && got < left; ++i) {
    LogBatch b;
    log.read(b, 4096, 1ms);
    got += b.records.size();
  }
  CHECK(got == left);
  push(capture, 5);
  LogBatch held;
  for (int i = 0; i < 20; ++i) log.read(held, 10, 10ms);
  CHECK(held.records.empty());
  CHECK(capture.queue().depth() == 5);
  CHECK_FALSE(log.stats().connected);
  CHECK(log.stats().last_error.find("disk full") != std::string::npos);
  // The store comes back: the records get ids above the block.
  store.failing = false;
  auto ids = read_ids(log, 5);
  REQUIRE(ids.size() == 5);
  CHECK(ids.front() == 2 * InProcessLog::kIdBlock + 1);
  CHECK(log.stats().connected);
}

TEST_CASE("a reservation that fails at start fails start") {
  MemoryReservations store;
  store.failing = true;
  Capture capture;
  InProcessLog log(capture, "web-1");
  Status s = log.start({"", 0, &store});
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("disk full") != std::string::npos);
}

}  // namespace clio::log
