// The whole pipeline over real HTTP and a real WebSocket: a CivetWeb app on
// 127.0.0.1:0 wrapped by an Inspector, driven through its API and channel.
#include <civetweb.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "fixture.h"
#include "support/eventually.h"
#include "support/manual_clock.h"

namespace clio::console {

using test::eventually;

TEST_CASE("every endpoint without credentials is 401, in any letter case") {
  App app;
  const std::vector<std::pair<std::string, std::string>> endpoints = {
      {"GET", "/_clio/api/stats"},          {"GET", "/_CLIO/API/STATS"},
      {"GET", "/_Clio/api/subscriptions"},  {"POST", "/_clio/api/subscriptions"},
      {"DELETE", "/_clio/api/subscriptions/1"}, {"POST", "/_CLIO/api/token"},
      {"GET", "/_clio/api/check?q=x"},      {"GET", "/_clio/api/records"},
      {"GET", "/_clio/api/session"},        {"GET", "/_clio/api/schema"},
      {"GET", "/_clio/metrics"},            {"GET", "/_cLiO/Metrics"},
      {"GET", "/_clio/console.js"},         {"GET", "/_clio/channel"},
      {"POST", "/_clio/logout"},
  };
  for (const auto& endpoint : endpoints) {
    const std::string& method = endpoint.first;  // not a structured binding: doctest's
    const std::string& path = endpoint.second;   // messages capture them (C++20, clang 16+)
    auto r = test::http(app.port, method, path, {}, method == "GET" ? "" : "{}");
    REQUIRE(r.ok());
    CHECK_MESSAGE(r->status == 401, method << " " << path);
    auto wrong = test::http(app.port, method, path, {{"Authorization", "Bearer wrong-key"}}, "{}");
    REQUIRE(wrong.ok());
    CHECK_MESSAGE(wrong->status == 401, method << " " << path << " (wrong key)");
  }
  // A browser asking for the page is sent to the login form instead.
  auto page = test::http(app.port, "GET", "/_CLIO/");
  REQUIRE(page.ok());
  CHECK(page->status == 303);
  CHECK(page->header("Location") == "/_clio/login");
  // The WebSocket upgrade gets a real HTTP 401 too.
  WsClient ws;
  REQUIRE(ws.connect(app.port, "/_clio/channel", {"clio.v1"}).ok());
  CHECK(ws.status() == 401);
  WsClient ws_upper;
  REQUIRE(ws_upper.connect(app.port, "/_CLIO/channel", {"clio.v1"}).ok());
  CHECK(ws_upper.status() == 401);
  // The right key opens everything.
  CHECK(app.api("GET", "api/stats").status == 200);
}

TEST_CASE("browser login: cookie session, CSRF header, Origin check") {
  App app;
  auto login = test::http(app.port, "POST", "/_clio/login", {{"Content-Type", "application/x-www-form-urlencoded"}},
                          std::string("key=") + kKey);
  REQUIRE(login.ok());
  CHECK(login->status == 303);
  const std::string set_cookie = login->header("Set-Cookie");
  CHECK(set_cookie.find("HttpOnly") != std::string::npos);
  CHECK(set_cookie.find("SameSite=Strict") != std::string::npos);
  CHECK(set_cookie.find("Path=/_clio/") != std::string::npos);
  const std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  const Headers with_cookie = {{"Cookie", cookie}};

  auto bad = test::http(app.port, "POST", "/_clio/login", {}, "key=nope");
  REQUIRE(bad.ok());
  CHECK(bad->status == 303);
  CHECK(bad->header("Location") == "/_clio/login?error=1");
  CHECK(bad->header("Set-Cookie").empty());

  auto page = test::http(app.port, "GET", "/_clio/", with_cookie);
  REQUIRE(page.ok());
  CHECK(page->status == 200);
  CHECK(page->header("Content-Security-Policy").find("script-src 'self'") != std::string::npos);

  auto session = test::http(app.port, "GET", "/_clio/api/session", with_cookie);
  REQUIRE(session.ok());
  REQUIRE(session->status == 200);
  const std::string csrf = json::parse(session->body)["csrf"].get<std::string>();
  CHECK(csrf.size() > 20);

  // State-changing without the CSRF header: 403; with a wrong one: 403.
  auto no_csrf = test::http(app.port, "POST", "/_clio/api/token", with_cookie, "{}");
  REQUIRE(no_csrf.ok());
  CHECK(no_csrf->status == 403);
  auto wrong_csrf = test::http(app.port, "POST", "/_clio/api/token", {{"Cookie", cookie}, {"X-Clio-CSRF", "x"}}, "{}");
  REQUIRE(wrong_csrf.ok());
  CHECK(wrong_csrf->status == 403);
  auto ok = test::http(app.port, "POST", "/_clio/api/token", {{"Cookie", cookie}, {"X-Clio-CSRF", csrf}}, "{}");
  REQUIRE(ok.ok());
  CHECK(ok->status == 200);
  const std::string token = json::parse(ok->body)["token"].get<std::string>();
  // A forged or tampered cookie is no session.
  std::string tampered = cookie;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  auto forged = test::http(app.port, "GET", "/_clio/api/stats", {{"Cookie", tampered}});
  REQUIRE(forged.ok());
  CHECK(forged->status == 401);

  // WebSocket with the cookie: the Origin must be the console's own.
  const std::string host = "127.0.0.1:" + std::to_string(app.port);
  WsClient evil;
  REQUIRE(evil.connect(app.port, "/_clio/channel", {"clio.v1", "clio-token." + token},
                       {{"Cookie", cookie}, {"Origin", "http://evil.example"}, {"Host", host}})
              .ok());
  CHECK(evil.status() == 403);
  WsClient no_origin;
  REQUIRE(no_origin.connect(app.port, "/_clio/channel", {"clio.v1", "clio-token." + token},
                            {{"Cookie", cookie}, {"Host", host}})
              .ok());
  CHECK(no_origin.status() == 403);
  WsClient good;
  REQUIRE(good.connect(app.port, "/_clio/channel", {"clio.v1", "clio-token." + token},
                       {{"Cookie", cookie}, {"Origin", "http://" + host}, {"Host", host}})
              .ok());
  CHECK(good.status() == 101);

  // Logout revokes the session.
  auto out = test::http(app.port, "POST", "/_clio/logout", {{"Cookie", cookie}, {"X-Clio-CSRF", csrf}}, "");
  REQUIRE(out.ok());
  CHECK(out->status == 200);
  auto after = test::http(app.port, "GET", "/_clio/api/stats", with_cookie);
  REQUIRE(after.ok());
  CHECK(after->status == 401);
}

TEST_CASE("a one-time login code works once") {
  App app;
  const std::string code = app.inspector->new_login_code();
  auto first = test::http(app.port, "GET", "/_clio/login?code=" + code);
  REQUIRE(first.ok());
  CHECK(first->status == 303);
  CHECK(first->header("Location") == "/_clio/");
  CHECK(first->header("Set-Cookie").find("clio_session=v1.") == 0);
  auto second = test::http(app.port, "GET", "/_clio/login?code=" + code);
  REQUIRE(second.ok());
  CHECK(second->status == 303);
  CHECK(second->header("Location") == "/_clio/login?error=code");
  CHECK(second->header("Set-Cookie").empty());
}

TEST_CASE("each subscription receives exactly its matches, and only its own client") {
  App app;
  auto [a, ta] = app.token();
  auto [b, tb] = app.token();
  CHECK(a != b);
  Console ca(app.port, ta), cb(app.port, tb);
  const uint64_t sa = app.subscribe(a, "status:5xx");
  const uint64_t sb = app.subscribe(b, "status = 404 and path:/api/status/");
  const uint64_t sa2 = app.subscribe(a, "path = /api/status/500");
  for (const char* p : {"/api/hello", "/api/status/500", "/api/status/404", "/api/status/503", "/api/status/201"}) {
    app.get(p);
  }
  REQUIRE(app.inspector->drain_for_test(5s));
  auto got_a = ca.items(2);
  auto got_b = cb.items(1);
  REQUIRE(got_a.size() == 2);
  REQUIRE(got_b.size() == 1);
  CHECK(got_a[0]["record"]["path"] == "/api/status/500");
  CHECK(got_a[0]["subscriptions"] == json::array({sa, sa2}));
  CHECK(got_a[1]["record"]["status_code"] == 503);
  CHECK(got_a[1]["subscriptions"] == json::array({sa}));
  CHECK(got_b[0]["record"]["status_code"] == 404);
  CHECK(got_b[0]["subscriptions"] == json::array({sb}));
  CHECK(got_a[0]["record"]["id"].get<uint64_t>() < got_a[1]["record"]["id"].get<uint64_t>());
  // Nothing more for either.
  CHECK(ca.items(1, 0.3).empty());
  CHECK(cb.items(1, 0.3).empty());
  // The subscription list counts matches and filters by client.
  json list = app.api_json("GET", "api/subscriptions?client_id=" + a);
  REQUIRE(list["subscriptions"].size() == 2);
  CHECK(list["subscriptions"][0]["id"] == sa);
  CHECK(list["subscriptions"][0]["matches"] == 2);
  CHECK(list["subscriptions"][0]["normalized"] == "status_code:5xx");
  json stats = app.api_json("GET", "api/stats");
  CHECK(stats["matched"] == 4);
  CHECK(stats["delivered"] == 4);
  CHECK(stats["subscriptions"] == 3);
  CHECK(stats["sessions"] == 2);
}

TEST_CASE("unsubscribe stops delivery at once") {
  App app;
  auto [client, tok] = app.token();
  Console c(app.port, tok);
  const uint64_t id = app.subscribe(client, "status >= 500");
  app.get("/api/status/500");
  REQUIRE(c.items(1).size() == 1);
  json one = app.api_json("GET", "api/subscriptions/" + std::to_string(id));
  CHECK(one["id"] == id);
  CHECK(one["client_id"] == client);
  CHECK(one["matches"] == 1);
  json del = app.api_json("DELETE", "api/subscriptions/" + std::to_string(id));
  CHECK(del["id"] == id);
  json notice = c.next();
  REQUIRE_FALSE(notice.is_null());
  CHECK(notice["kind"] == "subscription_removed");
  CHECK(notice["id"] == id);
  for (int i = 0; i < 5; ++i) app.get("/api/status/502");
  REQUIRE(app.inspector->drain_for_test(5s));
  CHECK(c.items(1, 0.5).empty());
  CHECK(app.api("DELETE", "api/subscriptions/" + std::to_string(id)).status == 404);
  CHECK(app.api("GET", "api/subscriptions/" + std::to_string(id)).status == 404);
  CHECK(app.api("DELETE", "api/subscriptions/abc").status == 400);
}

TEST_CASE("a bad query is a 400 with the error's position") {
  App app;
  auto r = app.api("POST", "api/subscriptions", json{{"client_id", "c1"}, {"query", "status >= 500 and stauts = 2"}}.dump());
  CHECK(r.status == 400);
  json e = json::parse(r.body)["error"];
  CHECK(e["code"] == "unknown_field");
  CHECK(e["offset"] == 18);
  CHECK(e["length"] == 6);
  CHECK(e["hint"].get<std::string>().find("status") != std::string::npos);
  json check = app.api_json("GET", "api/check?q=method%20%3D%20GET%20and");
  CHECK(check["valid"] == false);
  CHECK(check["error"]["offset"].get<int>() > 0);
  json good = app.api_json("GET", "api/check?q=c%3A5xx");
  CHECK(good["valid"] == true);
  CHECK(good["normalized"] == "status_code:5xx");
  // Malformed bodies and fields.
  CHECK(app.api("POST", "api/subscriptions", "{not json").status == 400);
  CHECK(app.api("POST", "api/subscriptions", R"({"client_id":"c1"})").status == 400);
  CHECK(app.api("POST", "api/subscriptions", R"({"client_id":"bad id!","query":"x"})").status == 400);
  CHECK(app.api("POST", "api/subscriptions", R"({"client_id":"c1","query":"x","backfill":-1})").status == 400);
}

TEST_CASE("limits: subscriptions per client and in total, body size") {
  InspectorOptions o;
  o.max_subscriptions_per_client = 2;
  o.max_subscriptions = 3;
  o.max_body_bytes = 1024;
  App app(o);
  for (const char* c : {"c1", "c2", "c3"}) app.token(c);
  app.subscribe("c1", "status = 200");
  app.subscribe("c1", "status = 201");
  auto third = app.api("POST", "api/subscriptions", json{{"client_id", "c1"}, {"query", "status = 202"}}.dump());
  CHECK(third.status == 429);
  CHECK(json::parse(third.body)["error"]["code"] == "too_many_subscriptions");
  app.subscribe("c2", "status = 203");
  CHECK(app.api("POST", "api/subscriptions", json{{"client_id", "c3"}, {"query", "status = 204"}}.dump()).status == 429);
  auto huge = app.api("POST", "api/subscriptions", std::string(4096, ' '));
  CHECK(huge.status == 413);
  std::string deep(5000, '(');
  auto nested = app.api("GET", "api/check?q=" + deep);
  CHECK(json::parse(nested.body)["valid"] == false);
}

TEST_CASE("backfill: the last N matches, then live ones, without gap or duplicate") {
  App app;
  auto [client, tok] = app.token();
  Console c(app.port, tok);
  // Requests numbered n=0,1,2,... keep flowing while the subscription is made.
  std::atomic<int> sent{0};
  std::atomic<bool> stop{false};
  for (int i = 0; i < 20; ++i) app.get("/api/status/500?n=" + std::to_string(sent++));
  // A fence for the check at the end: these 20 are dispatched before the
  // subscription is made (the dispatcher takes records once every few ms).
  REQUIRE(eventually([&] { return app.inspector->stats().dispatched >= 20; }));
  std::thread traffic([&] {
    HttpClient h(app.port);
    for (int i = 0; i < 400 && !stop; ++i) {
      REQUIRE(h.request("GET", "/api/status/500?n=" + std::to_string(sent.load())).ok());
      sent++;
    }
  });
  // Waits until `n` requests were sent (the traffic thread sends 420 at most).
  auto sent_at_least = [&](int n) {
    n = std::min(n, 420);
    return eventually([&] { return sent.load() >= n; }, 5, 1ms);
  };
  REQUIRE(sent_at_least(30));  // the traffic flows before the subscription...
  const uint64_t id = app.subscribe(client, "status = 500", 10);
  REQUIRE(sent_at_least(sent.load() + 20));  // ...and after it
  stop = true;
  traffic.join();
  REQUIRE(app.inspector->drain_for_test(5s));
  const int total = sent.load();
  std::vector<int> ns;
  std::vector<uint64_t> ids;
  for (;;) {
    auto items = c.items(1000, 1.0);
    if (items.empty()) break;
    for (auto& it : items) {
      CHECK(it["subscriptions"] == json::array({id}));
      const std::string q = it["record"]["query"].get<std::string>();
      ns.push_back(std::stoi(q.substr(2)));
      ids.push_back(it["record"]["id"].get<uint64_t>());
    }
  }
  REQUIRE(ns.size() >= 10);
  // No gap, no duplicate: exactly the matching records from the first one
  // delivered on, in record order (ids). (Records are numbered in the order
  // their log_access ran, which on a loaded machine may differ a little from
  // the order the requests were sent, each on its own worker thread.)
  std::vector<uint64_t> want;
  const json stored = app.api_json("GET", "api/records?q=status%20%3D%20500&limit=1000");
  for (auto& r : stored["records"]) {
    if (r["id"].get<uint64_t>() >= ids.front()) want.push_back(r["id"].get<uint64_t>());
  }
  std::sort(want.begin(), want.end());
  CHECK(ids == want);
  CHECK(*std::max_element(ns.begin(), ns.end()) == total - 1);
  // Backfill gave the 10 before the first live one: at least 10 delivered
  // records precede the subscription's creation point.
  CHECK(ns.front() >= 10);
}

TEST_CASE("backfill reaches into the store beyond the memory ring") {
  InspectorOptions o;
  o.memory_records = 5;
  App app(o);
  auto [client, tok] = app.token();
  Console c(app.port, tok);
  for (int i = 0; i < 30; ++i) app.get(i % 2 ? "/api/status/404?n=" + std::to_string(i) : "/api/hello");
  REQUIRE(app.inspector->drain_for_test(5s));
  app.subscribe(client, "status = 404", 12);
  auto items = c.items(12);
  REQUIRE(items.size() == 12);
  std::vector<int> ns;
  for (auto& it : items) ns.push_back(std::stoi(it["record"]["query"].get<std::string>().substr(2)));
  CHECK(ns.front() == 7);
  CHECK(ns.back() == 29);
  for (size_t i = 1; i < ns.size(); ++i) CHECK(ns[i] == ns[i - 1] + 2);
  // The records API searches the same way, newest first.
  json recs = app.api_json("GET", "api/records?q=status%3D404&limit=3");
  REQUIRE(recs["records"].size() == 3);
  CHECK(recs["records"][0]["query"] == "n=29");
  CHECK(recs["records"][2]["query"] == "n=25");
  CHECK(app.api("GET", "api/records?limit=0").status == 400);
  CHECK(app.api("GET", "api/records?q=stauts%3D1").status == 400);
}

TEST_CASE("a restart on the same database keeps subscriptions and tokens") {
  const std::string db = temp_db();
  InspectorOptions o;
  o.db_path = db;
  std::string client, tok;
  uint64_t id = 0;
  int port = 0;
  {
    App app(o);
    port = app.port;
    std::tie(client, tok) = app.token();
    id = app.subscribe(client, "path = /api/status/503");
    app.get("/api/status/503");
    REQUIRE(app.inspector->drain_for_test(5s));
  }
  App again(o);
  json list = again.api_json("GET", "api/subscriptions");
  REQUIRE(list["subscriptions"].size() == 1);
  CHECK(list["subscriptions"][0]["id"] == id);
  CHECK(list["subscriptions"][0]["client_id"] == client);
  // The old token still opens the channel, and the subscription delivers.
  Console c(again.port, tok);
  again.get("/api/status/503");
  auto items = c.items(1);
  REQUIRE(items.size() == 1);
  CHECK(items[0]["subscriptions"] == json::array({id}));
  // Record ids continue after the restart.
  CHECK(items[0]["record"]["id"].get<uint64_t>() > 1);
  // New subscription ids are never reused.
  CHECK(again.subscribe(client, "status = 200") > id);
  (void)port;
  std::filesystem::remove_all(std::filesystem::path(db).parent_path());
}

TEST_CASE("a client that does not come back within the grace period loses its subscriptions") {
  clio::test::ManualClock clock;
  InspectorOptions o;
  o.grace_period = 1s;
  o.clock = &clock;
  App app(o);
  auto [gone, t1] = app.token();
  auto [back, t2] = app.token();
  // Waits until the hub has handled `n` connects and disconnects in all.
  auto presence = [&](uint64_t n) {
    eventually([&] { return app.inspector->stats().presence_events >= n; });
    return app.inspector->stats().presence_events == n;
  };
  {
    Console c1(app.port, t1);
    Console c2(app.port, t2);
    app.subscribe(gone, "status = 200");
    app.subscribe(back, "status = 201");
    c1.ws.send_close(1000);
    c2.ws.send_close(1000);
  }
  REQUIRE(presence(4));  // both connected, both left: their grace periods run
  // `back` returns within the grace period; `gone` does not.
  clock.advance(300ms);
  Console returning(app.port, t2);
  REQUIRE(presence(5));
  clock.advance(2500ms);
  // The keeper's next pass (once a second) removes `gone`'s subscription; the
  // same pass keeps `back`'s.
  json list;
  eventually([&] {
    list = app.api_json("GET", "api/subscriptions");
    return list["subscriptions"].size() < 2;
  });
  REQUIRE(list["subscriptions"].size() == 1);
  CHECK(list["subscriptions"][0]["client_id"] == back);
}

TEST_CASE("an unwritable database fails at start with a clear message") {
  char file[] = "/tmp/clio-notadir-XXXXXX";
  int fd = mkstemp(file);
  REQUIRE(fd >= 0);
  ::close(fd);
  InspectorOptions o;
  o.db_path = std::string(file) + "/clio.db";  // a path under a regular file
  auto r = Inspector::create(o);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find(o.db_path) != std::string::npos);
  std::remove(file);
  InspectorOptions bad_prefix;
  bad_prefix.db_path = ":memory:";
  bad_prefix.prefix = "/admin";
  CHECK_FALSE(Inspector::create(bad_prefix).ok());
}

