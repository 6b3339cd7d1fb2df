// No silent loss: replay paced by the socket, truthful counters, and a chaos
// run of abrupt disconnects in which every message arrives once or is
// announced lost with its exact count.
#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "clio/channel/protocol.h"
#include "fixture.h"

namespace ch = clio::channel;
using namespace ch::testing;  // Server, Client, token_for, eventually, ...
using ch::SendResult;
using clio::test::WsClient;
using Clock = std::chrono::steady_clock;

TEST_CASE("send_message says whether the client is connected or its message is kept for it") {
  Server s(fast_options());
  const std::string tok = token_for(s, "kq");
  CHECK(s.svc.send_message("kq", "before") == SendResult::kKept);
  Client c;
  REQUIRE(c.connect(s.port, tok).ok());
  CHECK(s.svc.send_message("kq", "during") == SendResult::kQueued);
  c.ws.drop(true);
  REQUIRE(eventually([&] { return !s.svc.is_connected("kq"); }));
  CHECK(s.svc.send_message("kq", "after") == SendResult::kKept);
  REQUIRE(c.connect(s.port, tok).ok());
  std::vector<std::string> got;
  while (got.size() < 3) {
    auto m = c.next_msg(5);
    REQUIRE(m.ok());
    if ((*m)["t"] == "msg") got.push_back((*m)["data"]);
  }
  // "before" and "during" reached the first connection unread: the resume
  // replays them.
  CHECK(got == std::vector<std::string>{"before", "during", "after"});
  CHECK(c.gaps.empty());
  CHECK(s.svc.client_stats("nobody").status().code() == clio::StatusCode::kNotFound);
}

TEST_CASE("a resume inside the replay window replays all of it, paced by the socket, and says so truly") {
  // 600 messages of 2 KB (1.2 MB) exceed the 1 MiB queue but not the 4 MiB
  // ring: all must arrive, none may be reported lost.
  Server s(fast_options());
  const std::string tok = token_for(s, "away");
  Client c;
  REQUIRE(c.connect(s.port, tok).ok());
  c.ws.drop();
  REQUIRE(eventually([&] { return !s.svc.is_connected("away"); }));
  constexpr int kCount = 600;
  for (int i = 0; i < kCount; ++i) {
    std::string m = std::to_string(i);
    m.resize(2000, '.');
    REQUIRE(s.svc.send_message("away", m) == SendResult::kKept);
  }
  REQUIRE(c.connect(s.port, tok).ok());
  CHECK(c.welcome["resumed"] == true);
  for (int i = 0; i < kCount; ++i) {
    auto m = c.next_msg(10);
    REQUIRE(m.ok());
    REQUIRE((*m)["t"] == "msg");
    CHECK((*m)["data"].get<std::string>().substr(0, std::to_string(i).size() + 1) == std::to_string(i) + ".");
  }
  CHECK(c.gaps.empty());
  CHECK_FALSE(c.out_of_order);
  const auto st = s.svc.stats();
  CHECK(st.replayed == kCount);
  CHECK(st.messages_lost == 0);
  CHECK(st.gaps_reported == 0);
  CHECK(st.accepted == kCount);
  CHECK(st.delivered == kCount);
  CHECK(st.pending == 0);
  CHECK(eventually([&] { return s.svc.stats().queued_bytes == 0; }));
}

TEST_CASE("queued_bytes counts close frames both ways and returns to zero") {
  Server s(fast_options());
  const std::string tok = token_for(s, "qb");
  Client a, b, c;
  REQUIRE(a.connect(s.port, tok).ok());
  REQUIRE(b.connect(s.port, tok).ok());  // a gets close 4000
  REQUIRE(a.wait_close(5).ok());
  s.svc.disconnect("qb", ch::DisconnectReason::kReconnect);  // b gets 4103
  REQUIRE(b.wait_close(5).ok());
  REQUIRE(c.connect(s.port, token_for(s, "qb")).ok());
  s.svc.disconnect("qb");  // c gets 4001
  REQUIRE(c.wait_close(5).ok());
  Client d;
  REQUIRE(d.connect(s.port, token_for(s, "qb2")).ok());
  for (int i = 0; i < 20; ++i) REQUIRE(s.svc.send_message("qb2", "x") == SendResult::kQueued);
  for (int i = 0; i < 20; ++i) REQUIRE(d.next_msg(5).ok());
  CHECK(eventually([&] { return s.svc.stats().queued_bytes == 0; }));
  s.stop();  // d gets 4104
  CHECK(s.svc.stats().queued_bytes == 0);
}

