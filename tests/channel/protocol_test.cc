// Unit tests of the wire vocabulary and tokens (no server).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "clio/channel/protocol.h"
#include "token.h"

namespace proto = clio::channel::protocol;
using clio::channel::TokenSigner;

TEST_CASE("parse_offer reads protocol, token and resume point") {
  auto o = proto::parse_offer("clio.v1, clio-token.v1.YWxpY2U.1.2.abc , clio-resume.00ff.42");
  REQUIRE(o.ok());
  CHECK(o->has_protocol);
  CHECK(o->token == "v1.YWxpY2U.1.2.abc");
  CHECK(o->has_resume);
  CHECK(o->epoch == "00ff");
  CHECK(o->seq == 42);

  auto bare = proto::parse_offer("chat, clio.v1");
  REQUIRE(bare.ok());
  CHECK(bare->has_protocol);
  CHECK(bare->token.empty());
  CHECK_FALSE(bare->has_resume);

  auto none = proto::parse_offer("");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_protocol);
}

TEST_CASE("parse_offer rejects malformed values") {
  const char* bad[] = {
      "clio.v1, clio-token.a, clio-token.b",  // two tokens
      "clio.v1, clio-resume.00ff",            // no seq
      "clio.v1, clio-resume.XYZ.1",           // epoch not lowercase hex
      "clio.v1, clio-resume.00ff.-1",         // negative seq
      "clio.v1, clio-resume.00ff.1x",         // trailing junk
      "clio.v1, clio-resume..1",              // empty epoch
      "clio.v1, clio-resume.00ff.99999999999999999999999",  // overflow
  };
  for (const char* h : bad) {
    CAPTURE(h);
    CHECK_FALSE(proto::parse_offer(h).ok());
  }
}

TEST_CASE("parse_client_frame accepts heartbeats and refreshes, rejects junk") {
  auto hb = proto::parse_client_frame(R"({"t":"hb"})", 1024);
  REQUIRE(hb.ok());
  CHECK(hb->type == proto::ClientFrame::Type::kHeartbeat);
  auto r = proto::parse_client_frame(R"({"t":"refresh","token":"abc"})", 1024);
  REQUIRE(r.ok());
  CHECK(r->type == proto::ClientFrame::Type::kRefresh);
  CHECK(r->token == "abc");
  auto future = proto::parse_client_frame(R"({"t":"ack","seq":3})", 1024);
  REQUIRE(future.ok());
  CHECK(future->type == proto::ClientFrame::Type::kUnknown);

  const char* bad[] = {"", "not json", "[1,2]", R"({"x":1})", R"({"t":5})", R"({"t":"refresh"})",
                       R"({"t":"refresh","token":7})", "{\"t\":\"hb\""};
  for (const char* f : bad) {
    CAPTURE(f);
    CHECK_FALSE(proto::parse_client_frame(f, 1024).ok());
  }
  CHECK_FALSE(proto::parse_client_frame(std::string(2000, ' ') + R"({"t":"hb"})", 1024).ok());
}

TEST_CASE("encode_message produces JSON that round-trips any text") {
  const std::string tricky = std::string("quote\" backslash\\ nl\n tab\t ctl\x01 nul") + '\0' +
                             " utf8 \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 </script>";
  const std::string f = proto::encode_message("0a1b", 7, proto::text_data(tricky));
  auto j = nlohmann::json::parse(f);
  CHECK(j["t"] == "msg");
  CHECK(j["epoch"] == "0a1b");
  CHECK(j["seq"] == 7);
  CHECK(j["data"] == tricky);
}

TEST_CASE("invalid UTF-8 becomes U+FFFD instead of breaking the frame") {
  const std::string bad = "a\xFF" "b\xC3" "c\xED\xA0\x80" "d\xC0\xAF";  // stray, truncated, surrogate, overlong
  auto j = nlohmann::json::parse(proto::text_data(bad));  // throws if invalid
  const std::string r = j.get<std::string>();
  CHECK(r.find('a') == 0);
  CHECK(r.find("\xEF\xBF\xBD") != std::string::npos);
  CHECK(r.find('d') != std::string::npos);
}

