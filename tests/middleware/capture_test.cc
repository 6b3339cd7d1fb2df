// Capture over a real CivetWeb server on 127.0.0.1:0, talked to over real
// sockets: statuses, timings, byte counts, keep-alive, redaction, chaining
// of the app's callbacks, a full queue, tags, exclusion, CivetServer.
#include <CivetServer.h>
#include <arpa/inet.h>
#include <civetweb.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "clio/middleware/capture.h"
#include "clio/middleware/jsonl_sink.h"
#include "clio/middleware/redact.h"
#include "demo_app.h"
#include "support/http_client.h"

namespace clio {
namespace {

using namespace std::chrono_literals;
using test::HttpClient;

// The app's own callbacks, counted, to prove Clio chains them.
std::atomic<int> g_app_begin{0}, g_app_end{0}, g_app_log{0}, g_app_close{0};
int app_begin(mg_connection* conn) {
  g_app_begin++;
  // The app's begin_request may answer a request itself.
  if (std::strcmp(mg_get_request_info(conn)->local_uri, "/teapot") == 0) {
    mg_send_http_error(conn, 418, "%s", "short and stout");
    return 418;
  }
  return 0;
}
void app_end(const mg_connection*, int) { g_app_end++; }
int app_log(const mg_connection*, const char*) {
  g_app_log++;
  return 1;  // "handled": CivetWeb must not write an access log file
}
void app_close(const mg_connection*) { g_app_close++; }

int burn_then_sleep(mg_connection* conn, void*) {
  timespec start, now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
  volatile uint64_t x = 1;
  do {
    for (int i = 0; i < 10000; ++i) x = x * 3 + 1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000.0 + (now.tv_nsec - start.tv_nsec) / 1e6 < 50);
  std::this_thread::sleep_for(100ms);
  mg_send_http_ok(conn, "text/plain", 2);
  mg_write(conn, "ok", 2);
  return 200;
}

int tagged(mg_connection* conn, void*) {
  tag(conn, "user", "alice");
  tag(conn, "plan", "free");
  tag(conn, "plan", "pro");  // replaces
  mg_send_http_ok(conn, "text/plain", 0);
  return 200;
}

int returns_one(mg_connection* conn, void*) {
  mg_send_http_ok(conn, "text/plain", 0);
  return 1;  // "handled", status unknown to CivetWeb
}

int deny_secret(mg_connection* c, void*) {
  mg_response_header_start(c, 401);
  mg_response_header_add(c, "WWW-Authenticate", "Bearer", -1);
  mg_response_header_add(c, "Content-Length", "0", -1);
  mg_response_header_send(c);
  return 0;
}

int excluded_console(mg_connection* conn, void*) {
  mg_send_http_ok(conn, "text/plain", 0);
  return 200;
}

// A C-API app wrapped by Clio, on an ephemeral port.
struct TestApp {
  explicit TestApp(CaptureOptions o = {}, bool with_app_callbacks = true) : capture(std::move(o)) {
    if (with_app_callbacks) {
      callbacks.begin_request = app_begin;
      callbacks.end_request = app_end;
      callbacks.log_access = app_log;
      callbacks.connection_close = app_close;
    }
    REQUIRE(capture.install(&callbacks).ok());
    auto opts = demo::server_options("127.0.0.1:0", CLIO_DEMO_WWW, 16);
    ctx = mg_start(&callbacks, nullptr, opts.pointers());
    REQUIRE(ctx != nullptr);
    demo::register_handlers(ctx);
    mg_set_request_handler(ctx, "/burnsleep$", burn_then_sleep, nullptr);
    mg_set_request_handler(ctx, "/tagged$", tagged, nullptr);
    mg_set_request_handler(ctx, "/one$", returns_one, nullptr);
    mg_set_request_handler(ctx, "/secret/", excluded_console, nullptr);
    mg_set_auth_handler(ctx, "/secret/", deny_secret, nullptr);
    mg_set_request_handler(ctx, "/_clio/", excluded_console, nullptr);
    port = demo::bound_port(ctx);
    REQUIRE(port > 0);
  }
  ~TestApp() { mg_stop(ctx); }

