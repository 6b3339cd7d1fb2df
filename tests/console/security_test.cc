// The console's doors, tried as an attacker and as a crash would: unknown
// client ids, lax numbers in URLs, long queries, key guessing, logout and
// revocation across restarts, origins, file modes, and record ids after a
// SIGKILL. Everything over real HTTP and WebSocket on 127.0.0.1.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "fixture.h"
#include "throttle.h"

namespace clio::console {
namespace {

Headers bearer(const std::string& key = kKey) { return {{"Authorization", "Bearer " + key}}; }

// The session cookie ("clio_session=...") a form login with the key sets.
std::string login_cookie(int port) {
  auto r = test::http(port, "POST", "/_clio/login", {{"Content-Type", "application/x-www-form-urlencoded"}},
                      std::string("key=") + kKey);
  REQUIRE(r.ok());
  REQUIRE(r->status == 303);
  const std::string set = r->header("Set-Cookie");
  REQUIRE_FALSE(set.empty());
  return set.substr(0, set.find(';'));
}

int status_with_cookie(int port, const std::string& cookie) {
  auto r = test::http(port, "GET", "/_clio/api/stats", {{"Cookie", cookie}});
  REQUIRE(r.ok());
  return r->status;
}

std::string csrf_of(int port, const std::string& cookie) {
  auto r = test::http(port, "GET", "/_clio/api/session", {{"Cookie", cookie}});
  REQUIRE(r.ok());
  return json::parse(r->body)["csrf"].get<std::string>();
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE_MESSAGE(::stat(path.c_str(), &st) == 0, path);
  return st.st_mode & 0777;
}

// Sets the umask for a scope.
struct Umask {
  explicit Umask(mode_t m) : old(::umask(m)) {}
  ~Umask() { ::umask(old); }
  mode_t old;
};

}  // namespace

TEST_CASE("a subscription for a client id the server never issued is refused with 404") {
  App app;
  auto r = app.api("POST", "api/subscriptions", json{{"client_id", "never-issued"}, {"query", "status:5xx"}}.dump());
  CHECK(r.status == 404);
  CHECK(json::parse(r.body)["error"]["code"] == "unknown_client");
  CHECK(json::parse(r.body)["error"]["message"].get<std::string>().find("api/token") != std::string::npos);
  CHECK(app.api_json("GET", "api/subscriptions")["subscriptions"].empty());
  // Once the server issued a token for it, the same request is accepted.
  app.token("never-issued");
  CHECK(app.subscribe("never-issued", "status:5xx") > 0);
}

TEST_CASE("ids and limits in URLs are ASCII digits in range, or 400") {
  App app;
  auto [client, tok] = app.token();
  const std::string id = std::to_string(app.subscribe(client, "status = 200"));
  CHECK(app.api("GET", "api/subscriptions/" + id).status == 200);
  const std::vector<std::string> bad_ids = {"%20" + id, "+" + id, "0" + id, id + "%00", id + "%00x", "-1", "0",
                                            "18446744073709551615", "18446744073709551616", "9223372036854775808",
                                            id + "%20", "1e3", ""};
  for (const std::string& bad : bad_ids) {
    auto r = app.api("GET", "api/subscriptions/" + bad);
    CHECK_MESSAGE(r.status == 400, "GET api/subscriptions/" << bad << " -> " << r.status);
    auto d = app.api("DELETE", "api/subscriptions/" + bad);
    CHECK_MESSAGE(d.status == 400, "DELETE api/subscriptions/" << bad << " -> " << d.status);
  }
  CHECK(app.api("GET", "api/subscriptions/" + id).status == 200);  // nothing was deleted
  for (const char* bad : {"%205", "+5", "05", "5%00", "-1", "0", "1001", "18446744073709551617", "5x"}) {
    auto r = app.api("GET", std::string("api/records?limit=") + bad);
    CHECK_MESSAGE(r.status == 400, "limit=" << bad << " -> " << r.status);
  }
  CHECK(app.api("GET", "api/records?limit=5").status == 200);
  CHECK(app.api("GET", "api/records?limit=1000").status == 200);
}

TEST_CASE("a query too long for a GET URL gets the JSON error, and POST api/check takes any length") {
  App app;
  // 6,000 parentheses, percent-encoded: an 18 KB URL, beyond CivetWeb's
  // default request size.
  std::string encoded;
  for (int i = 0; i < 6000; ++i) encoded += "%28";
  auto get = app.api("GET", "api/check?q=" + encoded);
  REQUIRE(get.status == 200);
  json g = json::parse(get.body, nullptr, false);
  REQUIRE_FALSE(g.is_discarded());
  CHECK(g["valid"] == false);
  CHECK(g["error"]["code"] == "too_long");
  auto post = app.api("POST", "api/check", json{{"query", std::string(6000, '(')}}.dump());
  REQUIRE(post.status == 200);
  CHECK(json::parse(post.body)["error"]["code"] == "too_long");
  json ok = app.api_json("POST", "api/check", json{{"query", "status:5xx"}}.dump());
  CHECK(ok["valid"] == true);
  CHECK(ok["normalized"] == "status_code:5xx");
  CHECK(app.api("POST", "api/check", R"({"q":1})").status == 400);
}

TEST_CASE("key guessing is throttled per address; the right key from another address always works") {
  App app;
  HttpClient guesser(app.port), admin(app.port);
  guesser.set_source("127.0.0.2");
  // Wrong Bearer keys: counted, and the 21st attempt is refused unchecked.
  for (int i = 0; i < 20; ++i) {
    auto r = guesser.request("GET", "/_clio/api/stats", bearer("wrong-key-" + std::to_string(i)));
    REQUIRE(r.ok());
    CHECK(r->status == 401);
  }
  auto refused = guesser.request("GET", "/_clio/api/stats", bearer());
  REQUIRE(refused.ok());
  CHECK(refused->status == 429);
  // The same address is refused for login codes and the form too.
  const std::string code = app.inspector->new_login_code();
  auto by_code = guesser.request("GET", "/_clio/login?code=" + code);
  REQUIRE(by_code.ok());
  CHECK(by_code->status == 429);
  auto form = guesser.request("POST", "/_clio/login", {{"Content-Type", "application/x-www-form-urlencoded"}},
                              std::string("key=") + kKey);
  REQUIRE(form.ok());
  CHECK(form->status == 429);
  // The admin, from another address: the key, the form and the code work.
  auto ok = admin.request("GET", "/_clio/api/stats", bearer());
  REQUIRE(ok.ok());
  CHECK(ok->status == 200);
  CHECK(login_cookie(app.port).rfind("clio_session=v1.", 0) == 0);
  auto redeemed = admin.request("GET", "/_clio/login?code=" + code);
  REQUIRE(redeemed.ok());
  CHECK(redeemed->status == 303);
  CHECK(redeemed->header("Location") == "/_clio/");
  // Wrong one-time codes are counted and throttled as well.
  HttpClient coder(app.port);
  coder.set_source("127.0.0.3");
  for (int i = 0; i < 20; ++i) {
    auto r = coder.request("GET", "/_clio/login?code=guess" + std::to_string(i));
    REQUIRE(r.ok());
    CHECK(r->header("Location") == "/_clio/login?error=code");
  }
  auto code_refused = coder.request("GET", "/_clio/login?code=guess");
  REQUIRE(code_refused.ok());
  CHECK(code_refused->status == 429);
  // Every failure is in /metrics and api/stats.
  auto metrics = app.api("GET", "metrics");
  CHECK(metrics.body.find("clio_auth_failures_total{kind=\"bearer\"} 20") != std::string::npos);
  CHECK(metrics.body.find("clio_auth_failures_total{kind=\"login_code\"} 20") != std::string::npos);
  CHECK(metrics.body.find("clio_auth_failures_total{kind=\"login_key\"} 0") != std::string::npos);
  CHECK(metrics.body.find("clio_auth_throttled_total 4") != std::string::npos);
  json stats = app.api_json("GET", "api/stats");
  CHECK(stats["auth"]["failures"]["bearer"] == 20);
  CHECK(stats["auth"]["refused"] == 4);
}

TEST_CASE("the throttle's table of addresses is bounded") {
  FailureThrottle t({2, std::chrono::seconds(60), 8});
  for (int i = 0; i < 1000; ++i) t.note_failure("10.0.0." + std::to_string(i), FailureThrottle::kBearer, 100);
  CHECK(t.stats().addresses == 8);
  CHECK(t.stats().failures[FailureThrottle::kBearer] == 1000);
  // The newest addresses are the ones tracked; a window ends after a minute.
  t.note_failure("10.0.0.999", FailureThrottle::kBearer, 101);
  CHECK(t.throttled("10.0.0.999", 101));
  CHECK_FALSE(t.throttled("10.0.0.999", 161));
  CHECK_FALSE(t.throttled("10.0.0.1", 101));
}

TEST_CASE("logout lasts across a restart, and log out everywhere ends every session") {
  const std::string db = temp_db();
  InspectorOptions o;
  o.db_path = db;
  std::string gone, kept, kept_csrf;
  {
    App app(o);
    gone = login_cookie(app.port);
    kept = login_cookie(app.port);
    auto out = test::http(app.port, "POST", "/_clio/logout", {{"Cookie", gone}, {"X-Clio-CSRF", csrf_of(app.port, gone)}});
    REQUIRE(out.ok());
    CHECK(out->status == 200);
    CHECK(status_with_cookie(app.port, gone) == 401);
    CHECK(status_with_cookie(app.port, kept) == 200);
  }
  {
    App app(o);
    CHECK(status_with_cookie(app.port, gone) == 401);  // still logged out
    CHECK(status_with_cookie(app.port, kept) == 200);  // the other session survives
    // An open console, connected with the cookie, is closed for good.
    auto tok = test::http(app.port, "POST", "/_clio/api/token", {{"Cookie", kept}, {"X-Clio-CSRF", csrf_of(app.port, kept)}}, "{}");
    REQUIRE(tok.ok());
    REQUIRE(tok->status == 200);
    const std::string origin = "http://127.0.0.1:" + std::to_string(app.port);
    WsClient ws;
    REQUIRE(ws.connect(app.port, "/_clio/channel", {"clio.v1", "clio-token." + json::parse(tok->body)["token"].get<std::string>()},
                       {{"Cookie", kept}, {"Origin", origin}})
                .ok());
    REQUIRE(ws.status() == 101);
    // Log out everywhere, from the page (cookie and CSRF header).
    auto all = test::http(app.port, "DELETE", "/_clio/api/sessions", {{"Cookie", kept}, {"X-Clio-CSRF", csrf_of(app.port, kept)}});
    REQUIRE(all.ok());
    CHECK(all->status == 200);
    CHECK(all->header("Set-Cookie").find("Max-Age=0") != std::string::npos);
    CHECK(status_with_cookie(app.port, kept) == 401);
    bool closed = false;
    for (int i = 0; i < 10 && !closed; ++i) {
      auto f = ws.read_message(2);
      if (!f.ok()) break;
      if (f->opcode == 8) {
        CHECK(f->close_code() == 4001);
        closed = true;
      }
    }
    CHECK(closed);
    // The key still works, and a new login gives a working session.
    CHECK(app.api("GET", "api/stats").status == 200);
    CHECK(status_with_cookie(app.port, login_cookie(app.port)) == 200);
  }
  App again(o);
  CHECK(status_with_cookie(again.port, kept) == 401);
  CHECK(status_with_cookie(again.port, gone) == 401);
  std::filesystem::remove_all(std::filesystem::path(db).parent_path());
}

TEST_CASE("the WebSocket origin is the configured public origin, never one derived from Host") {
  SUBCASE("default: the listening address") {
    App app;
    const std::string cookie = login_cookie(app.port);
    auto tok = test::http(app.port, "POST", "/_clio/api/token", {{"Cookie", cookie}, {"X-Clio-CSRF", csrf_of(app.port, cookie)}}, "{}");
    REQUIRE(tok.ok());
    const std::string token = json::parse(tok->body)["token"].get<std::string>();
    const std::string self = "127.0.0.1:" + std::to_string(app.port);
    auto upgrade = [&](const std::string& origin, const std::string& host) {
      WsClient ws;
      REQUIRE(ws.connect(app.port, "/_clio/channel", {"clio.v1", "clio-token." + token},
                         {{"Cookie", cookie}, {"Origin", origin}, {"Host", host}})
                  .ok());
      return ws.status();
    };
    CHECK(upgrade("http://" + self, self) == 101);
    CHECK(upgrade("http://localhost:" + std::to_string(app.port), self) == 101);
    CHECK(upgrade("https://" + self, self) == 403);                     // not https on a plain-http server
    CHECK(upgrade("http://evil.example", "evil.example") == 403);       // a Host header proves nothing
    CHECK(upgrade("http://evil.example:80", "evil.example:80") == 403);
    json session = json::parse(test::http(app.port, "GET", "/_clio/api/session", {{"Cookie", cookie}})->body);
    CHECK(session["origin"] == "http://" + self);
    // The page may open WebSockets to its own origin only.
    auto page = test::http(app.port, "GET", "/_clio/", {{"Cookie", cookie}});
    REQUIRE(page.ok());
    const std::string csp = page->header("Content-Security-Policy");
    CHECK(csp.find("connect-src 'self' ws://" + self + " ws://localhost:" + std::to_string(app.port) + ";") !=
          std::string::npos);
    CHECK(csp.find(" ws: ") == std::string::npos);
    CHECK(csp.find(" wss:") == std::string::npos);
  }
  SUBCASE("configured") {
    InspectorOptions o;
    o.public_origin = "https://clio.example.com";
    App app(o);
    const std::string cookie = login_cookie(app.port);
    auto tok = test::http(app.port, "POST", "/_clio/api/token", {{"Cookie", cookie}, {"X-Clio-CSRF", csrf_of(app.port, cookie)}}, "{}");
    const std::string token = json::parse(tok->body)["token"].get<std::string>();
    const std::string self = "127.0.0.1:" + std::to_string(app.port);
    for (const auto& c : std::vector<std::pair<std::string, int>>{
             {"https://clio.example.com", 101}, {"http://" + self, 403}, {"http://clio.example.com", 403}}) {
      const std::string& origin = c.first;  // not a structured binding: CHECK_MESSAGE
      const int want = c.second;             // captures it (C++20, clang 16+)
      WsClient ws;
      REQUIRE(ws.connect(app.port, "/_clio/channel", {"clio.v1", "clio-token." + token},
                         {{"Cookie", cookie}, {"Origin", origin}, {"Host", "clio.example.com"}})
                  .ok());
      CHECK_MESSAGE(ws.status() == want, origin);
    }
    json session = json::parse(test::http(app.port, "GET", "/_clio/api/session", {{"Cookie", cookie}})->body);
    CHECK(session["origin"] == "https://clio.example.com");
    auto page = test::http(app.port, "GET", "/_clio/", {{"Cookie", cookie}});
    CHECK(page->header("Content-Security-Policy").find("connect-src 'self' wss://clio.example.com;") != std::string::npos);
  }
  InspectorOptions bad;
  bad.db_path = ":memory:";
  bad.public_origin = "https://clio.example.com/console";
  CHECK_FALSE(Inspector::create(bad).ok());
}

TEST_CASE("every file Clio writes is owner-only, and a readable database is repaired at start") {
  Umask loose(022);
  const std::string db = temp_db();
  const std::string dir = std::filesystem::path(db).parent_path();
  InspectorOptions o;
  o.db_path = db;
  o.jsonl_path = dir + "/records.jsonl";
  {
    App app(o);
    app.get("/api/hello");
    REQUIRE(app.inspector->drain_for_test(5s));
    for (const std::string& f : {db, db + "-wal", db + "-shm", o.jsonl_path}) {
      const mode_t m = mode_of(f);
      CHECK_MESSAGE(m == 0600, f << " has mode " << std::oct << m);
    }
  }
  // Another tool (or an older Clio) left them readable by everyone.
  for (const std::string& f : {db, db + "-wal", db + "-shm", o.jsonl_path}) {
    if (std::filesystem::exists(f)) REQUIRE(::chmod(f.c_str(), 0644) == 0);
  }
  {
    App app(o);
    for (const std::string& f : {db, db + "-wal", db + "-shm", o.jsonl_path}) {
      if (!std::filesystem::exists(f)) continue;
      const mode_t m = mode_of(f);
      CHECK_MESSAGE(m == 0600, f << " has mode " << std::oct << m);
    }
  }
  std::filesystem::remove_all(dir);
}

// The crash: a child process serves a burst and is killed with SIGKILL
// right after the console received it, before the store's next batch
// (every 200 ms) could write it; a console restarted on the same database
// must never give those ids to other records.
TEST_CASE("record ids are never reused after a SIGKILL") {
  const std::string db = temp_db();
  InspectorOptions o;
  o.db_path = db;
  int ports[2];
  REQUIRE(::pipe(ports) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(ports[0]);
    try {
      App app(o);
      const int port = app.port;
      (void)!::write(ports[1], &port, sizeof port);
      for (;;) ::pause();  // until killed
    } catch (...) {
    }
    ::_exit(3);
  }
  ::close(ports[1]);
  int port = 0;
  REQUIRE(::read(ports[0], &port, sizeof port) == static_cast<ssize_t>(sizeof port));
  ::close(ports[0]);
  std::set<uint64_t> before;
  {
    Api api{port};
    auto [client, tok] = api.token();
    Console c(port, tok);
    api.subscribe(client, "path = /api/hello");
    HttpClient h(port);
    for (int i = 0; i < 20; ++i) REQUIRE(h.request("GET", "/api/hello").ok());
    for (const json& it : c.items(20)) before.insert(it["record"]["id"].get<uint64_t>());
    ::kill(child, SIGKILL);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  REQUIRE(before.size() == 20);
  App again(o);
  auto [client, tok] = again.token();
  Console c(again.port, tok);
  again.subscribe(client, "path = /api/hello");
  for (int i = 0; i < 5; ++i) again.get("/api/hello");
  auto after = c.items(5);
  REQUIRE(after.size() == 5);
  for (const json& it : after) {
    const uint64_t id = it["record"]["id"].get<uint64_t>();
    CHECK_MESSAGE(id > *before.rbegin(), "id " << id << " was handed out before the crash (up to " << *before.rbegin() << ")");
  }
  std::filesystem::remove_all(std::filesystem::path(db).parent_path());
}

}  // namespace clio::console
