// The HTTP request record: one per finished request, and its one JSON
// encoding (a flat object with the field names of the query language, plus
// "headers" and "tags" objects), used by the JSON-lines sink, the channel,
// the store and the `clio` tool alike.
//
//   clio::Record r;
//   r.method = "GET"; r.path = "/api/hello"; r.status_code = 200;
//   std::string line = clio::to_json(r);          // {"id":0,"time":...}
//   clio::Result<clio::Record> back = clio::record_from_json(line);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clio/base/status.h"
#include "clio/matcher/schema.h"

namespace clio {

// A plain value type. Thread-compatible: const methods are thread-safe,
// non-const methods need external synchronization.
struct Record {
  uint64_t id = 0;             // position in the record log; 0 before the log assigns it
  double time = 0;             // request start, seconds since the Unix epoch
  std::string method;          // as sent
  std::string path;            // decoded path, no query string
  std::string query;           // raw query string, after redaction
  int status_code = 0;         // response status; 101 accepted WebSocket; 0 unknown
  double wall_time = 0;        // milliseconds from begin to end of the request
  double cpu_time = 0;         // milliseconds of the worker thread's CPU
  std::string remote_ip;       // TCP peer, or first X-Forwarded-For hop if trusted
  // remote_ip parsed, absent when it does not parse. Set both with
  // set_remote_ip, where the record is made (capture, the decoders), so the
  // address is parsed once, not by every query that reads it.
  std::optional<matcher::IpAddr> remote_addr;
  std::string host;            // Host header ("" when absent)
  std::string user_agent;      // User-Agent header ("" when absent)
  std::string referer;         // Referer header ("" when absent)
  std::string http_version;    // "1.0", "1.1"
  int64_t request_bytes = 0;   // declared request body length, 0 if none
  int64_t response_bytes = 0;  // bytes sent for the response (headers + body)
  double random = 0;           // uniform in [0,1), for sampling queries
  std::string instance;        // the app instance that served it ("" until the log sets it)

  // Request headers in arrival order. Names are lower-cased; a repeated
  // header keeps one entry per occurrence. Redacted values read "[redacted]".
  std::vector<std::pair<std::string, std::string>> headers;
  // Annotations the app attached with clio::tag(); names as given, unique.
  std::vector<std::pair<std::string, std::string>> tags;

  // Sets remote_ip to `text` and remote_addr to its parse.
  void set_remote_ip(std::string_view text);

  // The first header named `lower_name` (which must be lower-case), or null.
  const std::string* header(std::string_view lower_name) const;
  // The tag named `name`, or null.
  const std::string* tag(std::string_view name) const;
};

// The one JSON encoding of a record: a single line, no trailing newline.
// Field order is fixed; strings are valid UTF-8 (invalid bytes become U+FFFD).
std::string to_json(const Record& r);
// Appends the encoding to `out` (no allocation beyond `out`'s growth).
void append_json(const Record& r, std::string& out);

// Parses one JSON object in the encoding above. Unknown members are ignored;
// missing members keep their defaults. Errors name the offending member.
Result<Record> record_from_json(std::string_view json);

}  // namespace clio
