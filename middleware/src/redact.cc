#include "clio/middleware/redact.h"

#include <cctype>
#include <strings.h>

namespace clio {
namespace {

bool word_in(std::string_view w, const std::vector<std::string>& words) {
  if (w.empty()) return false;
  for (const std::string& x : words) {
    if (x.size() == w.size() && strncasecmp(x.data(), w.data(), w.size()) == 0) return true;
  }
  return false;
}

bool is_separator(char c) {
  return c == '_' || c == '-' || c == '.' || c == '[' || c == ']' || c == ' ' || c == '+';
}

}  // namespace

bool param_name_matches(std::string_view name, const std::vector<std::string>& words) {
  size_t start = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    const bool end = i == name.size();
    const bool sep = !end && is_separator(name[i]);
    const bool camel = !end && i > start && std::isupper(static_cast<unsigned char>(name[i])) &&
                       std::islower(static_cast<unsigned char>(name[i - 1]));
    if (end || sep || camel) {
      if (word_in(name.substr(start, i - start), words)) return true;
      start = sep ? i + 1 : i;
    }
  }
  return false;
}

std::string redact_query(std::string_view query, const std::vector<std::string>& words) {
  std::string out;
  out.reserve(query.size());
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t end = query.find_first_of("&;", pos);
    if (end == std::string_view::npos) end = query.size();
    std::string_view param = query.substr(pos, end - pos);
    const size_t eq = param.find('=');
    std::string_view name = param.substr(0, eq);
    if (eq != std::string_view::npos && param_name_matches(name, words)) {
      out.append(name).append("=").append(kRedacted);
    } else {
      out.append(param);
    }
    if (end < query.size()) out.push_back(query[end]);
    pos = end + 1;
  }
  return out;
}

std::string redact_url(std::string_view url, const std::vector<std::string>& words) {
  const size_t q = url.find('?');
  if (q == std::string_view::npos) return std::string(url);
  size_t frag = url.find('#', q);
  if (frag == std::string_view::npos) frag = url.size();
  std::string out(url.substr(0, q + 1));
  out += redact_query(url.substr(q + 1, frag - q - 1), words);
  out.append(url.substr(frag));
  return out;
}

}  // namespace clio
