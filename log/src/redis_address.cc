// Redis URLs and option checks.
#include <charconv>

#include "clio/log/redis_log.h"
#include "clio/middleware/percent.h"
#include "redis_common.h"

namespace clio::log {

namespace {

bool parse_int(std::string_view s, int lo, int hi, int& out) {
  if (s.empty() || s.size() > 6) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && out >= lo && out <= hi;
}

bool valid_host(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string RedisAddress::describe() const {
  std::string s = "redis://";
  s += host;
  s.push_back(':');
  s += std::to_string(port);
  if (db != 0) {
    s.push_back('/');
    s += std::to_string(db);
  }
  return s;
}

Result<RedisAddress> parse_redis_url(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  auto bad = [](const std::string& why) {
    return Status::InvalidArgument("bad Redis URL (expected redis://[[user]:password@]host[:port][/db]): " + why);
  };
  if (url.substr(0, kScheme.size()) != kScheme) return bad("it must start with redis://");
  std::string_view rest = url.substr(kScheme.size());
  RedisAddress a;
  // Credentials end at the last '@' (a password may hold '@' only escaped, but be lenient).
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = cred.find(':');
    if (colon == std::string_view::npos) return bad("credentials must be ':password' or 'user:password'");
    if (!percent_decode(cred.substr(0, colon), a.user, false) || !percent_decode(cred.substr(colon + 1), a.password, false)) {
      return bad("a bad percent-escape in the credentials");
    }
    if (a.password.empty()) return bad("an empty password");
  }
  std::string_view hostport = rest;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && !parse_int(db, 0, 65535, a.db)) return bad("the database must be a number");
  }
  if (const size_t colon = hostport.rfind(':'); colon != std::string_view::npos) {
    if (!parse_int(hostport.substr(colon + 1), 1, 65535, a.port)) return bad("the port must be 1-65535");
    hostport = hostport.substr(0, colon);
  }
  if (!valid_host(hostport)) return bad("a missing or invalid host");
  a.host = std::string(hostport);
  return a;
}

namespace redis {

Result<RedisAddress> check_options(const RedisLogOptions& o) {
  auto address = parse_redis_url(o.url);
  if (!address.ok()) return address.status();
  if (o.stream.empty() || o.stream.size() > 200) return Status::InvalidArgument("the Redis stream name must be 1-200 bytes");
  if (o.max_entries < 10) return Status::InvalidArgument("max_entries must be at least 10");
  if (o.records_per_entry == 0 || o.records_per_entry > 10000) {
    return Status::InvalidArgument("records_per_entry must be 1-10000");
  }
  if (o.entry_bytes < 1024) return Status::InvalidArgument("entry_bytes must be at least 1024");
  if (o.read_count == 0 || o.reader_queue_records == 0) {
    return Status::InvalidArgument("read_count and reader_queue_records must be at least 1");
  }
  if (o.connect_timeout.count() <= 0 || o.io_timeout.count() <= 0 || o.block.count() <= 0 ||
      o.reconnect_min.count() <= 0 || o.reconnect_max < o.reconnect_min) {
    return Status::InvalidArgument("Redis timeouts must be positive, and reconnect_max >= reconnect_min");
  }
  return address;
}

}  // namespace redis
}  // namespace clio::log
