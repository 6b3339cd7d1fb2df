// Admin authentication for everything under the console prefix. Fails closed:
// a request is allowed only with a valid admin key (Bearer) or a valid,
// unexpired session cookie (the HTTP layer adds the CSRF header and Origin
// checks).
//
// Session cookies are stateless: "v1.<expiry>.<nonce>.<mac>", the MAC an
// HMAC-SHA256 under a key kept in the store, so sessions survive a restart.
// The CSRF token is derived from the cookie's nonce with the same key.
// Logging out revokes one cookie's nonce (the hub stores it, so it stays
// revoked across restarts); logging out everywhere replaces the key.
//
//   AdminAuth auth({.admin_key = key, .session_key = stored});
//   AdminAuth::Session s = auth.new_session(now);       // s.cookie -> Set-Cookie
//   std::string csrf = auth.check_session(cookie, now); // "" = not a live session
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "clio/base/mutex.h"

namespace clio::console {

// Safe for concurrent use by multiple threads.
class AdminAuth {
 public:
  struct Options {
    std::string admin_key;         // the key admins present
    std::string session_key;       // HMAC key for cookies and CSRF tokens
    std::chrono::seconds session_ttl{12 * 3600};
    std::chrono::seconds login_code_ttl{15 * 60};
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

  // What identifies a session for revocation: its nonce and expiry.
  struct SessionId {
    std::string nonce;
    int64_t expires_at = 0;
  };
  // The id of a cookie this server signed that has not expired, whether
  // revoked or not; nullopt otherwise.
  std::optional<SessionId> session_id(std::string_view cookie, int64_t now) const;
  // Refuses the session from now on (until it expires). The caller makes
  // it durable (the store) and restores stored revocations at start.
  void revoke(const SessionId& id, int64_t now);
  // Replaces the session-signing key: every cookie and CSRF token issued
  // before stops working ("log out everywhere").
  void set_session_key(std::string key);

  // A one-time login code, valid once for login_code_ttl.
  std::string new_login_code(int64_t now);
  // True (and the code is spent) when `code` is a live one-time code.
  bool redeem_login_code(std::string_view code, int64_t now);

 private:
  std::string mac(std::string_view data) const;

  // Constant after construction.
  const std::string admin_key_;
  const std::chrono::seconds session_ttl_, login_code_ttl_;

  mutable Mutex mu_;
  // Guarded by mu_.
  std::string session_key_ CLIO_GUARDED_BY(mu_);
  std::unordered_map<std::string, int64_t> login_codes_ CLIO_GUARDED_BY(mu_);  // code -> expiry
  std::unordered_map<std::string, int64_t> revoked_ CLIO_GUARDED_BY(mu_);  // revoked cookie nonce -> its expiry
};

// Random bytes from OpenSSL, base64url-encoded without padding.
std::string random_token(size_t bytes);
std::string base64url(std::string_view bytes);
std::string hmac_sha256(std::string_view key, std::string_view data);

}  // namespace clio::console
