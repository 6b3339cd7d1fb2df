// The channel's wire vocabulary (see channel/PROTOCOL.md): subprotocol names,
// close codes, parsing of what a client sends (the Sec-WebSocket-Protocol
// offer and client frames) and encoding of server frames. Used by the service,
// its tests and the frame fuzzer; apps only need channel.h.
//
//   auto offer = clio::channel::protocol::parse_offer("clio.v1, clio-token.abc");
//   if (offer.ok() && offer->has_protocol) verify(offer->token);
//   std::string f = clio::channel::protocol::encode_message("e1f2", 7, R"({"a":1})");
//   std::string t = clio::channel::protocol::encode_message("e1f2", 8, text_data("hi"));
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "clio/base/status.h"

namespace clio::channel::protocol {

inline constexpr std::string_view kSubprotocol = "clio.v1";
inline constexpr std::string_view kTokenPrefix = "clio-token.";
inline constexpr std::string_view kResumePrefix = "clio-resume.";

// Close codes. 4000-4099: do not reconnect. 4100-4199: reconnect (resume).
enum CloseCode : int {
  kNormal = 1000,
  kMessageTooBig = 1009,
  kSuperseded = 4000,      // another connection took this client id
  kRevoked = 4001,         // the app revoked the client
  kProtocolError = 4002,   // the client sent something malformed
  kTokenExpired = 4100,    // refresh the token, then reconnect
  kTooSlow = 4101,         // the client did not read; reconnect and resume
  kHeartbeatTimeout = 4102,// nothing received for heartbeat_timeout
  kReconnect = 4103,       // the app asked the client to reconnect
  kShuttingDown = 4104,    // the server is stopping; reconnect with backoff
};
// True for close codes after which a client must not reconnect.
bool is_final_close(int code);

// What a client offered in Sec-WebSocket-Protocol.
struct Offer {
  bool has_protocol = false;  // "clio.v1" was offered
  std::string token;          // from "clio-token.<token>", or empty
  bool has_resume = false;    // "clio-resume.<epoch>.<seq>" was offered
  std::string epoch;
  uint64_t seq = 0;
};
// Parses the comma-separated header value. Unknown values are ignored; a
// malformed resume value or more than one token is an error.
Result<Offer> parse_offer(std::string_view header);

// A frame a client sent (JSON text: {"t":"hb"} or {"t":"refresh","token":..}).
struct ClientFrame {
  enum class Type { kHeartbeat, kRefresh, kUnknown };
  Type type = Type::kUnknown;
  std::string token;  // kRefresh only
};
// Errors: not JSON, not an object, no string "t", refresh without a token, or
// longer than max_bytes.
Result<ClientFrame> parse_client_frame(std::string_view text, size_t max_bytes);

// Server frames. Every frame the service writes is built by these, so the
// frame fuzzer covers what production sends.

// The data of a text message: `text` as a JSON string literal (invalid UTF-8
// bytes become U+FFFD, so the frame stays valid text).
std::string text_data(std::string_view text);
// Nesting accepted in pre-encoded JSON data (objects and arrays).
inline constexpr size_t kMaxJsonDepth = 64;
// OK when `json` is exactly one JSON value (RFC 8259; whitespace around it
// allowed), UTF-8, nested at most kMaxJsonDepth deep. Linear time, no
// allocation. Otherwise kInvalidArgument naming the byte offset.
Status validate_json_value(std::string_view json);
// {"t":"msg","epoch":E,"seq":N,"data":<data>}: `data` is one JSON value
// (text_data, or JSON that passed validate_json_value), spliced in as is.
std::string encode_message(std::string_view epoch, uint64_t seq, std::string_view data);
// {"t":"gap","epoch":E,"from":F,"to":T,"lost":T-F+1} (lost null when !known).
std::string encode_gap(std::string_view epoch, uint64_t from, uint64_t to, bool known);
// The gap of a resume from another epoch: from, to and lost are null.
std::string encode_epoch_gap(std::string_view epoch);
// What the welcome frame tells a new session.
struct Welcome {
  std::string_view epoch;
  std::string_view client_id;
  uint64_t seq = 0;  // the client has everything through this seq
  bool resumed = false;
  int64_t expires_at = 0;  // unix seconds
  int64_t now = 0;
  int64_t heartbeat_ms = 0;
  int64_t heartbeat_timeout_ms = 0;
  size_t max_message_bytes = 0;
};
std::string encode_welcome(const Welcome& w);
// {"t":"refreshed","expires_at":N}
std::string encode_refreshed(int64_t expires_at);
// {"t":"error","code":C,"message":M}
std::string encode_error(std::string_view code, std::string_view message);
inline constexpr std::string_view kHeartbeatFrame = R"({"t":"hb"})";
// The payload of a close frame: the code, then `reason` cut to 120 bytes.
std::string close_payload(int code, std::string_view reason);

// The header of an unmasked server frame (FIN set) carrying `len` bytes.
// Appends 2, 4 or 10 bytes to `out`.
void append_frame_header(std::string& out, int opcode, uint64_t len);

}  // namespace clio::channel::protocol
