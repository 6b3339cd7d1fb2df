// Differential tests: the engine against the reference evaluator on random
// queries x random records (all operators, shorthands, absent fields,
// unicode), with subscribe/unsubscribe churn; and a generated small-scale
// version of the benchmark workload's five query shapes.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "clio/matcher/matcher.h"
#include "clio/matcher/query.h"
#include "clio/middleware/http_schema.h"
#include "realistic_workload.h"

namespace {

using clio::HttpRecordView;
using clio::http_schema;
using clio::Record;
using clio::matcher::Matcher;
using clio::matcher::MatcherOptions;
using clio::matcher::parse;
using clio::matcher::Query;

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}

  size_t pick(size_t n) { return static_cast<size_t>(rng_() % n); }
  template <typename T, size_t N>
  const T& one(const T (&a)[N]) { return a[pick(N)]; }
  bool chance(int percent) { return pick(100) < static_cast<size_t>(percent); }

  Record record() {
    static const char* methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", ""};
    static const char* paths[] = {"/api/v1/r0", "/api/v1/r1", "/api/v1/r2", "/API/v2/users", "/héllo/wörld",
                                  "/static/app.js", "/日本/x", "/", ""};
    static const int statuses[] = {200, 201, 301, 404, 500, 503, 0, 101};
    static const char* ips[] = {"10.0.0.1", "10.0.0.2", "10.0.1.1", "10.1.0.1", "::1", "2001:db8::1",
                                "2001:db8::2", "", "bogus"};
    static const char* hosts[] = {"h0", "h1", "h2", "Example.COM", "api.example.com:8080", ""};
    static const char* uas[] = {"curl/8", "Mozilla/5.0", ""};
    Record r;
    r.id = pick(20);
    r.time = 1795000000.0 + static_cast<double>(pick(100));
    r.method = one(methods);
    r.path = one(paths);
    r.query = chance(30) ? "a=1&token=x" : "";
    r.status_code = one(statuses);
    r.wall_time = static_cast<double>(pick(6000)) / 2;
    r.cpu_time = static_cast<double>(pick(3000)) / 4;
    r.remote_ip = one(ips);
    r.host = one(hosts);
    r.user_agent = one(uas);
    r.referer = chance(50) ? "" : "https://x.org/";
    r.http_version = chance(80) ? "1.1" : "1.0";
    r.request_bytes = chance(70) ? 0 : static_cast<int64_t>(pick(5000));
    r.response_bytes = static_cast<int64_t>(pick(100000));
    r.random = static_cast<double>(pick(1000)) / 1000;
    if (chance(60)) r.headers.emplace_back("x-a", std::string("v") + std::to_string(pick(3)));
    if (chance(50)) r.headers.emplace_back("user-agent", r.user_agent);
    if (chance(30)) r.headers.emplace_back("accept", chance(50) ? "" : "text/html");
    if (chance(20)) r.headers.emplace_back("x-a", "dup");
    if (chance(50)) r.tags.emplace_back("Env", chance(50) ? "prod" : "dev");
    if (chance(30)) r.tags.emplace_back("team", chance(50) ? "a" : "ünï");
    return r;
  }

  std::string atom() {
    static const char* methods[] = {"GET", "POST", "PUT", "get", "HEAD"};
    static const char* substrings[] = {"api", "API", "v1", "r1", "héllo", "Ö", "ö", "日本", "/", "s", "app.js",
                                       "users", "zz", "/api", "v1/r"};
    static const char* regexes[] = {"^/api", "(?i)^/API/V2", "r[0-1]$", "ö", "^$", "\\\\.js$", "[0-9]+",
                                    "(?i)users|static", "日"};
    static const char* hosts[] = {"h0", "h1", "example.com", "EXAMPLE", "api"};
    static const char* ips[] = {"10.0.0.1", "10.0.0.0/24", "10.0.0.0/8", "\"::1\"", "\"2001:db8::/32\"",
                                "10.1.0.1", "\"2001:db8::2\""};
    static const char* addrs[] = {"10.0.0.1", "10.0.0.2", "\"::1\"", "10.1.0.1", "\"2001:db8::2\""};
    static const char* cmp[] = {"=", "!=", "<", "<=", ">", ">="};
    static const char* hdr[] = {"header.x-a", "h.X-A", "h.accept", "header.user-agent", "h.missing"};
    static const char* hvals[] = {"v0", "v1", "dup", "\"\"", "text/html", "curl/8"};
    switch (pick(24)) {
      case 0: return std::string("method ") + (chance(70) ? "= " : "!= ") + one(methods);
      case 1: return std::string("path:") + "\"" + one(substrings) + "\"";
      case 2: return std::string("path ") + (chance(70) ? "~ " : "!~ ") + "\"" + one(regexes) + "\"";
      case 3: return std::string("status ") + one(cmp) + " " + std::to_string(one({200, 301, 404, 500, 0, 503}));
      case 4: return "status:" + std::to_string(1 + pick(5)) + "xx";
      case 5: return std::string("wall ") + one(cmp) + " " +
                     (chance(50) ? std::to_string(pick(3000)) : std::to_string(pick(3)) + "s");
      case 6: return std::string("cpu ") + one(cmp) + " " + std::to_string(pick(750)) + (chance(20) ? ".5" : "");
      case 7: return std::string("bytes ") + one(cmp) + " " + std::to_string(pick(100)) + "kb";
      case 8: return std::string("ip") + (chance(50) ? " = " : " != ") + one(addrs);
      case 9: return std::string("ip:") + one(ips);
      case 10: return std::string("host") + (chance(50) ? ":" : " = ") + one(hosts);
      case 11: return std::string(one(hdr)) + (chance(40) ? ":*" : (chance(50) ? " = " : ":") + std::string(one(hvals)));
      case 12: return std::string("tag.") + (chance(70) ? "Env" : "env") + (chance(50) ? " = prod" : ":*");
      case 13: return std::string("tag.team:") + (chance(50) ? "\"ÜNÏ\"" : "a");
      case 14: return std::string("status in (") + std::to_string(one({200, 404})) + ", 500..599)";
      case 15: return std::string("method in (GET, ") + one(methods) + ")";
      case 16: return std::string("ip in (10.0.0.0/24, \"::1\")");
      case 17: return one(substrings);
      case 18: {
        static const char* s[] = {"~c 404", "~m POST", "~u ^/api", "~h \"^x-a: v\"", "~d example", "-method:GET",
                                  "larger-than:50k", "status-code:5xx", "domain:*.example.com", "~h \"(?i)CURL\""};
        return one(s);
      }
      case 19: return std::string("referer") + (chance(50) ? ":*" : " = \"\"");
      case 20: return std::string("random ") + one(cmp) + " 0." + std::to_string(pick(10));
      case 21: return std::string("ua") + (chance(50) ? ":curl" : " ~ \"^Moz\"");
      case 22: return std::string("id ") + one(cmp) + " " + std::to_string(pick(20));
      default: return std::string("wall in (") + std::to_string(pick(1000)) + ".." + std::to_string(1000 + pick(2000)) + ")";
    }
  }

  std::string query(int depth = 0) {
    if (depth >= 3 || chance(35)) return atom();
    switch (pick(6)) {
      case 0: return query(depth + 1) + " and " + query(depth + 1);
      case 1: return query(depth + 1) + " " + query(depth + 1);
      case 2: return query(depth + 1) + " or " + query(depth + 1);
      case 3: return "not " + query(depth + 1);
      case 4: return "(" + query(depth + 1) + " or " + query(depth + 1) + ") and " + query(depth + 1);
      default: return "(" + query(depth + 1) + ")";
    }
  }

 private:
  template <typename T>
  T one(std::initializer_list<T> l) { return *(l.begin() + static_cast<long>(pick(l.size()))); }

  std::mt19937_64 rng_;
};

