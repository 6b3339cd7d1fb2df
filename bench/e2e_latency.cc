// e2e_latency: the whole pipeline under load. The demo app runs in this
// process with an Inspector; 10 consoles (WebSocket clients) hold 10
// subscriptions each; an open-loop generator sends requests at a fixed rate,
// each matching exactly one subscription. Every console measures the time
// from the record's end of request (time + wall_time) to the arrival of the
// message carrying it. Then the app under wrk (/api/hello) with the inspector
// on vs off, alternating, in the same run: the CPU the server process spends
// per request (the headline), and requests/s.
//
//   e2e_latency [--rate N] [--seconds S] [--rounds R] [--wrk-seconds S] [--cpu-time 0|1]
//               [--breakdown 0|1] [--db DIR|:memory:] [--paced-rate N]
//
// --paced-rate N (default 5000, 0 skips it) also compares on vs off at a
// fixed N requests/s, from a client in a child process (this program run as
// `e2e_latency --client PORT RATE SECONDS`), so that the CPU per request is
// not shaped by how wrk and the server share two saturated cores.
//
// --db DIR puts each inspector's SQLite database in DIR (default: a fresh
// directory under /tmp, removed at exit), as the demo keeps it in a file;
// --db :memory: keeps them in memory.
// --cpu-time 0 runs the inspector with CaptureOptions::measure_cpu_time off.
// --breakdown 1 also compares, each against off: the inspector with the other
// cpu_time setting, capture alone (dispatcher held) with and without it, and
// the two CPU clock reads alone (CivetWeb's access-log line alone is
// capture_overhead's "line").
// Each comparison also prints the CPU per request of each group of threads
// (by name), all rounds pooled: the inspector's own threads exactly, and the
// workers' difference, which carries the hooks and what the others cost them.
#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "clio/console/inspector.h"
#include "bench_util.h"
#include "demo_app.h"
#include "latency_probe.h"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
constexpr int kConsoles = 10;
constexpr int kSubsEach = 10;
constexpr const char* kKey = "e2e-latency-bench-key";

struct Server {
  std::unique_ptr<clio::console::Inspector> inspector;
  mg_callbacks callbacks{};
  mg_context* ctx = nullptr;
  int port = 0;
};

// Starts the demo app with s.callbacks and attaches s.inspector, if any.
void start_demo(Server& s) {
  auto opts = clio::demo::server_options("127.0.0.1:0", CLIO_DEMO_WWW, 48);
  s.ctx = mg_start(&s.callbacks, nullptr, opts.pointers());
  if (s.ctx == nullptr) std::exit(1);
  clio::demo::register_handlers(s.ctx);
  if (s.inspector && !s.inspector->attach(s.ctx).ok()) std::exit(1);
  s.port = clio::demo::bound_port(s.ctx);
}

// Where the inspectors' databases go: a directory, or ":memory:".
std::string g_db_dir;
std::vector<std::string> g_db_files;

std::string next_db_path() {
  if (g_db_dir == ":memory:") return g_db_dir;
  const std::string path = g_db_dir + "/e2e-" + std::to_string(g_db_files.size()) + ".db";
  g_db_files.push_back(path);
  return path;
}

void remove_db_files() {
  for (const auto& f : g_db_files) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((f + suffix).c_str());
  }
}

Server start(bool with_inspector, bool cpu_time = true) {
  Server s;
  if (with_inspector) {
    clio::console::InspectorOptions o;
    o.db_path = next_db_path();
    o.admin_key = kKey;
    o.capture.measure_cpu_time = cpu_time;
    auto created = clio::console::Inspector::create(o);
    if (!created.ok()) {
      std::fprintf(stderr, "%s\n", created.status().message().c_str());
      std::exit(1);
    }
    s.inspector = std::move(*created);
    if (!s.inspector->install(&s.callbacks).ok()) std::exit(1);
  }
  start_demo(s);
  return s;
}

