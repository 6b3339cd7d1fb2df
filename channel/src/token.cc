#include "token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace clio::channel {
namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

bool parse_i64(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 18 || (s.size() > 1 && s[0] == '0')) return false;  // canonical only
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size() && *out >= 0;
}

}  // namespace

std::string base64url_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                       static_cast<uint8_t>(in[i + 2]);
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back(kB64[v & 63]);
  }
  if (i + 1 == in.size()) {
    const uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
  } else if (i + 2 == in.size()) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
  }
  return out;
}

bool base64url_decode(std::string_view in, std::string* out) {
  out->clear();
  if (in.size() % 4 == 1) return false;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = b64_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Leftover bits must be zero (canonical encoding only).
  return (acc & ((1u << bits) - 1)) == 0;
}

std::string random_hex(size_t n) {
  std::vector<unsigned char> buf(n);
  if (RAND_bytes(buf.data(), static_cast<int>(n)) != 1) {
    // No entropy is a broken system, not a recoverable condition.
    std::fprintf(stderr, "clio::channel: RAND_bytes failed; refusing to run without entropy\n");
    std::abort();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : buf) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string TokenSigner::mac(std::string_view id, int64_t issued, int64_t expires) const {
  std::string msg = "clio-channel-token-v1\n";
  msg.append(id).append("\n").append(std::to_string(issued)).append("\n").append(std::to_string(expires));
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string TokenSigner::issue(const std::string& client_id, int64_t issued_at, int64_t expires_at) const {
  std::string t = "v1.";
  t.append(base64url_encode(client_id)).append(".").append(std::to_string(issued_at));
  t.append(".").append(std::to_string(expires_at)).append(".");
  t.append(base64url_encode(mac(client_id, issued_at, expires_at)));
  return t;
}

Result<TokenClaims> TokenSigner::verify(std::string_view token, int64_t now) const {
  if (token.size() > 512) return Status::PermissionDenied("token too long");
  std::string_view parts[5];
  size_t n = 0;
  while (n < 5) {
    const size_t dot = token.find('.');
    parts[n++] = token.substr(0, dot);
    if (dot == std::string_view::npos) break;
    token.remove_prefix(dot + 1);
  }
  if (n != 5 || token.find('.') != std::string_view::npos || parts[0] != "v1") {
    return Status::PermissionDenied("malformed token");
  }
  TokenClaims c;
  std::string mac_bytes;
  if (!base64url_decode(parts[1], &c.client_id) || c.client_id.empty() ||
      !parse_i64(parts[2], &c.issued_at) || !parse_i64(parts[3], &c.expires_at) ||
      !base64url_decode(parts[4], &mac_bytes)) {
    return Status::PermissionDenied("malformed token");
  }
  const std::string want = mac(c.client_id, c.issued_at, c.expires_at);
  if (mac_bytes.size() != want.size() || CRYPTO_memcmp(mac_bytes.data(), want.data(), want.size()) != 0) {
    return Status::PermissionDenied("token signature does not match");
  }
  if (now >= c.expires_at) return Status::PermissionDenied("token expired");
  return c;
}

}  // namespace clio::channel
