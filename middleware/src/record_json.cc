// The record's JSON encoding. Encoding is hand-written (it runs for every
// record on the sink and dispatcher threads); decoding uses nlohmann/json.
#include <charconv>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "clio/base/json_text.h"
#include "clio/middleware/record.h"

namespace clio {
namespace {

void append_double(double v, std::string& out) {
  if (!std::isfinite(v)) v = 0;
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, ec == std::errc() ? end : buf);
}

template <typename Int>
void append_int(Int v, std::string& out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, ec == std::errc() ? end : buf);
}

void append_key(const char* key, std::string& out) {
  out.push_back('"');
  out += key;
  out += "\":";
}

void append_map(const std::vector<std::pair<std::string, std::string>>& m, std::string& out) {
  out.push_back('{');
  bool first = true;
  for (const auto& [k, v] : m) {
    if (!first) out.push_back(',');
    first = false;
    append_json_string(out, k);
    out.push_back(':');
    append_json_string(out, v);
  }
  out.push_back('}');
}

}  // namespace

const std::string* Record::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return &v;
  }
  return nullptr;
}

void Record::set_remote_ip(std::string_view text) {
  remote_ip.assign(text);
  remote_addr = matcher::IpAddr::parse(text);
}

const std::string* Record::tag(std::string_view name) const {
  for (const auto& [k, v] : tags) {
    if (k == name) return &v;
  }
  return nullptr;
}

void append_json(const Record& r, std::string& out) {
  out += "{\"id\":";
  append_int(r.id, out);
  out += ",\"time\":";
  append_double(r.time, out);
  out += ",\"method\":";
  append_json_string(out, r.method);
  out += ",\"path\":";
  append_json_string(out, r.path);
  out += ",\"query\":";
  append_json_string(out, r.query);
  out += ",\"status_code\":";
  append_int(r.status_code, out);
  out += ",\"wall_time\":";
  append_double(r.wall_time, out);
  out += ",\"cpu_time\":";
  append_double(r.cpu_time, out);
  out += ",\"remote_ip\":";
  append_json_string(out, r.remote_ip);
  out += ",\"host\":";
  append_json_string(out, r.host);
  out += ",\"user_agent\":";
  append_json_string(out, r.user_agent);
  out += ",\"referer\":";
  append_json_string(out, r.referer);
  out += ",\"http_version\":";
  append_json_string(out, r.http_version);
  out += ",\"request_bytes\":";
  append_int(r.request_bytes, out);
  out += ",\"response_bytes\":";
  append_int(r.response_bytes, out);
  out += ",\"random\":";
  append_double(r.random, out);
  out += ",\"instance\":";
  append_json_string(out, r.instance);
  out.push_back(',');
  append_key("headers", out);
  append_map(r.headers, out);
  out.push_back(',');
  append_key("tags", out);
  append_map(r.tags, out);
  out.push_back('}');
}

std::string to_json(const Record& r) {
  std::string out;
  out.reserve(512);
  append_json(r, out);
  return out;
}

namespace {

using nlohmann::json;

Status read_string(const json& j, const char* key, std::string& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_string()) return Status::InvalidArgument(std::string("member '") + key + "' must be a string");
  out = it->get<std::string>();
  return Status::Ok();
}

template <typename Num>
Status read_number(const json& j, const char* key, Num& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_number()) return Status::InvalidArgument(std::string("member '") + key + "' must be a number");
  if constexpr (std::is_floating_point_v<Num>) {
    out = it->get<double>();
  } else {
    if (it->is_number_float()) {
      const double d = it->get<double>();
      if (!(d >= -9.2e18 && d <= 9.2e18)) {
        return Status::InvalidArgument(std::string("member '") + key + "' is out of range");
      }
      out = static_cast<Num>(d);
    } else if (it->is_number_unsigned()) {
      out = static_cast<Num>(it->get<uint64_t>());
    } else {
      out = static_cast<Num>(it->get<int64_t>());
    }
  }
  return Status::Ok();
}

Status read_map(const json& j, const char* key, bool lower_keys,
                std::vector<std::pair<std::string, std::string>>& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) return Status::InvalidArgument(std::string("member '") + key + "' must be an object");
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) {
      return Status::InvalidArgument(std::string("member '") + key + "." + k + "' must be a string");
    }
    std::string name = k;
    if (lower_keys) {
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    out.emplace_back(std::move(name), v.get<std::string>());
  }
  return Status::Ok();
}

}  // namespace

Result<Record> record_from_json(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("a record must be a JSON object");
  Record r;
  Status s;
  auto step = [&](Status st) {
    if (s.ok() && !st.ok()) s = std::move(st);
  };
  step(read_number(j, "id", r.id));
  step(read_number(j, "time", r.time));
  step(read_string(j, "method", r.method));
  step(read_string(j, "path", r.path));
  step(read_string(j, "query", r.query));
  step(read_number(j, "status_code", r.status_code));
  step(read_number(j, "wall_time", r.wall_time));
  step(read_number(j, "cpu_time", r.cpu_time));
  step(read_string(j, "remote_ip", r.remote_ip));
  step(read_string(j, "host", r.host));
  step(read_string(j, "user_agent", r.user_agent));
  step(read_string(j, "referer", r.referer));
  step(read_string(j, "http_version", r.http_version));
  step(read_number(j, "request_bytes", r.request_bytes));
  step(read_number(j, "response_bytes", r.response_bytes));
  step(read_number(j, "random", r.random));
  step(read_string(j, "instance", r.instance));
  step(read_map(j, "headers", /*lower_keys=*/true, r.headers));
  step(read_map(j, "tags", /*lower_keys=*/false, r.tags));
  if (!s.ok()) return s;
  r.remote_addr = matcher::IpAddr::parse(r.remote_ip);
  return r;
}

}  // namespace clio
