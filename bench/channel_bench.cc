// channel_bench: throughput and latency of the channel on loopback.
//
//   channel_bench [--runs N]
//
// A real CivetWeb server on 127.0.0.1:0 with the channel mounted, and raw
// WebSocket clients in the same process:
//   1. small messages/s to one client (send_message as fast as possible,
//      timed from the first send to the last message received);
//   2. the same spread over 10 clients;
//   3. send -> receive latency at 1,000 msgs/s to one client (p50, p99, max);
//   4. the process's CPU time (user + sys, all threads: sender, socket,
//      reader) per console-like message (a 3 KiB "matches" message of four
//      record JSON items) sent as text (send_message: escaped into a JSON
//      string) and as JSON (send_json: checked, then spliced in as is),
//      alternating the two.
// Each figure is measured --runs times (default 5); the median is reported.
// Every loop is bounded in count and in time.
#include <civetweb.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "clio/channel/channel.h"
#include "bench_util.h"
#include "support/ws_client.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace ch = clio::channel;

struct Server {
  ch::ChannelService svc;
  mg_context* ctx = nullptr;
  int port = 0;

  explicit Server(ch::ChannelOptions o) : svc(std::move(o)) {
    std::vector<std::string> opts = {"listening_ports", "127.0.0.1:0", "num_threads", "24"};
    ch::append_recommended_civetweb_options(opts);
    std::vector<const char*> p;
    for (auto& s : opts) p.push_back(s.c_str());
    p.push_back(nullptr);
    mg_callbacks cb{};
    ctx = mg_start(&cb, nullptr, p.data());
    if (!ctx) {
      std::fprintf(stderr, "channel_bench: mg_start failed\n");
      std::exit(1);
    }
    mg_server_port ports[2];
    mg_get_server_ports(ctx, 2, ports);
    port = ports[0].port;
    if (!svc.mount(ctx, "/channel").ok()) std::exit(1);
  }
  ~Server() {
    svc.shutdown();
    mg_stop(ctx);
  }
};

ch::ChannelOptions bench_options() {
  ch::ChannelOptions o;
  o.max_queue_bytes = 256u * 1024 * 1024;  // measure delivery, not overflow
  o.replay_max_messages = 1000;
  return o;
}

clio::test::WsClient connect_client(Server& s, const std::string& id) {
  auto tok = s.svc.create_channel(id);
  clio::test::WsClient ws;
  if (!ws.connect(s.port, "/channel", {"clio.v1", "clio-token." + tok->token}).ok() || ws.status() != 101) {
    std::fprintf(stderr, "channel_bench: upgrade failed\n");
    std::exit(1);
  }
  auto welcome = ws.read_message(5);  // the welcome frame
  if (!welcome.ok()) std::exit(1);
  return ws;
}

// Reads `count` message frames (control frames are skipped); returns how many arrived.
int drain(clio::test::WsClient& ws, int count, Clock::time_point deadline) {
  int got = 0;
  while (got < count && Clock::now() < deadline) {
    auto f = ws.read_message(5);
    if (!f.ok()) break;
    if (f->payload.compare(0, 11, R"({"t":"msg",)") == 0) ++got;
  }
  return got;
}

// Messages/s to `clients` clients, `per_client` messages each.
double throughput(int clients, int per_client) {
  Server s(bench_options());
  std::vector<clio::test::WsClient> ws;
  for (int i = 0; i < clients; ++i) ws.push_back(connect_client(s, clio::bench::numbered("c", i)));
  std::atomic<int> received{0};
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  std::vector<std::thread> readers;
  for (int i = 0; i < clients; ++i) {
    readers.emplace_back([&, i] { received += drain(ws[i], per_client, deadline); });
  }
  const std::string body = R"({"kind":"bench","n":12345})";  // a small app message
  const auto t0 = Clock::now();
  for (int k = 0; k < per_client; ++k) {
    for (int i = 0; i < clients; ++i) s.svc.send_message(clio::bench::numbered("c", i), body);
  }
  for (auto& t : readers) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (received != clients * per_client) {
    std::fprintf(stderr, "channel_bench: only %d of %d messages arrived\n", received.load(), clients * per_client);
  }
  return received / secs;
}

