// Admin authentication for everything under the console prefix. Fails closed:
// a request is allowed only with a valid admin key (Bearer) or a valid,
// unexpired session cookie; state-changing requests with a cookie also need
// the CSRF header, and WebSocket upgrades with a cookie need a same-origin
// Origin header.
//
// Session cookies are stateless: "v1.<expiry>.<nonce>.<mac>", the MAC an
// HMAC-SHA256 under a key kept in the store, so sessions survive a restart.
// The CSRF token is derived from the cookie's nonce with the same key.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace clio::console {

// Safe for concurrent use by multiple threads.
class AdminAuth {
 public:
  struct Options {
    std::string admin_key;         // the key admins present
    std::string session_key;       // HMAC key for cookies and CSRF tokens
    std::chrono::seconds session_ttl{12 * 3600};
    std::chrono::seconds login_code_ttl{15 * 60};
    std::vector<std::string> allowed_origins;  // extra origins for cookie-authenticated upgrades
  };
  explicit AdminAuth(Options options);

  // Constant-time comparison of a presented key with the admin key.
  bool key_ok(std::string_view presented) const;

  // A new session cookie value and its CSRF token.
  struct Session {
    std::string cookie;
    std::string csrf;
    int64_t expires_at = 0;
  };
  Session new_session(int64_t now) const;
  // The CSRF token of a valid cookie value, or "" when the cookie is invalid,
  // expired or revoked.
  std::string check_session(std::string_view cookie, int64_t now) const;
  // Revokes a cookie (logout) until it expires or the process restarts.
  void revoke(std::string_view cookie);

  // A one-time login code, valid once for login_code_ttl.
  std::string new_login_code(int64_t now);
  // True (and the code is spent) when `code` is a live one-time code.
  bool redeem_login_code(std::string_view code, int64_t now);

  // Whether `origin` may open a cookie-authenticated WebSocket to a server
  // reached as `host` (the Host header): same origin or an allowed one.
  bool origin_ok(std::string_view origin, std::string_view host) const;

  // Failed logins in the current minute; refuse more than kMaxFailuresPerMinute.
  bool login_throttled(int64_t now);
  void note_login_failure(int64_t now);
  static constexpr int kMaxFailuresPerMinute = 20;

 private:
  std::string mac(std::string_view data) const;

  // Constant after construction.
  const Options options_;

  mutable std::mutex mu_;
  // Guarded by mu_.
  std::unordered_map<std::string, int64_t> login_codes_;  // code -> expiry
  std::unordered_set<std::string> revoked_;               // revoked cookie nonces
  int64_t failure_minute_ = 0;
  int failures_ = 0;
};

// Random bytes from OpenSSL, base64url-encoded without padding.
std::string random_token(size_t bytes);
std::string base64url(std::string_view bytes);
std::string hmac_sha256(std::string_view key, std::string_view data);

}  // namespace clio::console
