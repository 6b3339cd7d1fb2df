// A fleet on a real redis-server: app instances (CivetWeb on 127.0.0.1:0
// with a FleetPublisher) publish, one console hub reads, over real HTTP,
// WebSocket and Redis. The console-restart case runs the real `clio serve`
// and kills it with SIGKILL.
#include <civetweb.h>
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "clio/console/hub.h"
#include "clio/log/fleet.h"
#include "clio/log/redis_log.h"
#include "demo_app.h"
#include "fixture.h"
#include "support/eventually.h"
#include "support/redis_server.h"

namespace clio::console {
namespace {

using test::eventually;
using test::RedisServer;
constexpr const char* kStream = "fleet:records";

std::unique_ptr<RedisServer> start_redis(std::vector<std::string> extra = {}) {
  auto r = RedisServer::start(std::move(extra));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  return std::move(*r);
}

log::RedisLogOptions log_options(const std::string& url) {
  log::RedisLogOptions o;
  o.url = url;
  o.stream = kStream;
  o.block = 50ms;
  o.connect_timeout = 200ms;
  o.io_timeout = 500ms;
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  return o;
}

// An app instance of the fleet: the demo's handlers, captured and published.
struct FleetApp {
  FleetApp(const std::string& url, const std::string& instance) {
    log::FleetOptions o;
    o.log = log_options(url);
    o.instance = instance;
    o.publisher.retry_min = 20ms;
    o.publisher.retry_max = 200ms;
    o.publisher.heartbeat = 100ms;
    auto created = log::FleetPublisher::create(o);
    REQUIRE_MESSAGE(created.ok(), created.status().message());
    fleet = std::move(*created);
    REQUIRE(fleet->install(&callbacks).ok());
    auto opts = demo::server_options("127.0.0.1:0", CLIO_DEMO_WWW, 16);
    ctx = mg_start(&callbacks, nullptr, opts.pointers());
    REQUIRE(ctx != nullptr);
    demo::register_handlers(ctx);
    REQUIRE(fleet->attach(ctx).ok());
    port = demo::bound_port(ctx);
  }
  ~FleetApp() {
    mg_stop(ctx);
    fleet->shutdown();
  }
  // GETs `path` n times on one connection; each must answer 200.
  void hit(const std::string& path, int n) {
    HttpClient h(port);
    for (int i = 0; i < n; ++i) {
      auto r = h.request("GET", path);
      REQUIRE(r.ok());
      REQUIRE(r->status == 200);
    }
  }