TEST_CASE("encode_message splices pre-encoded JSON data as the value itself") {
  const std::string data = R"({"kind":"matches","items":[{"subscriptions":[1,2],"record":{"path":"/a\"b"}}]})";
  REQUIRE(proto::validate_json_value(data).ok());
  auto j = nlohmann::json::parse(proto::encode_message("0a1b", 9, data));
  CHECK(j["seq"] == 9);
  CHECK(j["data"] == nlohmann::json::parse(data));
  CHECK(j["data"]["items"][0]["record"]["path"] == "/a\"b");
}

TEST_CASE("validate_json_value accepts exactly one JSON value") {
  const std::string deep_ok = std::string(proto::kMaxJsonDepth, '[') + std::string(proto::kMaxJsonDepth, ']');
  const std::string good[] = {"0", "-0", "-12.5e+3", "1E2", "true", "false", "null", R"("")",
                              R"("\u00e9\n\"\\\/")", "\"\xC3\xA9\xF0\x9F\x98\x80\"", "[]", "{}", " \t\r\n[1, 2] ",
                              R"({"a":{"b":[null,{"c":"d"}]},"e":-1})", R"("\ud800")", deep_ok};
  for (const std::string& g : good) {
    CAPTURE(g);
    CHECK(proto::validate_json_value(g).ok());
  }
  const std::string bad[] = {"", " ", "01", "1.", ".5", "-", "+1", "1e", "0x10", "tru", "nul", "True", "NaN",
                             "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{a:1}", "{\"a\":1,}", "{'a':1}", "[1 2]",
                             "[", "]", "{", "[}", "{]", "1 2", "{} {}", "\"abc", "\"a\\x\"", "\"\\u12g4\"",
                             std::string("\"a\x01\""), "\"\xFF\"", "\"\xC0\xAF\"", "\"\xED\xA0\x80\"",
                             std::string("[0]\0", 4), "\xEF\xBB\xBF{}",
                             std::string(proto::kMaxJsonDepth + 1, '[') + std::string(proto::kMaxJsonDepth + 1, ']')};
  for (const std::string& b : bad) {
    CAPTURE(b);
    auto st = proto::validate_json_value(b);
    CHECK_FALSE(st.ok());
    CHECK(st.message().find("at byte") != std::string::npos);
  }
}

TEST_CASE("every server frame encoder produces a JSON object") {
  const std::string odd = "quote\" \xFF ctl\x02";
  const std::string frames[] = {
      proto::encode_gap("0a", 3, 7, true), proto::encode_gap("0a", 3, 7, false), proto::encode_epoch_gap("0a"),
      proto::encode_welcome({.epoch = "0a", .client_id = odd, .seq = 4, .resumed = true, .expires_at = 9}),
      proto::encode_refreshed(12), proto::encode_error("refresh_rejected", odd), std::string(proto::kHeartbeatFrame)};
  for (const std::string& f : frames) {
    CAPTURE(f);
    auto j = nlohmann::json::parse(f);
    CHECK(j.is_object());
    CHECK(j["t"].is_string());
  }
  auto gap = nlohmann::json::parse(frames[0]);
  CHECK(gap["lost"] == 5);
  CHECK(nlohmann::json::parse(frames[1])["lost"].is_null());
  auto welcome = nlohmann::json::parse(frames[3]);
  CHECK(welcome["seq"] == 4);
  CHECK(welcome["resumed"] == true);
  const std::string close = proto::close_payload(4101, std::string(200, 'x'));
  CHECK(close.size() == 122);
  CHECK(static_cast<unsigned char>(close[0]) == 0x10);
  CHECK(static_cast<unsigned char>(close[1]) == 0x05);
}

