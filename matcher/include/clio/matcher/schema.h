// Schema: the typed fields a query can name, and RecordView: how the matcher
// reads a record. The matcher knows nothing of HTTP; a record type describes
// itself with a Schema and exposes its values through a RecordView.
//
//   matcher::Schema s;
//   s.add_field({"status_code", FieldType::kInt, UnitClass::kNone, {"status"}});
//   s.add_map({"header", {"h"}, /*case_insensitive_keys=*/true});
//   auto q = matcher::parse("status >= 500", s);   // see query.h
//   bool hit = q.query->matches(my_view);          // my_view: a RecordView
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clio/base/status.h"

namespace clio::matcher {

enum class FieldType : uint8_t { kString, kInt, kFloat, kIp };

// What units a numeric literal may carry. Time fields are in milliseconds
// (units us, ms, s, m); byte fields in bytes (b, kb, mb, gb = powers of 1000;
// kib, mib, gib = powers of 1024). A literal without a unit is in the base unit.
enum class UnitClass : uint8_t { kNone, kTime, kBytes };

using FieldId = uint32_t;
using MapId = uint32_t;

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value type). A fixed field: one typed value per
// record (possibly absent).
struct FieldSpec {
  std::string name;                  // canonical name, lower-case
  FieldType type = FieldType::kString;
  UnitClass unit = UnitClass::kNone;
  std::vector<std::string> aliases;  // lower-case; matched case-insensitively
};

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value type). A map field: string values by key,
// written `NAME.KEY` in queries (e.g. `header.user-agent`); `NAME.*` means
// any entry, seen as the line "key: value". A key may be absent from a record.
struct MapSpec {
  std::string name;                  // canonical name, lower-case
  std::vector<std::string> aliases;  // lower-case
  // When true, keys are case-insensitive: the parser lower-cases them (ASCII)
  // and RecordView::map_value receives the lower-cased key.
  bool case_insensitive_keys = false;
};

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value type). An IPv4 or IPv6 address; IPv4 is
// stored IPv4-mapped (::ffff:a.b.c.d), so an IPv4 CIDR /n is the IPv6 prefix
// /(96+n).
struct IpAddr {
  std::array<uint8_t, 16> bytes{};

  // Accepts dotted IPv4 and RFC 4291 IPv6 text (no zone, no brackets).
  static std::optional<IpAddr> parse(std::string_view text);
  bool is_v4() const;
  // Dotted form for IPv4-mapped addresses, RFC 5952 form otherwise.
  std::string to_string() const;
  // This address with all bits after the first `prefix_bits` cleared.
  IpAddr masked(int prefix_bits) const;
  bool operator==(const IpAddr&) const = default;
};

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value type). One field's value in one record:
// `present` false means absent (every predicate on it is false). Only the
// member of the field's type is meaningful.
struct FieldValue {
  bool present = false;
  int64_t i = 0;        // kInt
  double f = 0;         // kFloat
  std::string_view s;   // kString; borrowed from the record
  IpAddr ip;            // kIp

  static FieldValue of_string(std::string_view v) { FieldValue x; x.present = true; x.s = v; return x; }
  static FieldValue of_int(int64_t v) { FieldValue x; x.present = true; x.i = v; return x; }
  static FieldValue of_float(double v) { FieldValue x; x.present = true; x.f = v; return x; }
  static FieldValue of_ip(const IpAddr& v) { FieldValue x; x.present = true; x.ip = v; return x; }
};

// The fields of one record type. Const methods are thread-safe, non-const
// methods need external synchronization; build it once, then share it
// read-only (queries and matchers borrow it and must not outlive it).
class Schema {
 public:
  Schema() = default;

  // Adds a field. Fails if the name or an alias is already taken (by a field
  // or a map) or is not a plain lower-case word.
  Status add_field(FieldSpec spec);
  Status add_map(MapSpec spec);

  size_t field_count() const { return fields_.size(); }
  const FieldSpec& field(FieldId id) const { return fields_[id]; }
  size_t map_count() const { return maps_.size(); }
  const MapSpec& map(MapId id) const { return maps_[id]; }

  // Looks a name or alias up, case-insensitively.
  std::optional<FieldId> find_field(std::string_view name) const;
  std::optional<MapId> find_map(std::string_view name) const;
  // Every field and map name and alias, for "did you mean" hints.
  std::vector<std::string_view> all_names() const;

 private:
  bool name_taken(std::string_view lower) const;

  std::vector<FieldSpec> fields_;
  std::vector<MapSpec> maps_;
};

// Read access to one record. Const methods are thread-safe, non-const methods
// need external synchronization. Implementations should be cheap to call: the
// matcher reads each fixed field once per record, map keys on demand.
class RecordView {
 public:
  virtual ~RecordView() = default;

  // The value of fixed field `id` (present=false when the record lacks it).
  virtual FieldValue field(FieldId id) const = 0;
  // The value of `key` in map `map`, or nullopt when absent. For maps with
  // case_insensitive_keys, `key` is lower-case. With repeated keys, the first.
  virtual std::optional<std::string_view> map_value(MapId map, std::string_view key) const = 0;
  // Calls fn(key, value) for every entry of map `map`, in record order.
  virtual void for_each_map_entry(
      MapId map, const std::function<void(std::string_view key, std::string_view value)>& fn) const = 0;
};

}  // namespace clio::matcher