  std::unique_ptr<log::FleetPublisher> fleet;
  mg_callbacks callbacks{};
  mg_context* ctx = nullptr;
  int port = 0;
};

// The console alone, on its own server, reading the stream.
struct FleetConsole : Api {
  explicit FleetConsole(const std::string& url, std::string db = ":memory:") {
    HubOptions o;
    o.admin_key = kKey;
    o.db_path = std::move(db);
    o.channel.websocket_timeout = 1s;
    auto reader = log::make_redis_reader(log_options(url));
    REQUIRE(reader.ok());
    auto created = Hub::create(o, std::move(*reader));
    REQUIRE_MESSAGE(created.ok(), created.status().message());
    hub = std::move(*created);
    mg_callbacks cb{};
    auto opts = demo::server_options("127.0.0.1:0", CLIO_DEMO_WWW, 16);
    opts.set("websocket_timeout_ms", "1000");
    ctx = mg_start(&cb, nullptr, opts.pointers());
    REQUIRE(ctx != nullptr);
    REQUIRE(hub->attach(ctx).ok());
    port = demo::bound_port(ctx);
  }
  ~FleetConsole() {
    hub->shutdown();
    mg_stop(ctx);
  }
  // Waits until the hub dispatched `n` records (bounded).
  bool wait_dispatched(uint64_t n, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (hub->stats().dispatched >= n) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  std::unique_ptr<Hub> hub;
  mg_context* ctx = nullptr;
};

// Every record the console holds, by id (api/records, newest first, up to 1000).
std::map<uint64_t, json> records_by_id(Api& console, const std::string& q = "") {
  json j = console.api_json("GET", "api/records?limit=1000" + (q.empty() ? "" : "&q=" + q));
  std::map<uint64_t, json> out;
  for (auto& r : j["records"]) {
    const uint64_t id = r["id"].get<uint64_t>();
    CHECK_MESSAGE(out.count(id) == 0, "duplicate id " << id);
    out[id] = r;
  }
  return out;
}

std::map<std::string, size_t> count_by_instance(const std::map<uint64_t, json>& records) {
  std::map<std::string, size_t> n;
  for (const auto& [id, r] : records) n[r["instance"].get<std::string>()]++;
  return n;
}

}  // namespace

TEST_CASE("two app instances, one console: every record arrives once, with its instance; subscriptions filter by it") {
  auto redis = start_redis();
  FleetConsole console(redis->url());
  FleetApp a(redis->url(), "web-1"), b(redis->url(), "web-2");
  auto [client, tok] = console.token();
  Console ch(console.port, tok);
  const uint64_t only_b = console.subscribe(client, "instance = web-2 and path = /api/hello");
  a.hit("/api/hello", 30);
  b.hit("/api/hello", 20);
  b.hit("/api/status/200", 5);
  REQUIRE(console.wait_dispatched(55));
  auto all = records_by_id(console);
  CHECK(all.size() == 55);
  auto by = count_by_instance(all);
  CHECK(by["web-1"] == 30);
  CHECK(by["web-2"] == 25);
  // Ids follow the log: increasing, below 2^53.
  CHECK(all.rbegin()->first < (uint64_t{1} << 53));
  // The subscription saw web-2's hellos only.
  auto items = ch.items(20);
  REQUIRE(items.size() == 20);
  for (auto& it : items) {
    CHECK(it["subscriptions"] == json::array({only_b}));
    CHECK(it["record"]["instance"] == "web-2");
    CHECK(it["record"]["path"] == "/api/hello");
  }
  // Stats per instance.
  json stats = console.api_json("GET", "api/stats");
  std::map<std::string, json> inst;
  for (auto& i : stats["instances"]) inst[i["instance"].get<std::string>()] = i;
  REQUIRE(inst.size() == 2);
  CHECK(inst["web-1"]["records"] == 30);
  CHECK(inst["web-2"]["records"] == 25);
  CHECK(inst["web-1"]["dropped"] == 0);
  CHECK(inst["web-1"]["last_seen"].get<double>() > 0);
  CHECK(stats["log"]["connected"] == true);
  CHECK(stats["log"]["engine"].get<std::string>().find(kStream) != std::string::npos);
  CHECK(console.api_json("GET", "api/records?q=instance:web-1&limit=1000")["records"].size() == 30);
}

TEST_CASE("Redis killed mid-flow: the apps keep answering, drops are counted, and the flow resumes by itself") {
  auto redis = start_redis();
  FleetConsole console(redis->url());
  FleetApp app(redis->url(), "web-1");
  app.hit("/api/hello", 10);
  REQUIRE(console.wait_dispatched(10));
  redis->kill();
  // The app answers every request while Redis is gone.
  const auto t0 = std::chrono::steady_clock::now();
  app.hit("/api/hello", 200);
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took < 10s);
  eventually([&] { return app.fleet->stats().dropped() >= 200; }, 3);
  CHECK(app.fleet->stats().dropped() == 200);
  CHECK_FALSE(app.fleet->stats().connected);
  REQUIRE(redis->restart().ok());
  // New requests get through again, and the console learns about the drops.
  bool resumed = false;
  for (int i = 0; i < 200 && !resumed; ++i) {
    app.hit("/api/status/200", 1);
    resumed = !console.api_json("GET", "api/records?q=path%20%3D%20/api/status/200&limit=1")["records"].empty();
    if (!resumed) std::this_thread::sleep_for(20ms);
  }
  REQUIRE(resumed);
  json stats;
  for (int i = 0; i < 200; ++i) {
    stats = console.api_json("GET", "api/stats");
    if (!stats["instances"].empty() && stats["instances"][0]["dropped"].get<uint64_t>() >= 200) break;
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(stats["instances"].size() == 1);
  CHECK(stats["instances"][0]["dropped"].get<uint64_t>() >= 200);
  CHECK(stats["log"]["resets"] == 1);
  // None of the 200 dropped requests reached the console; the first 10 did.
  CHECK(console.api_json("GET", "api/records?q=path%20%3D%20/api/hello&limit=1000")["records"].size() == 10);
}

TEST_CASE("a stream trimmed past the console's position is an explicit gap, with its exact count") {
  auto redis = start_redis({"--stream-node-max-entries", "10"});
  const std::string db = temp_db();
  uint64_t last = 0;
  {
    FleetConsole console(redis->url(), db);
    FleetApp app(redis->url(), "web-1");
    app.hit("/api/hello", 3);
    REQUIRE(console.wait_dispatched(3));
    last = console.hub->stats().last_id;
  }
  // While no console runs, far more entries than the stream keeps.
  {
    log::RedisLogOptions o = log_options(redis->url());
    o.max_entries = 10;
    o.records_per_entry = 1;
    auto w = log::make_redis_writer(o);
    REQUIRE(w.ok());
    std::vector<std::unique_ptr<Record>> batch;
    for (int i = 0; i < 300; ++i) {
      auto r = std::make_unique<Record>();
      r->path = "/trimmed/" + std::to_string(i);
      batch.push_back(std::move(r));
    }
    size_t appended = 0;
    REQUIRE((*w)->append(batch, {"web-1", 303, 0}, appended).ok());
  }
  FleetConsole console(redis->url(), db);
  json stats;
  eventually([&] {
    stats = console.api_json("GET", "api/stats");
    return stats["log"]["gaps"].get<uint64_t>() > 0;
  }, 5);
  REQUIRE(stats["log"]["gaps"] == 1);
  const uint64_t lost = stats["log"]["records_lost"].get<uint64_t>();
  const uint64_t kept = console.hub->stats().dispatched;
  CHECK(lost > 200);
  CHECK(lost + kept == 300);  // every one of the 300 is either held or counted lost
  CHECK(console.hub->stats().last_id == last + 300);
}

TEST_CASE("a garbage entry on the stream is skipped and counted; the flow goes on") {
  auto redis = start_redis();
  FleetConsole console(redis->url());
  FleetApp app(redis->url(), "web-1");
  app.hit("/api/hello", 2);
  REQUIRE(console.wait_dispatched(2));
  REQUIRE(redis->command({"XADD", kStream, "*", "hello", "world"}).ok());
  REQUIRE(redis->command({"XADD", kStream, "*", "v", "1", "r", std::string(100, '\xff')}).ok());
  app.hit("/api/status/200", 2);
  REQUIRE(console.wait_dispatched(4));
  json stats = console.api_json("GET", "api/stats");
  CHECK(stats["log"]["malformed"] == 2);
  CHECK(stats["log"]["gaps"] == 0);
  CHECK(records_by_id(console).size() == 4);
}

#ifdef CLIO_BINARY
namespace {

// `clio serve` as a child process; its stderr goes to a file.
struct ServeProcess {
  ServeProcess(const std::string& url, const std::string& db, const std::string& log_file) {
    std::remove(log_file.c_str());  // the port is read from the new one only
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      std::freopen(log_file.c_str(), "w", stderr);
      setenv("CLIO_ADMIN_KEY", kKey, 1);
      execl(CLIO_BINARY, CLIO_BINARY, "serve", "--redis", url.c_str(), "--stream", kStream, "--port", "0", "--db",
            db.c_str(), "--threads", "16", static_cast<char*>(nullptr));
      _exit(127);
    }
    // Its port, from the console line it prints.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (port == 0 && std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(log_file);
      std::string line;
      while (std::getline(in, line)) {
        const auto at = line.find("console: http://127.0.0.1:");
        if (at != std::string::npos) port = std::stoi(line.substr(at + 26));
      }
      if (port == 0) std::this_thread::sleep_for(20ms);
    }
    REQUIRE_MESSAGE(port > 0, "clio serve did not print its console URL");
  }
  void kill9() {
    ::kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
  ~ServeProcess() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  }
  pid_t pid = -1;
  int port = 0;
};

}  // namespace

