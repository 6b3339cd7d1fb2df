#include "clio/middleware/redact.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <unordered_map>

#include "clio/middleware/percent.h"

namespace clio {
namespace {

bool is_word_separator(char c) {
  return c == '_' || c == '-' || c == '.' || c == '[' || c == ']' || c == ' ' || c == '+';
}

// ASCII only, without the C library's locale lookups (this runs on the
// request thread for every header).
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_upper(c) || is_lower(c) || is_digit(c); }
char to_lower(char c) { return is_upper(c) ? static_cast<char>(c + ('a' - 'A')) : c; }

// Whether `s` equals the lower-case `lower`, ignoring ASCII case.
bool iequals_lower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (to_lower(s[i]) != lower[i]) return false;
  }
  return true;
}

// Finds `c` in either case in s[from..]: the first position, or npos.
size_t find_either_case(std::string_view s, char lower, size_t from) {
  const size_t a = s.find(lower, from);
  const size_t b = s.find(static_cast<char>(lower - ('a' - 'A')), from);
  return std::min(a, b);
}

bool is_base64url(char c) { return is_alnum(c) || c == '-' || c == '_'; }

bool is_token68(char c) {
  return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

// Hand-written scans: string_view::find_first_of calls memchr once per
// character, which costs more than the whole redaction of a short value.
bool needs_decoding(std::string_view s) {
  for (char c : s) {
    if (c == '%' || c == '+') return true;
  }
  return false;
}

size_t param_end(std::string_view s, size_t from) {
  for (size_t i = from; i < s.size(); ++i) {
    if (s[i] == '&' || s[i] == ';') return i;
  }
  return std::string_view::npos;
}

// Whether base64 (standard or url alphabet, padding optional) `b` decodes
// to bytes holding a ':' ("user:password").
bool base64_holds_colon(std::string_view b) {
  uint32_t acc = 0;
  int bits = 0;
  for (char c : b) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else if (c == '=') break;
    else return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (((acc >> bits) & 0xFF) == ':') return true;
    }
  }
  return false;
}

// The end of the JWT starting at `pos` ("eyJ..."), or npos.
size_t jwt_end(std::string_view s, size_t pos) {
  auto run = [&](size_t i) {
    while (i < s.size() && is_base64url(s[i])) ++i;
    return i;
  };
  size_t i = run(pos);
  if (i - pos < 8 || i >= s.size() || s[i] != '.') return std::string_view::npos;
  const size_t second = i + 1;
  i = run(second);
  if (i == second || i >= s.size() || s[i] != '.') return std::string_view::npos;
  i = run(i + 1);  // the signature, possibly empty
  for (int extra = 0; extra < 2 && i < s.size() && s[i] == '.'; ++extra) i = run(i + 1);  // a JWE's
  return i;
}

// The span [begin, end) of the credential after "Bearer " or "Basic " at
// `pos` (the scheme's first letter), or {npos, npos}.
std::pair<size_t, size_t> credential_at(std::string_view s, size_t pos) {
  const bool bearer = iequals_lower(s.substr(pos, 6), "bearer");
  const bool basic = !bearer && iequals_lower(s.substr(pos, 5), "basic");
  if (!bearer && !basic) return {std::string_view::npos, std::string_view::npos};
  size_t i = pos + (bearer ? 6 : 5);
  const size_t after_scheme = i;
  while (i < s.size() && s[i] == ' ') ++i;
  if (i == after_scheme) return {std::string_view::npos, std::string_view::npos};
  const size_t begin = i;
  while (i < s.size() && is_token68(s[i])) ++i;
  while (i < s.size() && s[i] == '=') ++i;
  const std::string_view cred = s.substr(begin, i - begin);
  const bool hides = bearer ? cred.size() >= 8 : cred.size() >= 4 && base64_holds_colon(cred);
  if (!hides) return {std::string_view::npos, std::string_view::npos};
  return {begin, i};
}

uint64_t next_redactor_id() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

std::string lowered(std::string s) {
  for (char& c : s) c = to_lower(c);
  return s;
}

std::string_view trim(std::string_view v) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  return v;
}

}  // namespace

Redactor::Redactor(RedactOptions options) : options_(std::move(options)), id_(next_redactor_id()) {
  for (const std::string& w : options_.words) {
    if (w.empty() || w.size() >= words_by_length_.size()) continue;
    words_by_length_[w.size()].push_back(lowered(w));
  }
  for (const std::string& h : options_.headers) {
    if (!h.empty() && h.size() < headers_by_length_.size()) headers_by_length_[h.size()].push_back(lowered(h));
  }
}

