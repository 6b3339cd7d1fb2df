// capture_overhead: requests/s of the demo's GET /api/hello under wrk with
// capture off and on, in the same run, alternating over several rounds; and
// the time Clio's hooks spend on the request thread, per request.
//
//   capture_overhead [--rounds N] [--seconds S] [--connections C] [--threads T]
//
// Servers run in this process on ephemeral ports: "off" (no Clio), "on"
// (Clio installed, records drained by a JSON-lines sink writing to
// /dev/null, as an app using the middleware alone would), "on, no cpu"
// (the same with CaptureOptions::measure_cpu_time off), and two "cost"
// servers whose hooks time themselves (their throughput is not compared).
#include <civetweb.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "clio/middleware/capture.h"
#include "clio/middleware/jsonl_sink.h"
#include "bench_util.h"
#include "demo_app.h"

namespace {

struct Server {
  std::unique_ptr<clio::Capture> capture;
  std::unique_ptr<clio::JsonlSink> sink;
  mg_callbacks callbacks{};
  mg_context* ctx = nullptr;
  int port = 0;
};

Server start(bool with_capture, bool measure, bool cpu_time = true) {
  Server s;
  if (with_capture) {
    clio::CaptureOptions o;
    o.measure_self_time = measure;
    o.measure_cpu_time = cpu_time;
    s.capture = std::make_unique<clio::Capture>(o);
    if (!s.capture->install(&s.callbacks).ok()) std::exit(1);
    auto sink = clio::JsonlSink::open(s.capture->queue(), "/dev/null");
    if (!sink.ok()) std::exit(1);
    s.sink = std::move(*sink);
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

  std::printf("capture_overhead: GET /api/hello, wrk -t%d -c%d -d%ds, %d rounds (order alternates)\n", threads,
              connections, seconds, rounds);
  Server on_no_cpu = start(true, false, false);
  std::printf("%-6s %12s %12s %8s %18s %8s\n", "round", "off req/s", "on req/s", "ratio", "on, no cpu req/s",
              "ratio");
  std::vector<double> offs, ons, ons2, ratios, ratios2;
  for (Server* srv : {&off, &on, &on_no_cpu}) run_wrk(srv->port, 1, connections, threads);  // warm up
  for (int r = 0; r < rounds; ++r) {
    // Rotate the order so no configuration always runs first.
    std::array<Server*, 3> order = {&off, &on, &on_no_cpu};
    std::rotate(order.begin(), order.begin() + r % 3, order.end());
    double a = 0, b = 0, c = 0;
    for (Server* srv : order) {
      const double rps = run_wrk(srv->port, seconds, connections, threads);
      if (rps <= 0) {
        std::fprintf(stderr, "wrk failed\n");
        return 1;
      }
      (srv == &off ? a : srv == &on ? b : c) = rps;
    }
    offs.push_back(a);
    ons.push_back(b);
    ons2.push_back(c);
    ratios.push_back(b / a);
    ratios2.push_back(c / a);
    std::printf("%-6d %12.0f %12.0f %8.3f %18.0f %8.3f\n", r + 1, a, b, b / a, c, c / a);
    std::fflush(stdout);
  }
  std::printf("median %12.0f %12.0f %8.3f %18.0f %8.3f   (target ratio >= 0.97)\n", median(offs), median(ons),
              median(ratios), median(ons2), median(ratios2));

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
  std::printf("one CLOCK_THREAD_CPUTIME_ID read on this machine: %.2f us (cpu_time needs two per request)\n",
              std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - c0).count() / 100000);
  std::printf("records written by the on-server's sink: %llu, dropped: %llu\n",
              static_cast<unsigned long long>(on.sink->written()),
              static_cast<unsigned long long>(on.capture->stats().dropped_queue));

  for (Server* s : {&off, &on, &on_no_cpu, &cost, &cost_no_cpu}) {
    mg_stop(s->ctx);
    if (s->sink) s->sink->stop();
  }
  mg_exit_library();
  return 0;
}
