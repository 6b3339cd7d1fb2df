#include "clio/channel/protocol.h"

#include <charconv>

#include <nlohmann/json.hpp>

namespace clio::channel::protocol {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_hex(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t cp;
  if (b0 < 0x80) return 1;
  if ((b0 & 0xE0) == 0xC0) { n = 2; cp = b0 & 0x1F; }
  else if ((b0 & 0xF0) == 0xE0) { n = 3; cp = b0 & 0x0F; }
  else if ((b0 & 0xF8) == 0xF0) { n = 4; cp = b0 & 0x07; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are invalid.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;
  if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
  return n;
}

}  // namespace

bool is_final_close(int code) { return code >= 4000 && code < 4100; }

Result<Offer> parse_offer(std::string_view header) {
  Offer offer;
  bool have_token = false;
  while (!header.empty()) {
    const size_t comma = header.find(',');
    std::string_view item = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    if (item == kSubprotocol) {
      offer.has_protocol = true;
    } else if (item.substr(0, kTokenPrefix.size()) == kTokenPrefix) {
      if (have_token) return Status::InvalidArgument("more than one token offered");
      have_token = true;
      offer.token = std::string(item.substr(kTokenPrefix.size()));
    } else if (item.substr(0, kResumePrefix.size()) == kResumePrefix) {
      std::string_view rest = item.substr(kResumePrefix.size());
      const size_t dot = rest.find('.');
      if (dot == std::string_view::npos) return Status::InvalidArgument("resume needs <epoch>.<seq>");
      std::string_view epoch = rest.substr(0, dot);
      std::string_view seq = rest.substr(dot + 1);
      uint64_t n = 0;
      auto [p, ec] = std::from_chars(seq.data(), seq.data() + seq.size(), n);
      if (!is_hex(epoch) || seq.empty() || ec != std::errc() || p != seq.data() + seq.size()) {
        return Status::InvalidArgument("malformed resume value");
      }
      offer.has_resume = true;
      offer.epoch = std::string(epoch);
      offer.seq = n;
    }
  }
  return offer;
}

Result<ClientFrame> parse_client_frame(std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) return Status::InvalidArgument("client frame too large");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("client frame is not JSON");
  if (!j.is_object()) return Status::InvalidArgument("client frame is not a JSON object");
  auto t = j.find("t");
  if (t == j.end() || !t->is_string()) return Status::InvalidArgument("client frame has no string \"t\"");
  ClientFrame f;
  const std::string& type = t->get_ref<const std::string&>();
  if (type == "hb") {
    f.type = ClientFrame::Type::kHeartbeat;
  } else if (type == "refresh") {
    auto tok = j.find("token");
    if (tok == j.end() || !tok->is_string()) return Status::InvalidArgument("refresh without a token");
    f.type = ClientFrame::Type::kRefresh;
    f.token = tok->get<std::string>();
  }
  return f;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    // Copy the longest run that needs no escaping in one go.
    size_t j = i;
    while (j < s.size()) {
      const auto c = static_cast<unsigned char>(s[j]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
      ++j;
    }
    out.append(s.data() + i, j - i);
    i = j;
    if (i == s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t n = utf8_sequence_length(s, i);
      if (n == 0) {
        out.append("\xEF\xBF\xBD");  // U+FFFD
        ++i;
      } else {
        out.append(s.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
    ++i;
  }
  out.push_back('"');
}

std::string encode_message(std::string_view epoch, uint64_t seq, std::string_view data) {
  std::string out;
  out.reserve(data.size() + epoch.size() + 48);
  out.append(R"({"t":"msg","epoch":")").append(epoch).append(R"(","seq":)");
  out.append(std::to_string(seq)).append(R"(,"data":)");
  append_json_string(out, data);
  out.push_back('}');
  return out;
}

void append_frame_header(std::string& out, int opcode, uint64_t len) {
  out.push_back(static_cast<char>(0x80 | (opcode & 0x0F)));
  if (len < 126) {
    out.push_back(static_cast<char>(len));
  } else if (len <= 0xFFFF) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>((len >> 8) & 0xFF));
    out.push_back(static_cast<char>(len & 0xFF));
  } else {
    out.push_back(static_cast<char>(127));
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((len >> shift) & 0xFF));
  }
}

}  // namespace clio::channel::protocol
