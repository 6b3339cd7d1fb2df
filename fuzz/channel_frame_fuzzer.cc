// Fuzzes what a channel client controls: the Sec-WebSocket-Protocol offer
// (token, resume point), client frames and token parsing; and what an app
// controls: the frame encoders production uses (their output must always be
// valid JSON) and the check of pre-encoded JSON data (what it accepts must
// splice into a valid frame).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "clio/channel/protocol.h"
#include "token.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  namespace proto = clio::channel::protocol;

  auto offer = proto::parse_offer(in);
  if (offer.ok() && offer->has_resume && offer->epoch.empty()) std::abort();

  auto frame = proto::parse_client_frame(in, 16 * 1024);
  if (frame.ok() && frame->type == proto::ClientFrame::Type::kRefresh && in.find("token") == std::string_view::npos) {
    std::abort();
  }

  static const clio::channel::TokenSigner signer("fuzz-secret");
  auto claims = signer.verify(in, 1);
  if (claims.ok() && signer.issue(claims->client_id, claims->issued_at, claims->expires_at) != in) std::abort();

  auto parses = [](const std::string& frame) {
    auto j = nlohmann::json::parse(frame, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("t")) std::abort();
    return j;
  };
  auto text = parses(proto::encode_message("00ff", 1, proto::text_data(in)));
  if (text["seq"] != 1 || !text["data"].is_string()) std::abort();
  // What the check accepts, spliced, is the value itself. nlohmann refuses
  // some valid JSON that browsers take (lone surrogate escapes, numbers past
  // a double's range: JSON.parse gives Infinity), so compare where it parses.
  if (proto::validate_json_value(in).ok()) {
    auto expected = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!expected.is_discarded() && parses(proto::encode_message("00ff", 2, in))["data"] != expected) std::abort();
  }
  parses(proto::encode_welcome({.epoch = "00ff", .client_id = in, .seq = 3}));
  parses(proto::encode_error(in, in));
  parses(proto::encode_gap("00ff", 1, 2, true));
  return 0;
}
