// Small ASCII text helpers shared by the parser, the evaluator and the engine.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace clio::matcher::text {

inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

// True if `needle` (already ASCII lower-case) occurs in `hay`, comparing ASCII
// letters case-insensitively and every other byte exactly.
inline bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  if (needle.size() > hay.size()) return false;
  const size_t last = hay.size() - needle.size();
  for (size_t i = 0; i <= last; ++i) {
    if (lower(hay[i]) != needle[0]) continue;
    size_t k = 1;
    while (k < needle.size() && lower(hay[i + k]) == needle[k]) ++k;
    if (k == needle.size()) return true;
  }
  return false;
}

// True if `needle` (lower-case) occurs in `hay` at position `pos`.
inline bool iprefix_at(std::string_view hay, size_t pos, std::string_view needle) {
  if (pos + needle.size() > hay.size()) return false;
  for (size_t k = 0; k < needle.size(); ++k) {
    if (lower(hay[pos + k]) != needle[k]) return false;
  }
  return true;
}

}  // namespace clio::matcher::text