bool Redactor::word_matches(std::string_view w) const {
  if (w.empty() || w.size() >= words_by_length_.size()) return false;
  for (const std::string& x : words_by_length_[w.size()]) {
    if (iequals_lower(w, x)) return true;
  }
  return false;
}

bool Redactor::name_matches(std::string_view name) const {
  std::string decoded;
  if (needs_decoding(name)) {
    percent_decode(name, decoded, true);
    name = decoded;
  }
  size_t start = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    const bool end = i == name.size();
    const bool sep = !end && is_word_separator(name[i]);
    const bool camel = !end && i > start && is_upper(name[i]) && is_lower(name[i - 1]);
    if (end || sep || camel) {
      if (word_matches(name.substr(start, i - start))) return true;
      start = sep ? i + 1 : i;
    }
  }
  return false;
}

bool Redactor::is_token(std::string_view v) const {
  v = trim(v);
  size_t pad = 0;
  while (pad < 2 && pad < v.size() && v[v.size() - 1 - pad] == '=') ++pad;
  v.remove_suffix(pad);
  if (options_.token_min_length == 0 || v.size() < options_.token_min_length) return false;
  bool letter = false, digit = false;
  for (char c : v) {
    if (!is_alnum(c) && c != '+' && c != '/' && c != '_' && c != '-') return false;
    letter = letter || is_upper(c) || is_lower(c);
    digit = digit || is_digit(c);
  }
  if (!letter || !digit) return false;
  std::array<uint16_t, 128> counts{};
  for (char c : v) ++counts[static_cast<unsigned char>(c)];
  double bits = 0;
  const double n = static_cast<double>(v.size());
  for (uint16_t k : counts) {
    if (k > 0) bits -= (k / n) * std::log2(k / n);
  }
  return bits >= options_.token_min_entropy;
}

std::pair<size_t, size_t> Redactor::find_credential(std::string_view s, size_t from) const {
  constexpr size_t npos = std::string_view::npos;
  std::pair<size_t, size_t> found{npos, npos};
  if (options_.jwt) {
    // "eyJ" found by its 'J', which ordinary text seldom has.
    for (size_t j = s.find('J', from + 2); j != npos; j = s.find('J', j + 1)) {
      const size_t pos = j - 2;
      if (s[pos] != 'e' || s[pos + 1] != 'y' || (pos > 0 && is_base64url(s[pos - 1]))) continue;
      const size_t end = jwt_end(s, pos);
      if (end != npos) {
        found = {pos, end};
        break;
      }
    }
  }
  if (options_.http_credentials) {
    for (size_t i = find_either_case(s, 'b', from); i != npos && i < found.first;
         i = find_either_case(s, 'b', i + 1)) {
      if (i > 0 && is_alnum(s[i - 1])) continue;
      const auto span = credential_at(s, i);
      if (span.first != npos) {
        if (span.first < found.first) found = span;
        break;
      }
    }
  }
  return found;
}

bool Redactor::hides_value(std::string_view decoded) const {
  return is_token(decoded) || find_credential(decoded, 0).first != std::string_view::npos;
}

void Redactor::hide_credentials(std::string& s) const {
  for (size_t from = 0;;) {
    const auto [begin, end] = find_credential(s, from);
    if (begin == std::string::npos) return;
    s.replace(begin, end - begin, kRedacted);
    from = begin + kRedacted.size();
  }
}

void Redactor::query(std::string_view raw, std::string& out) const {
  out.clear();
  std::string decoded;
  size_t pos = 0;
  while (pos <= raw.size()) {
    size_t end = param_end(raw, pos);
    if (end == std::string_view::npos) end = raw.size();
    const std::string_view param = raw.substr(pos, end - pos);
    const size_t eq = param.find('=');
    const std::string_view name = param.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? param : param.substr(eq + 1);
    std::string_view plain = value;
    if (needs_decoding(value)) {
      percent_decode(value, decoded, true);
      plain = decoded;
    }
    if (eq != std::string_view::npos && name_matches(name)) {
      out.append(name).append("=").append(kRedacted);
    } else if (!value.empty() && hides_value(plain)) {
      if (eq != std::string_view::npos) out.append(name).append("=");
      out.append(kRedacted);
    } else {
      out.append(param);
    }
    if (end < raw.size()) out.push_back(raw[end]);
    pos = end + 1;
  }
}

