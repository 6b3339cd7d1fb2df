// Required literals of an RE2 pattern: texts of which every match must
// contain at least one, so a substring index can select the regexes worth
// running on a value. Private to clio::matcher.
//
//   auto lits = required_literals("(?i)^/api/(users|teams)/[0-9]+");
//   // {"/api/users/", "/api/teams/"} : a match contains one of them, compared
//   // ASCII case-insensitively (the literals come back lower-cased).
//   required_literals("[0-9]{6}");   // {} : nothing required, not indexable
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace clio::matcher::internal {

// Returns lower-cased literals L1..Ln (n <= max_alternatives) such that every
// text the pattern partially matches contains some Li, comparing ASCII
// letters case-insensitively and every other byte exactly; empty when the
// analysis finds none. Conservative: what it does not understand it treats as
// matching anything. Under case folding ((?i)), non-ASCII bytes and the
// letters k and s (which fold to U+212A and U+017F) end a literal. Costs
// O(pattern length x nesting), nesting capped at 32 levels.
std::vector<std::string> required_literals(std::string_view pattern, size_t max_alternatives = 8);

}  // namespace clio::matcher::internal