TEST_CASE("a flood that overflows the queue is counted and the app keeps serving") {
  InspectorOptions o;
  o.capture.queue_capacity = 8;
  App app(o);
  auto [client, tok] = app.token();
  Console c(app.port, tok);
  app.subscribe(client, "path = /api/hello");
  app.inspector->pause_dispatcher_for_test(true);
  HttpClient h(app.port);
  for (int i = 0; i < 50; ++i) {
    auto r = h.request("GET", "/api/hello");
    REQUIRE(r.ok());
    CHECK(r->status == 200);
  }
  eventually([&] { return app.inspector->stats().dropped_queue >= 42; }, 2);
  json stats = app.api_json("GET", "api/stats");
  CHECK(stats["dropped_queue"] == 42);
  CHECK(stats["queue_depth"] == 8);
  app.inspector->pause_dispatcher_for_test(false);
  // The console is told how many records were lost, and gets the 8 kept.
  size_t items = 0;
  uint64_t dropped = 0;
  for (int i = 0; i < 20 && (items < 8 || dropped == 0); ++i) {
    json m = c.next(2);
    if (m.is_null()) break;
    if (m["kind"] == "matches") items += m["items"].size();
    if (m["kind"] == "dropped") dropped += m["count"].get<uint64_t>();
  }
  CHECK(items == 8);
  CHECK(dropped == 42);
  json metrics_ok = app.api_json("GET", "api/stats");
  CHECK(metrics_ok["captured"] == 50);  // 8 dispatched + 42 dropped at the queue
  auto metrics = app.api("GET", "metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.body.find("clio_records_dropped_queue_total 42") != std::string::npos);
}

TEST_CASE("token refresh keeps the client id; a bad client id is refused") {
  clio::test::ManualClock clock;
  InspectorOptions o;
  o.clock = &clock;
  App app(o);
  auto [client, tok] = app.token();
  clock.advance(1ms);  // tokens are deterministic per millisecond of issue
  auto [same, tok2] = app.token(client);
  CHECK(same == client);
  CHECK(tok2 != tok);
  CHECK(app.api("POST", "api/token", R"({"client_id":"has space"})").status == 400);
  CHECK(app.api("POST", "api/token", R"({"client_id":7})").status == 400);
  CHECK(app.api("POST", "api/token", "[1]").status == 400);
}

TEST_CASE("the schema endpoint lists fields and aliases for completion") {
  App app;
  json s = app.api_json("GET", "api/schema");
  bool found = false;
  for (const auto& f : s["fields"]) {
    if (f["name"] == "status_code") {
      found = true;
      CHECK(f["type"] == "int");
    }
  }
  CHECK(found);
  CHECK(s["maps"].size() == 2);
}

}  // namespace clio::console

