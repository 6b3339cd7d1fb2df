// The HTTP record's schema and its RecordView.
#include "clio/middleware/http_schema.h"

#include <cstdlib>

namespace clio {

using matcher::FieldSpec;
using matcher::FieldType;
using matcher::FieldValue;
using matcher::UnitClass;

namespace {

matcher::Schema build_http_schema() {
  matcher::Schema s;
  // Order must follow enum HttpField.
  const FieldSpec fields[] = {
      {"time", FieldType::kFloat, UnitClass::kNone, {"ts"}},
      {"method", FieldType::kString, UnitClass::kNone, {"m"}},
      {"path", FieldType::kString, UnitClass::kNone, {"url", "u"}},
      {"query", FieldType::kString, UnitClass::kNone, {"qs"}},
      {"status_code", FieldType::kInt, UnitClass::kNone, {"status", "code", "c"}},
      {"wall_time", FieldType::kFloat, UnitClass::kTime, {"wall", "duration", "latency"}},
      {"cpu_time", FieldType::kFloat, UnitClass::kTime, {"cpu"}},
      {"remote_ip", FieldType::kIp, UnitClass::kNone, {"ip", "client"}},
      {"host", FieldType::kString, UnitClass::kNone, {}},
      {"user_agent", FieldType::kString, UnitClass::kNone, {"ua"}},
      {"referer", FieldType::kString, UnitClass::kNone, {}},
      {"http_version", FieldType::kString, UnitClass::kNone, {"version"}},
      {"request_bytes", FieldType::kInt, UnitClass::kBytes, {"req_bytes"}},
      {"response_bytes", FieldType::kInt, UnitClass::kBytes, {"bytes", "size"}},
      {"random", FieldType::kFloat, UnitClass::kNone, {}},
      {"id", FieldType::kInt, UnitClass::kNone, {}},
      {"instance", FieldType::kString, UnitClass::kNone, {}},
  };
  for (const auto& f : fields) {
    if (!s.add_field(f).ok()) std::abort();  // a bug in the table above
  }
  if (!s.add_map({"header", {"h"}, /*case_insensitive_keys=*/true}).ok()) std::abort();
  if (!s.add_map({"tag", {}, /*case_insensitive_keys=*/false}).ok()) std::abort();
  return s;
}

}  // namespace

const matcher::Schema& http_schema() {
  static const matcher::Schema schema = build_http_schema();
  return schema;
}

HttpRecordView::HttpRecordView(const Record& record) : r_(record) {}

FieldValue HttpRecordView::field(matcher::FieldId id) const {
  switch (id) {
    case kHttpTime: return FieldValue::of_float(r_.time);
    case kHttpMethod: return FieldValue::of_string(r_.method);
    case kHttpPath: return FieldValue::of_string(r_.path);
    case kHttpQuery: return FieldValue::of_string(r_.query);
    case kHttpStatusCode: return FieldValue::of_int(r_.status_code);
    case kHttpWallTime: return FieldValue::of_float(r_.wall_time);
    case kHttpCpuTime: return FieldValue::of_float(r_.cpu_time);
    case kHttpRemoteIp: return r_.remote_addr ? FieldValue::of_ip(*r_.remote_addr) : FieldValue{};
    case kHttpHost: return FieldValue::of_string(r_.host);
    case kHttpUserAgent: return FieldValue::of_string(r_.user_agent);
    case kHttpReferer: return FieldValue::of_string(r_.referer);
    case kHttpVersion: return FieldValue::of_string(r_.http_version);
    case kHttpRequestBytes: return FieldValue::of_int(r_.request_bytes);
    case kHttpResponseBytes: return FieldValue::of_int(r_.response_bytes);
    case kHttpRandom: return FieldValue::of_float(r_.random);
    case kHttpId: return FieldValue::of_int(static_cast<int64_t>(r_.id));
    case kHttpInstance: return FieldValue::of_string(r_.instance);
    default: return FieldValue{};
  }
}

std::optional<std::string_view> HttpRecordView::map_value(matcher::MapId map, std::string_view key) const {
  const std::string* v = nullptr;
  if (map == kHttpHeaderMap) v = r_.header(key);
  if (map == kHttpTagMap) v = r_.tag(key);
  if (v == nullptr) return std::nullopt;
  return std::string_view(*v);
}

void HttpRecordView::for_each_map_entry(
    matcher::MapId map, const std::function<void(std::string_view, std::string_view)>& fn) const {
  const auto& entries = map == kHttpHeaderMap ? r_.headers : r_.tags;
  if (map != kHttpHeaderMap && map != kHttpTagMap) return;
  for (const auto& [k, v] : entries) fn(k, v);
}

}  // namespace clio
