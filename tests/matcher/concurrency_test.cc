// Matching on one thread while another subscribes and unsubscribes.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "clio/matcher/matcher.h"
#include "clio/middleware/http_schema.h"

namespace {

using clio::HttpRecordView;
using clio::http_schema;
using clio::Record;
using clio::matcher::Matcher;

}  // namespace

TEST_CASE("match runs while another thread subscribes and unsubscribes") {
  Matcher m(http_schema());
  // Stable subscriptions 0..99: status = 200 + i % 4 and host = h{i % 10}.
  for (uint64_t i = 0; i < 100; ++i) {
    REQUIRE(m.subscribe(i, "status = " + std::to_string(200 + i % 4) + " and host = h" + std::to_string(i % 10)).ok());
  }
  std::vector<Record> records(40);
  for (size_t k = 0; k < records.size(); ++k) {
    records[k].status_code = 200 + static_cast<int>(k % 4);
    records[k].host = "h" + std::to_string(k % 10);
    records[k].path = "/p" + std::to_string(k);
    records[k].wall_time = static_cast<double>(k * 100);
  }
  auto expected_stable = [](const Record& r) {
    std::vector<uint64_t> out;
    for (uint64_t i = 0; i < 100; ++i) {
      if (r.status_code == static_cast<int>(200 + i % 4) && r.host == "h" + std::to_string(i % 10)) out.push_back(i);
    }
    return out;
  };

  std::atomic<bool> stop{false};
  std::atomic<size_t> churn_ops{0};
  std::thread writer([&] {
    const char* shapes[] = {"status = 200 and host = h1", "path:p1", "wall > 1s", "not status:5xx",
                            "path ~ \"^/p[0-9]$\"", "method in (GET, POST) or h.x:*"};
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (uint64_t round = 0; round < 400 && !stop.load() && std::chrono::steady_clock::now() < deadline; ++round) {
      for (uint64_t j = 0; j < 50; ++j) {
        const uint64_t id = 1000 + round * 50 + j;
        if (!m.subscribe(id, shapes[j % 6]).ok()) std::abort();
        churn_ops.fetch_add(1);
      }
      for (uint64_t j = 0; j < 50; ++j) {
        if (!m.unsubscribe(1000 + round * 50 + j)) std::abort();
        churn_ops.fetch_add(1);
      }
    }
  });

  size_t matches_checked = 0;
  bool all_ok = true;
  std::vector<uint64_t> ids;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (size_t iter = 0; iter < 20000 && std::chrono::steady_clock::now() < deadline; ++iter) {
    const Record& r = records[iter % records.size()];
    ids.clear();
    m.match(HttpRecordView(r), ids);
    std::vector<uint64_t> stable;
    for (uint64_t id : ids) {
      if (id < 1000) stable.push_back(id);
    }
    std::sort(stable.begin(), stable.end());
    std::sort(ids.begin(), ids.end());
    if (stable != expected_stable(r) || std::adjacent_find(ids.begin(), ids.end()) != ids.end()) all_ok = false;
    ++matches_checked;
    if (churn_ops.load() > 20000 && iter > 2000) break;
  }
  stop.store(true);
  writer.join();
  MESSAGE("matches: " << matches_checked << ", subscribe/unsubscribe ops: " << churn_ops.load());
  CHECK(all_ok);
  CHECK(churn_ops.load() > 0);
  CHECK(m.size() == 100);
}

TEST_CASE("two threads matching at once see the same results") {
  Matcher m(http_schema());
  for (uint64_t i = 0; i < 500; ++i) {
    REQUIRE(m.subscribe(i, "wall > " + std::to_string(i * 10) + " or path:\"/x" + std::to_string(i) + "\"").ok());
  }
  Record r;
  r.wall_time = 2500;
  r.path = "/x7/y";
  std::vector<uint64_t> first;
  m.match(HttpRecordView(r), first);
  std::sort(first.begin(), first.end());
  std::atomic<int> mismatches{0};
  auto worker = [&] {
    std::vector<uint64_t> ids;
    for (int k = 0; k < 2000; ++k) {
      ids.clear();
      m.match(HttpRecordView(r), ids);
      std::sort(ids.begin(), ids.end());
      if (ids != first) mismatches.fetch_add(1);
    }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  CHECK(mismatches.load() == 0);
  CHECK(first.size() == 250);  // wall > 0..2490 (ids 0..249); "/x7" hits id 7 again: reported once
}

TEST_CASE("subscribe rejects a duplicate id, unsubscribe reports unknown ids") {
  Matcher m(http_schema());
  CHECK(m.subscribe(1, "status = 200").ok());
  auto e = m.subscribe(1, "status = 201");
  CHECK(e.code == "duplicate_id");
  CHECK_FALSE(m.unsubscribe(2));
  CHECK(m.unsubscribe(1));
  CHECK_FALSE(m.unsubscribe(1));
  CHECK(m.size() == 0);
  CHECK(m.subscribe(1, "status = 201").ok());
  auto bad = m.subscribe(2, "stauts = 1");
  CHECK(bad.code == "unknown_field");
  CHECK(m.size() == 1);
}

TEST_CASE("a query parsed with another schema is refused") {
  clio::matcher::Schema other;
  REQUIRE(other.add_field({"path", clio::matcher::FieldType::kString, clio::matcher::UnitClass::kNone, {}}).ok());
  auto q = clio::matcher::parse("path:x", other);
  REQUIRE(q.ok());
  Matcher m(http_schema());
  CHECK(m.subscribe(1, *q.query).code == "schema_mismatch");
  CHECK(m.size() == 0);
}

TEST_CASE("stats count subscriptions checked on every record, by reason") {
  using clio::matcher::EveryRecordReason;
  Matcher m(http_schema());
  REQUIRE(m.subscribe(1, "status = 200").ok());
  REQUIRE(m.subscribe(2, "not status = 200").ok());          // complement of an equality: indexed
  REQUIRE(m.subscribe(3, "-method:OPTIONS").ok());           // negated substring: every record
  REQUIRE(m.subscribe(4, "path ~ \"^/api/v1\"").ok());       // the literal "/api/v1": indexed
  REQUIRE(m.subscribe(5, "h.x:abc or status = 3").ok());
  REQUIRE(m.subscribe(6, "path ~ \"[0-9]{6}\"").ok());       // no literal: an RE2::Set
  REQUIRE(m.subscribe(7, "-method:OPTIONS").ok());           // the same query again
  auto s = m.stats();
  CHECK(s.subscriptions == 7);
  CHECK(s.distinct_queries == 6);
  CHECK(s.every_record == 3);
  CHECK(s.every_record_by_reason[static_cast<size_t>(EveryRecordReason::kNegatedText)] == 2);
  CHECK(s.every_record_by_reason[static_cast<size_t>(EveryRecordReason::kRegexWithoutLiteral)] == 1);
  CHECK(s.regex_sets == 1);
  m.unsubscribe(3);
  CHECK(m.stats().every_record == 2);
  CHECK(m.stats().distinct_queries == 6);
  m.unsubscribe(7);
  CHECK(m.stats().distinct_queries == 5);
  m.unsubscribe(6);
  CHECK(m.stats().regex_sets == 0);
  CHECK(m.stats().every_record == 0);
}
