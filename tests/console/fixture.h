// What the console tests share: the admin key, scratch databases, an API
// client for a console on 127.0.0.1, an Inspector app, and a reader of a
// console's channel.
#pragma once

#include <civetweb.h>
#include <doctest/doctest.h>
#include <stdlib.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "clio/console/inspector.h"
#include "demo_app.h"
#include "support/http_client.h"
#include "support/ws_client.h"

namespace clio::console {

using json = nlohmann::json;
using namespace std::chrono_literals;
using test::Headers;
using test::HttpClient;
using test::WsClient;

inline constexpr const char* kKey = "inspector-test-admin-key";

inline std::string temp_db() {
  char dir[] = "/tmp/clio-inspector-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  return std::string(dir) + "/clio.db";
}

// The console's HTTP API on `port`, as an admin with the Bearer key.
struct Api {
  test::HttpResponse api(const std::string& method, const std::string& path, const std::string& body = "",
                         Headers extra = {{"Authorization", std::string("Bearer ") + kKey}}) {
    auto r = test::http(port, method, "/_clio/" + path, extra, body);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    return *r;
  }
  json api_json(const std::string& method, const std::string& path, const std::string& body = "",
                int expect = 200) {
    auto r = api(method, path, body);
    CHECK_MESSAGE(r.status == expect, r.body);
    return json::parse(r.body);
  }
  // A token for a new (or given) client id.
  std::pair<std::string, std::string> token(const std::string& client_id = "") {
    json j = api_json("POST", "api/token", client_id.empty() ? "{}" : json{{"client_id", client_id}}.dump());
    return {j["client_id"].get<std::string>(), j["token"].get<std::string>()};
  }
  uint64_t subscribe(const std::string& client, const std::string& query, int backfill = 0) {
    json j = api_json("POST", "api/subscriptions",
                      json{{"client_id", client}, {"query", query}, {"backfill", backfill}}.dump(), 201);
    return j["id"].get<uint64_t>();
  }
  void get(const std::string& target) {
    auto r = test::http(port, "GET", target);
    REQUIRE(r.ok());
  }

  int port = 0;
};

// An Inspector on a CivetWeb server on 127.0.0.1 (the demo's handlers and
// server options), with the test admin key and an in-memory database
// unless the options name one.
struct App : Api {
  explicit App(InspectorOptions o = {}, int listen_port = 0) {
    o.admin_key = kKey;
    if (o.db_path == "clio.db") o.db_path = ":memory:";
    o.channel.heartbeat_interval = 2s;
    o.channel.heartbeat_timeout = 6s;
    o.channel.websocket_timeout = 1s;
    auto created = Inspector::create(o);
    REQUIRE_MESSAGE(created.ok(), created.status().message());
    inspector = std::move(*created);
    REQUIRE(inspector->install(&callbacks).ok());
    auto opts = demo::server_options("127.0.0.1:" + std::to_string(listen_port), CLIO_DEMO_WWW, 32);
    opts.set("websocket_timeout_ms", "1000");
    ctx = mg_start(&callbacks, nullptr, opts.pointers());
    REQUIRE(ctx != nullptr);
    demo::register_handlers(ctx);
    REQUIRE(inspector->attach(ctx).ok());
    this->port = demo::bound_port(ctx);
  }
  ~App() { stop(); }
  void stop() {
    if (ctx == nullptr) return;
    inspector->shutdown();
    mg_stop(ctx);
    ctx = nullptr;
    inspector.reset();
  }

  std::unique_ptr<Inspector> inspector;
  mg_callbacks callbacks{};
  mg_context* ctx = nullptr;
};


// A console on the channel: reads and unwraps the console messages.
struct Console {
  Console(int port, const std::string& token) {
    REQUIRE(ws.connect(port, "/_clio/channel", {"clio.v1", "clio-token." + token},
                       {{"Authorization", std::string("Bearer ") + kKey}})
                .ok());
    REQUIRE(ws.status() == 101);
  }
  // The next console message (kind matches / dropped / subscription_removed),
  // or null on timeout.
  json next(double timeout = 5) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    while (std::chrono::steady_clock::now() < deadline) {
      const double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
      auto f = ws.read_message(std::max(0.05, left));
      if (!f.ok()) return nullptr;
      if (f->opcode != 1) return nullptr;
      json env = json::parse(f->payload, nullptr, false);
      if (env.is_discarded() || env.value("t", "") != "msg") continue;  // hello, heartbeat
      return env["data"];  // the console message itself (send_json)
    }
    return nullptr;
  }
  // Collects match items until `n` arrived or `timeout` passed.
  std::vector<json> items(size_t n, double timeout = 5) {
    std::vector<json> out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
      json m = next(std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count());
      if (m.is_null()) break;
      if (m["kind"] == "matches") {
        for (auto& it : m["items"]) out.push_back(it);
      }
    }
    return out;
  }
  WsClient ws;
};

}  // namespace clio::console
