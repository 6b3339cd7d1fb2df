// Small helpers for the console's HTTP handlers: responses, request bodies,
// query parameters. Every response carries a Content-Length and the
// console's security headers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "clio/base/status.h"
#include "clio/matcher/query.h"

struct mg_connection;
struct mg_context;

namespace clio::console {

// Writes a complete raw response (status line and headers by hand, so it also
// works where CivetWeb's response API does not: auth handlers and WebSocket
// upgrades). `extra_headers` are full "Name: value\r\n" lines. Returns status.
int send_raw(mg_connection* conn, int status, std::string_view content_type, std::string_view body,
             std::string_view extra_headers = {});
int send_json(mg_connection* conn, int status, const nlohmann::json& body,
              std::string_view extra_headers = {});
// {"error": {"code": code, "message": message}}
int send_error(mg_connection* conn, int status, std::string_view code, std::string_view message);
// The HTTP status for a Status code: 400 invalid argument, 404 not found,
// 409 already exists, 429 resource exhausted, 403 permission denied,
// 503 unavailable, 500 internal.
int http_status(StatusCode code);
// send_error() with the status from `s` and its message; the error's code is
// `error_code`, or when empty one per Status code ("invalid_argument",
// "not_found", "already_exists", "limit_reached", "forbidden",
// "unavailable", "internal").
int send_status(mg_connection* conn, const Status& s, std::string_view error_code = {});
int send_redirect(mg_connection* conn, std::string_view location, std::string_view extra_headers = {});

// The query error as the API's JSON object {code, offset, length, message, hint}.
nlohmann::json query_error_json(const matcher::QueryError& e);

// Reads the request body, at most `limit` bytes (kResourceExhausted beyond).
Result<std::string> read_body(mg_connection* conn, size_t limit);
// A decoded query-string or form variable; "" when absent.
std::string get_var(std::string_view data, const char* name);
// The value of a cookie from the Cookie header; "" when absent.
std::string get_cookie(const mg_connection* conn, const char* name);
// The request header, or "".
std::string header(const mg_connection* conn, const char* name);

// An id or a limit from a URL: ASCII digits only (no sign, space or
// leading zero), at most `max`; nullopt otherwise.
std::optional<uint64_t> parse_decimal(std::string_view s, uint64_t max);
// Whether the request path held an encoded NUL (%00). CivetWeb decodes the
// path in place, so the path every handler sees ends at that NUL ("5%00"
// reads "5"); the bytes it leaves behind in the request buffer show it.
bool path_has_nul(const mg_connection* conn);
// The client address: the TCP peer, or with `trust_forwarded` the last
// X-Forwarded-For hop (the one a proxy in front appended).
std::string client_address(const mg_connection* conn, bool trust_forwarded);
// The origins of the server's listening sockets: "http://ADDR:PORT", and
// for a loopback or wildcard address both 127.0.0.1 and localhost.
std::vector<std::string> listening_origins(const mg_context* ctx);

std::string reason_phrase(int status);

}  // namespace clio::console