TEST_CASE("frame headers use 7-bit, 16-bit and 64-bit lengths") {
  std::string h;
  proto::append_frame_header(h, 1, 125);
  CHECK(h.size() == 2);
  CHECK(static_cast<unsigned char>(h[0]) == 0x81);
  CHECK(static_cast<unsigned char>(h[1]) == 125);
  h.clear();
  proto::append_frame_header(h, 1, 126);
  CHECK(h.size() == 4);
  CHECK(static_cast<unsigned char>(h[1]) == 126);
  CHECK(static_cast<unsigned char>(h[3]) == 126);
  h.clear();
  proto::append_frame_header(h, 8, 70000);
  CHECK(h.size() == 10);
  CHECK(static_cast<unsigned char>(h[0]) == 0x88);
  CHECK(static_cast<unsigned char>(h[1]) == 127);
  CHECK(static_cast<unsigned char>(h[7]) == 0x01);  // 70000 = 0x011170
  CHECK(static_cast<unsigned char>(h[8]) == 0x11);
  CHECK(static_cast<unsigned char>(h[9]) == 0x70);
}

TEST_CASE("close codes: 40xx final, everything else reconnects") {
  CHECK(proto::is_final_close(proto::kSuperseded));
  CHECK(proto::is_final_close(proto::kRevoked));
  CHECK(proto::is_final_close(proto::kProtocolError));
  CHECK_FALSE(proto::is_final_close(proto::kTokenExpired));
  CHECK_FALSE(proto::is_final_close(proto::kShuttingDown));
  CHECK_FALSE(proto::is_final_close(1006));
}

TEST_CASE("tokens verify, and tampering, another key or expiry is rejected") {
  TokenSigner s("key-one");
  const std::string t = s.issue("alice", 1000, 2000);
  auto ok = s.verify(t, 1500);
  REQUIRE(ok.ok());
  CHECK(ok->client_id == "alice");
  CHECK(ok->issued_at == 1000);
  CHECK(ok->expires_at == 2000);
  for (char c : t) {
    const bool http_token_char = isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    CHECK(http_token_char);
  }

  CHECK_FALSE(s.verify(t, 2000).ok());                 // expired
  CHECK_FALSE(TokenSigner("key-two").verify(t, 1500).ok());  // other server
  const std::string bob = s.issue("bob", 1000, 2000);
  // alice's header with bob's signature
  const std::string spliced = t.substr(0, t.rfind('.')) + bob.substr(bob.rfind('.'));
  CHECK_FALSE(s.verify(spliced, 1500).ok());
  std::string later = t;
  later.replace(later.find(".2000."), 6, ".9000.");  // extend expiry
  CHECK_FALSE(s.verify(later, 1500).ok());
  const char* junk[] = {"", "v1", "v1.....", "v2.YWxpY2U.1000.2000.x", "v1.!!!.1000.2000.abc", "v1.YWxpY2U.-1.2000.abc"};
  for (const char* j : junk) {
    CAPTURE(j);
    CHECK_FALSE(s.verify(j, 1500).ok());
  }
  CHECK_FALSE(s.verify(std::string(600, 'a'), 1500).ok());
}

TEST_CASE("base64url round-trips and rejects non-canonical input") {
  for (std::string in : {std::string(""), std::string("a"), std::string("ab"), std::string("abc"),
                         std::string("\xFF\x00\x10", 3)}) {
    std::string out;
    REQUIRE(clio::channel::base64url_decode(clio::channel::base64url_encode(in), &out));
    CHECK(out == in);
  }
  std::string out;
  CHECK_FALSE(clio::channel::base64url_decode("a", &out));
  CHECK_FALSE(clio::channel::base64url_decode("ab+/", &out));
  CHECK_FALSE(clio::channel::base64url_decode("YR", &out));  // stray low bits
}
