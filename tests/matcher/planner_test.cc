// The planner and the index paths it chooses: required literals of regexes,
// explain(), identical queries, negations on absent and NaN values, many
// header names, and the fallbacks for too many branches.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <re2/re2.h>

#include "clio/matcher/matcher.h"
#include "clio/matcher/query.h"
#include "clio/middleware/http_schema.h"
#include "regex_literal.h"
#include "text.h"

namespace {

using clio::HttpRecordView;
using clio::http_schema;
using clio::Record;
using clio::matcher::EveryRecordReason;
using clio::matcher::Matcher;
using clio::matcher::MatcherOptions;
using clio::matcher::parse;
using clio::matcher::internal::required_literals;

std::vector<uint64_t> ids_for(const Matcher& m, const clio::matcher::RecordView& v) {
  std::vector<uint64_t> ids;
  m.match(v, ids);
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace

TEST_CASE("required literals of regexes") {
  struct Case {
    const char* pattern;
    std::vector<std::string> want;
  };
  const Case cases[] = {
      {"^/api/v1/users", {"/api/v1/users"}},
      {"(?i)^/API/v1", {"/api/v1"}},
      {"^/api/(users|teams)/[0-9]+", {"/api/"}},
      {"(users|teams)/[0-9]+$", {"teams", "users"}},
      {"python-requests/2\\.[0-9]+", {"python-requests/2."}},
      {"ab+c", {"ab"}},
      {"abc?d", {"ab"}},
      {"ab*cdef", {"cdef"}},
      {"x{0,3}yz", {"yz"}},
      {"(?i)bank", {"ban"}},            // k folds to U+212A: the literal ends before it
      {"(?i)class", {"cla"}},           // s folds to U+017F
      {"(?i)é", {}},                    // non-ASCII folds outside ASCII
      {"é+x", {"éx"}},
      {"[0-9]{6}", {}},
      {"\\d+\\.\\d+", {"."}},
      {"a|", {}},                       // an empty alternative matches anything
      {"\\Qa.b\\E", {}},
      {"foo(bar)?baz", {"foo"}},
      {"(?:foo|bar)+", {"bar", "foo"}},
      {"\\bcurl/8", {"url/8"}},         // \b with hex-looking letters after it: skipped conservatively
      {"[a-z]+\\.js$", {".js"}},
      {".*", {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.pattern);
    CHECK(required_literals(c.pattern) == c.want);
  }
}

TEST_CASE("a required literal occurs in every text the regex matches") {
  // Random patterns from pieces of RE2 syntax against random texts: whenever
  // RE2 matches, some literal must be in the (lower-cased) text.
  const char* pieces[] = {"a", "b", "K", "s", "/", ".", "\\.", "[ab]", "(", ")", "|", "?", "*", "+", "{2}",
                          "{0,2}", "^", "$", "(?i)", "\\d", "é", "x", "(?:", "\\b"};
  const char* alphabet[] = {"a", "b", "A", "B", "k", "K", "\xE2\x84\xAA", "s", "S", "\xC5\xBF", "/", ".",
                            "1", "x", "é", "É", " "};
  std::mt19937_64 rng(5);
  size_t checked = 0, matched = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string p;
    const int n = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < n; ++k) p += pieces[rng() % (sizeof pieces / sizeof *pieces)];
    RE2 re(p, RE2::Quiet);
    if (!re.ok()) continue;
    const auto lits = required_literals(p);
    if (lits.empty()) continue;
    for (int t = 0; t < 20; ++t) {
      std::string text;
      const int len = static_cast<int>(rng() % 10);
      for (int k = 0; k < len; ++k) text += alphabet[rng() % (sizeof alphabet / sizeof *alphabet)];
      ++checked;
      if (!RE2::PartialMatch(text, re)) continue;
      ++matched;
      bool found = false;
      for (const auto& l : lits) found = found || clio::matcher::text::icontains(text, l);
      if (!found) FAIL_CHECK("pattern " << p << " matched \"" << text << "\" without its literals");
    }
  }
  MESSAGE("texts checked: " << checked << ", matched: " << matched);
  CHECK(matched > 1000);
}

TEST_CASE("explain says whether a query is checked on every record, and why") {
  Matcher m(http_schema());
  struct Case {
    const char* query;
    EveryRecordReason reason;
  };
  const Case cases[] = {
      {"status:5xx", EveryRecordReason::kNone},
      {"not status < 500", EveryRecordReason::kNone},
      {"not status:2xx", EveryRecordReason::kNone},
      {"status in (404, 500..599)", EveryRecordReason::kNone},
      {"ip in (10.0.0.0/8, 192.168.1.0/24, \"2001:db8::/32\")", EveryRecordReason::kNone},
      {"not method = GET", EveryRecordReason::kNone},
      {"status != 200", EveryRecordReason::kNone},
      {"h.x-debug:*", EveryRecordReason::kNone},
      {"~h \"x-debug: 1\"", EveryRecordReason::kNone},
      {"path ~ \"^/api/v1/users/[0-9]+$\"", EveryRecordReason::kNone},
      {"-method:OPTIONS and wall > 500ms", EveryRecordReason::kNone},
      {"-method:OPTIONS", EveryRecordReason::kNegatedText},
      {"ua !~ \"bot\"", EveryRecordReason::kNegatedText},
      {"path ~ \"[0-9]{6}\"", EveryRecordReason::kRegexWithoutLiteral},
      {"~h \"[0-9]{6}\"", EveryRecordReason::kAnyHeader},
      {"not header.*:abc", EveryRecordReason::kAnyHeader},
      {"path:\"\"", EveryRecordReason::kNoCondition},
  };
  for (const Case& c : cases) {
    CAPTURE(c.query);
    auto q = parse(c.query, http_schema());
    REQUIRE(q.ok());
    const auto before = m.explain(*q.query);
    CHECK(before.reason == c.reason);
    CHECK(before.every_record == (c.reason != EveryRecordReason::kNone));
    CHECK_FALSE(before.text.empty());
    if (before.every_record) {
      CHECK(before.text.find("every record") != std::string::npos);
    } else {
      CHECK(before.text.rfind("indexed by ", 0) == 0);
    }
    CHECK(clio::matcher::every_record_code(before.reason) != "");
  }
  // The answer does not change once queries are subscribed.
  for (size_t i = 0; i < std::size(cases); ++i) REQUIRE(m.subscribe(i, cases[i].query).ok());
  size_t every = 0;
  for (const Case& c : cases) {
    const auto after = m.explain(*parse(c.query, http_schema()).query);
    CHECK(after.reason == c.reason);
    every += after.every_record ? 1 : 0;
  }
  CHECK(m.stats().every_record == every);
}

TEST_CASE("a query with too many branches is indexed through one AND-ed part, or counted") {
  MatcherOptions o;
  o.max_branches = 4;
  Matcher m(http_schema(), o);
  // 3 x 3 = 9 branches; each part has 3: the status part is indexed.
  REQUIRE(m.subscribe(1, "(path:a or path:b or path:c) and (method = GET or method = PUT or host = h) and "
                         "status = 500").ok());
  // Five ORed branches with nothing AND-ed: checked on every record.
  REQUIRE(m.subscribe(2, "path:a or path:b or path:c or path:d or path:e").ok());
  const auto st = m.stats();
  CHECK(st.every_record == 1);
  CHECK(st.every_record_by_reason[static_cast<size_t>(EveryRecordReason::kTooManyBranches)] == 1);
  CHECK(m.explain(*parse("path:a or path:b or path:c or path:d or path:e", http_schema()).query).text.find(
            "too many alternatives") != std::string::npos);
  Record r;
  r.path = "/a";
  r.method = "PUT";
  r.status_code = 500;
  CHECK(ids_for(m, HttpRecordView(r)) == std::vector<uint64_t>{1, 2});
  r.status_code = 200;
  CHECK(ids_for(m, HttpRecordView(r)) == std::vector<uint64_t>{2});
  r.status_code = 500;
  r.method = "POST";
  r.path = "/e";
  CHECK(ids_for(m, HttpRecordView(r)) == std::vector<uint64_t>{2});
}

TEST_CASE("identical queries are evaluated once and report every id") {
  Matcher m(http_schema());
  for (uint64_t id : {5, 6, 7}) REQUIRE(m.subscribe(id, "path:\"/api\" and status:5xx").ok());
  REQUIRE(m.subscribe(8, "PATH:/API and status:5xx").ok());  // the same canonical text
  REQUIRE(m.subscribe(9, "status = 503").ok());
  CHECK(m.stats().subscriptions == 5);
  CHECK(m.stats().distinct_queries == 2);
  Record r;
  r.path = "/api/x";
  r.status_code = 503;
  CHECK(ids_for(m, HttpRecordView(r)) == std::vector<uint64_t>{5, 6, 7, 8, 9});
  CHECK(m.unsubscribe(6));
  CHECK(m.unsubscribe(5));
  CHECK(ids_for(m, HttpRecordView(r)) == std::vector<uint64_t>{7, 8, 9});
  CHECK(m.unsubscribe(7));
  CHECK(m.unsubscribe(8));
  CHECK(m.stats().distinct_queries == 1);
  CHECK(ids_for(m, HttpRecordView(r)) == std::vector<uint64_t>{9});
  REQUIRE(m.subscribe(5, "path:\"/api\" and status:5xx").ok());  // back again, from scratch
  CHECK(ids_for(m, HttpRecordView(r)) == std::vector<uint64_t>{5, 9});
}

namespace {

// A generic record type: floats f (field 0) and g (field 2) that may be NaN
// or absent, a string field s (field 1), and a case-insensitive map whose
// keys arrive in any case.
class TestView final : public clio::matcher::RecordView {
 public:
  std::optional<double> f, g;
  std::string s;
  std::vector<std::pair<std::string, std::string>> entries;

