#include "clio/channel/protocol.h"

#include <charconv>

#include <nlohmann/json.hpp>

#include "clio/base/json_text.h"

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

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex_digit(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Scanners for validate_json_value: each starts at s[i] and returns the
// offset just past what it accepted, or npos.
constexpr size_t kBad = std::string_view::npos;

size_t scan_string(std::string_view s, size_t i) {
  if (i >= s.size() || s[i] != '"') return kBad;
  ++i;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"') return i + 1;
    if (c < 0x20) return kBad;
    if (c == '\\') {
      if (i + 1 >= s.size()) return kBad;
      const char e = s[i + 1];
      if (e == 'u') {
        if (i + 6 > s.size()) return kBad;
        for (size_t k = 2; k < 6; ++k) {
          if (!is_hex_digit(s[i + k])) return kBad;
        }
        i += 6;
      } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
        i += 2;
      } else {
        return kBad;
      }
    } else if (c >= 0x80) {
      const size_t n = utf8_sequence_length(s, i);
      if (n == 0) return kBad;
      i += n;
    } else {
      ++i;
    }
  }
  return kBad;
}

size_t scan_digits(std::string_view s, size_t i) {
  const size_t start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  return i == start ? kBad : i;
}

size_t scan_number(std::string_view s, size_t i) {
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if ((i = scan_digits(s, i)) == kBad) {
    return kBad;
  }
  if (i < s.size() && s[i] == '.' && (i = scan_digits(s, i + 1)) == kBad) return kBad;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if ((i = scan_digits(s, i)) == kBad) return kBad;
  }
  return i;
}

size_t scan_scalar(std::string_view s, size_t i) {
  if (i >= s.size()) return kBad;
  switch (s[i]) {
    case '"': return scan_string(s, i);
    case 't': return s.substr(i, 4) == "true" ? i + 4 : kBad;
    case 'f': return s.substr(i, 5) == "false" ? i + 5 : kBad;
    case 'n': return s.substr(i, 4) == "null" ? i + 4 : kBad;
    default: return scan_number(s, i);
  }
}

size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

// An object member's key and colon, and the whitespace after them.
size_t scan_key(std::string_view s, size_t i) {
  i = scan_string(s, i);
  if (i == kBad) return kBad;
  i = skip_ws(s, i);
  if (i >= s.size() || s[i] != ':') return kBad;
  return skip_ws(s, i + 1);
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

Status validate_json_value(std::string_view s) {
  auto bad = [](size_t at, const char* what) {
    return Status::InvalidArgument(std::string("not a JSON value: ") + what + " at byte " + std::to_string(at));
  };
  char open[kMaxJsonDepth];  // the containers around s[i]: '{' or '['
  size_t depth = 0;
  size_t i = skip_ws(s, 0);
  for (;;) {
    // A value starts at s[i]; an object member's key and colon are behind.
    if (i < s.size() && (s[i] == '{' || s[i] == '[')) {
      if (depth == kMaxJsonDepth) return bad(i, "nested too deep");
      const char close = s[i] == '{' ? '}' : ']';
      open[depth++] = s[i];
      i = skip_ws(s, i + 1);
      if (i < s.size() && s[i] == close) {
        --depth;
        ++i;
      } else {
        if (open[depth - 1] == '{') {
          const size_t value = scan_key(s, i);
          if (value == kBad) return bad(i, "expected a string key and ':'");
          i = value;
        }
        continue;
      }
    } else {
      const size_t end = scan_scalar(s, i);
      if (end == kBad) return bad(i, "expected a value");
      i = end;
    }
    // After a value: close containers, or go on to the next element.
    for (;;) {
      i = skip_ws(s, i);
      if (depth == 0) return i == s.size() ? Status::Ok() : bad(i, "text after the value");
      if (i >= s.size()) return bad(i, "unexpected end");
      const char close = open[depth - 1] == '{' ? '}' : ']';
      if (s[i] == close) {
        --depth;
        ++i;
        continue;
      }
      if (s[i] != ',') return bad(i, "expected ',' or a closing bracket");
      i = skip_ws(s, i + 1);
      if (open[depth - 1] == '{') {
        const size_t value = scan_key(s, i);
        if (value == kBad) return bad(i, "expected a string key and ':'");
        i = value;
      }
      break;
    }
  }
}

std::string text_data(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  append_json_string(out, text);
  return out;
}

std::string encode_message(std::string_view epoch, uint64_t seq, std::string_view data) {
  std::string out;
  out.reserve(data.size() + epoch.size() + 48);
  out.append(R"({"t":"msg","epoch":")").append(epoch).append(R"(","seq":)");
  out.append(std::to_string(seq)).append(R"(,"data":)");
  out.append(data);
  out.push_back('}');
  return out;
}

std::string encode_gap(std::string_view epoch, uint64_t from, uint64_t to, bool known) {
  std::string g = R"({"t":"gap","epoch":")";
  g.append(epoch).append(R"(","from":)").append(std::to_string(from));
  g.append(R"(,"to":)").append(std::to_string(to)).append(R"(,"lost":)");
  g.append(known ? std::to_string(to - from + 1) : "null");
  g.push_back('}');
  return g;
}

std::string encode_epoch_gap(std::string_view epoch) {
  std::string g = R"({"t":"gap","epoch":")";
  g.append(epoch).append(R"(","from":null,"to":null,"lost":null,"reason":"epoch"})");
  return g;
}

std::string encode_welcome(const Welcome& w) {
  std::string out = R"({"t":"welcome","epoch":")";
  out.append(w.epoch).append(R"(","client_id":)");
  append_json_string(out, w.client_id);
  out += R"(,"seq":)" + std::to_string(w.seq) + R"(,"resumed":)" + (w.resumed ? "true" : "false") +
         R"(,"expires_at":)" + std::to_string(w.expires_at) + R"(,"now":)" + std::to_string(w.now) +
         R"(,"heartbeat_ms":)" + std::to_string(w.heartbeat_ms) +
         R"(,"heartbeat_timeout_ms":)" + std::to_string(w.heartbeat_timeout_ms) +
         R"(,"max_message_bytes":)" + std::to_string(w.max_message_bytes) + "}";
  return out;
}

std::string encode_refreshed(int64_t expires_at) {
  return R"({"t":"refreshed","expires_at":)" + std::to_string(expires_at) + "}";
}

std::string encode_error(std::string_view code, std::string_view message) {
  std::string out = R"({"t":"error","code":)";
  append_json_string(out, code);
  out += R"(,"message":)";
  append_json_string(out, message);
  out.push_back('}');
  return out;
}

std::string close_payload(int code, std::string_view reason) {
  std::string payload;
  payload.push_back(static_cast<char>((code >> 8) & 0xFF));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(reason.substr(0, 120));
  return payload;
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
