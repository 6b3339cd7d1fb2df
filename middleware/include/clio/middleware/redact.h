// Redaction: what Capture hides in a request's values, on the request
// thread, before the record leaves it. Two kinds of rules:
//
// By name
//   - a header listed in RedactOptions::headers (any case), or whose name
//     has a credential word (below): its whole value;
//   - a query parameter, in the query string, in the Referer's query and
//     fragment, or a ";name=value" parameter of a path segment, whose name
//     has a credential word: its value. Names are compared as the app reads
//     them: percent-decoded ('+' is a space), without regard to case, split
//     into words at '_', '-', '.', '[', ']', ' ' and lower-to-upper case
//     changes. With the default words "access_token", "tok%65n",
//     "apiKey" and "X-Auth-Sig" match; "zipcode" and "keyboard" do not.
// By shape, in every value the record keeps (path, query values, header
// values, tag values), after decoding:
//   - a JWT: "eyJ" + base64url, '.', base64url, '.', base64url (the last
//     part may be empty; up to two more ".part"s of a JWE are taken too);
//   - an HTTP credential: "Bearer " + at least 8 token68 characters, or
//     "Basic " + base64 that decodes to "user:password" (word and case as
//     the HTTP schemes: "bearer", "BASIC" match);
//   - a long high-entropy token in a known position: a whole query value,
//     path segment, header value or tag value of at least
//     token_min_length characters of [A-Za-z0-9+/_-] (and '=' padding),
//     with letters and digits, and at least token_min_entropy bits of
//     Shannon entropy per character (random base64 of 32 characters has
//     about 4.5; hex digests, UUIDs and slugged words stay below 4).
// A query value or path segment that matches is replaced whole; in other
// values only the matching credential is, the rest is kept ("Bearer
// [redacted]"). Everything replaced reads "[redacted]".
//
//   clio::Redactor r;                                  // the defaults
//   std::string q;
//   r.query("a=1&access%5Ftoken=s3cr3t", q);           // "a=1&access%5Ftoken=[redacted]"
//   r.name_matches("apiKey");                          // true
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clio {

inline constexpr std::string_view kRedacted = "[redacted]";

// The rules' settings, with the defaults Capture uses. A plain value.
struct RedactOptions {
  // Headers whose whole value is hidden (names compared without case).
  std::vector<std::string> headers = {
      "authorization", "proxy-authorization", "cookie", "set-cookie", "sec-websocket-protocol",
      "x-api-key", "x-auth-token", "x-csrf-token", "x-xsrf-token", "x-amz-security-token",
      "x-amz-signature", "x-goog-signature"};
  // Credential words: a query parameter or header name with one of them as
  // a word is hidden (compared without case).
  std::vector<std::string> words = {
      "token", "key", "apikey", "password", "passwd", "pwd", "pass", "secret", "session", "sessionid",
      "sessid", "phpsessid", "jsessionid", "sid", "auth", "sig", "signature", "code", "jwt", "csrf",
      "xsrf", "credential", "credentials"};
  // Shape rules (see above); token_min_length 0 turns the token rule off.
  bool jwt = true;
  bool http_credentials = true;
  size_t token_min_length = 32;
  double token_min_entropy = 4.0;
};

// Applies RedactOptions. Const methods are thread-safe (it is immutable
// after construction); build one and share it.
class Redactor {
 public:
  explicit Redactor(RedactOptions options = {});

  // Whether one of the words of the decoded, case-folded `name` is a
  // credential word.
  bool name_matches(std::string_view name) const;
  // Sets `out` to the raw query string (or URL fragment) `raw` with the
  // values of matching parameters replaced; separators '&' and ';' kept.
  void query(std::string_view raw, std::string& out) const;
  // Sets `out` to a URL (a Referer) with its path segments, query and
  // fragment redacted, and credentials hidden anywhere in it.
  void url(std::string_view url, std::string& out) const;
  // Redacts a decoded request path in place.
  void path(std::string& path) const;
  // Sets `out` to the value a header named `lower_name` (lower case) may
  // keep.
  void header(std::string_view lower_name, std::string_view value, std::string& out) const;
  // Redacts a free value (a tag) in place: credentials, or a whole token.
  void value(std::string& v) const;

  const RedactOptions& options() const { return options_; }

 private:
  bool word_matches(std::string_view word) const;
  // Whether a header's whole value goes, by its name.
  bool hides_header(std::string_view name) const;
  // Whether the decoded value of a parameter or segment must go whole.
  bool hides_value(std::string_view decoded) const;
  // The first credential (a JWT, a Bearer/Basic credential) in `s` at or
  // after `from`, as [begin, end); {npos, npos} when there is none.
  std::pair<size_t, size_t> find_credential(std::string_view s, size_t from) const;
  // Replaces the credentials inside `s`.
  void hide_credentials(std::string& s) const;
  bool is_token(std::string_view v) const;

  // Constant after construction.
  const RedactOptions options_;
  const uint64_t id_;  // tells Redactors apart in the per-thread cache of header verdicts
  // Credential words and listed headers by length (lower case), for a
  // cheap lookup.
  std::array<std::vector<std::string>, 33> words_by_length_;
  std::array<std::vector<std::string>, 65> headers_by_length_;
};

}  // namespace clio
