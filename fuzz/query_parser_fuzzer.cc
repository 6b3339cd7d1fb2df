// libFuzzer target for the query parser. For every input that parses it also
// checks that the canonical text re-parses to itself, and that the engine and
// the reference evaluator agree on a few fixed records. Any disagreement
// aborts, so the fuzzer reports it as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "clio/matcher/matcher.h"
#include "clio/matcher/query.h"
#include "clio/middleware/http_schema.h"

namespace {

std::vector<clio::Record> make_records() {
  std::vector<clio::Record> rs(3);
  rs[0].method = "GET";
  rs[0].path = "/api/v1/users";
  rs[0].status_code = 200;
  rs[0].wall_time = 12.5;
  rs[0].set_remote_ip("10.0.0.1");
  rs[0].host = "example.com";
  rs[0].headers = {{"user-agent", "curl/8"}, {"x-a", "1"}};
  rs[0].tags = {{"Env", "prod"}};
  rs[1].method = "POST";
  rs[1].path = "/héllo/日本";
  rs[1].status_code = 503;
  rs[1].wall_time = 2500;
  rs[1].response_bytes = 20480;
  rs[1].set_remote_ip("2001:db8::1");
  rs[2].set_remote_ip("bogus");
  return rs;
}

[[noreturn]] void die(const char* what, std::string_view q) {
  std::fprintf(stderr, "%s: %.*s\n", what, static_cast<int>(q.size()), q.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 8192) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto& schema = clio::http_schema();
  static const std::vector<clio::Record> records = make_records();

  auto r = clio::matcher::parse(text, schema);
  if (!r.ok()) {
    const auto& e = r.error;
    if (e.code.empty() || e.message.empty() || e.offset > size || e.offset + e.length > size) {
      die("malformed error", text);
    }
    return 0;
  }
  const std::string c = r.query->canonical();
  auto again = clio::matcher::parse(c, schema, clio::matcher::QueryOptions{.max_length = 1 << 20});
  if (!again.ok()) die("canonical text does not parse", c);
  if (again.query->canonical() != c) die("canonical text is not stable", c);

  clio::matcher::MatcherOptions tight;
  tight.max_branches = 4;
  tight.max_key_specs = 1;
  clio::matcher::Matcher engine(schema), small(schema, tight);
  if (!engine.subscribe(1, *r.query).ok() || !small.subscribe(1, *r.query).ok()) die("subscribe failed", text);
  std::vector<uint64_t> ids;
  for (const auto& rec : records) {
    const clio::HttpRecordView view(rec);
    const bool want = r.query->matches(view);
    if (again.query->matches(view) != want) die("canonical form means something else", c);
    for (const auto* m : {&engine, &small}) {
      ids.clear();
      m->match(view, ids);
      if (ids.size() != (want ? 1u : 0u)) die("engine and reference differ", text);
    }
  }
  if (!engine.unsubscribe(1) || engine.size() != 0) die("unsubscribe failed", text);
  return 0;
}
