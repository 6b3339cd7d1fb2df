// capture_overhead: what capture costs the demo's GET /api/hello under wrk.
// The headline is the CPU this process (the server; wrk runs in a child)
// spends per request, with capture off and on, in the same run, rotating the
// order over several rounds; requests/s come second (a noisy ratio on a
// shared 2-core VM). Then the time Clio's hooks spend on the request thread.
//
//   capture_overhead [--rounds N] [--seconds S] [--connections C] [--threads T]
//
// Servers run in this process on ephemeral ports: "off" (no Clio),
// "capture" (Clio installed; a thread takes the records and hands them back
// for reuse, the least any consumer does), "capture, no cpu_time" (the same
// with CaptureOptions::measure_cpu_time off), "line" (no Clio, only a
// log_access callback that does nothing: what CivetWeb spends formatting the
// access line, which capture needs for the response's byte count), and two
// "cost" servers whose hooks time themselves (their throughput is not
// compared).
#include <civetweb.h>

#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "clio/middleware/capture.h"
#include "bench_util.h"
#include "demo_app.h"

namespace {

// Takes the records and hands them back to capture for reuse.
class Drain {
 public:
  explicit Drain(clio::Capture& c) : c_(c), thread_([this] { run(); }) {}
  ~Drain() {
    stop_ = true;
    thread_.join();
  }
  uint64_t taken() const { return taken_.load(); }

 private:
  void run() {
    std::vector<std::unique_ptr<clio::Record>> batch;
    while (!stop_.load()) {
      batch.clear();
      taken_ += c_.queue().pop_batch(batch, 1024, std::chrono::milliseconds(100));
      c_.recycle(batch);
    }
  }
  clio::Capture& c_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> taken_{0};
  std::thread thread_;
};

struct Server {
  std::unique_ptr<clio::Capture> capture;
  std::unique_ptr<Drain> drain;
  mg_callbacks callbacks{};
  mg_context* ctx = nullptr;
  int port = 0;
};

Server start(bool with_capture, bool measure, bool cpu_time = true, bool line_only = false) {
  Server s;
  if (line_only) s.callbacks.log_access = [](const mg_connection*, const char*) { return 1; };
  if (with_capture) {
    clio::CaptureOptions o;
    o.measure_self_time = measure;
    o.measure_cpu_time = cpu_time;
    s.capture = std::make_unique<clio::Capture>(o);
    if (!s.capture->install(&s.callbacks).ok()) std::exit(1);
    s.drain = std::make_unique<Drain>(*s.capture);
  }
  auto opts = clio::demo::server_options("127.0.0.1:0", CLIO_DEMO_WWW, 16);
  s.ctx = mg_start(&s.callbacks, nullptr, opts.pointers());
  if (s.ctx == nullptr) {
    std::fprintf(stderr, "cannot start server\n");
    std::exit(1);
  }
  clio::demo::register_handlers(s.ctx);
  s.port = clio::demo::bound_port(s.ctx);
  return s;
}

}  // namespace

using clio::bench::median;
using clio::bench::run_wrk;

