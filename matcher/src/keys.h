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
    case FieldType::kIp: encode_ip(k, v.ip.masked(prefix)); return true;
  }
  return false;
}

}  // namespace clio::matcher::internal