// No inspector, only what cpu_time asks of every request (docs/ARCHITECTURE.md): a
// CLOCK_THREAD_CPUTIME_ID read in begin_request and another in end_request.
// The floor any inspector with cpu_time pays.
thread_local timespec t_cpu_begin, t_cpu_end;

Server start_clock_only() {
  Server s;
  s.callbacks.begin_request = [](mg_connection*) -> int {
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t_cpu_begin);
    return 0;
  };
  s.callbacks.end_request = [](const mg_connection*, int) { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t_cpu_end); };
  start_demo(s);
  return s;
}

void stop(Server& s) {
  if (s.inspector) s.inspector->shutdown();
  mg_stop(s.ctx);
  s.inspector.reset();
}

// Rounds of `measure(false)` (off) and `measure(true)` (on), their order
// alternating, printed as a table with medians: CPU per request, the CPU the
// inspector added, requests/s and their ratio.
template <typename Measure>
void compare_rounds(const std::string& name, int rounds, Measure measure) {
  std::printf("%-6s %12s %12s %10s   %12s %12s %8s   %s\n", "round", "off us/req", "on us/req", "added us",
              "off req/s", "on req/s", "ratio", name.c_str());
  std::vector<double> ratios, offs, ons, cpu_off, cpu_on, added;
  // Per thread name, over all rounds: CPU seconds, and the requests served.
  std::map<std::string, double> threads[2];
  double requests[2] = {0, 0};
  auto measured = [&](bool is_on) {
    const auto before = clio::bench::thread_cpu_by_name();
    const clio::bench::WrkRun run = measure(is_on);
    for (const auto& [thread, seconds] : clio::bench::thread_cpu_by_name()) {
      const auto it = before.find(thread);
      threads[is_on][thread] += seconds - (it == before.end() ? 0 : it->second);
    }
    requests[is_on] += run.requests;
    return run;
  };
  for (int r = 0; r < rounds; ++r) {
    clio::bench::WrkRun a, b;
    if (r % 2 == 0) {
      a = measured(false);
      b = measured(true);
    } else {
      b = measured(true);
      a = measured(false);
    }
    offs.push_back(a.rps);
    ons.push_back(b.rps);
    ratios.push_back(b.rps / a.rps);
    cpu_off.push_back(a.cpu_us_per_request);
    cpu_on.push_back(b.cpu_us_per_request);
    added.push_back(b.cpu_us_per_request - a.cpu_us_per_request);
    std::printf("%-6d %12.2f %12.2f %10.2f   %12.0f %12.0f %8.3f\n", r + 1, a.cpu_us_per_request,
                b.cpu_us_per_request, added.back(), a.rps, b.rps, b.rps / a.rps);
    std::fflush(stdout);
  }
  std::printf("median %12.2f %12.2f %10.2f   %12.0f %12.0f %8.3f   %s (added range %.2f .. %.2f us; target: the\n"
              "       whole inspector adds <= 4 us of CPU per request)\n",
              clio::bench::median(cpu_off), clio::bench::median(cpu_on), clio::bench::median(added),
              clio::bench::median(offs), clio::bench::median(ons), clio::bench::median(ratios), name.c_str(),
              *std::min_element(added.begin(), added.end()), *std::max_element(added.begin(), added.end()));
  // Where it lands: each thread group's CPU per request, all rounds pooled.
  // The inspector's own threads are exact; the workers' difference carries
  // the capture hooks and whatever the other threads cost them in cache.
  std::printf("       by thread, us/req off -> on:");
  std::set<std::string> names;
  for (const auto& t : threads) {
    for (const auto& entry : t) names.insert(entry.first);
  }
  for (const std::string& thread : names) {
    const double off = requests[0] > 0 ? threads[0][thread] * 1e6 / requests[0] : 0;
    const double on = requests[1] > 0 ? threads[1][thread] * 1e6 / requests[1] : 0;
    if (off < 0.005 && on < 0.005) continue;
    std::printf("  %s %.2f -> %.2f", thread.c_str(), off, on);
  }
  std::printf("\n");
}

