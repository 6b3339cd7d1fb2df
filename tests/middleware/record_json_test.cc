#include <doctest/doctest.h>

#include "clio/middleware/record.h"

namespace clio {

TEST_CASE("record JSON round-trips every field") {
  Record r;
  r.id = 42;
  r.time = 1795000000.25;
  r.method = "POST";
  r.path = "/api/\"quoted\"\\path";
  r.query = "a=1&token=[redacted]";
  r.status_code = 503;
  r.wall_time = 12.5;
  r.cpu_time = 0.75;
  r.set_remote_ip("10.1.2.3");
  r.host = "example.test";
  r.user_agent = "ua/1.0 \xC3\xA9";  // é
  r.referer = "";
  r.http_version = "1.1";
  r.request_bytes = 13;
  r.response_bytes = 4096;
  r.random = 0.125;
  r.headers = {{"host", "example.test"}, {"x-ctl", std::string("a\x01\nb", 4)}};
  r.tags = {{"User", "7"}};
  const std::string j = to_json(r);
  CHECK(j.find('\n') == std::string::npos);
  CHECK(j.find("\\u0001") != std::string::npos);
  auto back = record_from_json(j);
  REQUIRE(back.ok());
  CHECK(back->id == 42);
  CHECK(back->time == doctest::Approx(1795000000.25));
  CHECK(back->method == "POST");
  CHECK(back->path == r.path);
  CHECK(back->query == r.query);
  CHECK(back->status_code == 503);
  CHECK(back->wall_time == 12.5);
  CHECK(back->cpu_time == 0.75);
  CHECK(back->remote_ip == "10.1.2.3");
  REQUIRE(back->remote_addr.has_value());  // parsed once, at decode
  CHECK(back->remote_addr->to_string() == "10.1.2.3");
  CHECK(back->user_agent == r.user_agent);
  CHECK(back->request_bytes == 13);
  CHECK(back->response_bytes == 4096);
  CHECK(back->random == 0.125);
  CHECK(back->headers == r.headers);
  CHECK(back->tags == r.tags);
  CHECK(to_json(*back) == j);
}

TEST_CASE("record JSON replaces invalid UTF-8 with U+FFFD") {
  Record r;
  r.path = std::string("/a\xFF\xC3", 4);
  const std::string j = to_json(r);
  auto back = record_from_json(j);
  REQUIRE(back.ok());
  CHECK(back->path == "/a\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("record_from_json reports bad input as errors") {
  CHECK_FALSE(record_from_json("{").ok());
  CHECK_FALSE(record_from_json("[1,2]").ok());
  auto bad = record_from_json(R"({"status_code":"200"})");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("status_code") != std::string::npos);
  CHECK_FALSE(record_from_json(R"({"headers":{"a":1}})").ok());
  auto lower = record_from_json(R"({"headers":{"User-Agent":"x"}})");
  REQUIRE(lower.ok());
  CHECK(lower->header("user-agent") != nullptr);
}

}  // namespace clio
