// The channel service over a real CivetWeb server on 127.0.0.1:0, driven by
// the raw-socket WebSocket client.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "clio/channel/protocol.h"
#include "fixture.h"
#include "support/http_client.h"
#include "support/manual_clock.h"
#include "token.h"

namespace ch = clio::channel;
using ch::SendResult;
using ch::testing::Client;
using ch::testing::Server;
using ch::testing::fast_options;
using clio::test::WsClient;
using Clock = std::chrono::steady_clock;

using ch::testing::eventually;
using ch::testing::token_for;
using ch::testing::upgrade_status;

TEST_CASE("a good token upgrades and gets a welcome naming the epoch and client") {
  Server s(fast_options());
  REQUIRE(s.mounted.ok());
  Client c;
  REQUIRE(c.connect(s.port, token_for(s, "alice")).ok());
  CHECK(c.ws.handshake().header("Sec-WebSocket-Protocol") == "clio.v1");
  CHECK(c.welcome["client_id"] == "alice");
  CHECK(c.welcome["epoch"] == s.svc.epoch());
  CHECK(c.welcome["resumed"] == false);
  CHECK(c.welcome["heartbeat_ms"] == 300);
  CHECK(eventually([&] { return s.svc.is_connected("alice"); }));
  CHECK(s.svc.session_count() == 1);
}

TEST_CASE("bad, expired, forged, other-server and revoked tokens get a real HTTP 401") {
  clio::test::ManualClock clock;
  auto o = fast_options();
  o.clock = &clock;
  Server s(o);
  REQUIRE(s.mounted.ok());
  const std::string good = token_for(s, "alice");

  CHECK(upgrade_status(s.port, {"clio.v1"}) == 401);                          // no token
  CHECK(upgrade_status(s.port, {"clio.v1", "clio-token.garbage"}) == 401);     // malformed
  ch::TokenSigner other("another-server-secret");
  CHECK(upgrade_status(s.port, {"clio.v1", "clio-token." + other.issue("alice", 1, 4102444800)}) == 401);
  ch::TokenSigner same("test-secret-0123456789");
  CHECK(upgrade_status(s.port, {"clio.v1", "clio-token." + same.issue("alice", 1, 1000)}) == 401);  // expired
  // alice's signature on a token claiming bob
  const std::string bob = token_for(s, "bob");
  const std::string forged = bob.substr(0, bob.rfind('.')) + good.substr(good.rfind('.'));
  CHECK(upgrade_status(s.port, {"clio.v1", "clio-token." + forged}) == 401);
  // A token that expired for real.
  const std::string short_lived = token_for(s, "carol", std::chrono::seconds(1));
  clock.advance(std::chrono::seconds(2));
  CHECK(upgrade_status(s.port, {"clio.v1", "clio-token." + short_lived}) == 401);
  // No subprotocol at all: 400, not an upgrade.
  CHECK(upgrade_status(s.port, {"clio-token." + good}) == 400);
  CHECK(s.svc.stats().auth_failures == 6);
  CHECK(s.svc.session_count() == 0);

  // Revocation: the old token stops working, a new one works.
  s.svc.disconnect("alice");
  CHECK(upgrade_status(s.port, {"clio.v1", "clio-token." + good}) == 401);
  Client c;
  CHECK(c.connect(s.port, token_for(s, "alice")).ok());
}

TEST_CASE("the refused upgrade says why in its body") {
  Server s(fast_options());
  WsClient ws;
  ch::TokenSigner other("another-server-secret");
  REQUIRE(ws.connect(s.port, "/channel", {"clio.v1", "clio-token." + other.issue("a", 1, 4102444800)}).ok());
  CHECK(ws.status() == 401);
  CHECK(ws.handshake().body.find("signature") != std::string::npos);
  CHECK_FALSE(ws.is_open());
}

