#include "sample.h"

#include <memory>

#include "text.h"

namespace clio::matcher::internal {

// An owned copy of one record, readable as a RecordView.
class RecordSample::Copy final : public RecordView {
 public:
  void assign(const Schema& schema, const RecordView& r) {
    const size_t n = schema.field_count();
    fields_.resize(n);
    strings_.resize(n);
    for (FieldId f = 0; f < n; ++f) {
      fields_[f] = r.field(f);
      if (fields_[f].present && schema.field(f).type == FieldType::kString) {
        strings_[f].assign(fields_[f].s);
        fields_[f].s = strings_[f];
      }
    }
    maps_.resize(schema.map_count());
    for (MapId m = 0; m < schema.map_count(); ++m) {
      auto& entries = maps_[m];
      entries.clear();
      r.for_each_map_entry(m, [&](std::string_view k, std::string_view v) {
        if (entries.size() < 256) entries.emplace_back(std::string(k), std::string(v));
      });
      case_insensitive_.resize(schema.map_count());
      case_insensitive_[m] = schema.map(m).case_insensitive_keys;
    }
  }

  FieldValue field(FieldId id) const override { return id < fields_.size() ? fields_[id] : FieldValue{}; }

  std::optional<std::string_view> map_value(MapId map, std::string_view key) const override {
    if (map >= maps_.size()) return std::nullopt;
    for (const auto& [k, v] : maps_[map]) {
      if (k.size() != key.size()) continue;
      bool same = true;
      for (size_t i = 0; i < k.size() && same; ++i) {
        const char c = case_insensitive_[map] ? text::lower(k[i]) : k[i];
        same = c == key[i];
      }
      if (same) return std::string_view(v);
    }
    return std::nullopt;
  }

  void for_each_map_entry(MapId map,
                          const std::function<void(std::string_view, std::string_view)>& fn) const override {
    if (map >= maps_.size()) return;
    for (const auto& [k, v] : maps_[map]) fn(k, v);
  }

 private:
  std::vector<FieldValue> fields_;
  std::vector<std::string> strings_;
  std::vector<std::vector<std::pair<std::string, std::string>>> maps_;
  std::vector<bool> case_insensitive_;
};

RecordSample::RecordSample(const Schema& schema) : schema_(schema) {}
RecordSample::~RecordSample() = default;

void RecordSample::offer(const RecordView& r) {
  thread_local uint32_t turn = 0;
  if (turn++ % kEvery != 0) return;
  if (!mu_.TryLock()) return;
  if (records_.size() < kSize) records_.push_back(std::make_unique<Copy>());
  records_[next_ % kSize]->assign(schema_, r);
  ++next_;
  mu_.Unlock();
}

void RecordSample::for_each(const std::function<void(const RecordView&)>& fn) const {
  MutexLock lock(&mu_);
  for (const auto& c : records_) fn(*c);
}

RecordSample::Frequency RecordSample::frequency(const std::function<bool(const RecordView&)>& holds) const {
  MutexLock lock(&mu_);
  Frequency f;
  size_t hits = 0;
  for (const auto& c : records_) hits += holds(*c) ? 1 : 0;
  f.records = records_.size();
  f.fraction = f.records == 0 ? 0 : static_cast<double>(hits) / static_cast<double>(f.records);
  return f;
}

}  // namespace clio::matcher::internal