// Matches `r` and compares the ids with the reference evaluator's over `live`;
// on a difference, fails with the record and the queries that differ.
bool same_as_reference(const Matcher& m, const std::map<uint64_t, Query>& live, const Record& r, size_t& matches) {
  const HttpRecordView view(r);
  std::vector<uint64_t> got, want;
  m.match(view, got);
  std::sort(got.begin(), got.end());
  for (const auto& [id, q] : live) {
    if (q.matches(view)) want.push_back(id);
  }
  matches += want.size();
  if (got == want) return true;
  std::string detail;
  for (const auto& [id, q] : live) {
    const bool in_got = std::binary_search(got.begin(), got.end(), id);
    const bool in_want = std::binary_search(want.begin(), want.end(), id);
    if (in_got != in_want) detail += (in_want ? "missed: " : "extra: ") + q.canonical() + "\n";
  }
  FAIL_CHECK("engine and reference differ on record " << clio::to_json(r) << "\n" << detail);
  return false;
}

// Runs the churn scenario; returns the number of (query, record) pairs checked.
size_t differential(uint64_t seed, const MatcherOptions& options, size_t& total_matches) {
  Gen g(seed);
  Matcher m(http_schema(), options);
  std::map<uint64_t, Query> live;
  uint64_t next_id = 0;
  auto add = [&](size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const std::string text = g.query();
      auto p = parse(text, http_schema());
      REQUIRE_MESSAGE(p.ok(), (text + ": " + p.error.to_string()));
      const uint64_t id = next_id++;
      auto e = m.subscribe(id, *p.query);
      REQUIRE(e.ok());
      live.emplace(id, *p.query);
    }
  };
  size_t pairs = 0;
  total_matches = 0;
  add(300);
  for (int round = 0; round < 8; ++round) {
    for (int k = 0; k < 60; ++k) {
      pairs += live.size();
      if (!same_as_reference(m, live, g.record(), total_matches)) return pairs;
    }
    // Churn: drop about a third, add new ones.
    std::vector<uint64_t> ids;
    for (const auto& [id, q] : live) ids.push_back(id);
    for (uint64_t id : ids) {
      if (g.pick(3) == 0) {
        CHECK(m.unsubscribe(id));
        live.erase(id);
      }
    }
    CHECK_FALSE(m.unsubscribe(next_id + 1000));
    add(100);
    CHECK(m.size() == live.size());
  }
  return pairs;
}

}  // namespace

