#include "recent_records.h"

#include <algorithm>

#include "clio/middleware/http_schema.h"

namespace clio::console {

void RecentRecords::append(const std::shared_ptr<const RecordBatch>& batch) {
  std::vector<std::shared_ptr<const Record>> evicted;  // freed after the lock is released
  {
    MutexLock lock(&mu_);
    for (const auto& r : *batch) ring_.emplace_back(batch, r.get());
    while (ring_.size() > memory_records_) {
      evicted.push_back(std::move(ring_.front()));
      ring_.pop_front();
      store_has_older_ = true;
    }
  }
}

std::vector<std::shared_ptr<const Record>> RecentRecords::after(uint64_t after_id, uint64_t& oldest) const {
  MutexLock lock(&mu_);
  oldest = ring_.empty() ? 0 : ring_.front()->id;
  auto first = std::upper_bound(ring_.begin(), ring_.end(), after_id,
                                [](uint64_t id, const std::shared_ptr<const Record>& r) { return id < r->id; });
  return {first, ring_.end()};
}

Status RecentRecords::visit(const std::function<bool(const std::shared_ptr<const Record>&)>& fn) {
  std::vector<std::shared_ptr<const Record>> recent;
  bool older_in_store;
  {
    MutexLock lock(&mu_);
    recent.assign(ring_.begin(), ring_.end());
    older_in_store = store_has_older_;
  }
  for (auto it = recent.rbegin(); it != recent.rend(); ++it) {
    if (!fn(*it)) return Status::Ok();
  }
  if (!older_in_store) return Status::Ok();
  // Older records from the store, newest first, bounded by what it keeps.
  if (Status s = store_.flush(); !s.ok()) return s;
  const uint64_t below = recent.empty() ? 0 : recent.front()->id;
  return store_.scan(below, stored_records_, [&](Record&& r) { return fn(std::make_shared<const Record>(std::move(r))); });
}

Result<std::vector<std::shared_ptr<const Record>>> RecentRecords::search(const matcher::Query* q, size_t limit,
                                                                         uint64_t before_id) {
  std::vector<std::shared_ptr<const Record>> out;
  if (limit == 0) return out;
  Status s = visit([&](const std::shared_ptr<const Record>& r) {
    if ((before_id == 0 || r->id < before_id) && (q == nullptr || q->matches(HttpRecordView(*r)))) out.push_back(r);
    return out.size() < limit;
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace clio::console