TEST_CASE("clio serve killed with SIGKILL and restarted: it resumes from its saved position, no loss, no duplicate") {
  auto redis = start_redis();
  const std::string db = temp_db();
  FleetApp app(redis->url(), "web-1");
  {
    ServeProcess serve(redis->url(), db, db + ".1.log");
    Api console{serve.port};
    app.hit("/api/hello", 100);
    // Wait until they are stored, then a burst the console may not have stored when it dies.
    eventually([&] { return console.api_json("GET", "api/stats")["stored"].get<uint64_t>() >= 100; }, 5);
    app.hit("/api/status/200", 50);
    serve.kill9();
  }
  app.hit("/api/slow?ms=1", 10);
  ServeProcess serve(redis->url(), db, db + ".2.log");
  Api console{serve.port};
  std::map<uint64_t, json> all;
  for (int i = 0; i < 500; ++i) {
    all = records_by_id(console);
    if (all.size() >= 160) break;
    std::this_thread::sleep_for(20ms);
  }
  CHECK(all.size() == 160);  // records_by_id also checks that no id repeats
  std::map<std::string, size_t> by_path;
  for (auto& [id, r] : all) by_path[r["path"].get<std::string>()]++;
  CHECK(by_path["/api/hello"] == 100);
  CHECK(by_path["/api/status/200"] == 50);
  CHECK(by_path["/api/slow"] == 10);
  // Consecutive ids: nothing lost in between.
  CHECK(all.rbegin()->first - all.begin()->first == 159);
  CHECK(console.api_json("GET", "api/stats")["log"]["gaps"] == 0);
}
#endif

}  // namespace clio::console
