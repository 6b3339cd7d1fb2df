// Parser tables: good queries and their canonical form, bad queries and their
// positioned errors, limits, and canonical-form stability.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "clio/matcher/query.h"
#include "clio/middleware/http_schema.h"

namespace {

using clio::http_schema;
using clio::matcher::parse;
using clio::matcher::QueryOptions;

struct Good {
  const char* in;
  const char* canonical;
};

// Every operator, alias, unit and shorthand, with its normalised text.
const Good kGood[] = {
    {"status = 500", "status_code = 500"},
    {"status == 500", "status_code = 500"},
    {"STATUS != 200", "status_code != 200"},
    {"c < 300", "status_code < 300"},
    {"code <= 299", "status_code <= 299"},
    {"status > 399", "status_code > 399"},
    {"status >= 500", "status_code >= 500"},
    {"status:404", "status_code = 404"},
    {"status:5xx", "status_code:5xx"},
    {"status:4XX", "status_code:4xx"},
    {"status:*", "status_code:*"},
    {"method = GET", "method = \"GET\""},
    {"m = \"GET\"", "method = \"GET\""},
    {"method:post", "method:\"post\""},
    {"path ~ \"^/api/v[0-9]+\"", "path ~ \"^/api/v[0-9]+\""},
    {"url !~ \"(?i)health\"", "path !~ \"(?i)health\""},
    {"u:API", "path:\"api\""},
    {"qs:token", "query:\"token\""},
    {"referer:*", "referer:*"},
    {"ua:\"curl/\"", "user_agent:\"curl/\""},
    {"version = 1.1", "http_version = \"1.1\""},
    {"path = \"a \\\"quoted\\\" \\\\ word\"", "path = \"a \\\"quoted\\\" \\\\ word\""},
    {"path ~ \"\\d+\"", "path ~ \"\\\\d+\""},
    {"wall > 1s", "wall_time > 1000"},
    {"duration >= 250ms", "wall_time >= 250"},
    {"latency < 500us", "wall_time < 0.5"},
    {"wall_time > 2m", "wall_time > 120000"},
    {"cpu > 1.5", "cpu_time > 1.5"},
    {"bytes > 10kb", "response_bytes > 10000"},
    {"size >= 1kib", "response_bytes >= 1024"},
    {"req_bytes > 2MiB", "request_bytes > 2097152"},
    {"response_bytes < 1gb", "response_bytes < 1000000000"},
    {"bytes > 1.5kb", "response_bytes > 1500"},
    {"random < 0.1", "random < 0.1"},
    {"ts >= 1795000000", "time >= 1795000000"},
    {"id = 9007199254740993", "id = 9007199254740993"},
    {"status > -1", "status_code > -1"},
    {"ip = 10.0.0.1", "remote_ip = \"10.0.0.1\""},
    {"client:10.1.2.3/8", "remote_ip:\"10.0.0.0/8\""},
    {"ip:10.0.0.7", "remote_ip = \"10.0.0.7\""},
    {"ip:::1", "remote_ip = \"::1\""},
    {"ip:\"2001:db8::/32\"", "remote_ip:\"2001:db8::/32\""},
    {"ip in (10.0.0.1, 192.168.0.0/16)", "remote_ip in (\"10.0.0.1\", \"192.168.0.0/16\")"},
    {"status in (200, 300..399, 404)", "status_code in (200, 300..399, 404)"},
    {"wall in (1s..2s)", "wall_time in (1000..2000)"},
    {"method in (GET, \"POST\")", "method in (\"GET\", \"POST\")"},
    {"method IN(GET)", "method in (\"GET\")"},
    {"header.User-Agent:curl", "header.user-agent:\"curl\""},
    {"h.X-Request-Id = abc", "header.x-request-id = \"abc\""},
    {"h.accept:*", "header.accept:*"},
    {"tag.Env = prod", "tag.Env = \"prod\""},
    {"tag.env ~ \"^p\"", "tag.env ~ \"^p\""},
    {"api", "path:\"api\""},
    {"\"hello world\"", "path:\"hello world\""},
    {"/api/v1", "path:\"/api/v1\""},
    {"héllo", "path:\"héllo\""},
    {"path:\"日本\"", "path:\"日本\""},
    // Boolean structure, precedence, flattening.
    {"a b c", "path:\"a\" and path:\"b\" and path:\"c\""},
    {"a and b or c", "path:\"a\" and path:\"b\" or path:\"c\""},
    {"a or b and c", "path:\"a\" or path:\"b\" and path:\"c\""},
    {"(a or b) and c", "(path:\"a\" or path:\"b\") and path:\"c\""},
    {"a && b || c", "path:\"a\" and path:\"b\" or path:\"c\""},
    {"a AND (b AND c)", "path:\"a\" and path:\"b\" and path:\"c\""},
    {"a or (b or c)", "path:\"a\" or path:\"b\" or path:\"c\""},
    {"not a", "not path:\"a\""},
    {"!a", "not path:\"a\""},
    {"-a", "not path:\"a\""},
    {"NOT not a", "not not path:\"a\""},
    {"not (a and b)", "not (path:\"a\" and path:\"b\")"},
    {"not a and b", "not path:\"a\" and path:\"b\""},
    {"((status = 200))", "status_code = 200"},
    {"status=200&&method=GET", "status_code = 200 and method = \"GET\""},
    // mitmproxy shorthands.
    {"~c 500", "status_code = 500"},
    {"~m POST", "method = \"POST\""},
    {"~u ^/api", "path ~ \"^/api\""},
    {"~h \"x-debug: 1\"", "header.* ~ \"x-debug: 1\""},
    {"~d example.com", "host:\"example.com\""},
    {"!~c 200", "not status_code = 200"},
    {"api ~c 500", "path:\"api\" and status_code = 500"},
    {"api !~m GET", "path:\"api\" and not method = \"GET\""},
    {"path ~u", "path ~ \"u\""},
    // DevTools shorthands.
    {"status-code:404", "status_code = 404"},
    {"status-code:5xx", "status_code:5xx"},
    {"method:POST", "method:\"post\""},
    {"-method:OPTIONS", "not method:\"options\""},
    {"larger-than:10k", "response_bytes > 10240"},
    {"larger-than:2M", "response_bytes > 2097152"},
    {"larger-than:100", "response_bytes > 100"},
    {"larger-than:1kb", "response_bytes > 1000"},
    {"domain:*.example.com", "host:\".example.com\""},
    {"domain:api.example.com", "host:\"api.example.com\""},
};

struct Bad {
  const char* in;
  const char* code;
  size_t offset;
  size_t length;
  const char* hint;  // substring of the hint ("" = not checked)
};

const Bad kBad[] = {
    {"", "empty_query", 0, 0, "try"},
    {"   ", "empty_query", 0, 3, ""},
    {"stauts >= 500", "unknown_field", 0, 6, "did you mean 'status'?"},
    {"methd = GET", "unknown_field", 0, 5, "did you mean 'method'?"},
    {"status >= 500 and wal > 1s", "unknown_field", 18, 3, "did you mean 'wall'?"},
    {"heder.x = 1", "unknown_field", 0, 7, "did you mean 'header'?"},
    {"zzzz = 1", "unknown_field", 0, 4, "quote it"},
    {"path < 3", "bad_operator", 5, 1, "use ':' for a substring"},
    {"method >= GET", "bad_operator", 7, 2, "':' for a substring"},
    {"status ~ 5", "bad_operator", 7, 1, "use =, <, >"},
    {"ip > 10.0.0.1", "bad_operator", 3, 1, "CIDR"},
    {"ip = 10.0.0.0/8", "bad_operator", 5, 10, "remote_ip:10.0.0.0/8"},
    {"ip:10.0.0.300", "bad_ip", 3, 10, "e.g."},
    {"ip:10.0.0.0/33", "bad_ip", 3, 11, ""},
    {"status = abc", "bad_number", 9, 3, "numeric"},
    {"wall > 5kb", "bad_unit", 7, 3, "time units"},
    {"bytes > 5s", "bad_unit", 8, 2, "byte units"},
    {"status > 5ms", "bad_unit", 9, 3, "takes no unit"},
    {"wall > 5parsecs", "bad_unit", 7, 8, "time units"},
    {"wall > 1e999", "bad_number", 7, 5, ""},
    {"path ~ \"(\"", "bad_regex", 7, 3, ""},
    {"path ~ \"\\\\pL{1000}\"", "regex_too_big", 7, 12, "simplify"},
    {"path = \"abc", "unterminated_string", 7, 4, "closing"},
    {"(status = 1", "unbalanced_paren", 0, 1, "add a ')'"},
    {"status = 1)", "unbalanced_paren", 10, 1, ""},
    {"()", "empty_group", 1, 1, ""},
    {"status =", "expected_value", 8, 0, ""},
    {"status = )", "expected_value", 9, 1, ""},
    {"and a", "expected_operand", 0, 3, ""},
    {"a and", "expected_operand", 2, 3, ""},
    {"a or", "expected_operand", 2, 2, ""},
    {"or a", "expected_operand", 0, 2, ""},
    {"not", "unknown_field", 0, 0, ""},  // replaced below: "not" alone
    {"a ,", "unexpected_token", 2, 1, ""},
    {"status in ()", "empty_list", 10, 2, ""},
    {"status in (1, 2", "unbalanced_paren", 10, 1, ""},
    {"status in (5..1)", "bad_range", 11, 4, "smaller bound first"},
    {"~x foo", "unknown_shorthand", 0, 2, "~c CODE"},
    {"~c", "expected_value", 2, 0, ""},
    {"larger-than = 5", "bad_operator", 12, 1, "larger-than:VALUE"},
    {"header. = 1", "bad_map_key", 0, 7, "header.user-agent"},
    {"header.* = x", "bad_operator", 9, 1, "header.* ~"},
    {"api ~x", "unknown_field", 0, 3, ""},
};

}  // namespace

