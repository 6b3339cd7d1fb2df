// capture_overhead: requests/s of the demo's GET /api/hello under wrk with
// capture off and on, in the same run, alternating over several rounds; and
// the time Clio's hooks spend on the request thread, per request.
//
//   capture_overhead [--rounds N] [--seconds S] [--connections C] [--threads T]
//
// Three servers run in this process on ephemeral ports: "off" (no Clio),
// "on" (Clio installed, records drained by a JSON-lines sink writing to
// /dev/null, as an app using the middleware alone would), and "cost" (like
// "on", with the hooks timing themselves; its throughput is not compared).
#include <civetweb.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "clio/middleware/capture.h"
#include "clio/middleware/jsonl_sink.h"
#include "demo_app.h"

namespace {

struct Server {
  std::unique_ptr<clio::Capture> capture;
  std::unique_ptr<clio::JsonlSink> sink;
  mg_callbacks callbacks{};
  mg_context* ctx = nullptr;
  int port = 0;
};

Server start(bool with_capture, bool measure) {
  Server s;
  if (with_capture) {
    clio::CaptureOptions o;
    o.measure_self_time = measure;
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

// Runs wrk and returns its Requests/sec, or -1.
double run_wrk(int port, int seconds, int connections, int threads) {
  const std::string cmd = "wrk -t" + std::to_string(threads) + " -c" + std::to_string(connections) + " -d" +
                          std::to_string(seconds) + "s http://127.0.0.1:" + std::to_string(port) +
                          "/api/hello 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char line[512];
  double rps = -1;
  while (std::fgets(line, sizeof line, p)) {
    if (std::sscanf(line, "Requests/sec: %lf", &rps) == 1) continue;
  }
  const int rc = pclose(p);
  return rc == 0 ? rps : -1;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

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

  std::printf("capture_overhead: GET /api/hello, wrk -t%d -c%d -d%ds, %d rounds (order alternates)\n", threads,
              connections, seconds, rounds);
  std::printf("%-6s %14s %14s %8s\n", "round", "off req/s", "on req/s", "ratio");
  std::vector<double> offs, ons, ratios;
  run_wrk(off.port, 1, connections, threads);  // warm up both
  run_wrk(on.port, 1, connections, threads);
  for (int r = 0; r < rounds; ++r) {
    double a, b;
    if (r % 2 == 0) {
      a = run_wrk(off.port, seconds, connections, threads);
      b = run_wrk(on.port, seconds, connections, threads);
    } else {
      b = run_wrk(on.port, seconds, connections, threads);
      a = run_wrk(off.port, seconds, connections, threads);
    }
    if (a <= 0 || b <= 0) {
      std::fprintf(stderr, "wrk failed\n");
      return 1;
    }
    offs.push_back(a);
    ons.push_back(b);
    ratios.push_back(b / a);
    std::printf("%-6d %14.0f %14.0f %8.3f\n", r + 1, a, b, b / a);
    std::fflush(stdout);
  }
  std::printf("median %14.0f %14.0f %8.3f   (target ratio >= 0.97)\n", median(offs), median(ons), median(ratios));

  run_wrk(cost.port, seconds, connections, threads);
  const auto st = cost.capture->stats();
  std::printf("in-process capture cost on the request thread (%llu requests; target <= 2 us):\n"
              "  median %.2f us, p90 %.2f us, p99 %.2f us, mean %.2f us (the mean includes preemption)\n",
              static_cast<unsigned long long>(st.captured), st.self_p50_ns / 1000.0, st.self_p90_ns / 1000.0,
              st.self_p99_ns / 1000.0,
              st.captured ? static_cast<double>(st.self_ns) / 1000.0 / static_cast<double>(st.captured) : 0.0);
  std::printf("records written by the on-server's sink: %llu, dropped: %llu\n",
              static_cast<unsigned long long>(on.sink->written()),
              static_cast<unsigned long long>(on.capture->stats().dropped_queue));

  for (Server* s : {&off, &on, &cost}) {
    mg_stop(s->ctx);
    if (s->sink) s->sink->stop();
  }
  mg_exit_library();
  return 0;
}
