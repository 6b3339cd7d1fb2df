#include "latency_probe.h"

#include <cstdio>
#include <cstdlib>

namespace clio::bench {

using json = nlohmann::json;

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

json console_api(int port, const std::string& key, const std::string& method, const std::string& path,
                 const std::string& body) {
  auto r = test::http(port, method, "/_clio/" + path, {{"Authorization", "Bearer " + key}}, body);
  if (!r.ok() || r->status >= 300) {
    std::fprintf(stderr, "API %s %s failed\n", method.c_str(), path.c_str());
    std::exit(1);
  }
  return json::parse(r->body);
}

LatencyProbe::LatencyProbe(int console_port, const std::string& key, int consoles, int subs)
    : consoles_(consoles), subs_(subs) {
  for (int c = 0; c < consoles; ++c) {
    json tok = console_api(console_port, key, "POST", "api/token", "{}");
    const std::string client = tok["client_id"];
    for (int k = 0; k < subs; ++k) {
      console_api(console_port, key, "POST", "api/subscriptions",
                  json{{"client_id", client},
                       {"query", "query = \"c=" + std::to_string(c) + "&k=" + std::to_string(k) + "\""}}
                      .dump());
    }
    auto ws = std::make_unique<test::WsClient>();
    if (!ws->connect(console_port, "/_clio/channel", {"clio.v1", "clio-token." + tok["token"].get<std::string>()},
                     {{"Authorization", "Bearer " + key}})
             .ok() ||
        ws->status() != 101) {
      std::fprintf(stderr, "console %d could not connect\n", c);
      std::exit(1);
    }
    ws_.push_back(std::move(ws));
  }
  for (auto& ws : ws_) {
    readers_.emplace_back([this, w = ws.get()] {
      std::vector<double> mine;
      while (!done_.load()) {
        auto f = w->read_message(0.2);
        if (!f.ok() || f->opcode != 1) continue;
        const double arrival = now_s();
        json env = json::parse(f->payload, nullptr, false);
        if (env.is_discarded() || env.value("t", "") != "msg") continue;
        const json& m = env["data"];
        if (!m.is_object() || m.value("kind", "") != "matches") continue;
        for (const auto& it : m["items"]) {
          const auto& r = it["record"];
          const double end = r["time"].get<double>() + r["wall_time"].get<double>() / 1000.0;
          mine.push_back((arrival - end) * 1000.0);
          received_++;
        }
      }
      MutexLock lock(&mu_);
      latencies_ms_.insert(latencies_ms_.end(), mine.begin(), mine.end());
    });
  }
}

LatencyProbe::~LatencyProbe() { finish(0, std::chrono::milliseconds(0)); }

PacedSent send_paced(int app_port, int rate, int seconds, const std::function<std::string(uint64_t)>& path) {
  constexpr int kGenThreads = 4;
  std::atomic<uint64_t> sent{0}, failed{0};
  std::vector<std::thread> gens;
  const auto t0 = std::chrono::steady_clock::now();
  for (int g = 0; g < kGenThreads; ++g) {
    gens.emplace_back([&, g] {
      test::HttpClient h(app_port);
      const double per_thread = static_cast<double>(rate) / kGenThreads;
      const uint64_t total = static_cast<uint64_t>(per_thread * seconds);
      for (uint64_t i = 0; i < total; ++i) {
        std::this_thread::sleep_until(t0 + std::chrono::duration<double>(static_cast<double>(i) / per_thread));
        auto r = h.request("GET", path(i * kGenThreads + static_cast<uint64_t>(g)));
        (r.ok() ? sent : failed)++;
      }
    });
  }
  for (auto& t : gens) t.join();
  return {sent.load(), failed.load(),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
}

PacedSent LatencyProbe::generate(int app_port, int rate, int seconds) {
  return send_paced(app_port, rate, seconds, [this](uint64_t n) {
    const int c = static_cast<int>(n % static_cast<uint64_t>(consoles_));
    const int k = static_cast<int>((n / static_cast<uint64_t>(consoles_)) % static_cast<uint64_t>(subs_));
    return "/api/hello?c=" + std::to_string(c) + "&k=" + std::to_string(k);
  });
}

std::vector<double> LatencyProbe::finish(uint64_t expected, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (received_.load() < expected && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  done_ = true;
  for (auto& t : readers_) t.join();
  readers_.clear();
  ws_.clear();
  MutexLock lock(&mu_);
  return latencies_ms_;
}

}  // namespace clio::bench
