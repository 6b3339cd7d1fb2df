#include "http_util.h"

#include <civetweb.h>

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

}  // namespace clio::console
