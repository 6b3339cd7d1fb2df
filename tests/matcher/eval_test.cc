// Semantics: every operator on records, missing fields, unicode; the engine
// and the reference evaluator must agree on each case.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "clio/matcher/matcher.h"
#include "clio/matcher/query.h"
#include "clio/middleware/http_schema.h"

namespace {

using clio::HttpRecordView;
using clio::http_schema;
using clio::Record;
using clio::matcher::Matcher;
using clio::matcher::parse;

Record sample() {
  Record r;
  r.id = 42;
  r.time = 1795000000.25;
  r.method = "POST";
  r.path = "/api/v1/Users/héllo";
  r.query = "page=2&token=[redacted]";
  r.status_code = 503;
  r.wall_time = 1500.5;
  r.cpu_time = 12.25;
  r.remote_ip = "10.1.2.3";
  r.host = "api.Example.com:8080";
  r.user_agent = "curl/8.1";
  r.referer = "";
  r.http_version = "1.1";
  r.request_bytes = 0;
  r.response_bytes = 20480;
  r.random = 0.05;
  r.headers = {{"host", "api.Example.com:8080"}, {"user-agent", "curl/8.1"}, {"x-trace", "abc"},
               {"x-trace", "second"}, {"accept", ""}};
  r.tags = {{"Env", "prod"}, {"région", "eu-ouest"}};
  return r;
}

bool engine_matches(const std::string& q, const Record& r) {
  Matcher m(http_schema());
  auto e = m.subscribe(1, q);
  REQUIRE_MESSAGE(e.ok(), e.to_string());
  std::vector<uint64_t> ids;
  m.match(HttpRecordView(r), ids);
  return !ids.empty();
}

struct Case {
  const char* query;
  bool expected;
};

const Case kCases[] = {
    {"status = 503", true}, {"status != 503", false}, {"status < 503", false}, {"status <= 503", true},
    {"status > 502", true}, {"status >= 504", false}, {"status:503", true}, {"status:5xx", true},
    {"status:4xx", false}, {"status:*", true}, {"status = 503.5", false}, {"status < 503.5", true},
    {"status > 502.5", true}, {"status in (200, 500..599)", true}, {"status in (200, 400..499)", false},
    {"method = POST", true}, {"method = post", false}, {"method:post", true}, {"method != GET", true},
    {"method in (GET, POST)", true}, {"method in (get, post)", false},
    {"path:users", true}, {"path:USERS", true}, {"path:\"héllo\"", true}, {"path:\"HÉLLO\"", false},
    {"path ~ \"^/api/v[0-9]/Users\"", true}, {"path ~ \"users\"", false}, {"path ~ \"(?i)users\"", true},
    {"path !~ \"users\"", true}, {"path !~ \"Users\"", false}, {"path = \"/api/v1/Users/héllo\"", true},
    {"users", true}, {"\"v1/users\"", true}, {"nothing-here", false},
    {"wall > 1s", true}, {"wall > 1.5005s", false}, {"wall >= 1500.5", true}, {"wall = 1500.5ms", true},
    {"wall < 2s", true}, {"wall in (1s..2s)", true}, {"cpu < 12.25", false}, {"cpu <= 12250us", true},
    {"bytes > 20kb", true}, {"bytes > 20kib", false}, {"bytes = 20kib", true}, {"larger-than:19k", true},
    {"larger-than:20k", false}, {"req_bytes = 0", true},
    {"random < 0.1", true}, {"id = 42", true}, {"time > 1795000000", true},
    {"ip = 10.1.2.3", true}, {"ip:10.0.0.0/8", true}, {"ip:10.1.0.0/16", true}, {"ip:10.2.0.0/16", false},
    {"ip:\"::ffff:10.1.2.3\"", true}, {"ip != 10.1.2.4", true}, {"ip in (192.168.0.0/16, 10.1.2.0/24)", true},
    {"host:example.com", true}, {"~d example.com", true}, {"domain:*.example.com", true},
    {"domain:other.org", false}, {"host = \"api.Example.com:8080\"", true},
    {"referer:*", false}, {"referer = \"\"", true}, {"not referer:*", true}, {"referer:\"\"", true},
    {"ua:curl", true}, {"user_agent ~ \"^curl/\"", true},
    {"version = 1.1", true}, {"qs:token", true},
    // Maps: headers case-insensitive by name, first occurrence for repeats.
    {"header.User-Agent:curl", true}, {"h.x-trace = abc", true}, {"h.x-trace = second", false},
    {"h.accept:*", false}, {"h.accept = \"\"", true}, {"h.missing:*", false}, {"h.missing = x", false},
    {"h.missing != x", false}, {"not h.missing = x", true}, {"h.missing !~ x", false},
    {"not h.missing:*", true}, {"~h \"^x-trace: sec\"", true}, {"~h \"^x-none\"", false},
    {"header.* !~ \"^zzz\"", true}, {"header.*:\"USER-AGENT: CURL\"", true},
    // Tags: names case-sensitive.
    {"tag.Env = prod", true}, {"tag.env = prod", false}, {"tag.env:*", false}, {"tag.région:ouest", true},
    // Boolean structure.
    {"status:5xx and method = POST", true}, {"status:5xx method = GET", false},
    {"status:4xx or method = POST", true}, {"not status:5xx", false}, {"-method:OPTIONS", true},
    {"!(status:4xx or method = GET)", true}, {"not not status = 503", true},
    {"status:4xx or method = GET or path:zzz", false}, {"(a or users) and (b or status:5xx)", true},
    {"~c 503", true}, {"~m POST", true}, {"~u Users", true}, {"status-code:503", true},
};

}  // namespace

