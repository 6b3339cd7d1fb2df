// Redaction of secrets in query strings, applied on the request thread before
// a record leaves it.
//
//   std::vector<std::string> names = {"token", "key"};
//   clio::redact_query("a=1&access_token=s3cr3t", names)  // "a=1&access_token=[redacted]"
//   clio::param_name_matches("apiKey", names)             // true
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace clio {

inline constexpr std::string_view kRedacted = "[redacted]";

// True when one of the words of `name` equals (ignoring case) one of `words`.
// Words are split at '_', '-', '.', '[', ']', ' ' and at lower-to-upper case
// changes; percent-encoded names are compared as written.
bool param_name_matches(std::string_view name, const std::vector<std::string>& words);

// Returns `query` (raw, not decoded) with the value of every parameter whose
// name matches replaced by "[redacted]". Separators '&' and ';' are kept.
std::string redact_query(std::string_view query, const std::vector<std::string>& words);

// Redacts the query part of a URL (e.g. a Referer), leaving the rest intact.
std::string redact_url(std::string_view url, const std::vector<std::string>& words);

}  // namespace clio