namespace clio::console {

TEST_CASE("a subscribe the dispatcher cannot take in time is a 503 that leaves no row, quota or late match") {
  InspectorOptions o;
  o.db_path = temp_db();
  o.command_timeout = 300ms;
  o.max_subscriptions_per_client = 1;
  std::string client, tok;
  {
    App app(o);
    std::tie(client, tok) = app.token("held");
    Console c(app.port, tok);
    app.inspector->pause_dispatcher_for_test(true);
    auto r = app.api("POST", "api/subscriptions", json{{"client_id", client}, {"query", "path = /api/hello"}}.dump());
    CHECK(r.status == 503);
    CHECK(json::parse(r.body)["error"]["code"] == "unavailable");
    CHECK(app.api_json("GET", "api/subscriptions")["subscriptions"].empty());
    app.inspector->pause_dispatcher_for_test(false);
    // Its place was given back: the client's one subscription fits.
    const uint64_t id = app.subscribe(client, "path = /api/echo");
    app.get("/api/hello");
    app.get("/api/echo");
    // The fence: had the timed-out subscribe run late, its match of the
    // earlier /api/hello would come first.
    auto items = c.items(1);
    REQUIRE(items.size() == 1);
    CHECK(items[0]["subscriptions"] == json::array({id}));
    CHECK(items[0]["record"]["path"] == "/api/echo");
    CHECK(app.inspector->stats().matcher.subscriptions == 1);
  }
  // Only the live subscription's row is in the database.
  App again(o);
  json list = again.api_json("GET", "api/subscriptions");
  REQUIRE(list["subscriptions"].size() == 1);
  CHECK(list["subscriptions"][0]["query"] == "path = /api/echo");
}

TEST_CASE("records carry the instance: hostname:port by default, or the configured name") {
  SUBCASE("default") {
    App app;
    app.get("/api/hello");
    REQUIRE(app.inspector->drain_for_test(5s));
    json recs = app.api_json("GET", "api/records?limit=1");
    REQUIRE(recs["records"].size() == 1);
    const std::string inst = recs["records"][0]["instance"].get<std::string>();
    CHECK(inst.size() > std::to_string(app.port).size() + 1);
    CHECK(inst.substr(inst.size() - std::to_string(app.port).size() - 1) == ":" + std::to_string(app.port));
  }
  SUBCASE("configured, queried, and counted per instance") {
    InspectorOptions o;
    o.instance = "web-7";
    App app(o);
    for (int i = 0; i < 3; ++i) app.get("/api/hello");
    REQUIRE(app.inspector->drain_for_test(5s));
    CHECK(app.api_json("GET", "api/records?q=instance%20%3D%20web-7")["records"].size() == 3);
    CHECK(app.api_json("GET", "api/records?q=instance:web-8")["records"].empty());
    json stats = app.api_json("GET", "api/stats");
    REQUIRE(stats["instances"].size() == 1);
    CHECK(stats["instances"][0]["instance"] == "web-7");
    CHECK(stats["instances"][0]["published"] == 3);
    CHECK(stats["instances"][0]["dropped"] == 0);
    CHECK(stats["log"]["engine"] == "in-process");
    auto metrics = app.api("GET", "metrics");
    CHECK(metrics.body.find("clio_instance_published_total{instance=\"web-7\"} 3") != std::string::npos);
  }
}

}  // namespace clio::console