TEST_CASE("good queries parse to their canonical form, which is stable") {
  for (const auto& g : kGood) {
    const std::string in = g.in;
    CAPTURE(in);
    auto r = parse(g.in, http_schema());
    REQUIRE_MESSAGE(r.ok(), r.error.to_string());
    const std::string c = r.query->canonical();
    CHECK(c == g.canonical);
    auto again = parse(c, http_schema());
    REQUIRE_MESSAGE(again.ok(), again.error.to_string());
    CHECK(again.query->canonical() == c);
  }
}

TEST_CASE("bad queries give a code, a byte span and a hint") {
  for (const auto& b : kBad) {
    if (std::string(b.in) == "not") continue;
    const std::string in = b.in;
    CAPTURE(in);
    auto r = parse(b.in, http_schema());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error.code == b.code);
    CHECK(r.error.offset == b.offset);
    CHECK(r.error.length == b.length);
    CHECK(r.error.hint.find(b.hint) != std::string::npos);
    CHECK_FALSE(r.error.message.empty());
    CHECK(r.error.offset + r.error.length <= std::string(b.in).size());
  }
  auto r = parse("not", http_schema());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error.code == "expected_operand");
}

TEST_CASE("the word 'not' as a prefix of a bare term is not the keyword") {
  auto r = parse("notes", http_schema());
  REQUIRE(r.ok());
  CHECK(r.query->canonical() == "path:\"notes\"");
}