TEST_CASE("differential: engine equals reference on random queries and records") {
  size_t matches = 0;
  const size_t pairs = differential(1, MatcherOptions{}, matches);
  MESSAGE("pairs checked: " << pairs << ", matches: " << matches);
  CHECK(pairs >= 100000);
  // The generator must produce a meaningful mix, neither all nor nothing.
  CHECK(matches > pairs / 50);
  CHECK(matches < pairs / 2);
}

TEST_CASE("differential with tight index limits exercises every fallback") {
  MatcherOptions o;
  o.max_branches = 3;
  o.max_key_specs = 2;
  o.regex_set_size = 2;
  o.regex_set_max_mem = 20 << 10;  // sets that do not fit fall back to per-record checks
  size_t matches = 0;
  const size_t pairs = differential(2, o, matches);
  MESSAGE("pairs checked: " << pairs << ", matches: " << matches);
  CHECK(pairs >= 100000);
}

TEST_CASE("differential with other seeds") {
  for (uint64_t seed : {11u, 12u}) {
    size_t matches = 0;
    CHECK(differential(seed, MatcherOptions{}, matches) >= 100000);
  }
}

TEST_CASE("the benchmark's five query shapes, generated small: engine equals reference") {
  std::mt19937_64 rng(3);
  auto pick = [&](uint64_t n) { return rng() % n; };
  const char* methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD"};
  const int statuses[] = {200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 409, 500, 502, 503, 504};
  std::vector<std::string> queries;
  for (int i = 0; i < 3000; ++i) {
    switch (i % 5) {
      case 0: queries.push_back("status_code = " + std::to_string(statuses[pick(15)]) + " and method = " + methods[pick(5)]); break;
      case 1: queries.push_back("wall_time > " + std::to_string(pick(3000)) + " and host = h" + std::to_string(pick(20))); break;
      case 2: queries.push_back("status_code >= 500 and path = \"/api/v1/r" + std::to_string(pick(100)) + "\""); break;
      case 3: queries.push_back("remote_ip = \"10.0." + std::to_string(pick(4)) + "." + std::to_string(pick(64)) + "\""); break;
      default:
        queries.push_back(std::string("(method = ") + methods[pick(5)] + " or method = " + methods[pick(5)] +
                          ") and response_bytes > " + std::to_string(pick(500000)) + " and cpu_time < " +
                          std::to_string(pick(3000)));
    }
  }
  std::vector<Record> records(400);
  for (auto& r : records) {
    r.method = methods[pick(5)];
    r.path = "/api/v1/r" + std::to_string(pick(100));
    r.host = "h" + std::to_string(pick(20));
    r.remote_ip = "10.0." + std::to_string(pick(4)) + "." + std::to_string(pick(64));
    r.status_code = statuses[pick(15)];
    r.wall_time = static_cast<double>(pick(6000));
    r.cpu_time = static_cast<double>(pick(3000));
    r.response_bytes = static_cast<int64_t>(pick(2000000));
  }
  Matcher m(http_schema());
  std::vector<Query> parsed;
  for (size_t i = 0; i < queries.size(); ++i) {
    auto p = parse(queries[i], http_schema());
    REQUIRE(p.ok());
    parsed.push_back(*p.query);
    REQUIRE(m.subscribe(i, queries[i]).ok());
  }
  CHECK(m.stats().every_record == 0);
  size_t total = 0;
  std::vector<uint64_t> ids, want;
  for (const auto& r : records) {
    const HttpRecordView view(r);
    ids.clear();
    m.match(view, ids);
    std::sort(ids.begin(), ids.end());
    want.clear();
    for (size_t i = 0; i < parsed.size(); ++i) {
      if (parsed[i].matches(view)) want.push_back(i);
    }
    CHECK(ids == want);
    total += want.size();
  }
  MESSAGE("matches: " << total);
  CHECK(total > records.size() * 10);
}