TEST_CASE("create_channel validates client ids and caps the duration at 24 h") {
  Server s(fast_options());
  for (const std::string& bad : {std::string(""), std::string(65, 'a'), std::string("has space"),
                                std::string("semi;colon"), std::string("slash/x"), std::string("\xC3\xA9")}) {
    CAPTURE(bad);
    auto t = s.svc.create_channel(bad);
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == clio::StatusCode::kInvalidArgument);
  }
  CHECK(s.svc.create_channel(std::string(64, 'a')).ok());
  CHECK(s.svc.create_channel("user.1_x:y@z-w").ok());
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  auto t = s.svc.create_channel("long", std::chrono::hours(48));
  REQUIRE(t.ok());
  CHECK(t->expires_at <= now + 24 * 3600 + 1);
  CHECK(t->expires_at >= now + 24 * 3600 - 1);
  auto d = s.svc.create_channel("default");
  REQUIRE(d.ok());
  CHECK(d->expires_at >= now + 2 * 3600 - 1);
  CHECK(d->expires_at <= now + 2 * 3600 + 1);
}

TEST_CASE("message size limit: exactly 32 KiB is delivered, one byte more is refused") {
  Server s(fast_options());
  Client c;
  REQUIRE(c.connect(s.port, token_for(s, "alice")).ok());
  std::string exact(32 * 1024, 'x');
  exact[0] = '"';  // escaping grows the frame, not the counted message
  CHECK(s.svc.send_message("alice", exact) == SendResult::kQueued);
  CHECK(s.svc.send_message("alice", std::string(32 * 1024 + 1, 'y')) == SendResult::kTooLarge);
  CHECK(s.svc.send_message("alice", "after") == SendResult::kQueued);
  auto m = c.next_msg(5);
  REQUIRE(m.ok());
  CHECK((*m)["data"] == exact);
  auto n = c.next_msg(5);
  REQUIRE(n.ok());
  CHECK((*n)["data"] == "after");
  CHECK((*n)["seq"].get<uint64_t>() == (*m)["seq"].get<uint64_t>() + 1);  // the refused one took no seq
}

TEST_CASE("send results: unknown client, and dropped after shutdown") {
  Server s(fast_options());
  CHECK(s.svc.send_message("nobody", "x") == SendResult::kNoSuchClient);
  token_for(s, "known");
  CHECK(s.svc.send_message("known", "kept for later") == SendResult::kKept);
  CHECK(ch::accepted(SendResult::kKept));
  CHECK_FALSE(ch::accepted(SendResult::kNoSuchClient));
  s.svc.shutdown();
  CHECK(s.svc.send_message("known", "x") == SendResult::kDropped);
  CHECK(std::string(ch::to_string(SendResult::kDropped)) == "dropped");
}

TEST_CASE("messages sent before the first connect are delivered on connect") {
  Server s(fast_options());
  const std::string tok = token_for(s, "early");
  for (int i = 0; i < 5; ++i) CHECK(s.svc.send_message("early", "m" + std::to_string(i)) == SendResult::kKept);
  Client c;
  REQUIRE(c.connect(s.port, tok).ok());
  for (int i = 0; i < 5; ++i) {
    auto m = c.next_msg(5);
    REQUIRE(m.ok());
    CHECK((*m)["data"] == "m" + std::to_string(i));
  }
  CHECK(c.gaps.empty());
}

TEST_CASE("100,000 messages arrive complete and in order") {
  auto o = fast_options();
  o.max_queue_bytes = 64 * 1024 * 1024;  // the producer outruns the socket; nothing may drop here
  Server s(o);
  Client c;
  REQUIRE(c.connect(s.port, token_for(s, "bulk")).ok());
  constexpr int kCount = 100000;
  std::thread producer([&] {
    for (int i = 0; i < kCount; ++i) {
      if (s.svc.send_message("bulk", "{\"i\":" + std::to_string(i) + "}") != SendResult::kQueued) return;
    }
  });
  const auto deadline = Clock::now() + std::chrono::seconds(90);
  int received = 0;
  bool in_order = true;
  const uint64_t first_seq = c.last_seq + 1;
  while (received < kCount && Clock::now() < deadline) {
    auto m = c.next_msg(10);
    if (!m.ok() || (*m)["t"] != "msg") break;
    if ((*m)["data"] != "{\"i\":" + std::to_string(received) + "}" ||
        (*m)["seq"].get<uint64_t>() != first_seq + static_cast<uint64_t>(received)) {
      in_order = false;
      break;
    }
    ++received;
  }
  producer.join();
  CHECK(received == kCount);
  CHECK(in_order);
  CHECK(c.gaps.empty());
  CHECK(s.svc.stats().dropped_overflow == 0);
}