TEST_CASE("limits: length, nesting, predicates, regex memory") {
  SUBCASE("query longer than max_length") {
    std::string q = "path:\"" + std::string(5000, 'a') + "\"";
    auto r = parse(q, http_schema());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error.code == "too_long");
    CHECK(r.error.offset == 4096);
  }
  SUBCASE("10,000 nested parentheses give an error, not a stack overflow") {
    std::string q = std::string(10000, '(') + "a" + std::string(10000, ')');
    auto r = parse(q, http_schema(), QueryOptions{.max_length = 1 << 20});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error.code == "too_deep");
    CHECK(r.error.offset == 64);
  }
  SUBCASE("10,000 negations give an error") {
    std::string q;
    for (int i = 0; i < 10000; ++i) q += "not ";
    q += "a";
    auto r = parse(q, http_schema(), QueryOptions{.max_length = 1 << 20});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error.code == "too_deep");
  }
  SUBCASE("64 levels are fine") {
    std::string q = std::string(64, '(') + "a" + std::string(64, ')');
    CHECK(parse(q, http_schema()).ok());
  }
  SUBCASE("more than 256 predicates") {
    std::string q = "a";
    for (int i = 0; i < 256; ++i) q += " a";
    auto r = parse(q, http_schema());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error.code == "too_many_predicates");
    CHECK(r.error.offset == 512);
    std::string ok = "a";
    for (int i = 0; i < 255; ++i) ok += " a";
    CHECK(parse(ok, http_schema()).ok());
  }
  SUBCASE("custom options") {
    QueryOptions o;
    o.max_nesting = 2;
    o.max_predicates = 2;
    o.max_regex_mem = 4 << 10;
    CHECK(parse("((a))", http_schema(), o).ok());
    CHECK(parse("(((a)))", http_schema(), o).error.code == "too_deep");
    CHECK(parse("a b c", http_schema(), o).error.code == "too_many_predicates");
    CHECK(parse("path ~ \"[a-z]{300}\"", http_schema(), o).error.code == "regex_too_big");
    CHECK(parse("path ~ \"[a-z]{300}\"", http_schema()).ok());
  }
}

TEST_CASE("keywords and field names are case-insensitive") {
  auto a = parse("STATUS >= 500 AND Method = GET OR NOT Path:x", http_schema());
  auto b = parse("status >= 500 and method = GET or not path:x", http_schema());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a.query->canonical() == b.query->canonical());
}

TEST_CASE("queries with the same meaning share a canonical form") {
  const char* same[] = {"status:5xx and wall > 1s", "code:5XX wall_time>1000", "(c:5xx) && latency > 1000ms"};
  std::string first;
  for (const char* q : same) {
    auto r = parse(q, http_schema());
    REQUIRE(r.ok());
    if (first.empty()) first = r.query->canonical();
    CHECK(r.query->canonical() == first);
  }
}

TEST_CASE("QueryError::to_string joins message and hint") {
  auto r = parse("stauts = 1", http_schema());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error.to_string() == "unknown field 'stauts' (did you mean 'status'?)");
}
