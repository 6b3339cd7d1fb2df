#include "http_util.h"

#include <civetweb.h>

#include <algorithm>
#include <cstring>

namespace clio::console {

std::string reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 303: return "See Other";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

int send_raw(mg_connection* conn, int status, std::string_view content_type, std::string_view body,
             std::string_view extra_headers) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  if (!content_type.empty()) head.append("Content-Type: ").append(content_type).append("\r\n");
  head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  head +=
      "Cache-Control: no-store\r\n"
      "X-Content-Type-Options: nosniff\r\n"
      "X-Frame-Options: DENY\r\n"
      "Referrer-Policy: no-referrer\r\n";
  head.append(extra_headers);
  head += "\r\n";
  mg_write(conn, head.data(), head.size());
  const char* method = mg_get_request_info(conn)->request_method;
  if (!body.empty() && std::strcmp(method, "HEAD") != 0) mg_write(conn, body.data(), body.size());
  return status;
}

int send_json(mg_connection* conn, int status, const nlohmann::json& body, std::string_view extra_headers) {
  const std::string text = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return send_raw(conn, status, "application/json", text, extra_headers);
}

int http_status(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists: return 409;
    case StatusCode::kResourceExhausted: return 429;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kInternal: return 500;
  }
  return 500;
}

int send_status(mg_connection* conn, const Status& s, std::string_view error_code) {
  if (error_code.empty()) {
    switch (s.code()) {
      case StatusCode::kOk: error_code = "ok"; break;
      case StatusCode::kInvalidArgument: error_code = "invalid_argument"; break;
      case StatusCode::kNotFound: error_code = "not_found"; break;
      case StatusCode::kAlreadyExists: error_code = "already_exists"; break;
      case StatusCode::kResourceExhausted: error_code = "limit_reached"; break;
      case StatusCode::kPermissionDenied: error_code = "forbidden"; break;
      case StatusCode::kUnavailable: error_code = "unavailable"; break;
      case StatusCode::kInternal: error_code = "internal"; break;
    }
  }
  return send_error(conn, http_status(s.code()), error_code, s.message());
}

int send_error(mg_connection* conn, int status, std::string_view code, std::string_view message) {
  nlohmann::json j;
  j["error"] = {{"code", code}, {"message", message}};
  return send_json(conn, status, j);
}

int send_redirect(mg_connection* conn, std::string_view location, std::string_view extra_headers) {
  std::string extra = "Location: " + std::string(location) + "\r\n";
  extra.append(extra_headers);
  return send_raw(conn, 303, "", "", extra);
}

nlohmann::json query_error_json(const matcher::QueryError& e) {
  return {{"code", e.code}, {"offset", e.offset}, {"length", e.length}, {"message", e.message}, {"hint", e.hint}};
}

Result<std::string> read_body(mg_connection* conn, size_t limit) {
  const mg_request_info* ri = mg_get_request_info(conn);
  if (ri->content_length > 0 && static_cast<unsigned long long>(ri->content_length) > limit) {
    return Status::ResourceExhausted("request body larger than " + std::to_string(limit) + " bytes");
  }
  std::string body;
  char buf[8192];
  int n;
  while ((n = mg_read(conn, buf, sizeof buf)) > 0) {
    body.append(buf, static_cast<size_t>(n));
    if (body.size() > limit) {
      return Status::ResourceExhausted("request body larger than " + std::to_string(limit) + " bytes");
    }
  }
  return body;
}

std::string get_var(std::string_view data, const char* name) {
  if (data.empty()) return "";
  std::string out(data.size() + 1, '\0');
  const int n = mg_get_var(data.data(), data.size(), name, out.data(), out.size());
  if (n < 0) return "";
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string get_cookie(const mg_connection* conn, const char* name) {
  const char* cookies = mg_get_header(conn, "Cookie");
  if (cookies == nullptr) return "";
  char buf[512];
  const int n = mg_get_cookie(cookies, name, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

std::string header(const mg_connection* conn, const char* name) {
  const char* v = mg_get_header(conn, name);
  return v ? v : "";
}

std::optional<uint64_t> parse_decimal(std::string_view s, uint64_t max) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (max - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

bool path_has_nul(const mg_connection* conn) {
  // CivetWeb 1.15 parses the request line in place: the path ends at the
  // '?' or at the blank before "HTTP/", both overwritten with NULs, and is
  // then decoded in place. Decoding writes the shorter result followed by a
  // NUL and leaves the last raw bytes (never NUL) in place up to that end.
  // So after the first NUL only raw bytes follow, unless a NUL was decoded:
  // then another NUL comes later with raw bytes after it.
  const mg_request_info* ri = mg_get_request_info(conn);
  const char* p = ri->local_uri_raw;
  if (p == nullptr) return false;
  const char* end = ri->query_string != nullptr ? ri->query_string - 1
                    : ri->http_version != nullptr ? ri->http_version - 5
                                                  : nullptr;
  if (end == nullptr || end <= p) return false;
  for (const char* q = p + std::strlen(p) + 2; q < end; ++q) {
    if (q[-1] == '\0' && q[0] != '\0') return true;
  }
  return false;
}

std::string client_address(const mg_connection* conn, bool trust_forwarded) {
  if (trust_forwarded) {
    const std::string xff = header(conn, "X-Forwarded-For");
    const size_t comma = xff.rfind(',');
    std::string_view hop = xff;
    if (comma != std::string::npos) hop.remove_prefix(comma + 1);
    while (!hop.empty() && hop.front() == ' ') hop.remove_prefix(1);
    while (!hop.empty() && hop.back() == ' ') hop.remove_suffix(1);
    if (!hop.empty()) return std::string(hop.substr(0, 64));
  }
  return mg_get_request_info(conn)->remote_addr;
}

std::vector<std::string> listening_origins(const mg_context* ctx) {
  std::vector<std::string> out;
  mg_server_port ports[8];
  const int n = mg_get_server_ports(ctx, 8, ports);
  const char* configured = mg_get_option(ctx, "listening_ports");
  std::string_view entries = configured != nullptr ? configured : "";
  for (int i = 0; i < n; ++i) {
    // The i-th configured entry: [ADDR:]PORT[s|r], e.g. "127.0.0.1:8080".
    const size_t comma = entries.find(',');
    std::string_view entry = entries.substr(0, comma);
    entries = comma == std::string_view::npos ? std::string_view() : entries.substr(comma + 1);
    if (ports[i].is_redirect) continue;
    const size_t colon = entry.rfind(':');
    std::string addr(colon == std::string_view::npos ? std::string_view() : entry.substr(0, colon));
    addr.erase(std::remove_if(addr.begin(), addr.end(), [](char c) { return c == ' ' || c == '[' || c == ']' || c == '+'; }),
               addr.end());
    const bool tls = ports[i].is_ssl != 0;
    std::string port;  // ":N" unless the scheme's default (built without literal + string: GCC 12 -Wrestrict at -O3)
    if (ports[i].port != (tls ? 443 : 80)) {
      port.push_back(':');
      port += std::to_string(ports[i].port);
    }
    std::vector<std::string> hosts = {addr};
    if (addr.empty() || addr == "0.0.0.0" || addr == "127.0.0.1") hosts = {"127.0.0.1", "localhost"};
    for (const std::string& h : hosts) {
      std::string o = (tls ? "https://" : "http://") + h + port;
      if (std::find(out.begin(), out.end(), o) == out.end()) out.push_back(std::move(o));
    }
  }
  return out;
}

}  // namespace clio::console
