// What the end-to-end benchmarks share: admins' consoles (WebSocket clients)
// holding subscriptions, readers that time every match from its request's
// end (record time + wall_time) to the arrival of the message carrying it,
// and an open-loop request generator whose requests each match one
// subscription.
//
//   clio::bench::LatencyProbe probe(console_port, key);     // 10 consoles x 10 subscriptions
//   auto sent = probe.generate(app_port, 1000, 10);         // 1,000 requests/s for 10 s
//   std::vector<double> ms = probe.finish(sent.sent, 10s);  // latencies, in ms
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "clio/base/mutex.h"
#include "support/http_client.h"
#include "support/ws_client.h"

namespace clio::bench {

// The console API at `port` as an admin (Bearer `key`); exits on failure.
nlohmann::json console_api(int port, const std::string& key, const std::string& method, const std::string& path,
                           const std::string& body = "");

// What an open-loop sender did.
struct PacedSent {
  uint64_t sent = 0, failed = 0;
  double seconds = 0;
};

// Open loop: `rate` requests/s of GET path(n) to `app_port` for `seconds`
// (n numbers the requests from 0), from 4 threads on keep-alive connections;
// a late request is sent at once, never skipped.
PacedSent send_paced(int app_port, int rate, int seconds, const std::function<std::string(uint64_t)>& path);

// Safe for concurrent use by multiple threads: its readers run on their own
// threads; generate() and finish() are called by one thread.
class LatencyProbe {
 public:
  // Connects `consoles` consoles to the console at `console_port`, each
  // holding `subs` subscriptions; subscription (c, k) matches the requests
  // whose query string is "c=<c>&k=<k>". Exits on failure.
  LatencyProbe(int console_port, const std::string& key, int consoles = 10, int subs = 10);
  ~LatencyProbe();
  LatencyProbe(const LatencyProbe&) = delete;
  LatencyProbe& operator=(const LatencyProbe&) = delete;

  // send_paced() of GET /api/hello to `app_port`, each request matching
  // exactly one subscription, in turn.
  PacedSent generate(int app_port, int rate, int seconds);
  // Waits (up to `timeout`) until `expected` matches arrived, stops the
  // readers and returns every latency measured, in ms.
  std::vector<double> finish(uint64_t expected, std::chrono::milliseconds timeout);
  uint64_t received() const { return received_.load(); }

 private:
  const int consoles_, subs_;
  std::vector<std::unique_ptr<test::WsClient>> ws_;
  std::vector<std::thread> readers_;
  Mutex mu_;
  std::vector<double> latencies_ms_ CLIO_GUARDED_BY(mu_);
  std::atomic<bool> done_{false};
  std::atomic<uint64_t> received_{0};
};

}  // namespace clio::bench
