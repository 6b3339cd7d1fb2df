// The record log on a real redis-server (started per test on a free
// loopback port): ids, resume, gaps, garbage, a Redis that restarts empty,
// and the publisher's drops and recovery.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "clio/log/publisher.h"
#include "clio/log/redis_log.h"
#include "support/redis_server.h"

namespace clio::log {
namespace {

using namespace std::chrono_literals;
using test::RedisServer;

std::unique_ptr<RedisServer> start_redis(std::vector<std::string> extra = {}) {
  auto r = RedisServer::start(std::move(extra));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  return std::move(*r);
}

std::vector<std::unique_ptr<Record>> records(int n, const std::string& prefix) {
  std::vector<std::unique_ptr<Record>> v;
  for (int i = 0; i < n; ++i) {
    auto r = std::make_unique<Record>();
    r->method = "GET";
    r->path = prefix + std::to_string(i);
    r->status_code = 200;
    r->time = 1.8e9 + i;
    v.push_back(std::move(r));
  }
  return v;
}

RedisLogOptions options(const RedisServer& redis) {
  RedisLogOptions o;
  o.url = redis.url();
  o.stream = "test:records";
  o.records_per_entry = 100;
  o.block = 50ms;
  o.reconnect_min = 20ms;
  o.reconnect_max = 100ms;
  return o;
}

std::unique_ptr<LogWriter> writer(const RedisLogOptions& o) {
  auto w = make_redis_writer(o);
  REQUIRE_MESSAGE(w.ok(), w.status().message());
  return std::move(*w);
}

std::unique_ptr<LogReader> reader(const RedisLogOptions& o, const LogResume& resume = {}) {
  auto r = make_redis_reader(o);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE((*r)->start(resume).ok());
  return std::move(*r);
}

void append(LogWriter& w, int n, const std::string& prefix, const std::string& instance = "web-1") {
  auto batch = records(n, prefix);
  size_t appended = 0;
  const Status s = w.append(batch, {instance, static_cast<uint64_t>(n), 0}, appended);
  REQUIRE_MESSAGE(s.ok(), s.message());
  REQUIRE(appended == static_cast<size_t>(n));
}

// Reads until `n` records arrived (bounded by `timeout`), collecting gaps.
LogBatch read_records(LogReader& r, size_t n, std::chrono::milliseconds timeout = 10s) {
  LogBatch all;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (all.records.size() < n && std::chrono::steady_clock::now() < deadline) {
    LogBatch b;
    r.read(b, 1024, 50ms);
    for (auto& rec : b.records) all.records.push_back(std::move(rec));
    for (auto& g : b.gaps) all.gaps.push_back(g);
    for (auto& s : b.sources) all.sources.push_back(s);
    if (!b.position.empty()) all.position = b.position;
  }
  return all;
}

}  // namespace

TEST_CASE("Redis URLs: what is accepted, what is refused, and the password never shows") {
  auto a = parse_redis_url("redis://127.0.0.1:6390/2");
  REQUIRE(a.ok());
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 6390);
  CHECK(a->db == 2);
  CHECK(a->password.empty());
  auto b = parse_redis_url("redis://:s%40cret@cache.internal");
  REQUIRE(b.ok());
  CHECK(b->password == "s@cret");
  CHECK(b->user.empty());
  CHECK(b->port == 6379);
  CHECK(b->describe() == "redis://cache.internal:6379");
  auto c = parse_redis_url("redis://clio:pw@10.0.0.5:7000");
  REQUIRE(c.ok());
  CHECK(c->user == "clio");
  CHECK(c->password == "pw");
  for (const char* bad : {"http://x:1", "redis://", "redis://:@h", "redis://h:0", "redis://h:70000", "redis://h:x",
                          "redis://h/db", "redis://user@h", "redis://h o", "redis://:p%zz@h"}) {
    INFO(bad);
    auto r = parse_redis_url(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
  }
  auto secret = parse_redis_url("redis://:hunter2@h:99999");
  REQUIRE_FALSE(secret.ok());
  CHECK(secret.status().message().find("hunter2") == std::string::npos);
}

TEST_CASE("records come back in order with consecutive ids and their instance, and a saved position resumes exactly") {
  auto redis = start_redis();
  const RedisLogOptions o = options(*redis);
  auto w = writer(o);
  append(*w, 250, "/a/", "web-1");  // three entries
  std::string position;
  uint64_t last = 0;
  {
    auto r = reader(o);
    LogBatch got = read_records(*r, 250);
    REQUIRE(got.records.size() == 250);
    CHECK(got.gaps.empty());
    const uint64_t first = got.records.front()->id;
    CHECK(first < (uint64_t{1} << 53));
    for (size_t i = 0; i < got.records.size(); ++i) {
      CHECK(got.records[i]->id == first + i);
      CHECK(got.records[i]->instance == "web-1");
      CHECK(got.records[i]->path == "/a/" + std::to_string(i));
    }
    REQUIRE_FALSE(got.sources.empty());
    CHECK(got.sources.back().instance == "web-1");
    CHECK(got.sources.back().published == 250);
    position = got.position;
    last = got.records.back()->id;
    CHECK(r->stats().records == 250);
    CHECK(r->stats().connected);
  }
  append(*w, 7, "/b/", "web-2");
  auto r2 = reader(o, {position, last});
  LogBatch more = read_records(*r2, 7);
  REQUIRE(more.records.size() == 7);
  CHECK(more.gaps.empty());
  CHECK(more.records.front()->id == last + 1);
  CHECK(more.records.back()->path == "/b/6");
  CHECK(more.records.back()->instance == "web-2");
  // Nothing else: a heartbeat (no records) is the fence that the stream holds no more.
  size_t appended = 0;
  std::vector<std::unique_ptr<Record>> none;
  REQUIRE(w->append(none, {"web-2", 7, 3}, appended).ok());
  LogBatch hb;
  for (int i = 0; i < 100 && hb.sources.empty(); ++i) r2->read(hb, 1024, 50ms);
  CHECK(hb.records.empty());
  REQUIRE(hb.sources.size() == 1);
  CHECK(hb.sources[0].dropped == 3);
}

TEST_CASE("a foreign or malformed entry is skipped and counted; a readable header turns into an exact gap") {
  auto redis = start_redis();
  const RedisLogOptions o = options(*redis);
  auto w = writer(o);
  auto r = reader(o);
  append(*w, 3, "/x/");
  LogBatch first = read_records(*r, 3);
  REQUIRE(first.records.size() == 3);
  const uint64_t last = first.records.back()->id;
  // Someone else's entry on the stream; then one of ours with a broken body.
  REQUIRE(redis->command({"XADD", o.stream, "*", "foo", "bar"}).ok());
  auto epoch = redis->command({"GET", o.stream + ":epoch"});
  REQUIRE(epoch.ok());
  const std::string n = std::to_string(last + 1);
  REQUIRE(redis->command({"INCRBY", o.stream + ":seq", "2"}).ok());
  REQUIRE(redis->command({"XADD", o.stream, "*", "v", "1", "e", epoch->text, "i", "web-1", "n", n, "c", "2", "p", "5",
                          "d", "0", "r", "garbage"})
              .ok());
  append(*w, 4, "/y/");
  LogBatch after = read_records(*r, 4);
  REQUIRE(after.records.size() == 4);
  CHECK(after.records.front()->id == last + 3);
  CHECK(after.records.front()->path == "/y/0");
  REQUIRE(after.gaps.size() == 1);
  CHECK(after.gaps[0].reason == "malformed");
  CHECK(after.gaps[0].count == 2);
  CHECK(r->stats().malformed == 2);
}

TEST_CASE("a stream trimmed past the reader's position is a gap with the exact count") {
  auto redis = start_redis({"--stream-node-max-entries", "10"});
  RedisLogOptions o = options(*redis);
  o.max_entries = 10;
  o.records_per_entry = 1;
  auto w = writer(o);
  append(*w, 1, "/first/");
  std::string position;
  uint64_t last = 0;
  {
    auto r = reader(o);
    LogBatch got = read_records(*r, 1);
    REQUIRE(got.records.size() == 1);
    position = got.position;
    last = got.records[0]->id;
  }
  append(*w, 200, "/later/");  // 200 entries; the stream keeps about 10
  auto len = redis->command({"XLEN", o.stream});
  REQUIRE(len.ok());
  CHECK(len->integer < 50);
  auto oldest = redis->command({"XRANGE", o.stream, "-", "+", "COUNT", "1"});
  REQUIRE(oldest.ok());
  REQUIRE(oldest->elements.size() == 1);
  uint64_t first_kept = 0;
  const auto& fields = oldest->elements[0].elements[1].elements;
  for (size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (fields[i].text == "n") first_kept = std::stoull(fields[i + 1].text);
  }
  REQUIRE(first_kept > last + 1);
  auto r = reader(o, {position, last});
  const size_t kept = static_cast<size_t>(last + 201 - first_kept);
  LogBatch got = read_records(*r, kept);
  REQUIRE(got.records.size() == kept);
  REQUIRE(got.gaps.size() == 1);
  CHECK(got.gaps[0].reason == "trimmed");
  CHECK(got.gaps[0].count == first_kept - last - 1);
  CHECK(got.records.back()->path == "/later/199");
}

TEST_CASE("Redis restarted empty: the reader reports a reset, new ids stay above old ones, the flow resumes") {
  auto redis = start_redis();
  const RedisLogOptions o = options(*redis);
  auto w = writer(o);
  auto r = reader(o);
  append(*w, 5, "/before/");
  LogBatch before = read_records(*r, 5);
  REQUIRE(before.records.size() == 5);
  const uint64_t last = before.records.back()->id;
  REQUIRE(redis->restart().ok());
  // The writer's connection died with the server: one append fails, the next reconnects.
  std::vector<std::unique_ptr<Record>> batch = records(2, "/lost/");
  size_t appended = 0;
  Status s = w->append(batch, {"web-1", 7, 0}, appended);
  if (!s.ok()) {
    CHECK(appended == 0);
    w->disconnect();
  }
  append(*w, 3, "/after/");
  LogBatch after = read_records(*r, s.ok() ? 5 : 3);
  REQUIRE_FALSE(after.records.empty());
  CHECK(after.records.back()->path == "/after/2");
  CHECK(after.records.front()->id > last);
  REQUIRE_FALSE(after.gaps.empty());
  CHECK(after.gaps[0].reason == "reset");
  CHECK_FALSE(after.gaps[0].count.has_value());
  CHECK(r->stats().resets == 1);
}

TEST_CASE("the publisher: Redis down at start is counted as drops, and the flow resumes by itself") {
  auto redis = start_redis();
  RedisLogOptions o = options(*redis);
  o.connect_timeout = 200ms;
  redis->kill();  // its port is known and now refuses connections
  Capture capture;
  PublisherOptions po;
  po.instance = "web-9";
  po.retry_min = 20ms;
  po.retry_max = 100ms;
  po.heartbeat = 100ms;
  Publisher pub(capture, writer(o), po);
  REQUIRE(pub.start().ok());
  for (int i = 0; i < 20; ++i) REQUIRE(capture.queue().try_push(std::make_unique<Record>()));
  for (int i = 0; i < 500 && pub.stats().dropped_log < 20; ++i) std::this_thread::sleep_for(10ms);
  PublisherStats down = pub.stats();
  CHECK(down.dropped_log == 20);
  CHECK(down.published == 0);
  CHECK_FALSE(down.connected);
  CHECK(down.last_error.find("cannot connect") != std::string::npos);
  REQUIRE(redis->restart().ok());
  auto r = reader(o);
  // Records keep coming; once Redis is back they get through.
  LogBatch got;
  for (int i = 0; i < 300 && got.records.empty(); ++i) {
    capture.queue().try_push(std::make_unique<Record>());
    LogBatch b;
    r->read(b, 1024, 20ms);
    for (auto& rec : b.records) got.records.push_back(std::move(rec));
    for (auto& src : b.sources) got.sources.push_back(src);
  }
  REQUIRE_FALSE(got.records.empty());
  CHECK(got.records[0]->instance == "web-9");
  // (The reader may see the entry before the publisher has seen Redis's reply.)
  for (int i = 0; i < 200 && !pub.stats().connected; ++i) std::this_thread::sleep_for(5ms);
  CHECK_MESSAGE(pub.stats().connected, pub.stats().last_error);
  REQUIRE_FALSE(got.sources.empty());
  CHECK(got.sources.back().dropped >= 20);  // the console learns what was dropped while Redis was down
  pub.stop();
}

}  // namespace clio::log