void Redactor::url(std::string_view url, std::string& out) const {
  out.clear();
  const size_t q = url.find('?');
  const size_t frag = url.find('#');
  const size_t path_end = std::min(q, frag);
  // The path's segments (after the scheme and authority), raw in a URL.
  const size_t scheme = url.find("://");
  size_t path_begin = 0;
  if (scheme != std::string_view::npos && scheme < path_end) {
    path_begin = url.find('/', scheme + 3);
    if (path_begin == std::string_view::npos || path_begin > path_end) path_begin = std::min(path_end, url.size());
  }
  out.append(url.substr(0, path_begin));
  std::string decoded, segment;
  const std::string_view path = url.substr(path_begin, path_end == std::string_view::npos ? std::string_view::npos
                                                                                          : path_end - path_begin);
  for (size_t pos = 0; pos <= path.size();) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    const std::string_view seg = path.substr(pos, slash - pos);
    percent_decode(seg, decoded, false);  // a path: "+" is itself
    if (!seg.empty() && hides_value(decoded)) {
      out.append(kRedacted);
    } else {
      out.append(seg);
    }
    if (slash < path.size()) out.push_back('/');
    pos = slash + 1;
  }
  std::string part;
  if (q != std::string_view::npos && q < frag) {
    out.push_back('?');
    query(url.substr(q + 1, frag == std::string_view::npos ? std::string_view::npos : frag - q - 1), part);
    out.append(part);
  }
  if (frag != std::string_view::npos) {
    out.push_back('#');
    query(url.substr(frag + 1), part);
    out.append(part);
  }
  hide_credentials(out);
}

void Redactor::path(std::string& path) const {
  // `out` is built only once something changes: it then holds the redacted
  // path up to `copied` in `path`.
  std::string out, params;
  bool changed = false;
  size_t copied = 0;
  auto replace = [&](size_t begin, size_t end, std::string_view with) {
    out.append(path, copied, begin - copied).append(with);
    copied = end;
    changed = true;
  };
  for (size_t pos = 0; pos <= path.size();) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    const std::string_view seg = std::string_view(path).substr(pos, slash - pos);
    const size_t semi = seg.find(';');
    const std::string_view head = seg.substr(0, semi);
    if (!head.empty() && hides_value(head)) replace(pos, pos + head.size(), kRedacted);
    if (semi != std::string_view::npos) {  // ";name=value" parameters
      const std::string_view raw = seg.substr(semi + 1);
      query(raw, params);
      if (params != raw) replace(pos + semi + 1, slash, params);
    }
    pos = slash + 1;
  }
  if (!changed) return;
  out.append(path, copied, std::string::npos);
  path.swap(out);
}

bool Redactor::hides_header(std::string_view name) const {
  const bool listed = name.size() < headers_by_length_.size() &&
                      std::any_of(headers_by_length_[name.size()].begin(), headers_by_length_[name.size()].end(),
                                  [&](const std::string& h) { return iequals_lower(name, h); });
  return listed || name_matches(name);
}

void Redactor::header(std::string_view lower_name, std::string_view value, std::string& out) const {
  // Header names repeat from request to request: each thread keeps its
  // verdicts for the last Redactor it used, for up to kCachedNames names.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  struct Cache {
    uint64_t redactor = 0;
    std::unordered_map<std::string, bool, Hash, std::equal_to<>> hidden;
  };
  static constexpr size_t kCachedNames = 256;
  thread_local Cache cache;
  if (cache.redactor != id_ || cache.hidden.size() >= kCachedNames) {
    cache.redactor = id_;
    cache.hidden.clear();
  }
  auto it = cache.hidden.find(lower_name);
  if (it == cache.hidden.end()) it = cache.hidden.emplace(std::string(lower_name), hides_header(lower_name)).first;
  if (it->second) {
    out.assign(kRedacted);
    return;
  }
  if (lower_name == "referer") {
    url(value, out);
    return;
  }
  out.assign(value);
  this->value(out);
}

void Redactor::value(std::string& v) const {
  if (is_token(v)) {
    v.assign(kRedacted);
    return;
  }
  hide_credentials(v);
}

}  // namespace clio
