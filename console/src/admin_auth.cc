#include "admin_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <stdexcept>

namespace clio::console {

std::string base64url(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  if (bytes.size() - i == 1) {
    const uint32_t v = byte(i) << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
  } else if (bytes.size() - i == 2) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
  }
  return out;
}

std::string random_token(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    // Without randomness no secret can be made safely: stop rather than
    // hand out guessable credentials.
    std::abort();
  }
  return base64url(raw);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

namespace {

bool ct_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Splits "v1.<expiry>.<nonce>.<mac>".
bool split_cookie(std::string_view c, std::string_view& expiry, std::string_view& nonce,
                  std::string_view& mac) {
  if (c.substr(0, 3) != "v1.") return false;
  c.remove_prefix(3);
  const size_t a = c.find('.');
  if (a == std::string_view::npos) return false;
  const size_t b = c.find('.', a + 1);
  if (b == std::string_view::npos) return false;
  expiry = c.substr(0, a);
  nonce = c.substr(a + 1, b - a - 1);
  mac = c.substr(b + 1);
  return !expiry.empty() && !nonce.empty() && !mac.empty() && expiry.size() <= 12;
}

}  // namespace

AdminAuth::AdminAuth(Options options)
    : admin_key_(std::move(options.admin_key)),
      session_ttl_(options.session_ttl),
      login_code_ttl_(options.login_code_ttl),
      session_key_(std::move(options.session_key)) {}

bool AdminAuth::key_ok(std::string_view presented) const {
  // Compare MACs of both so the comparison time does not depend on lengths.
  return !admin_key_.empty() && ct_equal(mac("key:" + std::string(presented)), mac("key:" + admin_key_));
}

std::string AdminAuth::mac(std::string_view data) const {
  std::string key;
  {
    MutexLock lock(&mu_);
    key = session_key_;
  }
  return base64url(hmac_sha256(key, data));
}

void AdminAuth::set_session_key(std::string key) {
  MutexLock lock(&mu_);
  session_key_ = std::move(key);
  revoked_.clear();  // nothing signed with the old key passes any more
}

AdminAuth::Session AdminAuth::new_session(int64_t now) const {
  Session s;
  s.expires_at = now + session_ttl_.count();
  const std::string nonce = random_token(18);
  const std::string body = "v1." + std::to_string(s.expires_at) + "." + nonce;
  s.cookie = body + "." + mac(body);
  s.csrf = mac("csrf:" + nonce);
  return s;
}

std::optional<AdminAuth::SessionId> AdminAuth::session_id(std::string_view cookie, int64_t now) const {
  std::string_view expiry, nonce, m;
  if (!split_cookie(cookie, expiry, nonce, m)) return std::nullopt;
  const std::string body = "v1." + std::string(expiry) + "." + std::string(nonce);
  if (!ct_equal(m, mac(body))) return std::nullopt;
  char* end = nullptr;
  const std::string e(expiry);
  const long long exp = std::strtoll(e.c_str(), &end, 10);
  if (*end != '\0' || exp < now) return std::nullopt;
  return SessionId{std::string(nonce), exp};
}

std::string AdminAuth::check_session(std::string_view cookie, int64_t now) const {
  auto id = session_id(cookie, now);
  if (!id) return "";
  {
    MutexLock lock(&mu_);
    if (revoked_.count(id->nonce)) return "";
  }
  return mac("csrf:" + id->nonce);
}

void AdminAuth::revoke(const SessionId& id, int64_t now) {
  MutexLock lock(&mu_);
  for (auto it = revoked_.begin(); it != revoked_.end();) {
    it = it->second < now ? revoked_.erase(it) : std::next(it);
  }
  if (id.expires_at >= now) revoked_[id.nonce] = id.expires_at;
}

std::string AdminAuth::new_login_code(int64_t now) {
  std::string code = random_token(18);
  MutexLock lock(&mu_);
  for (auto it = login_codes_.begin(); it != login_codes_.end();) {
    it = it->second < now ? login_codes_.erase(it) : std::next(it);
  }
  login_codes_[code] = now + login_code_ttl_.count();
  return code;
}

bool AdminAuth::redeem_login_code(std::string_view code, int64_t now) {
  MutexLock lock(&mu_);
  auto it = login_codes_.find(std::string(code));
  if (it == login_codes_.end()) return false;
  const bool live = it->second >= now;
  login_codes_.erase(it);
  return live;
}

}  // namespace clio::console
