// Schema registration and name lookup; IP address text conversion.
#include "clio/matcher/schema.h"

#include <arpa/inet.h>

#include <cstring>

#include "text.h"

namespace clio::matcher {
namespace {

bool is_plain_name(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool Schema::name_taken(std::string_view lower) const {
  return find_field(lower).has_value() || find_map(lower).has_value();
}

Status Schema::add_field(FieldSpec spec) {
  if (!is_plain_name(spec.name)) return Status::InvalidArgument("bad field name '" + spec.name + "'");
  if (name_taken(spec.name)) return Status::AlreadyExists("name '" + spec.name + "' is taken");
  for (const auto& a : spec.aliases) {
    if (!is_plain_name(a)) return Status::InvalidArgument("bad alias '" + a + "'");
    if (name_taken(a) || a == spec.name) return Status::AlreadyExists("name '" + a + "' is taken");
  }
  fields_.push_back(std::move(spec));
  return Status::Ok();
}

Status Schema::add_map(MapSpec spec) {
  if (!is_plain_name(spec.name)) return Status::InvalidArgument("bad map name '" + spec.name + "'");
  if (name_taken(spec.name)) return Status::AlreadyExists("name '" + spec.name + "' is taken");
  for (const auto& a : spec.aliases) {
    if (!is_plain_name(a)) return Status::InvalidArgument("bad alias '" + a + "'");
    if (name_taken(a) || a == spec.name) return Status::AlreadyExists("name '" + a + "' is taken");
  }
  maps_.push_back(std::move(spec));
  return Status::Ok();
}

std::optional<FieldId> Schema::find_field(std::string_view name) const {
  for (FieldId i = 0; i < fields_.size(); ++i) {
    if (text::iequals(fields_[i].name, name)) return i;
    for (const auto& a : fields_[i].aliases) {
      if (text::iequals(a, name)) return i;
    }
  }
  return std::nullopt;
}

std::optional<MapId> Schema::find_map(std::string_view name) const {
  for (MapId i = 0; i < maps_.size(); ++i) {
    if (text::iequals(maps_[i].name, name)) return i;
    for (const auto& a : maps_[i].aliases) {
      if (text::iequals(a, name)) return i;
    }
  }
  return std::nullopt;
}

std::vector<std::string_view> Schema::all_names() const {
  std::vector<std::string_view> out;
  for (const auto& f : fields_) {
    out.push_back(f.name);
    for (const auto& a : f.aliases) out.push_back(a);
  }
  for (const auto& m : maps_) {
    out.push_back(m.name);
    for (const auto& a : m.aliases) out.push_back(a);
  }
  return out;
}

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  char buf[48];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddr a;
  in_addr v4;
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    std::memcpy(&a.bytes[12], &v4, 4);
    return a;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, buf, &v6) == 1) {
    std::memcpy(a.bytes.data(), &v6, 16);
    return a;
  }
  return std::nullopt;
}

bool IpAddr::is_v4() const {
  for (int i = 0; i < 10; ++i) {
    if (bytes[i] != 0) return false;
  }
  return bytes[10] == 0xff && bytes[11] == 0xff;
}

std::string IpAddr::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  if (is_v4()) {
    inet_ntop(AF_INET, &bytes[12], buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  }
  return buf;
}

IpAddr IpAddr::masked(int prefix_bits) const {
  IpAddr out = *this;
  for (int i = 0; i < 16; ++i) {
    const int keep = prefix_bits - 8 * i;
    if (keep >= 8) continue;
    out.bytes[i] = keep <= 0 ? 0 : static_cast<uint8_t>(out.bytes[i] & (0xFF << (8 - keep)));
  }
  return out;
}

}  // namespace clio::matcher
