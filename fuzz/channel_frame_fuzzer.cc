// Fuzzes what a channel client controls: the Sec-WebSocket-Protocol offer
// (token, resume point), client frames, token parsing, and the JSON string
// encoder that carries app messages (its output must always be valid JSON).
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

  const std::string msg = proto::encode_message("00ff", 1, in);
  auto j = nlohmann::json::parse(msg, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || j["seq"] != 1) std::abort();
  return 0;
}
