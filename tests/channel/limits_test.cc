// Limits that answer: the session limit derived from CivetWeb's num_threads
// (503 at once, HTTP keeps answering), the probe that tells a client why its
// upgrade failed, the served JS client, and slow clients closed with 4101.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "clio/channel/protocol.h"
#include "fixture.h"
#include "support/http_client.h"

namespace ch = clio::channel;
using namespace ch::testing;  // Server, Client, token_for, eventually, ...
using ch::SendResult;
using clio::test::WsClient;
using Clock = std::chrono::steady_clock;

namespace {

int hello(mg_connection* c, void*) {
  mg_send_http_ok(c, "text/plain", 5);
  mg_write(c, "hello", 5);
  return 200;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

TEST_CASE("the session limit leaves reserved threads to HTTP: the next upgrade gets 503 at once") {
  auto o = fast_options();
  o.reserved_http_threads = 8;
  Server s(o, {"num_threads", "12"});
  REQUIRE(s.mounted.ok());
  mg_set_request_handler(s.ctx, "/hello", hello, nullptr);
  CHECK(s.svc.session_limit() == 4);
  std::vector<Client> clients(4);
  for (size_t i = 0; i < clients.size(); ++i) {
    REQUIRE(clients[i].connect(s.port, token_for(s, "t" + std::to_string(i))).ok());
  }
  REQUIRE(eventually([&] { return s.svc.session_count() == 4; }));
  const auto t0 = Clock::now();
  WsClient extra;
  REQUIRE(extra.connect(s.port, "/channel", {"clio.v1", "clio-token." + token_for(s, "t4")}).ok());
  CHECK(extra.status() == 503);
  CHECK(extra.handshake().body.find("admits 4") != std::string::npos);
  CHECK(seconds_since(t0) < 2);
  CHECK(s.svc.stats().refused_full == 1);
  // Plain HTTP still answers while every session slot is taken.
  for (int i = 0; i < 5; ++i) {
    const auto t1 = Clock::now();
    auto r = clio::test::http(s.port, "GET", "/hello");
    REQUIRE(r.ok());
    CHECK(r->status == 200);
    CHECK(seconds_since(t1) < 2);
  }
  // A slot that frees up is taken again.
  clients[0].ws.drop();
  REQUIRE(eventually([&] { return s.svc.session_count() == 3; }));
  Client again;
  CHECK(again.connect(s.port, token_for(s, "t4")).ok());
}

TEST_CASE("mount refuses a server whose num_threads leaves nothing for sessions") {
  auto o = fast_options();
  o.reserved_http_threads = 8;
  Server s(o, {"num_threads", "8"});
  REQUIRE_FALSE(s.mounted.ok());
  CHECK(s.mounted.code() == clio::StatusCode::kInvalidArgument);
  CHECK(s.mounted.message().find("num_threads 8") != std::string::npos);
  // max_sessions still caps a large server.
  auto p = fast_options();
  p.max_sessions = 3;
  Server big(p, {"num_threads", "40"});
  REQUIRE(big.mounted.ok());
  CHECK(big.svc.session_limit() == 3);
  CHECK(big.svc.stats().session_limit == 3);
}

TEST_CASE("the probe says whether a token would be accepted, readable from any origin") {
  auto o = fast_options();
  o.max_sessions = 1;
  Server s(o);
  const std::string good = token_for(s, "probe-a");
  auto r = clio::test::http(s.port, "POST", "/channel", {{"Content-Type", "text/plain"}}, good);
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(r->header("Access-Control-Allow-Origin") == "*");
  auto j = nlohmann::json::parse(r->body);
  CHECK(j["t"] == "probe");
  CHECK(j["ok"] == true);

  r = clio::test::http(s.port, "POST", "/channel", {}, "v1.garbage");
  REQUIRE(r.ok());
  CHECK(r->status == 401);
  j = nlohmann::json::parse(r->body);
  CHECK(j["ok"] == false);
  CHECK_FALSE(j["error"].get<std::string>().empty());

  s.svc.disconnect("probe-a");  // revoked
  r = clio::test::http(s.port, "POST", "/channel", {}, good);
  REQUIRE(r.ok());
  CHECK(r->status == 401);
  CHECK(nlohmann::json::parse(r->body)["error"] == "token revoked");

  Client c;
  REQUIRE(c.connect(s.port, token_for(s, "probe-b")).ok());
  REQUIRE(eventually([&] { return s.svc.session_count() == 1; }));
  r = clio::test::http(s.port, "POST", "/channel", {}, token_for(s, "probe-c"));
  REQUIRE(r.ok());
  CHECK(r->status == 503);

  r = clio::test::http(s.port, "GET", "/channel");
  REQUIRE(r.ok());
  CHECK(r->status == 405);
  r = clio::test::http(s.port, "POST", "/channel", {}, std::string(5000, 'x'));
  REQUIRE(r.ok());
  CHECK(r->status == 413);
}

TEST_CASE("the channel's HTTP handlers answer their exact paths only, not every path they begin") {
  // The console's layout: the channel at /x/channel, then the app's handler
  // for everything under /x/ (which serves /x/channel.js itself).
  Server s(fast_options(), {"num_threads", "24"});
  ch::ChannelService svc(fast_options());
  REQUIRE(svc.mount(s.ctx, "/x/channel").ok());
  REQUIRE(svc.serve_client(s.ctx, "/x/client.js").ok());
  mg_set_request_handler(s.ctx, "/x/", hello, nullptr);
  for (const char* path : {"/x/channel.js", "/x/channel/more", "/x/client.jsx"}) {
    CAPTURE(path);
    auto r = clio::test::http(s.port, "GET", path);
    REQUIRE(r.ok());
    CHECK(r->body == "hello");
  }
  auto probe = clio::test::http(s.port, "POST", "/x/channel", {}, "v1.bad");
  REQUIRE(probe.ok());
  CHECK(probe->status == 401);
  auto js = clio::test::http(s.port, "GET", "/x/client.js");
  REQUIRE(js.ok());
  CHECK(js->body.find(R"(const SERVED_PATH = "/x/channel";)") != std::string::npos);
  svc.shutdown();
  s.stop();  // mg_stop before svc goes away
}

TEST_CASE("serve_client serves the JS client set up with the mounted path") {
  ch::ChannelService unmounted(fast_options());
  CHECK(unmounted.client_script().empty());
  Server s(fast_options());
  REQUIRE(s.mounted.ok());
  CHECK_FALSE(s.svc.serve_client(s.ctx, "no-slash").ok());
  REQUIRE(s.svc.serve_client(s.ctx, "/_ah/channel/jsapi").ok());
  auto r = clio::test::http(s.port, "GET", "/_ah/channel/jsapi");
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(r->header("Content-Type") == "text/javascript; charset=utf-8");
  CHECK(r->header("Access-Control-Allow-Origin") == "*");
  CHECK(r->body == s.svc.client_script());
  CHECK(r->body.find(R"(const SERVED_PATH = "/channel";)") != std::string::npos);
  CHECK(r->body.find("goog.appengine.Channel") != std::string::npos);
}

TEST_CASE("a client that stops reading is closed with 4101 within write_stall_timeout, and resumes") {
  auto o = fast_options();
  o.write_stall_timeout = std::chrono::seconds(1);
  o.heartbeat_timeout = std::chrono::seconds(30);
  Server s(o, {"request_timeout_ms", "20000"});
  const std::string tok = token_for(s, "sloth");
  Client c;
  std::vector<std::string> offer = {"clio.v1", "clio-token." + tok};
  REQUIRE(c.ws.connect(s.port, "/channel", offer, {}, 10, 4096).ok());
  REQUIRE(c.ws.status() == 101);
  constexpr int kCount = 400;  // 6.4 MB: far more than the socket buffers hold
  const std::string chunk(16 * 1024, 'z');
  const auto t0 = Clock::now();
  for (int i = 0; i < kCount; ++i) REQUIRE(ch::accepted(s.svc.send_message("sloth", chunk)));
  // The socket stops taking data within milliseconds; the stall is noticed
  // write_stall_timeout later (plus one housekeeping tick).
  REQUIRE(eventually([&] { return s.svc.stats().stalled_closed == 1; }, 10));
  const double noticed = seconds_since(t0);
  MESSAGE("stall noticed after " << noticed << " s (write_stall_timeout 1 s)");
  CHECK(noticed < 1 + 1.0);
  // The client reads again: what was in the socket, then close 4101, nothing after.
  uint64_t msgs = 0, lost = 0;
  int code = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (code == 0 && Clock::now() < deadline) {
    auto j = c.next(10);
    REQUIRE(j.ok());
    if ((*j)["t"] == "welcome") {
      c.epoch = (*j)["epoch"];
      c.last_seq = (*j)["seq"];
    }
    if ((*j)["t"] == "msg") ++msgs;
    if ((*j)["t"] == "gap") lost += (*j)["lost"].get<uint64_t>();
    if ((*j)["t"] == "close") code = (*j)["code"];
  }
  CHECK(code == ch::protocol::kTooSlow);
  CHECK_FALSE(ch::protocol::is_final_close(code));
  // It resumes: every message either arrives or is announced lost, exactly.
  REQUIRE(eventually([&] { return !s.svc.is_connected("sloth"); }));
  REQUIRE(c.connect(s.port, tok).ok());
  CHECK(c.welcome["resumed"] == true);
  const uint64_t last = s.svc.client_stats("sloth")->last_seq;
  while (c.last_seq < last && Clock::now() < deadline) {
    auto j = c.next(10);
    REQUIRE(j.ok());
    if ((*j)["t"] == "msg") ++msgs;
    if ((*j)["t"] == "gap") lost += (*j)["lost"].get<uint64_t>();
  }
  CHECK(msgs + lost == kCount);
  CHECK_FALSE(c.out_of_order);
  auto cs = s.svc.client_stats("sloth");
  REQUIRE(cs.ok());
  CHECK(cs->accepted == kCount);
  CHECK(cs->pending == 0);
  CHECK(cs->messages_lost == lost);
  CHECK(cs->delivered - cs->lost_after_delivery == msgs);
  MESSAGE("received " << msgs << ", announced lost " << lost << ", replayed " << cs->replayed);
}
