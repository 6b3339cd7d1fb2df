// The HTTP record's schema for the query language (docs/ARCHITECTURE.md,
// "The record"), and a
// matcher::RecordView over a clio::Record.
//
//   const matcher::Schema& s = clio::http_schema();
//   matcher::Matcher m(s);
//   m.subscribe(1, "status:5xx and h.user-agent:curl");
//   clio::HttpRecordView view(record);   // record: const clio::Record&
//   std::vector<uint64_t> ids; m.match(view, ids);
//
// Decisions: fixed string fields (host, referer, ...) are always present,
// possibly empty, so `referer:*` is false for an empty referer while
// `referer = ""` is true; only `header.NAME` and `tag.NAME` can be absent.
// Header names are case-insensitive (`h.User-Agent` = `header.user-agent`);
// tag names are case-sensitive, as the app sets them. `remote_ip` is absent
// when the record's address does not parse. `id` is the record's position
// in the record log; `instance` names the app instance that served it (always
// present, like the other fixed string fields).
#pragma once

#include <optional>

#include "clio/matcher/schema.h"
#include "clio/middleware/record.h"

namespace clio {

// Field ids of http_schema(), in schema order.
enum HttpField : matcher::FieldId {
  kHttpTime, kHttpMethod, kHttpPath, kHttpQuery, kHttpStatusCode, kHttpWallTime, kHttpCpuTime,
  kHttpRemoteIp, kHttpHost, kHttpUserAgent, kHttpReferer, kHttpVersion, kHttpRequestBytes,
  kHttpResponseBytes, kHttpRandom, kHttpId, kHttpInstance, kHttpFieldCount
};
enum HttpMap : matcher::MapId { kHttpHeaderMap, kHttpTagMap };

// The schema of the HTTP record: every field of the record with its aliases,
// plus the maps `header` (alias `h`) and `tag`. Built once; thread-safe.
const matcher::Schema& http_schema();

// Const methods are thread-safe, non-const methods need external
// synchronization. A RecordView over a Record; borrows `record`, which must
// outlive the view. `remote_ip` reads the record's remote_addr (parsed when
// the record was made, see Record::set_remote_ip).
class HttpRecordView final : public matcher::RecordView {
 public:
  explicit HttpRecordView(const Record& record);

  matcher::FieldValue field(matcher::FieldId id) const override;
  std::optional<std::string_view> map_value(matcher::MapId map, std::string_view key) const override;
  void for_each_map_entry(
      matcher::MapId map,
      const std::function<void(std::string_view key, std::string_view value)>& fn) const override;

 private:
  const Record& r_;
};

}  // namespace clio
