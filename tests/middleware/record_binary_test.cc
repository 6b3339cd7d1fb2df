#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <string>

#include "clio/middleware/record.h"
#include "clio/middleware/record_binary.h"

namespace clio {
namespace {

Record every_field() {
  Record r;
  r.id = 42;
  r.time = 1795000000.123456;
  r.method = "PATCH";
  r.path = std::string("/a\xFF\0b", 5);  // invalid UTF-8 and a NUL, kept as bytes
  r.query = "token=[redacted]&x=" + std::string(300, 'q');  // a length over one varint byte
  r.status_code = std::numeric_limits<int>::min();
  r.wall_time = std::numeric_limits<double>::infinity();
  r.cpu_time = -0.0;
  r.set_remote_ip("2001:db8::1");
  r.host = "example.test";
  r.user_agent = "ua/1.0 \xC3\xA9";
  r.referer = "";
  r.http_version = "1.0";
  r.request_bytes = -1;
  r.response_bytes = std::numeric_limits<int64_t>::max();
  r.random = 0.999999;
  r.instance = "web-3:8080";
  for (int i = 0; i < 200; ++i) r.headers.emplace_back("x-h" + std::to_string(i), std::to_string(i));
  r.headers.emplace_back("host", "example.test");
  r.tags = {{"User", "7"}, {"", ""}};
  return r;
}

std::string encode(const Record& r) {
  std::string out;
  append_binary(r, out);
  return out;
}

}  // namespace

TEST_CASE("binary encoding round-trips every field, byte for byte") {
  const Record r = every_field();
  const std::string enc = encode(r);
  std::string_view in = enc;
  Record back;
  back.id = 9;
  back.headers = {{"stale", "entry"}};
  REQUIRE(decode_binary(in, back).ok());
  CHECK(in.empty());
  CHECK(back.id == 0);  // not encoded
  CHECK(back.time == r.time);
  CHECK(back.method == r.method);
  CHECK(back.path == r.path);
  CHECK(back.query == r.query);
  CHECK(back.status_code == r.status_code);
  CHECK(std::isinf(back.wall_time));
  CHECK(std::bit_cast<uint64_t>(back.cpu_time) == std::bit_cast<uint64_t>(-0.0));
  CHECK(back.remote_ip == r.remote_ip);
  CHECK(back.remote_addr == r.remote_addr);  // parsed once, at decode
  CHECK(back.remote_addr.has_value());
  CHECK(back.host == r.host);
  CHECK(back.user_agent == r.user_agent);
  CHECK(back.referer == r.referer);
  CHECK(back.http_version == r.http_version);
  CHECK(back.instance == r.instance);
  CHECK(back.request_bytes == -1);
  CHECK(back.response_bytes == r.response_bytes);
  CHECK(back.random == r.random);
  CHECK(back.headers == r.headers);
  CHECK(back.tags == r.tags);
  back.id = r.id;
  CHECK(to_json(back) == to_json(r));  // what the API serves equals the live record
}

TEST_CASE("binary records follow one another; skip and decode agree on the boundaries") {
  Record a = every_field(), b, c;
  b.method = "GET";
  b.path = "/";
  b.status_code = 200;
  c.random = std::nan("");
  std::string body = encode(a) + encode(b) + encode(c);
  std::string_view skip = body, dec = body;
  for (const Record* want : {&a, &b, &c}) {
    REQUIRE(skip_binary(skip));
    Record got;
    REQUIRE(decode_binary(dec, got).ok());
    CHECK(skip.size() == dec.size());
    got.id = want->id;
    CHECK(to_json(got) == to_json(*want));
  }
  CHECK(skip.empty());
  CHECK_FALSE(skip_binary(skip));  // nothing left
}

TEST_CASE("format 1 records, written before `instance` existed, still decode") {
  // Format 1 is format 2 without the last string (instance). For a record
  // with an empty instance and no headers or tags, format 2 ends with three
  // zero bytes (instance length, header count, tag count); format 1 with two.
  Record r;
  r.method = "GET";
  r.path = "/old";
  r.status_code = 200;
  const std::string v2 = encode(r);
  REQUIRE(v2.substr(v2.size() - 3) == std::string(3, '\0'));
  std::string v1 = v2.substr(0, v2.size() - 1);
  v1[0] = 1;
  std::string_view in = v1;
  Record back;
  back.instance = "stale";
  REQUIRE(decode_binary(in, back).ok());
  CHECK(in.empty());
  CHECK(back.instance.empty());
  CHECK(back.path == "/old");
  CHECK(back.status_code == 200);
}

TEST_CASE("binary decoding refuses every truncation and leaves the input alone") {
  const std::string enc = encode(every_field());
  for (size_t n = 0; n < enc.size(); ++n) {
    const std::string_view prefix(enc.data(), n);
    std::string_view a = prefix, b = prefix;
    Record r;
    INFO("prefix of " << n << " bytes");
    CHECK_FALSE(decode_binary(a, r).ok());
    CHECK_FALSE(skip_binary(b));
    CHECK(a.size() == n);
    CHECK(b.size() == n);
  }
}

TEST_CASE("binary decoding refuses malformed input") {
  Record r;
  SUBCASE("unknown format byte") {
    std::string enc = encode(Record{});
    enc[0] = 3;
    std::string_view in = enc;
    const Status s = decode_binary(in, r);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(s.message().find("malformed") != std::string::npos);
    CHECK_FALSE(skip_binary(in));
  }
  SUBCASE("a status code outside int") {
    // A default record's encoding: format byte, 4 doubles, then status 0 in
    // one byte; put 2^40 (zigzag 2^41, six varint bytes) in its place.
    const std::string enc = encode(Record{});
    const std::string bad = enc.substr(0, 33) + "\x80\x80\x80\x80\x80\x40" + enc.substr(34);
    std::string_view in = bad;
    CHECK_FALSE(decode_binary(in, r).ok());
    CHECK_FALSE(skip_binary(in));
    // The same bytes with a status in range decode.
    const std::string good = enc.substr(0, 33) + "\xC8\x03" + enc.substr(34);  // zigzag(228) = 456
    std::string_view ok = good;
    REQUIRE(decode_binary(ok, r).ok());
    CHECK(r.status_code == 228);
  }
  SUBCASE("a pair count beyond what the input can hold") {
    std::string enc = encode(Record{});
    // The header count is the second-to-last byte (0), then the tag count.
    enc[enc.size() - 2] = 0x7F;
    std::string_view in = enc;
    CHECK_FALSE(decode_binary(in, r).ok());
    CHECK_FALSE(skip_binary(in));
  }
  SUBCASE("a string length beyond the input") {
    std::string enc = encode(Record{});
    enc[36] = 0x7F;  // method's length: after 1 + 32 + three 1-byte varints
    std::string_view in = enc;
    CHECK_FALSE(decode_binary(in, r).ok());
    CHECK_FALSE(skip_binary(in));
  }
  SUBCASE("a varint longer than 10 bytes") {
    std::string enc = encode(Record{});
    std::string bad = enc.substr(0, 33) + std::string(11, '\x80') + enc.substr(33);
    std::string_view in = bad;
    CHECK_FALSE(decode_binary(in, r).ok());
    CHECK_FALSE(skip_binary(in));
  }
}

TEST_CASE("a typical record's binary form is well under half its JSON") {
  Record r;
  r.id = 123456;
  r.time = 1795395121.7779438;
  r.method = "GET";
  r.path = "/api/hello";
  r.status_code = 200;
  r.wall_time = 0.039965;
  r.cpu_time = 0.039775;
  r.set_remote_ip("127.0.0.1");
  r.host = "127.0.0.1:18556";
  r.http_version = "1.1";
  r.response_bytes = 149;
  r.random = 0.9676803313828858;
  r.headers = {{"host", "127.0.0.1:18556"}};
  const size_t binary = encode(r).size(), json = to_json(r).size();
  INFO("binary " << binary << " bytes, JSON " << json << " bytes");
  CHECK(binary * 3 < json);
}

}  // namespace clio