namespace clio::console {

TEST_CASE("api/check says when a query will be checked on every record; stats and metrics count them by reason") {
  App app;
  json indexed = app.api_json("GET", "api/check?q=status%3A5xx");
  CHECK(indexed["valid"] == true);
  CHECK(indexed["plan"]["every_record"] == false);
  CHECK(indexed["plan"]["code"] == "indexed");
  json negated = app.api_json("GET", "api/check?q=-method%3AOPTIONS");
  CHECK(negated["plan"]["every_record"] == true);
  CHECK(negated["plan"]["code"] == "negated_text");
  CHECK_FALSE(negated["plan"]["reason"].get<std::string>().empty());
  CHECK(negated["plan"]["text"].get<std::string>().rfind("checked on every record", 0) == 0);
  auto [client, tok] = app.token();
  app.subscribe(client, "status:5xx");
  app.subscribe(client, "-method:OPTIONS");
  json stats = app.api_json("GET", "api/stats");
  CHECK(stats["matcher"]["subscriptions"] == 2);
  CHECK(stats["matcher"]["every_record"] == 1);
  CHECK(stats["matcher"]["every_record_by_reason"]["negated_text"] == 1);
  auto metrics = app.api("GET", "metrics");
  CHECK(metrics.body.find("clio_subscriptions_every_record{reason=\"negated_text\"} 1") != std::string::npos);
}

}  // namespace clio::console