// A console "matches" message: four items of about 760 bytes of record JSON.
std::string console_message() {
  std::string item =
      R"({"subscriptions":[3,7],"record":{"id":123456,"time":1764612345.123,"method":"GET",)"
      R"("path":"/api/v1/orders/12345/items","query":"page=2&sort=desc","status_code":200,)"
      R"("wall_time":3.25,"cpu_time":0.75,"remote_ip":"10.1.2.3","host":"shop.example:8080",)"
      R"("user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",)"
      R"("referer":"https://shop.example/cart?step=\"2\"","http_version":"1.1","request_bytes":0,)"
      R"("response_bytes":5120,"random":0.4231,"instance":"web-1:8080","headers":{"accept":"application/json",)"
      R"("accept-language":"en-GB,en;q=0.9,fr;q=0.8","x-request-id":"9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f",)"
      R"("cookie":"[redacted]","x-forwarded-for":"203.0.113.7"},"tags":{"route":"orders.items","user":"u-4711"}}})";
  std::string m = R"({"kind":"matches","items":[)";
  for (int i = 0; i < 4; ++i) {
    if (i) m += ",";
    m += item;
  }
  m += "]}";
  return m;
}

// CPU microseconds of this process per message, `count` console messages to
// one client that reads them all.
double cpu_per_message(bool as_json, int count) {
  Server s(bench_options());
  auto ws = connect_client(s, "cpu");
  const std::string body = console_message();
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  const double cpu0 = clio::bench::process_cpu_seconds();
  std::thread reader([&] { (void)drain(ws, count, deadline); });
  for (int k = 0; k < count; ++k) {
    const auto r = as_json ? s.svc.send_json("cpu", body, 4) : s.svc.send_message("cpu", body);
    if (!ch::accepted(r)) {
      std::fprintf(stderr, "channel_bench: a console message was refused: %s\n", ch::to_string(r));
      std::exit(1);
    }
  }
  reader.join();
  return (clio::bench::process_cpu_seconds() - cpu0) * 1e6 / count;
}

struct Latency {
  double p50_ms, p99_ms, max_ms;
};

// One message every millisecond for `count` messages; each carries its send time.
Latency latency(int count) {
  Server s(bench_options());
  auto ws = connect_client(s, "lat");
  std::vector<double> ms;
  ms.reserve(count);
  std::thread reader([&] {
    const auto deadline = Clock::now() + std::chrono::seconds(count / 1000 + 30);
    while (static_cast<int>(ms.size()) < count && Clock::now() < deadline) {
      auto f = ws.read_message(5);
      if (!f.ok()) break;
      const size_t at = f->payload.find("\"data\":\"");
      if (at == std::string::npos) continue;
      const long long sent = std::atoll(f->payload.c_str() + at + 8);
      const long long now = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
      ms.push_back((now - sent) / 1e6);
    }
  });
  auto next = Clock::now();
  for (int i = 0; i < count; ++i) {
    next += std::chrono::milliseconds(1);
    std::this_thread::sleep_until(next);
    const long long now = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
    s.svc.send_message("lat", std::to_string(now));
  }
  reader.join();
  std::sort(ms.begin(), ms.end());
  if (ms.empty()) return {0, 0, 0};
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)], ms.back()};
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: channel_bench [--runs N]\n");
      return 2;
    }
  }
  mg_init_library(0);
  std::vector<double> one, ten, p50, p99, mx, cpu_text, cpu_json;
  for (int r = 0; r < runs; ++r) {
    // Alternate which goes first, so drift of the machine's load favours neither.
    if (r % 2 == 0) {
      cpu_text.push_back(cpu_per_message(false, 20000));
      cpu_json.push_back(cpu_per_message(true, 20000));
    } else {
      cpu_json.push_back(cpu_per_message(true, 20000));
      cpu_text.push_back(cpu_per_message(false, 20000));
    }
    one.push_back(throughput(1, 200000));
    ten.push_back(throughput(10, 20000));
    const Latency l = latency(3000);
    p50.push_back(l.p50_ms);
    p99.push_back(l.p99_ms);
    mx.push_back(l.max_ms);
    std::printf("run %d: 1 client %.0f msgs/s | 10 clients %.0f msgs/s | latency @1000/s p50 %.3f ms p99 %.3f ms max %.3f ms"
                " | 3 KiB console message CPU %.2f us as text, %.2f us as JSON\n",
                r + 1, one.back(), ten.back(), l.p50_ms, l.p99_ms, l.max_ms, cpu_text.back(), cpu_json.back());
    std::fflush(stdout);
  }
  std::printf("median of %d runs: 1 client %.0f msgs/s (target >= 100000); 10 clients %.0f msgs/s total; "
              "latency at 1000 msgs/s p50 %.3f ms, p99 %.3f ms (target <= 2), max %.3f ms\n",
              runs, clio::bench::median(one), clio::bench::median(ten), clio::bench::median(p50), clio::bench::median(p99), clio::bench::median(mx));
  std::printf("median of %d runs: process CPU per 3 KiB console message: %.2f us sent as text (send_message), "
              "%.2f us sent as JSON (send_json)\n",
              runs, clio::bench::median(cpu_text), clio::bench::median(cpu_json));
  mg_exit_library();
  return 0;
}