  // Waits (bounded) for n records.
  std::vector<Record> records(size_t n, std::chrono::milliseconds timeout = 5000ms) {
    std::vector<std::unique_ptr<Record>> got;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (got.size() < n && std::chrono::steady_clock::now() < deadline) {
      capture.queue().pop_batch(got, n - got.size(), 50ms);
    }
    std::vector<Record> out;
    for (auto& r : got) out.push_back(std::move(*r));
    return out;
  }
  Record one() {
    auto v = records(1);
    REQUIRE(v.size() == 1);
    return v[0];
  }

  Capture capture;
  mg_callbacks callbacks{};
  mg_context* ctx = nullptr;
  int port = 0;
};

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

// Sends a request with "Connection: close" and returns every byte received.
std::string exchange_raw(int port, const std::string& request) {
  int fd = connect_to(port);
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  std::string all;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    all.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return all;
}

}  // namespace

TEST_CASE("status of handler, static file, 404, auth 401, app begin_request, unknown") {
  TestApp app;
  HttpClient c(app.port);
  struct Case {
    const char* method;
    const char* target;
    int wire;
    int recorded;
  } cases[] = {
      {"GET", "/api/hello", 200, 200},
      {"GET", "/api/status/503", 503, 503},
      {"GET", "/api/status/404", 404, 404},
      {"GET", "/static/app.css", 200, 200},
      {"GET", "/static/nope.css", 404, 404},
      {"GET", "/no/such/path", 404, 404},
      {"GET", "/secret/thing", 401, 401},
      {"GET", "/teapot", 418, 418},
      {"GET", "/one", 200, 0},
      {"DELETE", "/api/hello", 405, 405},
  };
  for (const Case& k : cases) {
    auto r = c.request(k.method, k.target);
    REQUIRE(r.ok());
    CHECK_MESSAGE(r->status == k.wire, k.target);
  }
  auto recs = app.records(std::size(cases));
  REQUIRE(recs.size() == std::size(cases));
  for (size_t i = 0; i < recs.size(); ++i) {
    std::string target = cases[i].target;
    CHECK(recs[i].path == target);
    CHECK(recs[i].method == cases[i].method);
    CHECK_MESSAGE(recs[i].status_code == cases[i].recorded, target);
  }
}

TEST_CASE("an accepted WebSocket is recorded as 101 when it closes") {
  TestApp app;
  int fd = connect_to(app.port);
  const std::string hs =
      "GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  REQUIRE(::send(fd, hs.data(), hs.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(hs.size()));
  char buf[4096];
  pollfd p{fd, POLLIN, 0};
  std::string got;
  while (got.find("\r\n\r\n") == std::string::npos) {
    REQUIRE(::poll(&p, 1, 5000) == 1);
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    REQUIRE(n > 0);
    got.append(buf, static_cast<size_t>(n));
  }
  CHECK(got.substr(0, 12) == "HTTP/1.1 101");
  got.erase(0, got.find("\r\n\r\n") + 4);
  // A masked Close frame (code 1000); the echo app answers with its own Close.
  const unsigned char close_frame[] = {0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE8 ^ 2};
  REQUIRE(::send(fd, close_frame, sizeof close_frame, MSG_NOSIGNAL) == sizeof close_frame);
  while (got.size() < 2) {
    REQUIRE(::poll(&p, 1, 5000) == 1);
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    REQUIRE(n > 0);
    got.append(buf, static_cast<size_t>(n));
  }
  CHECK((static_cast<unsigned char>(got[0]) & 0x0f) == 0x8);
  ::close(fd);
  Record r = app.one();
  CHECK(r.path == "/ws/echo");
  CHECK(r.status_code == 101);
  CHECK(r.response_bytes >= 129);
}

TEST_CASE("wall time and CPU time: 50 ms burned, 100 ms slept") {
  TestApp app;
  auto r = test::http(app.port, "GET", "/burnsleep");
  REQUIRE(r.ok());
  Record rec = app.one();
  CHECK(rec.wall_time >= 149.0);
  CHECK(rec.wall_time < 5000.0);  // loose: burning 50 ms of CPU takes longer on a loaded machine
  CHECK(rec.cpu_time >= 49.0);
  CHECK(rec.cpu_time < 100.0);  // the sleep is not CPU
}

TEST_CASE("cpu_time is read once per request: a keep-alive neighbour is not charged for a burn") {
  // One connection is served by one worker thread, so each request's
  // cpu_time runs from the end of the one before.
  SUBCASE("a captured burn, then a cheap request") {
    TestApp app;
    HttpClient h(app.port);
    REQUIRE(h.request("GET", "/burnsleep").ok());
    REQUIRE(h.request("GET", "/api/hello").ok());
    auto v = app.records(2);
    REQUIRE(v.size() == 2);
    CHECK(v[0].cpu_time >= 49.0);
    CHECK(v[0].cpu_time < 100.0);
    CHECK(v[1].cpu_time > 0.0);
    CHECK(v[1].cpu_time < 10.0);
  }
  SUBCASE("an excluded burn still moves the thread's reading on") {
    CaptureOptions o;
    o.exclude_prefixes = {"/burnsleep"};
    TestApp app(o);
    HttpClient h(app.port);
    REQUIRE(h.request("GET", "/api/hello").ok());
    REQUIRE(h.request("GET", "/burnsleep").ok());
    REQUIRE(h.request("GET", "/api/hello").ok());
    auto v = app.records(2);
    REQUIRE(v.size() == 2);
    CHECK(v[1].path == "/api/hello");
    CHECK(v[1].cpu_time < 10.0);
  }
}

TEST_CASE("with measure_cpu_time off, cpu_time is 0 and wall time is still measured") {
  CaptureOptions o;
  o.measure_cpu_time = false;
  TestApp app(o);
  REQUIRE(test::http(app.port, "GET", "/burnsleep").ok());
  Record rec = app.one();
  CHECK(rec.cpu_time == 0.0);
  CHECK(rec.wall_time >= 149.0);
}

TEST_CASE("response bytes equal the bytes on the wire, dynamic and static") {
  TestApp app;
  const std::string dyn = exchange_raw(app.port, "GET /api/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  Record r1 = app.one();
  CHECK(r1.response_bytes == static_cast<int64_t>(dyn.size()));
  const std::string stat = exchange_raw(app.port, "GET /static/data.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  Record r2 = app.one();
  CHECK(stat.find("\"products\"") != std::string::npos);
  CHECK(r2.response_bytes == static_cast<int64_t>(stat.size()));
  // A user agent and referer with spaces and digits must not confuse the parse.
  const std::string odd = exchange_raw(
      app.port,
      "GET /api/hello HTTP/1.1\r\nHost: x\r\nUser-Agent: agent 200 123 \" x\r\nReferer: http://r/ 7 8\r\n"
      "Connection: close\r\n\r\n");
  Record r3 = app.one();
  CHECK(r3.response_bytes == static_cast<int64_t>(odd.size()));
  CHECK(r3.user_agent == "agent 200 123 \" x");
  CHECK(app.capture.stats().bytes_unparsed == 0);
}

TEST_CASE("a keep-alive sequence on one connection gives one record per request, in order") {
  TestApp app;
  HttpClient c(app.port);
  const char* paths[] = {"/api/hello", "/api/status/201", "/static/app.css", "/api/status/500", "/api/hello"};
  for (const char* p : paths) REQUIRE(c.request("GET", p).ok());
  CHECK(c.connections_opened() == 1);
  auto body = c.request("POST", "/api/echo", {{"Content-Type", "text/plain"}}, "hello echo");
  REQUIRE(body.ok());
  CHECK(body->body == "hello echo");
  CHECK(c.connections_opened() == 1);
  auto recs = app.records(6);
  REQUIRE(recs.size() == 6);
  for (size_t i = 0; i < 5; ++i) CHECK(recs[i].path == paths[i]);
  CHECK(recs[1].status_code == 201);
  CHECK(recs[3].status_code == 500);
  CHECK(recs[5].method == "POST");
  CHECK(recs[5].request_bytes == 10);
  for (const Record& r : recs) {
    CHECK(r.remote_ip == "127.0.0.1");
    CHECK(r.http_version == "1.1");
    CHECK(r.random >= 0.0);
    CHECK(r.random < 1.0);
    CHECK(r.time > 1.7e9);
  }
}

TEST_CASE("Authorization, Cookie and token= are redacted before the record leaves") {
  TestApp app;
  auto r = test::http(app.port, "GET", "/api/hello?user=7&token=s3cr3t&api_key=k3y&zipcode=12345",
                      {{"Authorization", "Bearer abc.def"},
                       {"Cookie", "sid=topsecret"},
                       {"Referer", "http://shop.example/cart?session=xyz&step=2"},
                       {"User-Agent", "redaction-test/1.0"},
                       {"X-Custom", "visible"}});
  REQUIRE(r.ok());
  Record rec = app.one();
  CHECK(rec.query == "user=7&token=[redacted]&api_key=[redacted]&zipcode=12345");
  REQUIRE(rec.header("authorization") != nullptr);
  CHECK(*rec.header("authorization") == "[redacted]");
  REQUIRE(rec.header("cookie") != nullptr);
  CHECK(*rec.header("cookie") == "[redacted]");
  CHECK(rec.referer == "http://shop.example/cart?session=[redacted]&step=2");
  CHECK(*rec.header("referer") == rec.referer);
  CHECK(*rec.header("x-custom") == "visible");
  CHECK(rec.user_agent == "redaction-test/1.0");
  const std::string json = to_json(rec);
  CHECK(json.find("s3cr3t") == std::string::npos);
  CHECK(json.find("topsecret") == std::string::npos);
  CHECK(json.find("abc.def") == std::string::npos);
  CHECK(json.find("xyz") == std::string::npos);
}

TEST_CASE("redaction lists are configurable") {
  CaptureOptions o;
  o.redact.headers = {"x-api-token"};
  o.redact.words = {"ssn"};
  TestApp app(o);
  REQUIRE(test::http(app.port, "GET", "/api/hello?ssn=123&token=visible",
                     {{"X-Api-Token", "t"}, {"Authorization", "Bearer shown"}}).ok());
  Record rec = app.one();
  CHECK(rec.query == "ssn=[redacted]&token=visible");
  CHECK(*rec.header("x-api-token") == "[redacted]");
  CHECK(*rec.header("authorization") == "Bearer shown");
}

TEST_CASE("redaction word matching") {
  const Redactor r;
  CHECK(r.name_matches("token"));
  CHECK(r.name_matches("TOKEN"));
  CHECK(r.name_matches("access_token"));
  CHECK(r.name_matches("apiKey"));
  CHECK(r.name_matches("X-Auth-Sig"));
  CHECK(r.name_matches("user[password]"));
  CHECK_FALSE(r.name_matches("zipcode"));
  CHECK_FALSE(r.name_matches("keyboard"));
  CHECK_FALSE(r.name_matches(""));
  auto query = [&](std::string_view q) {
    std::string out = "stale";
    r.query(q, out);
    return out;
  };
  auto url = [&](std::string_view u) {
    std::string out = "stale";
    r.url(u, out);
    return out;
  };
  CHECK(query("") == "");
  CHECK(query("a&b=1;code=9") == "a&b=1;code=[redacted]");
  CHECK(query("token") == "token");  // no value: nothing to hide
  CHECK(url("/p?sig=1#frag") == "/p?sig=[redacted]#frag");
  CHECK(url("/p") == "/p");
}

TEST_CASE("the app's own callbacks are still called") {
  g_app_begin = g_app_end = g_app_log = g_app_close = 0;
  {
    TestApp app;
    for (int i = 0; i < 3; ++i) REQUIRE(test::http(app.port, "GET", "/api/hello").ok());
    CHECK(app.records(3).size() == 3);
  }  // mg_stop: every connection_close has run
  CHECK(g_app_begin == 3);
  CHECK(g_app_end == 3);
  CHECK(g_app_log == 3);
  CHECK(g_app_close == 3);
}

TEST_CASE("a full queue drops and counts while the app keeps answering") {
  CaptureOptions o;
  o.queue_capacity = 4;
  TestApp app(o);
  HttpClient c(app.port);
  for (int i = 0; i < 50; ++i) {
    auto r = c.request("GET", "/api/hello");
    REQUIRE(r.ok());
    CHECK(r->status == 200);
  }
  // log_access runs after the response is sent: wait for the last one.
  for (int i = 0; i < 100 && app.capture.stats().captured + app.capture.stats().dropped_queue < 50; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  const auto st = app.capture.stats();
  CHECK(st.captured == 4);
  CHECK(st.dropped_queue == 46);
  CHECK(app.records(10, 200ms).size() == 4);
}

TEST_CASE("tags attached by the handler become tag.NAME") {
  TestApp app;
  REQUIRE(test::http(app.port, "GET", "/tagged").ok());
  Record r = app.one();
  REQUIRE(r.tag("user") != nullptr);
  CHECK(*r.tag("user") == "alice");
  CHECK(*r.tag("plan") == "pro");
  CHECK(r.tags.size() == 2);
}

TEST_CASE("recycled records are reused with nothing of their previous request left") {
  TestApp app;
  auto take = [&app] {
    std::vector<std::unique_ptr<Record>> got;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (got.empty() && std::chrono::steady_clock::now() < deadline) app.capture.queue().pop_batch(got, 1, 50ms);
    REQUIRE(got.size() == 1);
    return got;
  };
  // The JSON of a record without the fields that differ between two runs of
  // the same request.
  auto stable_json = [](Record r) {
    r.time = r.wall_time = r.cpu_time = r.random = 0;
    return to_json(r);
  };
  const std::string request_b = "GET /api/hello HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
  exchange_raw(app.port, request_b);
  const std::string fresh = stable_json(*take()[0]);
  CHECK(app.capture.stats().reused == 0);

  // A request that fills every field: query, tags, redaction, many headers.
  exchange_raw(app.port,
               "POST /tagged?token=abc&page=2 HTTP/1.1\r\nHost: a.example:1\r\nUser-Agent: " +
                   std::string(300, 'u') + "\r\nReferer: http://r.example/?key=k\r\nCookie: c=1\r\nX-Long: " +
                   std::string(200, 'x') + "\r\nX-Extra: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  auto first = take();
  REQUIRE(first[0]->headers.size() == 8);
  REQUIRE(first[0]->tags.size() == 2);
  const Record* address = first[0].get();
  app.capture.recycle(first);
  CHECK(first.empty());

  exchange_raw(app.port, request_b);
  auto second = take();
  CHECK(app.capture.stats().reused == 1);
  CHECK(second[0].get() == address);
  // Every field, including any added to Record later, is as in a new record.
  CHECK(stable_json(*second[0]) == fresh);
  const Record& r = *second[0];
  CHECK(r.id == 0);
  CHECK(r.method == "GET");
  CHECK(r.path == "/api/hello");
  CHECK(r.query.empty());
  CHECK(r.status_code == 200);
  CHECK(r.host == "b");
  CHECK(r.user_agent.empty());
  CHECK(r.referer.empty());
  CHECK(r.request_bytes == 0);
  CHECK(r.response_bytes > 0);
  CHECK(r.tags.empty());
  REQUIRE(r.headers.size() == 2);
  CHECK(r.headers[0] == std::pair<std::string, std::string>("host", "b"));
  CHECK(r.headers[1] == std::pair<std::string, std::string>("connection", "close"));

  // A record holding more text than a spare may keep is freed, not kept.
  exchange_raw(app.port, "GET /api/hello HTTP/1.1\r\nHost: c\r\nX-Big: " + std::string(5000, 'b') +
                             "\r\nConnection: close\r\n\r\n");
  auto big = take();
  REQUIRE(big[0]->header("x-big") != nullptr);
  app.capture.recycle(second);  // the spares: just this one
  app.capture.recycle(big);     // too big: freed
  CHECK(big.empty());
  for (int i = 0; i < 2; ++i) {
    REQUIRE(test::http(app.port, "GET", "/api/hello").ok());
    take();
  }
  CHECK(app.capture.stats().reused == 2);
}

TEST_CASE("the console prefix is not captured, in any letter case") {
  TestApp app;
  for (const char* p : {"/_clio/api/stats", "/_CLIO/api/stats", "/_Clio/"}) {
    REQUIRE(test::http(app.port, "GET", p).ok());
  }
  REQUIRE(test::http(app.port, "GET", "/api/hello").ok());
  Record r = app.one();
  CHECK(r.path == "/api/hello");
  CHECK(app.capture.stats().excluded == 3);
  CHECK(app.records(1, 200ms).empty());
}

TEST_CASE("capture can be switched off at run time") {
  TestApp app;
  app.capture.set_enabled(false);
  REQUIRE(test::http(app.port, "GET", "/api/hello").ok());
  app.capture.set_enabled(true);
  REQUIRE(test::http(app.port, "GET", "/api/status/202").ok());
  Record r = app.one();
  CHECK(r.status_code == 202);
  CHECK(app.records(1, 200ms).empty());
}

TEST_CASE("X-Forwarded-For is used only when trusted") {
  {
    TestApp app;
    REQUIRE(test::http(app.port, "GET", "/api/hello", {{"X-Forwarded-For", "203.0.113.9, 10.0.0.1"}}).ok());
    const Record r = app.one();
    CHECK(r.remote_ip == "127.0.0.1");
    REQUIRE(r.remote_addr.has_value());  // parsed once, at capture
    CHECK(r.remote_addr->to_string() == "127.0.0.1");
  }
  CaptureOptions o;
  o.trust_x_forwarded_for = true;
  TestApp app(o);
  REQUIRE(test::http(app.port, "GET", "/api/hello", {{"X-Forwarded-For", "203.0.113.9, 10.0.0.1"}}).ok());
  const Record r = app.one();
  CHECK(r.remote_ip == "203.0.113.9");
  REQUIRE(r.remote_addr.has_value());
  CHECK(r.remote_addr->to_string() == "203.0.113.9");
}

namespace {
class StatusHandler : public CivetHandler {
 public:
  bool handleGet(CivetServer*, mg_connection* conn, int* status_code) override {
    const std::string body = "created";
    mg_response_header_start(conn, 201);
    mg_response_header_add(conn, "Content-Length", std::to_string(body.size()).c_str(), -1);
    mg_response_header_send(conn);
    mg_write(conn, body.data(), body.size());
    *status_code = 201;
    return true;
  }
};
}  // namespace

TEST_CASE("a CivetServer app is captured the same way") {
  Capture capture;
  CivetCallbacks callbacks;
  callbacks.end_request = app_end;
  g_app_end = 0;
  REQUIRE(capture.install(&callbacks).ok());
  std::vector<std::string> opts = {"listening_ports", "127.0.0.1:0", "num_threads", "4"};
  {
    CivetServer server(opts, &callbacks);
    StatusHandler h;
    server.addHandler("/made", h);
    const int port = server.getListeningPorts().at(0);
    auto r = test::http(port, "GET", "/made?token=abc");
    REQUIRE(r.ok());
    CHECK(r->status == 201);
    CHECK(r->body == "created");
    std::vector<std::unique_ptr<Record>> got;
    for (int i = 0; i < 100 && got.empty(); ++i) capture.queue().pop_batch(got, 1, 50ms);
    REQUIRE(got.size() == 1);
    CHECK(got[0]->status_code == 201);
    CHECK(got[0]->path == "/made");
    CHECK(got[0]->query == "token=[redacted]");
  }
  CHECK(g_app_end == 1);
}

TEST_CASE("install fails cleanly when called twice") {
  Capture capture;
  mg_callbacks cb{};
  REQUIRE(capture.install(&cb).ok());
  CHECK_FALSE(capture.install(&cb).ok());
  CHECK_FALSE(Capture().install(nullptr).ok());
}

TEST_CASE("install sets TZ only when it is unset and pinning is on") {
  unsetenv("TZ");
  {
    Capture capture;
    mg_callbacks cb{};
    REQUIRE(capture.install(&cb).ok());
    REQUIRE(std::getenv("TZ") != nullptr);
    CHECK(std::string(std::getenv("TZ")) == ":/etc/localtime");
  }
  setenv("TZ", "UTC", 1);
  {
    Capture capture;
    mg_callbacks cb{};
    REQUIRE(capture.install(&cb).ok());
    CHECK(std::string(std::getenv("TZ")) == "UTC");
  }
  unsetenv("TZ");
  {
    CaptureOptions o;
    o.pin_timezone = false;
    Capture capture(o);
    mg_callbacks cb{};
    REQUIRE(capture.install(&cb).ok());
    CHECK(std::getenv("TZ") == nullptr);
  }
}

TEST_CASE("while records flow the consumer takes them once an interval; a batch cut at max leaves the rest") {
  RecordQueue q(1024);
  std::vector<std::unique_ptr<Record>> got;
  auto push = [&q](int n) {
    for (int i = 0; i < n; ++i) REQUIRE(q.try_push(std::make_unique<Record>()));
  };
  using Clock = std::chrono::steady_clock;
  push(10);
  CHECK(q.pop_batch(got, 1024, 1s) == 10);
  const auto first = Clock::now();
  push(10);  // already waiting: still taken only an interval after the first batch
  CHECK(q.pop_batch(got, 1024, 1s) == 10);
  CHECK(Clock::now() - first >= RecordQueue::kPollInterval);
  push(25);
  CHECK(q.pop_batch(got, 10, 1s) == 10);
  CHECK(q.pop_batch(got, 10, 1s) == 10);
  CHECK(q.pop_batch(got, 10, 1s) == 5);
  CHECK(got.size() == 45);
}

TEST_CASE("the record queue keeps every record from many producers, in per-producer order") {
  RecordQueue q(1 << 16);
  constexpr int kThreads = 4, kEach = 10000;
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&q, t] {
      for (int i = 0; i < kEach; ++i) {
        auto r = std::make_unique<Record>();
        r->id = static_cast<uint64_t>(t) * 1000000 + static_cast<uint64_t>(i);
        REQUIRE(q.try_push(std::move(r)));
      }
    });
  }
  std::vector<std::unique_ptr<Record>> got;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (got.size() < kThreads * kEach && std::chrono::steady_clock::now() < deadline) {
    q.pop_batch(got, 4096, 20ms);
  }
  for (auto& t : producers) t.join();
  REQUIRE(got.size() == kThreads * kEach);
  std::vector<int64_t> last(kThreads, -1);
  for (const auto& r : got) {
    const int t = static_cast<int>(r->id / 1000000);
    const auto i = static_cast<int64_t>(r->id % 1000000);
    CHECK(i == last[t] + 1);
    last[t] = i;
  }
  CHECK(q.dropped() == 0);
  CHECK(q.depth() == 0);
}

// Waits (bounded) until q's consumer is parked on its condition variable.
bool wait_parked(const RecordQueue& q) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!q.consumer_parked() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  return q.consumer_parked();
}

TEST_CASE("a sleeping consumer wakes promptly and close() ends waits") {
  // The waits below are 10 s; an answer well under 5 s means the push (or
  // the close) woke the parked consumer rather than its deadline.
  RecordQueue q(8);
  std::vector<std::unique_ptr<Record>> got;
  std::atomic<bool> parked{false};
  std::thread producer([&q, &parked] {
    parked = wait_parked(q);
    q.try_push(std::make_unique<Record>());
  });
  const auto t0 = std::chrono::steady_clock::now();
  q.pop_batch(got, 10, 10000ms);
  producer.join();
  CHECK(parked);
  CHECK(got.size() == 1);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  std::thread closer([&q, &parked] {
    parked = wait_parked(q);
    q.close();
  });
  const auto t1 = std::chrono::steady_clock::now();
  got.clear();
  CHECK(q.pop_batch(got, 10, 10000ms) == 0);
  closer.join();
  CHECK(parked);
  CHECK(std::chrono::steady_clock::now() - t1 < 5s);
}

TEST_CASE("the JSON-lines sink writes one decodable record per line") {
  TestApp app({}, false);
  char path[] = "/tmp/clio-sink-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  auto sink = JsonlSink::open(app.capture.queue(), path);
  REQUIRE(sink.ok());
  // One connection: one worker thread records the three in order.
  HttpClient h(app.port);
  for (const char* p : {"/api/hello", "/api/status/404", "/static/app.css"}) REQUIRE(h.request("GET", p).ok());
  for (int i = 0; i < 200 && (*sink)->written() < 3; ++i) std::this_thread::sleep_for(10ms);
  (*sink)->stop();
  CHECK((*sink)->written() == 3);
  std::ifstream in(path);
  std::string line;
  std::vector<Record> lines;
  while (std::getline(in, line)) {
    auto r = record_from_json(line);
    REQUIRE(r.ok());
    lines.push_back(*r);
  }
  std::remove(path);
  REQUIRE(lines.size() == 3);
  CHECK(lines[1].status_code == 404);
  CHECK(lines[2].path == "/static/app.css");
  CHECK_FALSE(JsonlSink::open(app.capture.queue(), "/nonexistent-dir/x.jsonl").ok());
}

TEST_CASE("the JSON-lines sink's file is owner-only whatever the umask") {
  RecordQueue q(8);
  const mode_t old = ::umask(022);
  char dir[] = "/tmp/clio-mode-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string fresh = std::string(dir) + "/new.jsonl";
  const std::string loose = std::string(dir) + "/old.jsonl";
  { std::ofstream(loose) << "{}\n"; }
  REQUIRE(::chmod(loose.c_str(), 0644) == 0);
  for (const std::string& path : {fresh, loose}) {
    auto sink = JsonlSink::open(q, path);
    REQUIRE(sink.ok());
    (*sink)->stop();
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK_MESSAGE((st.st_mode & 0777) == 0600, path);
  }
  ::umask(old);
  std::filesystem::remove_all(dir);
}

// Each rule of redact.h on its own; the console's redaction table checks
// them end to end.
TEST_CASE("redaction rules: names as the app reads them, and credential shapes") {
  const Redactor r;
  auto query = [&](std::string_view q) {
    std::string out;
    r.query(q, out);
    return out;
  };
  auto path = [&](std::string p) {
    r.path(p);
    return p;
  };
  auto header = [&](std::string_view name, std::string_view v) {
    std::string out;
    r.header(name, v, out);
    return out;
  };
  const std::string token = "Zq4xT9vBw2LmN8rKc5HdJ7pYs3GfA6eU1oQiWbXy";  // 40 random characters
  const std::string jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0." + token;
  CHECK(query("access%5Ftoken=s&tok%65n=s&T%4FKEN=s&a+b=1") == "access%5Ftoken=[redacted]&tok%65n=[redacted]&T%4FKEN=[redacted]&a+b=1");
  CHECK(query("api_key=1&apikey=2&X-Amz-Signature=3&sid=4&pwd=5&pass=6&jwt=7") ==
        "api_key=[redacted]&apikey=[redacted]&X-Amz-Signature=[redacted]&sid=[redacted]&pwd=[redacted]&pass=[redacted]&jwt=[redacted]");
  CHECK(query("passport=1&sidebar=2&bypass=3&keys_count=4") == "passport=1&sidebar=2&bypass=3&keys_count=4");
  CHECK(query("state=" + jwt + "&n=1") == "state=[redacted]&n=1");
  CHECK(query("next=" + token) == "next=[redacted]");
  CHECK(query("h=Bearer%20" + token) == "h=[redacted]");
  CHECK(query("q=basic+usage&hash=3f786850e387550fdab836ed7e6dc881de23001b") ==
        "q=basic+usage&hash=3f786850e387550fdab836ed7e6dc881de23001b");
  CHECK(path("/u/" + token + "/x") == "/u/[redacted]/x");
  CHECK(path("/cart;jsessionid=ABC;v=2/pay") == "/cart;jsessionid=[redacted];v=2/pay");
  CHECK(path("/items/550e8400-e29b-41d4-a716-446655440000") == "/items/550e8400-e29b-41d4-a716-446655440000");
  CHECK(path("/how-to-install-debian-12-on-a-raspberry-pi-4") == "/how-to-install-debian-12-on-a-raspberry-pi-4");
  CHECK(header("x-debug", "saw " + jwt + " twice") == "saw [redacted] twice");
  CHECK(header("x-upstream", "basic Ym9iOmh1bnRlcjI=") == "basic [redacted]");
  CHECK(header("x-upstream", "Basic plan") == "Basic plan");
  CHECK(header("x-upstream", "BEARER " + token) == "BEARER [redacted]");
  CHECK(header("x-request-id", token) == "[redacted]");
  CHECK(header("x-shop-session", "s") == "[redacted]");
  CHECK(header("sec-websocket-protocol", "chat, token.x") == "[redacted]");
  CHECK(header("accept-language", "en-US,en;q=0.9") == "en-US,en;q=0.9");
  std::string referer;
  r.url("https://a.example/p/" + jwt + "?x=1&code=9#access_token=t&s=ok", referer);
  CHECK(referer == "https://a.example/p/[redacted]?x=1&code=[redacted]#access_token=[redacted]&s=ok");
  // Configurable: the shape rules can be turned off or tuned.
  RedactOptions o;
  o.jwt = false;
  o.http_credentials = false;
  o.token_min_length = 0;
  const Redactor names_only(o);
  std::string v = "saw " + jwt + " Bearer " + token;
  names_only.value(v);
  CHECK(v == "saw " + jwt + " Bearer " + token);
}

}  // namespace clio
