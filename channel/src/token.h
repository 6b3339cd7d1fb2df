// Channel tokens: "v1.<b64url client id>.<issued ms>.<expires s>.<b64url mac>",
// where mac = HMAC-SHA256(key, "clio-channel-token-v1\n" id "\n" issued "\n"
// expires). Only characters valid in an HTTP token ([A-Za-z0-9_.-]), so the
// token fits in Sec-WebSocket-Protocol.
//
//   TokenSigner s(key);
//   std::string t = s.issue("alice", now, now + 7200);
//   auto c = s.verify(t, now);   // c->client_id == "alice"
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "clio/base/status.h"

namespace clio::channel {

struct TokenClaims {
  std::string client_id;
  int64_t issued_at = 0;   // unix milliseconds (orders tokens against revocations)
  int64_t expires_at = 0;  // unix seconds
};

// Const methods are thread-safe, non-const methods need external
// synchronization (it has none after construction).
class TokenSigner {
 public:
  explicit TokenSigner(std::string key) : key_(std::move(key)) {}

  std::string issue(const std::string& client_id, int64_t issued_at, int64_t expires_at) const;
  // kPermissionDenied with a short reason for anything malformed, forged or
  // expired at `now`.
  Result<TokenClaims> verify(std::string_view token, int64_t now) const;

 private:
  std::string mac(std::string_view id, int64_t issued, int64_t expires) const;

  const std::string key_;
};

// `n` cryptographically random bytes, hex encoded (2n characters).
std::string random_hex(size_t n);
// base64url without padding, and its inverse (nullopt-like: false on error).
std::string base64url_encode(std::string_view in);
bool base64url_decode(std::string_view in, std::string* out);

}  // namespace clio::channel