TEST_CASE("forced disconnects at random points, then resume: nothing lost, nothing duplicated") {
  auto o = fast_options();
  o.replay_max_messages = 100000;
  o.replay_max_bytes = 64 * 1024 * 1024;
  o.max_queue_bytes = 64 * 1024 * 1024;
  Server s(o);
  const std::string tok = token_for(s, "flaky");
  Client c;
  REQUIRE(c.connect(s.port, tok).ok());
  constexpr int kCount = 20000;
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    for (int i = 0; i < kCount && !stop; ++i) {
      s.svc.send_message("flaky", std::to_string(i));
      if (i % 200 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> gap_dist(50, 2500);
  int next_drop = gap_dist(rng);
  int received = 0;
  int drops = 0;
  bool ok = true;
  const auto deadline = Clock::now() + std::chrono::seconds(90);
  while (received < kCount && Clock::now() < deadline) {
    if (received == next_drop) {
      c.ws.drop(/*reset=*/(drops % 2) == 1);
      ++drops;
      next_drop = received + gap_dist(rng);
      clio::Status st = c.connect(s.port, tok);  // resumes from c.epoch / c.last_seq
      if (!st.ok()) {
        FAIL_CHECK("reconnect failed: " << st.message());
        ok = false;
        break;
      }
      CHECK(c.welcome["resumed"] == true);
      continue;
    }
    auto m = c.next_msg(10);
    if (!m.ok() || (*m)["t"] != "msg") {
      ok = false;
      break;
    }
    if ((*m)["data"] != std::to_string(received)) {
      FAIL_CHECK("expected " << received << " got " << (*m)["data"]);
      ok = false;
      break;
    }
    ++received;
  }
  stop = true;
  producer.join();
  CHECK(ok);
  CHECK(drops >= 5);
  CHECK(received == kCount);
  CHECK_FALSE(c.out_of_order);
  CHECK(c.gaps.empty());
  MESSAGE("drops: " << drops << ", replayed: " << s.svc.stats().replayed
                    << ", superseded: " << s.svc.stats().superseded);
}

TEST_CASE("a resume beyond the replay window reports the exact gap") {
  auto o = fast_options();
  o.replay_max_messages = 10;
  Server s(o);
  const std::string tok = token_for(s, "late");
  Client c;
  REQUIRE(c.connect(s.port, tok).ok());
  for (int i = 0; i < 3; ++i) s.svc.send_message("late", "a" + std::to_string(i));
  for (int i = 0; i < 3; ++i) REQUIRE(c.next_msg(5).ok());
  const uint64_t seen = c.last_seq;
  c.ws.drop();
  REQUIRE(eventually([&] { return !s.svc.is_connected("late"); }));
  for (int i = 0; i < 30; ++i) CHECK(s.svc.send_message("late", "b" + std::to_string(i)) == SendResult::kKept);
  REQUIRE(c.connect(s.port, tok).ok());
  auto first = c.next(5);
  REQUIRE(first.ok());
  REQUIRE((*first)["t"] == "gap");
  CHECK((*first)["from"] == seen + 1);
  CHECK((*first)["to"] == seen + 20);
  CHECK((*first)["lost"] == 20);
  for (int i = 20; i < 30; ++i) {
    auto m = c.next_msg(5);
    REQUIRE(m.ok());
    CHECK((*m)["data"] == "b" + std::to_string(i));
  }
  CHECK_FALSE(c.out_of_order);
  CHECK(s.svc.stats().messages_lost == 20);
}

TEST_CASE("a resume from another server epoch is told the loss is unknown") {
  Server s(fast_options());
  const std::string tok = token_for(s, "old");
  Client c;
  c.epoch = "0123456789abcdef";  // what a previous server run handed out
  c.last_seq = 77;
  REQUIRE(c.connect(s.port, tok).ok());
  auto g = c.next(5);
  REQUIRE(g.ok());
  CHECK((*g)["t"] == "gap");
  CHECK((*g)["lost"].is_null());
  CHECK((*g)["reason"] == "epoch");
}

TEST_CASE("a new connection supersedes the old one, which is told so; presence sees no flap") {
  auto o = fast_options();
  std::mutex mu;
  std::vector<std::string> events;
  o.on_connect = [&](const std::string& id) { std::lock_guard<std::mutex> l(mu); events.push_back("+" + id); };
  o.on_disconnect = [&](const std::string& id) { std::lock_guard<std::mutex> l(mu); events.push_back("-" + id); };
  Server s(o);
  const std::string tok = token_for(s, "dup");
  Client a, b;
  REQUIRE(a.connect(s.port, tok).ok());
  REQUIRE(b.connect(s.port, tok).ok());
  auto closed = a.next_msg(5);
  REQUIRE(closed.ok());
  CHECK((*closed)["t"] == "close");
  CHECK((*closed)["code"] == ch::protocol::kSuperseded);
  CHECK(s.svc.send_message("dup", "to b") == SendResult::kQueued);
  auto m = b.next_msg(5);
  REQUIRE(m.ok());
  CHECK((*m)["data"] == "to b");
  CHECK(eventually([&] { return s.svc.session_count() == 1; }));
  CHECK(s.svc.stats().superseded == 1);
  // Fence: presence events are delivered in order, and any event of the
  // superseded session's close was queued when it left session_count().
  Client fence;
  REQUIRE(fence.connect(s.port, token_for(s, "fence")).ok());
  CHECK(eventually([&] {
    std::lock_guard<std::mutex> l(mu);
    return !events.empty() && events.back() == "+fence";
  }));
  std::lock_guard<std::mutex> l(mu);
  CHECK(events == std::vector<std::string>{"+dup", "+fence"});
}

TEST_CASE("presence callbacks fire on connect and disconnect, outside channel locks") {
  auto o = fast_options();
  std::mutex mu;
  std::vector<std::string> events;
  ch::ChannelService* svc = nullptr;
  o.on_connect = [&](const std::string& id) {
    {
      std::lock_guard<std::mutex> l(mu);
      events.push_back("+" + id);
    }
    // Calling back into the service from the callback must not deadlock.
    svc->send_message(id, "welcome " + id);
    (void)svc->stats();
  };
  o.on_disconnect = [&](const std::string& id) {
    std::lock_guard<std::mutex> l(mu);
    events.push_back("-" + id + (svc->is_connected(id) ? "(still)" : ""));
  };
  Server s(o);
  svc = &s.svc;
  Client a;
  REQUIRE(a.connect(s.port, token_for(s, "p1")).ok());
  auto m = a.next_msg(5);
  REQUIRE(m.ok());
  CHECK((*m)["data"] == "welcome p1");
  {
    Client b;
    REQUIRE(b.connect(s.port, token_for(s, "p2")).ok());
    REQUIRE(b.ws.send_close(1000, "bye").ok());
    auto echo = b.ws.read_message(5);  // the server echoes the close
    while (echo.ok() && echo->opcode == 1) echo = b.ws.read_message(5);  // heartbeats
    REQUIRE(echo.ok());
    CHECK(echo->opcode == 8);
    CHECK(echo->close_code() == 1000);
  }
  // The close echo can reach b before the service has let p2 go: wait for
  // p2's disconnect before dropping a, so the order below is the one caused.
  auto seen = [&](size_t n) {
    return eventually([&] {
      std::lock_guard<std::mutex> l(mu);
      return events.size() == n;
    });
  };
  CHECK(seen(3));
  a.ws.drop();
  CHECK(seen(4));
  std::lock_guard<std::mutex> l(mu);
  std::string order;
  for (const auto& e : events) order += e + " ";
  INFO("events: " << order);
  CHECK(events == std::vector<std::string>{"+p1", "+p2", "-p2", "-p1"});
}

TEST_CASE("a client that stops reading does not delay another client's messages") {
  auto o = fast_options();
  o.max_queue_bytes = 256 * 1024;
  o.write_stall_timeout = std::chrono::seconds(1);
  Server s(o, {"request_timeout_ms", "2000"});
  Client slow, fast;
  // A tiny receive window and no reads: the server's writes to it block.
  std::vector<std::string> offer = {"clio.v1", "clio-token." + token_for(s, "slow")};
  REQUIRE(slow.ws.connect(s.port, "/channel", offer, {}, 10, 4096).ok());
  REQUIRE(slow.ws.status() == 101);
  REQUIRE(fast.connect(s.port, token_for(s, "fast")).ok());

  const std::string big(16 * 1024, 'z');
  std::atomic<bool> stop{false};
  std::thread flood([&] {
    for (int i = 0; i < 4000 && !stop; ++i) {
      s.svc.send_message("slow", big);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  // The slow socket is full: a backlog builds up behind its blocked write.
  REQUIRE(eventually([&] {
    auto st = s.svc.client_stats("slow");
    return st.ok() && st->queued_bytes >= o.max_queue_bytes / 2;
  }));
  std::vector<double> ms;
  for (int i = 0; i < 50; ++i) {
    const auto t0 = Clock::now();
    REQUIRE(s.svc.send_message("fast", "ping " + std::to_string(i)) == SendResult::kQueued);
    auto m = fast.next_msg(5);
    REQUIRE(m.ok());
    REQUIRE((*m)["data"] == "ping " + std::to_string(i));
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  flood.join();
  std::sort(ms.begin(), ms.end());
  MESSAGE("fast-client latency while the other client is stuck: median " << ms[ms.size() / 2]
                                                                         << " ms, worst " << ms.back() << " ms");
  // Coupled to the stuck writer, most sends would wait out its blocked write
  // (seconds); the median stays far below that even on a loaded machine.
  CHECK(ms[ms.size() / 2] < 250);
  const auto st = s.svc.stats();
  CHECK(st.dropped_overflow > 0);  // the slow client's queue overflowed...
  // ...and the stuck session is closed (stall detection or a failed write).
  CHECK(eventually([&] { return !s.svc.is_connected("slow"); }, 20));
  CHECK(s.svc.is_connected("fast"));
  const auto after = s.svc.stats();
  CHECK(after.stalled_closed + after.write_errors >= 1);
}

namespace {
// A small ring and queue, so a client that does not read overflows them
// (overflow needs both exceeded), and no stall timeout while it does not.
ch::ChannelOptions overflow_options() {
  auto o = fast_options();
  o.max_queue_bytes = 64 * 1024;
  o.replay_max_messages = 16;
  o.write_stall_timeout = std::chrono::seconds(30);
  return o;
}
const std::vector<std::string> kLongRequestTimeout = {"request_timeout_ms", "20000"};

// Connects `c` as `id` with a 4 KiB receive buffer (a slow reader) and reads the welcome.
void connect_slow_reader(Server& s, Client& c, const std::string& id) {
  std::vector<std::string> offer = {"clio.v1", "clio-token." + token_for(s, id)};
  REQUIRE(c.ws.connect(s.port, "/channel", offer, {}, 10, 4096).ok());
  auto w = c.next(5);
  REQUIRE(w.ok());
  c.last_seq = (*w)["seq"];
}
}  // namespace

TEST_CASE("overflow drops the oldest messages and tells the client how many") {
  Server s(overflow_options(), kLongRequestTimeout);
  Client c;
  connect_slow_reader(s, c, "lag");
  const std::string chunk(8 * 1024, 'q');
  constexpr int kCount = 400;  // 3.2 MB: far more than socket buffers plus the queue
  for (int i = 0; i < kCount; ++i) REQUIRE(s.svc.send_message("lag", chunk + std::to_string(i)) == SendResult::kQueued);
  // Now read everything: messages plus gap notices must account for all seqs.
  uint64_t msgs = 0, lost = 0;
  while (msgs + lost < kCount) {
    auto j = c.next(10);
    REQUIRE(j.ok());
    if ((*j)["t"] == "msg") ++msgs;
    if ((*j)["t"] == "gap") lost += (*j)["lost"].get<uint64_t>();
  }
  CHECK_FALSE(c.out_of_order);
  CHECK(lost > 0);
  CHECK(msgs + lost == kCount);
  CHECK(lost == s.svc.stats().dropped_overflow);
  MESSAGE("delivered " << msgs << ", lost (reported) " << lost);
}

TEST_CASE("send_json: the value arrives as itself; what is not one JSON value is refused and keeps nothing") {
  Server s(fast_options());
  Client c;
  REQUIRE(c.connect(s.port, token_for(s, "js")).ok());
  CHECK(s.svc.send_json("js", R"({"kind":"matches","items":[{"n":1}]})", 3) == SendResult::kQueued);
  for (const char* bad : {"", "{", "[1,]", "{\"a\":1} x", "\"\xFF\"", "plain text"}) {
    CAPTURE(bad);
    CHECK(s.svc.send_json("js", bad) == SendResult::kInvalid);
  }
  CHECK(s.svc.send_json("js", "[" + std::string(40 * 1024, '1') + "]") == SendResult::kTooLarge);
  CHECK(s.svc.send_message("js", R"({"as":"text"})") == SendResult::kQueued);
  auto first = c.next_msg(5);
  REQUIRE(first.ok());
  CHECK((*first)["data"]["items"][0]["n"] == 1);
  auto second = c.next_msg(5);
  REQUIRE(second.ok());
  CHECK((*second)["data"] == R"({"as":"text"})");  // send_message: a string, as always
  CHECK((*second)["seq"] == (*first)["seq"].get<uint64_t>() + 1);  // refusals took no seq
  const auto st = s.svc.stats();
  CHECK(st.rejected == 7);
  CHECK(st.accepted == 2);
  CHECK(eventually([&] { return s.svc.stats().weight_delivered == 4; }));
  CHECK(s.svc.stats().weight_accepted == 4);
}

TEST_CASE("weights: what a stalled client lost is counted by weight where it is dropped") {
  Server s(overflow_options(), kLongRequestTimeout);
  Client c;
  connect_slow_reader(s, c, "wlag");
  const uint64_t first = c.last_seq + 1;
  const std::string pad(8 * 1024, 'q');
  constexpr int kCount = 400;
  std::map<uint64_t, uint64_t> weight_of;  // seq -> weight
  uint64_t total = 0;
  for (int i = 0; i < kCount; ++i) {
    const uint64_t weight = i % 4;  // 0 too: a notice weighs nothing
    REQUIRE(s.svc.send_json("wlag", R"({"i":)" + std::to_string(i) + R"(,"pad":")" + pad + "\"}", weight) ==
            SendResult::kQueued);
    weight_of[first + i] = weight;
    total += weight;
  }
  uint64_t msgs = 0, lost = 0, received_weight = 0, lost_weight = 0;
  while (msgs + lost < kCount) {
    auto j = c.next(10);
    REQUIRE(j.ok());
    if ((*j)["t"] == "msg") {
      ++msgs;
      received_weight += weight_of.at((*j)["seq"].get<uint64_t>());
    }
    if ((*j)["t"] == "gap") {
      lost += (*j)["lost"].get<uint64_t>();
      for (uint64_t q = (*j)["from"]; q <= (*j)["to"].get<uint64_t>(); ++q) lost_weight += weight_of.at(q);
    }
  }
  CHECK(lost > 0);
  const auto cs = s.svc.client_stats("wlag");
  REQUIRE(cs.ok());
  CHECK(cs->weight_accepted == total);
  CHECK(cs->weight_lost == lost_weight);
  CHECK(cs->weight_delivered == received_weight);
  CHECK(cs->weight_pending == 0);
  CHECK(s.svc.stats().weight_lost == lost_weight);
  MESSAGE("weight received " << received_weight << ", weight lost " << lost_weight << " of " << total);
}

TEST_CASE("heartbeats: the server sends them when idle and closes a silent client") {
  clio::test::ManualClock clock;
  auto o = fast_options();
  o.heartbeat_interval = std::chrono::milliseconds(200);
  o.heartbeat_timeout = std::chrono::milliseconds(1200);
  // The clock moves 3.4 s here while the sender thread may be between taking
  // a heartbeat and finishing its write (it is a real thread, and may be
  // descheduled). That is a write stall by the service's clock; this test is
  // about heartbeats, so no stall may be judged before the silence is.
  o.write_stall_timeout = std::chrono::hours(1);
  o.clock = &clock;
  Server s(o);
  Client c;
  REQUIRE(c.connect(s.port, token_for(s, "quiet")).ok());
  clock.advance(o.heartbeat_interval);
  s.svc.housekeeping_for_test();
  auto hb = c.next(3);
  REQUIRE(hb.ok());
  CHECK((*hb)["t"] == "hb");
  // A client that keeps sending heartbeats stays, for 2 s of the service's
  // clock (heartbeat_timeout is 1.2 s). Each round: the server has read the
  // heartbeat (sync), the clock moves 200 ms, and a housekeeping pass at that
  // instant is done before the next round.
  for (int i = 0; i < 10; ++i) {
    REQUIRE(c.ws.send_text(R"({"t":"hb"})").ok());
    REQUIRE(c.sync(5).ok());
    clock.advance(std::chrono::milliseconds(200));
    s.svc.housekeeping_for_test();
  }
  CHECK(s.svc.is_connected("quiet"));
  // Silence: closed with 4102.
  clock.advance(o.heartbeat_timeout);
  s.svc.housekeeping_for_test();
  auto code = c.wait_close(5);
  REQUIRE(code.ok());
  CHECK(*code == ch::protocol::kHeartbeatTimeout);
  CHECK(s.svc.stats().heartbeat_closed == 1);
}

TEST_CASE("in-band refresh extends the session; a token of another client is refused") {
  Server s(fast_options());
  Client c;
  REQUIRE(c.connect(s.port, token_for(s, "r1", std::chrono::seconds(2))).ok());
  const int64_t first_expiry = c.welcome["expires_at"];
  REQUIRE(c.ws.send_text(nlohmann::json{{"t", "refresh"}, {"token", token_for(s, "r2")}}.dump()).ok());
  nlohmann::json reply;
  {
    auto j = c.next_non_heartbeat(5);
    REQUIRE(j.ok());
    reply = *j;
  }
  CHECK(reply["t"] == "error");
  CHECK(reply["code"] == "refresh_rejected");
  REQUIRE(c.ws.send_text(nlohmann::json{{"t", "refresh"}, {"token", token_for(s, "r1")}}.dump()).ok());
  {
    auto j = c.next_non_heartbeat(5);
    REQUIRE(j.ok());
    reply = *j;
  }
  CHECK(reply["t"] == "refreshed");
  CHECK(reply["expires_at"].get<int64_t>() > first_expiry + 3000);
  // Past the first token's expiry the session is still open and delivering.
  // (Reading meanwhile, so CivetWeb's pings get their pongs.)
  const auto until = Clock::now() + std::chrono::milliseconds(2500);
  while (Clock::now() < until) {
    auto j = c.next(0.1);
    if (!j.ok()) REQUIRE(c.ws.timed_out());
    else REQUIRE((*j)["t"] == "hb");
  }
  REQUIRE(c.ws.send_text(R"({"t":"hb"})").ok());
  CHECK(s.svc.send_message("r1", "still here") == SendResult::kQueued);
  auto m = c.next_msg(5);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  CHECK((*m)["data"] == "still here");
}

TEST_CASE("an unrefreshed token closes the session with 4100 when it expires") {
  Server s(fast_options());
  Client c;
  REQUIRE(c.connect(s.port, token_for(s, "exp", std::chrono::seconds(1))).ok());
  auto code = c.wait_close(5);
  REQUIRE(code.ok());
  CHECK(*code == ch::protocol::kTokenExpired);
}

TEST_CASE("malformed client frames close the session with a protocol error") {
  Server s(fast_options());
  const std::string tok = token_for(s, "bad");
  for (const std::string& frame : {std::string("not json"), std::string(R"({"no":"type"})")}) {
    Client c;
    REQUIRE(c.connect(s.port, tok).ok());
    REQUIRE(c.ws.send_text(frame).ok());
    auto j = c.next_msg(5);
    REQUIRE(j.ok());
    CHECK((*j)["t"] == "close");
    CHECK((*j)["code"] == ch::protocol::kProtocolError);
  }
  Client big;
  REQUIRE(big.connect(s.port, tok).ok());
  REQUIRE(big.ws.send_text(std::string(20000, ' ')).ok());
  auto j = big.next_msg(5);
  REQUIRE(j.ok());
  CHECK((*j)["code"] == ch::protocol::kMessageTooBig);
}

TEST_CASE("fragmented client frames are reassembled") {
  Server s(fast_options());
  Client c;
  REQUIRE(c.connect(s.port, token_for(s, "frag", std::chrono::seconds(60))).ok());
  const std::string refresh = nlohmann::json{{"t", "refresh"}, {"token", token_for(s, "frag")}}.dump();
  REQUIRE(c.ws.send(1, refresh.substr(0, 10), false).ok());
  REQUIRE(c.ws.send(0, refresh.substr(10), true).ok());
  nlohmann::json reply;
  {
    auto j = c.next_non_heartbeat(5);
    REQUIRE(j.ok());
    reply = *j;
  }
  CHECK(reply["t"] == "refreshed");
}

TEST_CASE("disconnect(revoke) closes with a do-not-reconnect code") {
  Server s(fast_options());
  Client c;
  REQUIRE(c.connect(s.port, token_for(s, "gone")).ok());
  s.svc.disconnect("gone");
  auto j = c.next_msg(5);
  REQUIRE(j.ok());
  CHECK((*j)["t"] == "close");
  CHECK((*j)["code"] == ch::protocol::kRevoked);
  CHECK(ch::protocol::is_final_close((*j)["code"]));
}

TEST_CASE("shutdown with sessions open finishes promptly and tells clients to come back") {
  auto o = fast_options();
  std::atomic<int> disconnects{0};
  o.on_disconnect = [&](const std::string&) { ++disconnects; };
  auto s = std::make_unique<Server>(o);
  std::vector<Client> clients(6);
  for (size_t i = 0; i < clients.size(); ++i) {
    REQUIRE(clients[i].connect(s->port, token_for(*s, "c" + std::to_string(i))).ok());
  }
  // One more that never reads and has a full socket.
  Client stuck;
  std::vector<std::string> offer = {"clio.v1", "clio-token." + token_for(*s, "stuck")};
  REQUIRE(stuck.ws.connect(s->port, "/channel", offer, {}, 10, 4096).ok());
  for (int i = 0; i < 200; ++i) s->svc.send_message("stuck", std::string(16 * 1024, 's'));
  REQUIRE(eventually([&] { return s->svc.session_count() == 7; }));

  const auto t0 = Clock::now();
  s->stop();  // shutdown() then mg_stop()
  s.reset();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  MESSAGE("shutdown + mg_stop + destruction with 7 sessions open: " << secs << " s");
  CHECK(secs < 20);
  for (auto& c : clients) {
    auto j = c.next_msg(5);
    REQUIRE(j.ok());
    CHECK((*j)["t"] == "close");
    CHECK((*j)["code"] == ch::protocol::kShuttingDown);
  }
  CHECK(disconnects == 0);  // no presence callbacks into the app during teardown
}

TEST_CASE("a client id forgotten after the replay window resumes with an explicit unknown gap") {
  auto o = fast_options();
  o.replay_max_age = std::chrono::milliseconds(300);
  Server s(o);
  const std::string tok = token_for(s, "forgot");
  Client c;
  REQUIRE(c.connect(s.port, tok).ok());
  s.svc.send_message("forgot", "one");
  REQUIRE(c.next_msg(5).ok());
  const uint64_t seen = c.last_seq;
  c.ws.drop();
  REQUIRE(eventually([&] { return !s.svc.is_connected("forgot"); }));
  // Gone longer than the window: the state is dropped and sends are refused.
  REQUIRE(eventually([&] { return s.svc.send_message("forgot", "lost") == SendResult::kNoSuchClient; }, 5));
  REQUIRE(c.connect(s.port, tok).ok());
  auto g = c.next(5);
  REQUIRE(g.ok());
  CHECK((*g)["t"] == "gap");
  CHECK((*g)["from"] == seen + 1);
  CHECK((*g)["lost"].is_null());
  // New messages continue above every seq handed out before: no false duplicates.
  REQUIRE(s.svc.send_message("forgot", "two") == SendResult::kQueued);
  auto m = c.next_msg(5);
  REQUIRE(m.ok());
  CHECK((*m)["data"] == "two");
  CHECK((*m)["seq"].get<uint64_t>() > seen);
  CHECK_FALSE(c.out_of_order);
}

TEST_CASE("upgrades beyond max_sessions get 503; connected_clients lists who is here") {
  auto o = fast_options();
  o.max_sessions = 2;
  Server s(o);
  Client a, b;
  REQUIRE(a.connect(s.port, token_for(s, "m1")).ok());
  REQUIRE(b.connect(s.port, token_for(s, "m2")).ok());
  REQUIRE(eventually([&] { return s.svc.session_count() == 2; }));
  CHECK(upgrade_status(s.port, {"clio.v1", "clio-token." + token_for(s, "m3")}) == 503);
  CHECK(s.svc.connected_clients() == std::vector<std::string>{"m1", "m2"});
  a.ws.drop();
  REQUIRE(eventually([&] { return s.svc.session_count() == 1; }));
  Client c;
  CHECK(c.connect(s.port, token_for(s, "m3")).ok());
}