  clio::matcher::FieldValue field(clio::matcher::FieldId id) const override {
    if (id == 1) return clio::matcher::FieldValue::of_string(s);
    const std::optional<double>& x = id == 0 ? f : g;
    return x ? clio::matcher::FieldValue::of_float(*x) : clio::matcher::FieldValue{};
  }
  std::optional<std::string_view> map_value(clio::matcher::MapId, std::string_view key) const override {
    for (const auto& [k, v] : entries) {
      if (clio::matcher::text::to_lower(k) == key) return std::string_view(v);
    }
    return std::nullopt;
  }
  void for_each_map_entry(clio::matcher::MapId,
                          const std::function<void(std::string_view, std::string_view)>& fn) const override {
    for (const auto& [k, v] : entries) fn(k, v);
  }
};

}  // namespace

TEST_CASE("negations on absent and NaN values, and map keys in any case: engine equals reference") {
  using namespace clio::matcher;
  Schema schema;
  REQUIRE(schema.add_field({"f", FieldType::kFloat, UnitClass::kNone, {}}).ok());
  REQUIRE(schema.add_field({"s", FieldType::kString, UnitClass::kNone, {}}).ok());
  REQUIRE(schema.add_map({"m", {}, true}).ok());
  // More map keys than are looked up one by one, so the record's entries drive it too.
  std::vector<std::string> queries = {"not f < 5", "not f > 5", "f != 5", "not f = 5", "f in (1..3, 7)",
                                      "not f in (1..3)", "f >= 5", "s != x", "not s = x", "not s:x"};
  for (int k = 0; k < 12; ++k) {
    const std::string key = "k" + std::to_string(k);
    queries.push_back("m." + key + " = v");
    queries.push_back("not m." + key + " = v");
    queries.push_back("m." + key + ":*");
    queries.push_back("m." + key + ":V");
  }
  Matcher m(schema);
  std::vector<Query> parsed;
  for (size_t i = 0; i < queries.size(); ++i) {
    auto p = parse(queries[i], schema);
    REQUIRE_MESSAGE(p.ok(), queries[i]);
    parsed.push_back(*p.query);
    REQUIRE(m.subscribe(i, *p.query).ok());
  }
  std::mt19937_64 rng(9);
  const std::optional<double> fs[] = {std::nullopt, NAN, 1.0, 2.5, 5.0, 6.0, 7.0};
  for (int round = 0; round < 400; ++round) {
    TestView v;
    v.f = fs[rng() % std::size(fs)];
    v.s = rng() % 2 ? "x" : "yx";
    const int n = static_cast<int>(rng() % 6);
    for (int k = 0; k < n; ++k) {
      std::string key = "k" + std::to_string(rng() % 12);
      if (rng() % 2) key[0] = 'K';
      v.entries.emplace_back(key, rng() % 3 == 0 ? "" : (rng() % 2 ? "v" : "xv"));
    }
    std::vector<uint64_t> want;
    for (size_t i = 0; i < parsed.size(); ++i) {
      if (parsed[i].matches(v)) want.push_back(i);
    }
    CHECK(ids_for(m, v) == want);
  }
}

// Sorted range lists copy the passing prefix of a group's ids in one piece
// when no entry needs verifying, and skip entries without branching in the
// group that straddles the second threshold: both paths, with groups split
// (many queries per list), verified entries (identical queries, residual
// conditions) among exact ones, churn, and absent or NaN values.
TEST_CASE("range lists with many queries, exact and verified entries: engine equals reference") {
  using namespace clio::matcher;
  Schema schema;
  REQUIRE(schema.add_field({"f", FieldType::kFloat, UnitClass::kNone, {}}).ok());
  REQUIRE(schema.add_field({"s", FieldType::kString, UnitClass::kNone, {}}).ok());
  REQUIRE(schema.add_field({"g", FieldType::kFloat, UnitClass::kNone, {}}).ok());
  std::mt19937_64 rng(21);
  auto num = [&] { return std::to_string(static_cast<int>(rng() % 20)); };  // values often equal a threshold
  // Thresholds of the exact shapes are distinct pairs, so no two of them are
  // identical queries (which would make their entries verified).
  auto pair = [](int i) { return std::to_string(i % 20) + " and g <= " + std::to_string(i / 20 % 20); };
  std::vector<std::string> texts;
  for (int i = 0; i < 900; ++i) {
    const int n = i / 6;
    switch (i % 6) {
      case 0: texts.push_back("s = a and f >= " + pair(n)); break;                     // exact, in a key's bucket
      case 1: texts.push_back("f >= " + std::to_string(n % 20) + " and g <= " + std::to_string(n / 20)); break;  // exact
      case 2: texts.push_back("f in (" + num() + "..25)"); break;
      case 3: texts.push_back("s = c and f > " + num() + " and g < " + num() + " and s:c"); break;  // verified
      case 4: texts.push_back("f < " + num() + " and g > " + num() + " and not s = b"); break;      // verified
      default: texts.push_back(texts[static_cast<size_t>(i - 1 - static_cast<int>(rng() % 3))]); break;  // identical
    }
  }
  Matcher m(schema);
  std::map<uint64_t, Query> live;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto p = parse(texts[i], schema);
    REQUIRE_MESSAGE(p.ok(), texts[i]);
    REQUIRE(m.subscribe(i, *p.query).ok());
    live.emplace(i, *p.query);
  }
  const std::optional<double> specials[] = {std::nullopt, NAN, 0.0, 10.0, 20.0};
  auto compare = [&](int rounds) {
    size_t matched = 0;
    for (int round = 0; round < rounds; ++round) {
      TestView v;
      v.f = rng() % 5 == 0 ? specials[rng() % 5] : static_cast<double>(rng() % 22);
      v.g = rng() % 5 == 0 ? specials[rng() % 5] : static_cast<double>(rng() % 22);
      v.s = rng() % 3 == 0 ? "b" : (rng() % 2 ? "a" : "c");
      std::vector<uint64_t> want;
      for (const auto& [id, q] : live) {
        if (q.matches(v)) want.push_back(id);
      }
      matched += want.size();
      CHECK(ids_for(m, v) == want);
    }
    return matched;
  };
  CHECK(compare(300) > 300 * 50);
  for (uint64_t id = 0; id < texts.size(); id += 4) {  // churn: every fourth goes
    CHECK(m.unsubscribe(id));
    live.erase(id);
  }
  CHECK(compare(300) > 300 * 40);
}
