// Percent-decoding of URL parts, as apps and servers read them.
//
//   std::string out;
//   bool clean = clio::percent_decode("access%5Ftoken+x", out, true);  // "access_token x", true
#pragma once

#include <string>
#include <string_view>

namespace clio {

// Decodes `in` into `out` (replacing its contents). With `plus_is_space`
// (query strings and forms) '+' becomes a space. A '%' not followed by two
// hex digits is kept as it is, and the result is then false.
bool percent_decode(std::string_view in, std::string& out, bool plus_is_space);

}  // namespace clio