int main(int argc, char** argv) {
  int rounds = 5, seconds = 5, connections = 8, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (k == "--rounds") rounds = v;
    else if (k == "--seconds") seconds = v;
    else if (k == "--connections") connections = v;
    else if (k == "--threads") threads = v;
    else {
      std::fprintf(stderr, "usage: capture_overhead [--rounds N] [--seconds S] [--connections C] [--threads T]\n");
      return 2;
    }
  }
  if (std::system("command -v wrk >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "capture_overhead needs wrk (apt-get install wrk)\n");
    return 1;
  }
  mg_init_library(0);
  Server off = start(false, false);
  Server on = start(true, false);
  Server cost = start(true, true);
  Server cost_no_cpu = start(true, true, false);

  std::printf("capture_overhead: GET /api/hello, wrk -t%d -c%d -d%ds, %d rounds (order rotates)\n", threads,
              connections, seconds, rounds);
  Server on_no_cpu = start(true, false, false);
  Server line = start(false, false, false, true);
  constexpr size_t kConfigs = 4;
  const std::array<Server*, kConfigs> servers = {&off, &on, &on_no_cpu, &line};
  const std::array<const char*, kConfigs> names = {"off", "capture", "no cpu_time", "line"};
  std::array<std::vector<double>, kConfigs> cpu, rps, added;
  // One line: a label, then each configuration's CPU per request and requests/s.
  auto print_row = [&](const std::string& label, auto cpu_of, auto rps_of) {
    std::printf("%-6s", label.c_str());
    for (size_t k = 0; k < kConfigs; ++k) std::printf(" %12.2f", static_cast<double>(cpu_of(k)));
    std::printf("  ");
    for (size_t k = 0; k < kConfigs; ++k) std::printf(" %12.0f", static_cast<double>(rps_of(k)));
    std::printf("\n");
  };
  std::printf("CPU per request of this process (the server), us; then requests/s\n%-6s", "round");
  for (int twice = 0; twice < 2; ++twice) {
    if (twice == 1) std::printf("  ");
    for (const char* n : names) std::printf(" %12s", n);
  }
  std::printf("\n");
  for (Server* srv : servers) run_wrk(srv->port, 1, connections, threads);  // warm up
  for (int r = 0; r < rounds; ++r) {
    // Rotate the order so no configuration always runs first.
    std::array<size_t, kConfigs> order = {0, 1, 2, 3};
    std::rotate(order.begin(), order.begin() + r % kConfigs, order.end());
    std::array<clio::bench::WrkRun, kConfigs> runs;
    for (size_t k : order) {
      runs[k] = clio::bench::run_wrk_cpu(servers[k]->port, seconds, connections, threads);
      if (runs[k].rps <= 0) {
        std::fprintf(stderr, "wrk failed\n");
        return 1;
      }
    }
    for (size_t k = 0; k < kConfigs; ++k) {
      cpu[k].push_back(runs[k].cpu_us_per_request);
      rps[k].push_back(runs[k].rps);
      added[k].push_back(runs[k].cpu_us_per_request - runs[0].cpu_us_per_request);
    }
    print_row(std::to_string(r + 1), [&](size_t k) { return runs[k].cpu_us_per_request; },
              [&](size_t k) { return runs[k].rps; });
    std::fflush(stdout);
  }
  print_row("median", [&](size_t k) { return median(cpu[k]); }, [&](size_t k) { return median(rps[k]); });
  for (size_t k : {size_t{1}, size_t{2}}) {
    std::printf("%s adds %.2f us of CPU per request (median of rounds, range %.2f .. %.2f; target <= 2 us); "
                "throughput ratio %.3f\n",
                k == 1 ? "capture" : "capture without cpu_time", median(added[k]),
                *std::min_element(added[k].begin(), added[k].end()), *std::max_element(added[k].begin(), added[k].end()),
                median(rps[k]) / median(rps[0]));
  }
  std::printf("of which CivetWeb formatting the access line (a log_access callback alone): %.2f us (range %.2f .. %.2f)\n",
              median(added[3]), *std::min_element(added[3].begin(), added[3].end()),
              *std::max_element(added[3].begin(), added[3].end()));

  auto report = [&](Server& srv, const char* label) {
    run_wrk(srv.port, seconds, connections, threads);
    const auto st = srv.capture->stats();
    std::printf("in-process capture cost on the request thread, %s (%llu requests; target <= 2 us):\n"
                "  median %.2f us, p90 %.2f us, p99 %.2f us, mean %.2f us (the mean includes preemption)\n",
                label, static_cast<unsigned long long>(st.captured), st.self_p50_ns / 1000.0,
                st.self_p90_ns / 1000.0, st.self_p99_ns / 1000.0,
                st.captured ? static_cast<double>(st.self_ns) / 1000.0 / static_cast<double>(st.captured) : 0.0);
  };
  report(cost, "with cpu_time (default)");
  report(cost_no_cpu, "measure_cpu_time=false");
  timespec ts;
  const auto c0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 100000; ++i) clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  std::printf("one CLOCK_THREAD_CPUTIME_ID read on this machine: %.2f us (cpu_time needs one per request)\n",
              std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - c0).count() / 100000);
  std::printf("records taken from the capture server's queue: %llu, dropped: %llu\n",
              static_cast<unsigned long long>(on.drain->taken()),
              static_cast<unsigned long long>(on.capture->stats().dropped_queue));

  for (Server* s : {&off, &on, &on_no_cpu, &line, &cost, &cost_no_cpu}) {
    mg_stop(s->ctx);
    s->drain.reset();
  }
  mg_exit_library();
  return 0;
}
