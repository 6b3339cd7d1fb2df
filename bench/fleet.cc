// fleet: Clio for several app instances, through a real redis-server
// started on a free loopback port. Three figures:
//
// 1. Console throughput: 4 publishing processes push synthetic records as
//    fast as they can; one console (a hub, in this process) reads, stores
//    and matches them against 100 subscriptions (1% of records match one).
//    Records/s the console dispatched, its CPU per record, and how far it
//    trailed the log at the end.
// 2. Latency: the demo app with a FleetPublisher and the console; 1,000
//    requests/s each matching one subscription; end of request -> arrival
//    at a console over WebSocket, p50/p99 (target p99 <= 10 ms).
// 3. App side: CPU per record of the publisher thread (pop, encode, XADD
//    pipelined) against a consumer that only pops and recycles, at a fixed
//    rate, in child processes, alternating rounds (target <= 2 us beyond
//    capture).
// 4. App throughput (wrk on the demo app with a FleetPublisher) while Redis
//    answers, while it is frozen (SIGSTOP: slow without limit), and while it
//    is gone (SIGKILL), with the records dropped at the source.
//
//   fleet [--seconds S] [--rate N] [--rounds R] [--publish-rate N] [--only 1|2|3|4]
#include <civetweb.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "clio/console/hub.h"
#include "clio/log/fleet.h"
#include "clio/log/publisher.h"
#include "clio/log/redis_log.h"
#include "demo_app.h"
#include "latency_probe.h"
#include "support/redis_server.h"