namespace {

// The realistic admin mix of the benchmark, small: after `warm` records (so
// plans use observed frequencies), with churn and repeated queries.
void realistic(const MatcherOptions& options, size_t warm, size_t& compared, size_t& matches) {
  const auto queries = clio::bench::realistic_queries(3000, 3);
  const auto records = clio::bench::realistic_records(900, 4);
  Matcher m(http_schema(), options);
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < warm; ++i) {
    ids.clear();
    m.match(HttpRecordView(records[i]), ids);
  }
  std::map<uint64_t, Query> live;
  for (size_t i = 0; i < queries.size(); ++i) {
    auto p = parse(queries[i], http_schema());
    REQUIRE_MESSAGE(p.ok(), queries[i]);
    REQUIRE(m.subscribe(i, *p.query).ok());
    live.emplace(i, *p.query);
  }
  auto compare = [&](size_t first, size_t count) {
    for (size_t k = first; k < first + count; ++k) {
      ++compared;
      if (!same_as_reference(m, live, records[k], matches)) return;
    }
  };
  compare(warm, 300);
  // Churn: drop every third, subscribe some queries again under new ids.
  for (uint64_t id = 0; id < queries.size(); id += 3) {
    CHECK(m.unsubscribe(id));
    live.erase(id);
  }
  for (uint64_t k = 0; k < 500; ++k) {
    const uint64_t id = 10000 + k;
    const std::string& text = queries[(k * 7) % queries.size()];
    REQUIRE(m.subscribe(id, text).ok());
    live.emplace(id, *parse(text, http_schema()).query);
  }
  CHECK(m.size() == live.size());
  compare(warm + 300, 300);
}

}  // namespace

TEST_CASE("realistic admin queries: the engine's ids equal the reference's, with churn") {
  size_t compared = 0, matches = 0;
  realistic(MatcherOptions{}, 300, compared, matches);
  MESSAGE("records compared: " << compared << ", matches: " << matches);
  CHECK(compared == 600);
  CHECK(matches > compared);  // the mix matches something on most records

  // Cold (no records seen before subscribing) and with tight limits.
  MatcherOptions tight;
  tight.max_branches = 2;
  tight.max_key_specs = 1;
  tight.regex_set_size = 2;
  tight.regex_set_max_mem = 20 << 10;
  compared = matches = 0;
  realistic(tight, 0, compared, matches);
  CHECK(compared == 600);
}