// The child's side of a paced round (clio::bench::send_paced of GET
// /api/hello). Prints "sent N failed M".
int client_main(int port, int rate, int seconds) {
  const auto s = clio::bench::send_paced(port, rate, seconds, [](uint64_t) { return std::string("/api/hello"); });
  std::printf("sent %llu failed %llu\n", static_cast<unsigned long long>(s.sent),
              static_cast<unsigned long long>(s.failed));
  return 0;
}

// One paced round against `port` from a child process: this process's CPU
// per request served (the child's CPU is not counted).
clio::bench::WrkRun run_paced_cpu(const std::string& self, int port, int rate, int seconds) {
  const std::string cmd = self + " --client " + std::to_string(port) + " " + std::to_string(rate) + " " +
                          std::to_string(seconds);
  unsigned long long failed = 0;
  auto run = clio::bench::run_child_cpu(cmd, [&](const char* line, clio::bench::WrkRun& r) {
    unsigned long long sent = 0;
    if (std::sscanf(line, "sent %llu failed %llu", &sent, &failed) == 2) {
      r.requests = static_cast<double>(sent);
      r.rps = r.requests / seconds;
    }
  });
  if (failed > 0) std::printf("  (%llu requests failed)\n", failed);
  return run;
}

}  // namespace

using clio::bench::median;
using clio::bench::percentile;
using clio::bench::run_wrk;
using clio::bench::run_wrk_cpu;

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--client") {
    return client_main(std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]));
  }
  int rate = 1000, seconds = 10, rounds = 3, wrk_seconds = 5, cpu_time = 1, breakdown = 0, paced_rate = 5000;
  std::string db_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (k == "--db") db_dir = argv[i + 1];
    else if (k == "--rate") rate = v;
    else if (k == "--seconds") seconds = v;
    else if (k == "--rounds") rounds = v;
    else if (k == "--wrk-seconds") wrk_seconds = v;
    else if (k == "--cpu-time") cpu_time = v;
    else if (k == "--breakdown") breakdown = v;
    else if (k == "--paced-rate") paced_rate = v;
    else {
      std::fprintf(stderr, "usage: e2e_latency [--rate N] [--seconds S] [--rounds R] [--wrk-seconds S] [--cpu-time 0|1] [--breakdown 0|1] [--db DIR|:memory:] [--paced-rate N]\n");
      return 2;
    }
  }
  std::string made_dir;
  if (db_dir.empty()) {
    char tmpl[] = "/tmp/clio-e2e-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    db_dir = made_dir = tmpl;
  }
  g_db_dir = db_dir;
  std::printf("databases: %s\n", db_dir == ":memory:" ? "in memory" : db_dir.c_str());
  mg_init_library(0);
  Server on = start(true, cpu_time != 0);

  // 10 consoles x 10 subscriptions, each matched by one request shape.
  std::printf("e2e_latency: %d consoles x %d subscriptions, %d requests/s for %d s, each matching one subscription\n",
              kConsoles, kSubsEach, rate, seconds);
  {
    clio::bench::LatencyProbe probe(on.port, kKey, kConsoles, kSubsEach);
    const auto sent = probe.generate(on.port, rate, seconds);
    on.inspector->drain_for_test(10s);
    const std::vector<double> latencies_ms = probe.finish(sent.sent, 2s);
    const auto st = on.inspector->stats();
    std::printf("sent %llu requests in %.1f s (%.0f/s), %llu failed; matches delivered %llu, received %llu\n",
                static_cast<unsigned long long>(sent.sent), sent.seconds, static_cast<double>(sent.sent) / sent.seconds,
                static_cast<unsigned long long>(sent.failed), static_cast<unsigned long long>(st.delivered),
                static_cast<unsigned long long>(probe.received()));
    std::printf("end of request -> message arrival: p50 %.2f ms, p99 %.2f ms, max %.2f ms  (target p99 <= 10 ms)\n",
                percentile(latencies_ms, 0.5), percentile(latencies_ms, 0.99), percentile(latencies_ms, 1.0));
  }

  // CPU per request at a fixed rate, inspector on vs off.
  if (paced_rate > 0) {
    char self[4096];
    const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return 1;
    self[len] = '\0';
    Server off = start(false);
    std::printf("fixed rate: %d requests/s of GET /api/hello for %d s a round, from a child process, %d rounds\n"
                "(order alternates); CPU this process (the servers) spends per request\n",
                paced_rate, wrk_seconds, rounds);
    compare_rounds(cpu_time ? "on, fixed rate" : "on, no cpu_time, fixed rate", rounds, [&](bool is_on) {
      return run_paced_cpu(self, is_on ? on.port : off.port, paced_rate, wrk_seconds);
    });
    stop(off);
  }

  // Throughput with the inspector on (10 x 10 subscriptions loaded) vs off.
  if (std::system("command -v wrk >/dev/null 2>&1") != 0) {
    std::printf("wrk not installed: throughput comparison skipped (apt-get install wrk)\n");
  } else {
    Server off = start(false);
    // --breakdown: where the cost lies. The same inspector without cpu_time,
    // capture alone (dispatcher held: once the queue is full, records are
    // dropped on the request thread) with and without cpu_time, and the two
    // CPU clock reads alone.
    std::vector<Server> extra;
    // counts: the server has a running dispatcher whose record counts are printed.
    struct Variant {
      std::string name;
      Server* server;
      bool counts;
    };
    std::vector<Variant> variants{{cpu_time ? "on" : "on, no cpu_time", &on, true}};
    if (breakdown) {
      extra.reserve(4);
      extra.push_back(start(true, !cpu_time));
      variants.push_back({cpu_time ? "on, no cpu_time" : "on", &extra.back(), true});
      for (bool cpu : {true, false}) {
        extra.push_back(start(true, cpu));
        extra.back().inspector->pause_dispatcher_for_test(true);
        variants.push_back({cpu ? "capture only" : "capture only, no cpu_time", &extra.back(), false});
      }
      extra.push_back(start_clock_only());
      variants.push_back({"cpu clock reads only", &extra.back(), false});
    }
    std::printf("throughput, wrk -t1 -c8 -d%ds on GET /api/hello, %d rounds (order alternates); the headline is the\n"
                "CPU this process (the servers; wrk runs in a child) spends per request\n",
                wrk_seconds, rounds);
    for (auto& [name, server, counts] : variants) {
      const auto before = counts ? server->inspector->stats() : clio::console::InspectorStats{};
      run_wrk(off.port, 1, 8, 1);
      run_wrk(server->port, 1, 8, 1);
      compare_rounds(name, rounds, [&](bool is_on) {
        return run_wrk_cpu(is_on ? server->port : off.port, wrk_seconds, 8, 1);
      });
      if (counts) {
        server->inspector->drain_for_test(10s);
        const auto after = server->inspector->stats();
        std::printf("       captured %llu, dispatched %llu, lost to a full queue %llu, stored %llu, refused by the store %llu\n",
                    static_cast<unsigned long long>(after.captured - before.captured),
                    static_cast<unsigned long long>(after.dispatched - before.dispatched),
                    static_cast<unsigned long long>(after.dropped_queue - before.dropped_queue),
                    static_cast<unsigned long long>(after.stored - before.stored),
                    static_cast<unsigned long long>(after.store_dropped - before.store_dropped));
      }
    }
    for (Server& e : extra) stop(e);
    stop(off);
  }
  stop(on);
  mg_exit_library();
  remove_db_files();
  if (!made_dir.empty()) rmdir(made_dir.c_str());
  return 0;
}