namespace {

using namespace std::chrono_literals;
using clio::bench::median;
using clio::bench::percentile;
constexpr const char* kKey = "fleet-bench-admin-key";
constexpr const char* kStream = "bench:records";

double cpu_seconds(int who) {
  rusage u{};
  getrusage(who, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

clio::log::RedisLogOptions log_options(const std::string& url) {
  clio::log::RedisLogOptions o;
  o.url = url;
  o.stream = kStream;
  o.max_entries = 100000;
  return o;
}

// A record shaped like the demo's traffic; query "c=<c>&k=<k>", c and k in 0..99.
std::unique_ptr<clio::Record> synthetic(uint64_t n) {
  auto r = std::make_unique<clio::Record>();
  r->time = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  r->method = "GET";
  r->path = "/api/hello";
  r->query = "c=" + std::to_string(n % 100) + "&k=" + std::to_string((n / 100) % 100);
  r->status_code = 200;
  r->wall_time = 0.05;
  r->cpu_time = 0.04;
  r->set_remote_ip("10.1.2.3");
  r->host = "app.example:8080";
  r->user_agent = "bench/1.0";
  r->http_version = "1.1";
  r->response_bytes = 149;
  r->random = static_cast<double>(n % 1000) / 1000.0;
  r->headers = {{"host", "app.example:8080"}, {"user-agent", "bench/1.0"}, {"accept", "*/*"}};
  return r;
}

// The console: a hub on its own CivetWeb server, reading the stream.
struct Console {
  explicit Console(const std::string& url, const std::string& db) {
    clio::console::HubOptions o;
    o.admin_key = kKey;
    o.db_path = db;
    auto reader = clio::log::make_redis_reader(log_options(url));
    auto hub_or = clio::console::Hub::create(o, std::move(*reader));
    if (!hub_or.ok()) {
      std::fprintf(stderr, "%s\n", hub_or.status().message().c_str());
      std::exit(1);
    }
    hub = std::move(*hub_or);
    mg_callbacks cb{};
    auto opts = clio::demo::server_options("127.0.0.1:0", CLIO_DEMO_WWW, 32);
    ctx = mg_start(&cb, nullptr, opts.pointers());
    if (ctx == nullptr || !hub->attach(ctx).ok()) std::exit(1);
    port = clio::demo::bound_port(ctx);
  }
  ~Console() {
    hub->shutdown();
    mg_stop(ctx);
  }
  std::unique_ptr<clio::console::Hub> hub;
  mg_context* ctx = nullptr;
  int port = 0;
};

// The demo app as a fleet instance ("web-1"), publishing to `url`.
struct FleetApp {
  explicit FleetApp(const std::string& url) {
    clio::log::FleetOptions fo;
    fo.log = log_options(url);
    fo.instance = "web-1";
    auto created = clio::log::FleetPublisher::create(fo);
    if (!created.ok()) std::exit(1);
    fleet = std::move(*created);
    fleet->install(&cb);
    auto opts = clio::demo::server_options("127.0.0.1:0", CLIO_DEMO_WWW, 32);
    ctx = mg_start(&cb, nullptr, opts.pointers());
    if (ctx == nullptr) std::exit(1);
    clio::demo::register_handlers(ctx);
    if (!fleet->attach(ctx).ok()) std::exit(1);
    port = clio::demo::bound_port(ctx);
  }
  ~FleetApp() {
    mg_stop(ctx);
    fleet->shutdown();
  }
  std::unique_ptr<clio::log::FleetPublisher> fleet;
  mg_callbacks cb{};
  mg_context* ctx = nullptr;
  int port = 0;
};

// A child process: publishes synthetic records for `seconds` as fast as the
// queue takes them (rate 0), or at `rate` records/s. With null_consumer, a
// thread only pops and recycles (capture's floor). Prints one line:
// "<records> <consumer cpu seconds> <dropped>".
[[noreturn]] void child_publish(const std::string& url, int index, int seconds, int rate, bool null_consumer) {
  clio::CaptureOptions co;
  co.queue_capacity = 1 << 16;
  clio::Capture capture(co);
  std::unique_ptr<clio::log::Publisher> pub;
  std::atomic<bool> stop{false};
  std::thread null_thread;
  if (null_consumer) {
    null_thread = std::thread([&] {
      std::vector<std::unique_ptr<clio::Record>> batch;
      while (!stop.load()) {
        batch.clear();
        capture.queue().pop_batch(batch, 1024, 100ms);
        capture.recycle(batch);
      }
    });
  } else {
    auto w = clio::log::make_redis_writer(log_options(url));
    pub = std::make_unique<clio::log::Publisher>(capture, std::move(*w),
                                                 clio::log::PublisherOptions{.instance = "pub-" + std::to_string(index)});
    if (!pub->start().ok()) std::exit(1);
  }
  const double cpu0 = cpu_seconds(RUSAGE_SELF), main0 = cpu_seconds(RUSAGE_THREAD);
  const auto t0 = std::chrono::steady_clock::now();
  const auto end = t0 + std::chrono::seconds(seconds);
  uint64_t n = 0;
  while (std::chrono::steady_clock::now() < end) {
    if (rate > 0) std::this_thread::sleep_until(t0 + std::chrono::duration<double>(static_cast<double>(n) / rate));
    if (capture.queue().try_push(synthetic(n))) {
      ++n;
    } else if (rate == 0) {
      std::this_thread::sleep_for(50us);
    }
  }
  uint64_t dropped = 0;
  if (pub) {
    pub->stop();
    dropped = pub->stats().dropped_log;
    std::fprintf(stderr, "  publisher: %llu appends for %llu records\n", static_cast<unsigned long long>(pub->stats().appends),
                 static_cast<unsigned long long>(n));
  } else {
    stop = true;
    null_thread.join();
  }
  const double consumer_cpu = (cpu_seconds(RUSAGE_SELF) - cpu0) - (cpu_seconds(RUSAGE_THREAD) - main0);
  std::printf("%llu %.6f %llu\n", static_cast<unsigned long long>(n), consumer_cpu,
              static_cast<unsigned long long>(dropped));
  std::fflush(stdout);
  std::_Exit(0);
}

// Forks `count` publishing children; returns their stdout pipes.
struct Child {
  pid_t pid;
  FILE* out;
};
std::vector<Child> spawn(const std::string& url, int count, int seconds, int rate, bool null_consumer) {
  std::vector<Child> kids;
  for (int i = 0; i < count; ++i) {
    int fds[2];
    if (pipe(fds) != 0) std::exit(1);
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      dup2(fds[1], 1);
      child_publish(url, i, seconds, rate, null_consumer);
    }
    close(fds[1]);
    kids.push_back({pid, fdopen(fds[0], "r")});
  }
  return kids;
}

struct ChildResult {
  unsigned long long records = 0, dropped = 0;
  double cpu = 0;
};
ChildResult collect(Child& c) {
  ChildResult r;
  if (std::fscanf(c.out, "%llu %lf %llu", &r.records, &r.cpu, &r.dropped) != 3) std::fprintf(stderr, "a child failed\n");
  std::fclose(c.out);
  waitpid(c.pid, nullptr, 0);
  return r;
}

void throughput(const std::string& url, const std::string& dir, int seconds) {
  std::printf("\n1. console throughput: 4 publishing processes -> redis -> one console, 100 subscriptions\n");
  Console console(url, dir + "/throughput.db");
  clio::bench::LatencyProbe subscriptions(console.port, kKey, 10, 10);  // 100 subscriptions, 10 consoles reading
  auto kids = spawn(url, 4, seconds + 1, 0, false);
  std::this_thread::sleep_for(1s);  // warm up
  const auto s0 = console.hub->stats();
  const double cpu0 = cpu_seconds(RUSAGE_SELF);
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  const auto s1 = console.hub->stats();
  const double cpu = cpu_seconds(RUSAGE_SELF) - cpu0;
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  unsigned long long published = 0, dropped = 0;
  for (auto& k : kids) {
    const ChildResult r = collect(k);
    published += r.records;
    dropped += r.dropped;
  }
  const double rate = static_cast<double>(s1.dispatched - s0.dispatched) / dt;
  std::printf("publishers pushed %llu records in %d s (%.0f/s), %llu dropped at the source\n", published,
              seconds + 1, static_cast<double>(published) / (seconds + 1), dropped);
  std::printf("console dispatched %.0f records/s over %.1f s (matched %llu, stored %llu); console process CPU %.2f us/record\n",
              rate, dt, static_cast<unsigned long long>(s1.matched - s0.matched),
              static_cast<unsigned long long>(s1.stored - s0.stored), cpu * 1e6 / static_cast<double>(s1.dispatched - s0.dispatched));
  std::printf("log: gaps %llu, malformed %llu, reader backlog %zu at the end of the window\n",
              static_cast<unsigned long long>(s1.log_gaps), static_cast<unsigned long long>(s1.log.malformed), s1.log.backlog);
}

void latency(const std::string& url, const std::string& dir, int rate, int seconds) {
  std::printf("\n2. latency: demo app + FleetPublisher -> redis -> console, %d requests/s for %d s, 10 consoles x 10 subscriptions\n",
              rate, seconds);
  Console console(url, dir + "/latency.db");
  FleetApp app(url);
  {
    clio::bench::LatencyProbe probe(console.port, kKey, 10, 10);
    const auto sent = probe.generate(app.port, rate, seconds);
    const std::vector<double> ms = probe.finish(sent.sent, 10s);
    std::printf("sent %llu (%llu failed), received %llu matches\n", static_cast<unsigned long long>(sent.sent),
                static_cast<unsigned long long>(sent.failed), static_cast<unsigned long long>(probe.received()));
    std::printf("end of request -> console message through redis: p50 %.2f ms, p99 %.2f ms, max %.2f ms  (target p99 <= 10 ms)\n",
                percentile(ms, 0.5), percentile(ms, 0.99), percentile(ms, 1.0));
  }
}

void publisher_cpu(const std::string& url, int rounds, int rate, int seconds) {
  std::printf("\n3. app side: consumer-thread CPU per record at %d records/s for %d s, %d rounds (order alternates)\n",
              rate, seconds, rounds);
  std::printf("%-6s %18s %18s %12s\n", "round", "null us/record", "redis us/record", "added us");
  std::vector<double> nulls, rediss, added;
  for (int r = 0; r < rounds; ++r) {
    double v[2] = {0, 0};  // [null, redis]
    for (int k = 0; k < 2; ++k) {
      const bool null_first = r % 2 == 0;
      const bool null_consumer = (k == 0) == null_first;
      auto kids = spawn(url, 1, seconds, rate, null_consumer);
      const ChildResult c = collect(kids[0]);
      v[null_consumer ? 0 : 1] = c.cpu * 1e6 / static_cast<double>(std::max<unsigned long long>(1, c.records));
    }
    nulls.push_back(v[0]);
    rediss.push_back(v[1]);
    added.push_back(v[1] - v[0]);
    std::printf("%-6d %18.2f %18.2f %12.2f\n", r + 1, v[0], v[1], v[1] - v[0]);
    std::fflush(stdout);
  }
  std::printf("median %18.2f %18.2f %12.2f   (target: the publisher adds <= 2 us beyond capture)\n", median(nulls),
              median(rediss), median(added));
}

void app_throughput(clio::test::RedisServer& redis, int seconds) {
  std::printf("\n4. app throughput under Redis failures: wrk -t1 -c8 -d%ds on the demo app with a FleetPublisher\n",
              seconds);
  if (std::system("command -v wrk >/dev/null 2>&1") != 0) {
    std::printf("wrk not installed: skipped (apt-get install wrk)\n");
    return;
  }
  FleetApp app(redis.url());
  clio::bench::run_wrk(app.port, 1, 8, 1);  // warm up
  std::printf("%-30s %12s %14s %14s\n", "redis", "req/s", "published", "dropped");
  auto row = [&](const char* name) {
    const auto before = app.fleet->stats();
    const double rps = clio::bench::run_wrk(app.port, seconds, 8, 1);
    std::this_thread::sleep_for(200ms);
    const auto after = app.fleet->stats();
    std::printf("%-30s %12.0f %14llu %14llu\n", name, rps,
                static_cast<unsigned long long>(after.published - before.published),
                static_cast<unsigned long long>(after.dropped() - before.dropped()));
    std::fflush(stdout);
  };
  row("answering");
  redis.freeze(true);
  row("frozen (SIGSTOP)");
  redis.freeze(false);
  row("answering again");
  redis.kill();
  row("gone (SIGKILL)");
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 5, rate = 1000, rounds = 5, publish_rate = 20000, only = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (k == "--seconds") seconds = v;
    else if (k == "--rate") rate = v;
    else if (k == "--rounds") rounds = v;
    else if (k == "--publish-rate") publish_rate = v;
    else if (k == "--only") only = v;
    else {
      std::fprintf(stderr, "usage: fleet [--seconds S] [--rate N] [--rounds R] [--publish-rate N] [--only 1|2|3|4]\n");
      return 2;
    }
  }
  auto redis = clio::test::RedisServer::start();
  if (!redis.ok()) {
    std::fprintf(stderr, "fleet: %s\n", redis.status().message().c_str());
    return 1;
  }
  char tmpl[] = "/tmp/clio-fleet-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  std::printf("fleet: redis-server on %s; databases in %s\n", (*redis)->url().c_str(), dir.c_str());
  mg_init_library(0);
  if (only == 0 || only == 1) throughput((*redis)->url(), dir, seconds);
  (*redis)->command({"DEL", kStream});
  if (only == 0 || only == 2) latency((*redis)->url(), dir, rate, seconds);
  if (only == 0 || only == 3) publisher_cpu((*redis)->url(), rounds, publish_rate, seconds);
  if (only == 0 || only == 4) app_throughput(**redis, seconds);
  mg_exit_library();
  std::filesystem::remove_all(dir);
  return 0;
}
