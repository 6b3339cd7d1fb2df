// RecentRecords: the newest records in memory (a ring), and search over
// them and, beyond them, the store. Backfill and `api/records` read here.
//
//   RecentRecords recent(store, 10000, 100000, store_last_id);
//   recent.append(batch_owner);                        // the dispatcher
//   auto found = recent.search(&query, 50);            // API threads, newest first
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "clio/base/mutex.h"
#include "clio/base/status.h"
#include "clio/console/store.h"
#include "clio/matcher/query.h"
#include "clio/middleware/record.h"

namespace clio::console {

// A dispatcher batch: its records share one owner, so the ring's pointers
// alias it (one allocation per batch, not per record).
using RecordBatch = std::vector<std::unique_ptr<Record>>;

// Safe for concurrent use by multiple threads: the dispatcher appends, any
// thread searches. Borrows `store`, which must outlive it.
class RecentRecords {
 public:
  // `store_last_id`: the highest id the store held at start (records at or
  // below it are only in the store).
  RecentRecords(Store& store, size_t memory_records, size_t stored_records, uint64_t store_last_id)
      : store_(store), memory_records_(memory_records), stored_records_(stored_records),
        store_has_older_(store_last_id > 0) {}
  // Not copyable.
  RecentRecords(const RecentRecords&) = delete;
  RecentRecords& operator=(const RecentRecords&) = delete;

  // Appends the batch's records (ids increasing); the oldest leave the ring
  // beyond memory_records and are released after the lock.
  void append(const std::shared_ptr<const RecordBatch>& batch);
  // The records in memory with an id above `after_id`, oldest first; sets
  // `oldest` to the lowest id the ring holds (0 when empty).
  std::vector<std::shared_ptr<const Record>> after(uint64_t after_id, uint64_t& oldest) const;
  // Newest first: records with id < before_id (0 = no bound) matching `q`
  // (null = all), at most `limit`; from memory, then from the store.
  Result<std::vector<std::shared_ptr<const Record>>> search(const matcher::Query* q, size_t limit,
                                                            uint64_t before_id = 0);
  // Visits the records held, newest first (memory, then the store), until
  // `fn` returns false. `fn` runs with no lock held.
  Status visit(const std::function<bool(const std::shared_ptr<const Record>&)>& fn);

 private:
  // Constant after construction.
  Store& store_;
  const size_t memory_records_;
  const size_t stored_records_;

  mutable Mutex mu_;
  // Guarded by mu_.
  std::deque<std::shared_ptr<const Record>> ring_ CLIO_GUARDED_BY(mu_);
  bool store_has_older_ CLIO_GUARDED_BY(mu_);  // the store holds records older than the ring's oldest
};

}  // namespace clio::console
