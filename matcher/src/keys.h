// Byte encodings of values inside index keys, shared by the planner (which
// encodes literals) and the index (which encodes a record's values the same
// way). Private to clio::matcher.
//
//   std::string k;
//   append_varint(k, spec);
//   encode_value(FieldType::kIp, record_value, /*prefix=*/104, k);  // an IPv4 /8
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "clio/matcher/schema.h"

namespace clio::matcher::internal {

// Keys are short byte strings (most fit std::string's inline buffer):
// varints for ids, lengths and integers; IPv4 addresses in 4 bytes.
inline void append_varint(std::string& k, uint64_t v) {
  while (v >= 0x80) {
    k.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  k.push_back(static_cast<char>(v));
}

inline void encode_int(std::string& k, int64_t v) {
  append_varint(k, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));  // zigzag
}

inline void encode_float(std::string& k, double v) {
  if (v == 0) v = 0;  // -0 and 0 are one key
  k.append(reinterpret_cast<const char*>(&v), sizeof v);
}

inline void encode_str(std::string& k, std::string_view s) {
  append_varint(k, s.size());
  k.append(s);
}

inline void encode_ip(std::string& k, const IpAddr& ip) {
  if (ip.is_v4()) {
    k.push_back('4');
    k.append(reinterpret_cast<const char*>(&ip.bytes[12]), 4);
  } else {
    k.push_back('6');
    k.append(reinterpret_cast<const char*>(ip.bytes.data()), 16);
  }
}

// The same bytes as encode_ip(k, ip.masked(prefix)), without copying the
// address for the common IPv4 case.
inline void encode_ip_masked(std::string& k, const IpAddr& ip, uint8_t prefix) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  if (prefix >= 96 && std::memcmp(ip.bytes.data(), kMapped, 12) == 0) {
    uint32_t v;
    std::memcpy(&v, &ip.bytes[12], 4);
    const int keep = prefix - 96;
    if (keep < 32) {
      const uint32_t mask = keep == 0 ? 0 : ~uint32_t{0} << (32 - keep);
      v &= __builtin_bswap32(mask);  // the address is in network order
    }
    k.push_back('4');
    k.append(reinterpret_cast<const char*>(&v), 4);
    return;
  }
  encode_ip(k, prefix >= 128 ? ip : ip.masked(prefix));
}

// Appends a present value of `type` (IP addresses masked to `prefix`); false
// for NaN, which equals nothing.
inline bool encode_value(FieldType type, const FieldValue& v, uint8_t prefix, std::string& k) {
  switch (type) {
    case FieldType::kString: encode_str(k, v.s); return true;
    case FieldType::kInt: encode_int(k, v.i); return true;
    case FieldType::kFloat:
      if (std::isnan(v.f)) return false;
      encode_float(k, v.f);
      return true;
    case FieldType::kIp: encode_ip_masked(k, v.ip, prefix); return true;
  }
  return false;
}

// A fast hash of short keys (8 bytes at a time, multiply-mix).
inline uint64_t key_hash(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  if (i < s.size()) {
    uint64_t w = 0;
    std::memcpy(&w, s.data() + i, s.size() - i);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 29;
  }
  return h * 0xBF58476D1CE4E5B9ull ^ (h >> 32);
}

// Substring index keys: `len` (1..kGramMax) lower-cased bytes packed with
// their length, so grams of different lengths never collide.
constexpr size_t kGramMax = 4;
inline uint64_t gram_key(std::string_view s, size_t off, size_t len) {
  uint64_t bytes = 0;
  for (size_t j = 0; j < len; ++j) bytes = (bytes << 8) | static_cast<unsigned char>(s[off + j]);
  return (static_cast<uint64_t>(len) << 32) | bytes;
}

}  // namespace clio::matcher::internal