namespace {

// Each seq the client learned about: received (with its payload) or
// announced lost in a gap notice.
struct Outcome {
  std::map<uint64_t, std::string> received;
  std::map<uint64_t, uint64_t> gaps;  // from -> to
  uint64_t announced = 0;
  bool duplicate = false;

  void take(const nlohmann::json& j) {
    if (j["t"] == "msg") {
      duplicate = duplicate || !received.emplace(j["seq"].get<uint64_t>(), j["data"]).second;
    } else if (j["t"] == "gap" && j["lost"].is_number()) {
      const uint64_t from = j["from"], to = j["to"];
      CHECK(j["lost"].get<uint64_t>() == to - from + 1);
      gaps[from] = to;
      announced += to - from + 1;
    }
  }
};

}  // namespace

TEST_CASE("chaos: 50 abrupt disconnects at random points; each message arrives once or is announced lost, "
          "and the weights add up") {
  auto o = fast_options();
  o.replay_max_messages = 200;  // long absences lose messages, with notice
  o.max_queue_bytes = 8 * 1024;
  o.heartbeat_timeout = std::chrono::seconds(30);
  Server s(o);
  const std::string tok = token_for(s, "chaos");
  Client c;
  REQUIRE(c.connect(s.port, tok).ok());
  const uint64_t first = c.last_seq + 1;

  constexpr int kCount = 8000;
  constexpr int kDrops = 50;
  std::atomic<int> sent{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> refused{false};
  std::thread producer([&] {
    for (int i = 0; i < kCount && !stop; ++i) {
      // A JSON string through send_json, weighing i % 3 (0 too).
      if (!ch::accepted(s.svc.send_json("chaos", "\"" + std::to_string(i) + "\"", i % 3))) refused = true;
      sent = i + 1;
      if (i % 4 == 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });

  std::mt19937 rng(20240611);
  Outcome out;
  int drops = 0;
  int kinds[4] = {0, 0, 0, 0};
  const auto deadline = Clock::now() + std::chrono::seconds(90);
  bool ok = true;
  while (ok && Clock::now() < deadline) {
    // Drops are spread over the production: drop k when k/(kDrops+2) of it is sent.
    if (drops < kDrops && sent >= (drops + 1) * kCount / (kDrops + 2)) {
      const int kind = drops % 4;
      ++kinds[kind];
      const std::vector<std::string> offer = {"clio.v1", "clio-token." + tok,
                                              "clio-resume." + c.epoch + "." + std::to_string(c.last_seq)};
      c.ws.drop(/*reset=*/kind == 1 || kind == 3);
      if (kind == 2) {
        // FIN right after the upgrade request, before any reply. The
        // reconnect below must come after the server took this one in (the
        // later accepted upgrade wins), as a browser's retry would.
        const uint64_t seen = s.svc.stats().upgrades + s.svc.stats().auth_failures;
        WsClient w;
        (void)w.connect(s.port, "/channel", offer, {}, 0.0);
        (void)eventually([&] { return s.svc.stats().upgrades + s.svc.stats().auth_failures > seen; }, 5);
      } else if (kind == 3) {
        // RST after the 101, before reading the welcome and the replay.
        WsClient w;
        if (w.connect(s.port, "/channel", offer).ok()) w.drop(true);
      }
      if (drops % 10 == 9) std::this_thread::sleep_for(std::chrono::milliseconds(150));  // away for long
      else std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 40));
      ++drops;
      const clio::Status st = c.connect(s.port, tok);  // resumes from c.epoch / c.last_seq
      if (!st.ok()) {
        FAIL_CHECK("reconnect " << drops << " failed: " << st.message());
        ok = false;
      }
      continue;
    }
    if (sent == kCount && drops == kDrops && c.last_seq >= first + kCount - 1) break;
    auto j = c.next(0.05);
    if (!j.ok()) {
      if (!c.ws.timed_out()) {
        FAIL_CHECK("read failed: " << j.status().message());
        ok = false;
      }
      continue;
    }
    if ((*j)["t"] == "close") {
      FAIL_CHECK("unexpected close " << j->dump());
      ok = false;
    }
    out.take(*j);
  }
  stop = true;
  producer.join();
  REQUIRE(ok);
  CHECK_FALSE(refused);
  CHECK(drops == kDrops);
  CHECK_FALSE(out.duplicate);
  CHECK_FALSE(c.out_of_order);
  // Every seq exactly once: received with its own payload, or inside one gap.
  uint64_t covered = 0;
  bool exact = true;
  for (uint64_t seq = first; seq < first + kCount; ++seq) {
    auto r = out.received.find(seq);
    auto g = out.gaps.upper_bound(seq);
    const bool in_gap = g != out.gaps.begin() && std::prev(g)->second >= seq;
    if ((r != out.received.end()) == in_gap) exact = false;
    if (r != out.received.end() && r->second != std::to_string(seq - first)) exact = false;
    if (r != out.received.end() || in_gap) ++covered;
  }
  CHECK(exact);
  CHECK(covered == kCount);
  CHECK(out.received.size() + out.announced == kCount);
  CHECK(out.announced > 0);  // the long absences outran the 200-message ring
  // The server's counters say the same.
  auto cs = s.svc.client_stats("chaos");
  REQUIRE(cs.ok());
  CHECK(cs->accepted == kCount);
  CHECK(cs->pending == 0);
  CHECK(cs->messages_lost == out.announced);
  CHECK(cs->delivered - cs->lost_after_delivery == out.received.size());
  CHECK(cs->dropped_overflow + cs->dropped_window + cs->dropped_discarded + cs->lost_after_delivery ==
        cs->messages_lost);
  const auto st = s.svc.stats();
  CHECK(st.accepted == st.delivered + st.messages_lost - st.lost_after_delivery + st.pending);
  // By weight: what arrived, and what the gaps announced, weigh what the
  // counters say (exactly, unless a resume reached back further than the
  // ledger remembers weights, which it then counts as unweighed).
  uint64_t total = 0, received_weight = 0;
  for (uint64_t seq = first; seq < first + kCount; ++seq) {
    const uint64_t w = (seq - first) % 3;
    total += w;
    if (out.received.count(seq)) received_weight += w;
  }
  CHECK(cs->weight_accepted == total);
  CHECK(cs->weight_pending == 0);
  CHECK(cs->weight_accepted == cs->weight_delivered + cs->weight_lost - cs->weight_lost_after_delivery);
  if (cs->lost_unweighed == 0) {
    CHECK(cs->weight_delivered - cs->weight_lost_after_delivery == received_weight);
    CHECK(cs->weight_lost == total - received_weight);
  } else {
    CHECK(cs->weight_delivered - cs->weight_lost_after_delivery >= received_weight);
    CHECK(cs->lost_unweighed <= cs->lost_after_delivery);
  }
  MESSAGE("drops FIN/RST/FIN-before-reply/RST-before-welcome: " << kinds[0] << "/" << kinds[1] << "/" << kinds[2]
          << "/" << kinds[3] << "; received " << out.received.size() << ", announced lost " << out.announced
          << " (window " << cs->dropped_window << ", overflow " << cs->dropped_overflow << ", after delivery "
          << cs->lost_after_delivery << ", of which unweighed " << cs->lost_unweighed << "), replayed "
          << cs->replayed << ", superseded " << st.superseded);
}