namespace clio::console {

TEST_CASE("api/matches: what a console missed across a server restart, from the stored records") {
  InspectorOptions o;
  o.db_path = temp_db();
  std::string client;
  uint64_t sub = 0, last = 0;
  {
    App app(o);
    std::string tok;
    std::tie(client, tok) = app.token("restarting");
    sub = app.subscribe(client, "path = /api/hello");
    app.get("/api/hello");
    app.get("/api/status/404");
    REQUIRE(app.inspector->drain_for_test(5s));
    last = app.api_json("GET", "api/records?limit=1")["records"][0]["id"].get<uint64_t>();
  }
  App app(o);  // same database: the subscription is back, the channel's buffer is not
  for (int i = 0; i < 3; ++i) app.get("/api/hello");
  app.get("/api/status/404");
  REQUIRE(app.inspector->drain_for_test(5s));
  const std::string base = "api/matches?client_id=" + client + "&after=" + std::to_string(last);
  json all = app.api_json("GET", base);
  REQUIRE(all["items"].size() == 3);
  uint64_t prev = last;
  for (auto& it : all["items"]) {
    CHECK(it["subscriptions"] == json::array({sub}));
    CHECK(it["record"]["path"] == "/api/hello");
    CHECK(it["record"]["id"].get<uint64_t>() > prev);  // oldest first
    prev = it["record"]["id"].get<uint64_t>();
  }
  CHECK(all["truncated"] == 0);
  CHECK(all["lost"] == 0);
  json two = app.api_json("GET", base + "&limit=2");
  REQUIRE(two["items"].size() == 2);
  CHECK(two["items"][1]["record"]["id"] == all["items"][2]["record"]["id"]);  // the newest
  CHECK(two["truncated"] == 1);
  CHECK(app.api_json("GET", "api/matches?client_id=" + client + "&after=0")["items"].size() == 4);
  CHECK(app.api("GET", base + "&limit=0").status == 400);
  CHECK(app.api("GET", "api/matches?client_id=" + client + "&after=-1").status == 400);
  CHECK(app.api("GET", "api/matches?after=1").status == 400);
  CHECK(app.api_json("GET", "api/matches?client_id=nobody&after=0")["items"].empty());
}

}  // namespace clio::console