TEST_CASE("operators and fields on a sample record: reference and engine agree") {
  const Record r = sample();
  const HttpRecordView view(r);
  for (const auto& c : kCases) {
    CAPTURE(c.query);
    auto p = parse(c.query, http_schema());
    REQUIRE_MESSAGE(p.ok(), p.error.to_string());
    CHECK(p.query->matches(view) == c.expected);
    CHECK(engine_matches(c.query, r) == c.expected);
  }
}

TEST_CASE("an unparsable remote_ip is absent: every ip predicate is false") {
  Record r = sample();
  r.remote_ip = "not-an-ip";
  for (const char* q : {"ip = 10.1.2.3", "ip != 10.1.2.3", "ip:10.0.0.0/8", "ip:*"}) {
    CAPTURE(q);
    CHECK_FALSE(parse(q, http_schema()).query->matches(HttpRecordView(r)));
    CHECK_FALSE(engine_matches(q, r));
  }
  CHECK(engine_matches("not ip:*", r));
}

TEST_CASE("IPv6 addresses and prefixes") {
  Record r = sample();
  r.remote_ip = "2001:db8::17";
  CHECK(engine_matches("ip:\"2001:db8::/32\"", r));
  CHECK(engine_matches("ip = \"2001:DB8:0::17\"", r));
  CHECK_FALSE(engine_matches("ip:10.0.0.0/8", r));
  CHECK_FALSE(engine_matches("ip:\"2001:db9::/32\"", r));
}

TEST_CASE("a schema without HTTP: the matcher is generic") {
  using namespace clio::matcher;
  Schema s;
  REQUIRE(s.add_field({"temp", FieldType::kFloat, UnitClass::kNone, {"t"}}).ok());
  REQUIRE(s.add_field({"room", FieldType::kString, UnitClass::kNone, {}}).ok());
  REQUIRE(s.add_map({"label", {"l"}, false}).ok());
  CHECK_FALSE(s.add_field({"t", FieldType::kInt, UnitClass::kNone, {}}).ok());  // alias taken
  CHECK_FALSE(s.add_field({"Bad Name", FieldType::kInt, UnitClass::kNone, {}}).ok());

  struct View : RecordView {
    double temp;
    std::string room;
    FieldValue field(FieldId id) const override {
      return id == 0 ? FieldValue::of_float(temp) : FieldValue::of_string(room);
    }
    std::optional<std::string_view> map_value(MapId, std::string_view key) const override {
      if (key == "Zone") return std::string_view("north");
      return std::nullopt;
    }
    void for_each_map_entry(MapId, const std::function<void(std::string_view, std::string_view)>& fn) const override {
      fn("Zone", "north");
    }
  };
  View v;
  v.temp = 21.5;
  v.room = "lab";
  Matcher m(s);
  REQUIRE(m.subscribe(1, "t > 20 and room = lab").ok());
  REQUIRE(m.subscribe(2, "l.Zone = north").ok());
  REQUIRE(m.subscribe(3, "l.zone = north").ok());
  REQUIRE(m.subscribe(4, "temp < 20 or room:LA").ok());
  CHECK(m.subscribe(5, "path:x").code == "unknown_field");  // no path: bare words fail too
  CHECK(m.subscribe(5, "x").code == "unknown_field");
  std::vector<uint64_t> ids;
  m.match(v, ids);
  std::sort(ids.begin(), ids.end());
  CHECK(ids == std::vector<uint64_t>{1, 2, 4});
}