namespace clio::console {

TEST_CASE("a console that stalls loses matches to gaps, and dropped_channel counts exactly those; the books balance") {
  InspectorOptions o;
  o.channel.replay_max_messages = 8;  // overflow needs the ring and the queue exceeded
  o.channel.max_queue_bytes = 16 * 1024;
  App app(o);
  auto [client, tok] = app.token();
  app.subscribe(client, "path:/stall");
  WsClient ws;  // a console whose socket takes almost nothing until it reads again
  REQUIRE(ws.connect(app.port, "/_clio/channel", {"clio.v1", "clio-token." + tok},
                     {{"Authorization", std::string("Bearer ") + kKey}}, 10, 4096)
              .ok());
  REQUIRE(ws.status() == 101);
  auto welcome = ws.read_message(5);
  REQUIRE(welcome.ok());

  // Records of about 50 KB: a matches message holds one (kMessageBudget), so
  // the gap's count (messages) is also the count of pairs lost. 100 of them
  // are far more than the socket buffers, the queue and the ring hold.
  const std::string pad(50000, 'p');
  constexpr int kRequests = 100;
  for (int i = 0; i < kRequests; ++i) app.get("/stall/" + std::to_string(i) + "?pad=" + pad);
  REQUIRE(eventually([&] { return app.inspector->stats().dispatched >= kRequests; }, 20));
  // The ring overwrote messages while the console did not read.
  REQUIRE(eventually([&] { return app.inspector->stats().dropped_channel > 0; }, 20));

  // Reading again: every message arrives or is inside a gap.
  uint64_t got = 0, gap_lost = 0, gaps = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (got + gap_lost < kRequests && std::chrono::steady_clock::now() < deadline) {
    auto f = ws.read_message(5);
    REQUIRE(f.ok());
    json env = json::parse(f->payload, nullptr, false);
    if (env.is_discarded()) continue;
    if (env["t"] == "gap") {
      ++gaps;
      gap_lost += env["lost"].get<uint64_t>();
    } else if (env["t"] == "msg" && env["data"]["kind"] == "matches") {
      REQUIRE(env["data"]["items"].size() == 1);
      ++got;
    }
  }
  CHECK(got + gap_lost == kRequests);
  CHECK(gaps > 0);

  // At rest: nothing pending in the channel, the capture queue or the store.
  json stats;
  REQUIRE(eventually([&] {
    stats = app.api_json("GET", "api/stats");
    return stats["pending_channel"] == 0 && stats["store_queued"] == 0 && stats["queue_depth"] == 0 &&
           stats["captured"] == stats["dispatched"].get<uint64_t>() + stats["dropped_queue"].get<uint64_t>();
  }, 20));
  CHECK(stats["dropped_channel"] == gap_lost);  // the loss the console was told of, no more, no less
  CHECK(stats["delivered"] == got);
  CHECK(stats["matched"] == kRequests);
  CHECK(stats["matched"] == stats["delivered"].get<uint64_t>() + stats["dropped_channel"].get<uint64_t>());
  CHECK(stats["captured"] == stats["dispatched"].get<uint64_t>() + stats["dropped_queue"].get<uint64_t>());
  CHECK(stats["stored"].get<uint64_t>() + stats["store_dropped"].get<uint64_t>() +
            stats["store_lost"].get<uint64_t>() ==
        stats["dispatched"]);
  // Per console: the same figures for this client id.
  json mine;
  for (const json& c : stats["consoles"]) {
    if (c["client_id"] == client) mine = c;
  }
  REQUIRE(mine.is_object());
  CHECK(mine["connected"] == true);
  CHECK(mine["dropped"] == gap_lost);
  CHECK(mine["delivered"] == got);
  CHECK(mine["pending"] == 0);
  CHECK(mine["messages_lost"] == gap_lost);
  auto metrics = app.api("GET", "metrics");
  REQUIRE(metrics.status == 200);
  CHECK(metrics.body.find("clio_matches_dropped_channel_total " + std::to_string(gap_lost) + "\n") !=
        std::string::npos);
  CHECK(metrics.body.find("clio_console_matches_dropped_total{client_id=\"" + client + "\"} " +
                          std::to_string(gap_lost) + "\n") != std::string::npos);
  MESSAGE("stalled console: received " << got << " matches, told of " << gap_lost << " lost in " << gaps << " gaps");
}

}  // namespace clio::console
