// RecordSample: copies of a few recent records, so the planner can estimate
// how often a condition holds in real traffic (observed frequency) instead of
// guessing from the condition's shape. Private to clio::matcher.
//
//   RecordSample sample(schema);
//   sample.offer(view);                        // from match(): cheap, never waits
//   double f = sample.frequency([&](const RecordView& r) { return eval_atom(a, r); });
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "clio/base/mutex.h"
#include "clio/matcher/schema.h"

namespace clio::matcher::internal {

// Safe for concurrent use by multiple threads: offer() takes the lock only if
// it is free (a reader never waits), frequency() waits for it.
class RecordSample {
 public:
  static constexpr size_t kSize = 64;      // records kept
  static constexpr uint32_t kEvery = 64;   // a thread offers one record in this many

  explicit RecordSample(const Schema& schema);
  ~RecordSample();
  RecordSample(const RecordSample&) = delete;
  RecordSample& operator=(const RecordSample&) = delete;

  // Copies `r` into the sample if this thread's turn has come and nobody
  // holds the lock.
  void offer(const RecordView& r);

  // The fraction of sampled records for which `holds` is true, and how many
  // records that is based on (0: no sample yet).
  struct Frequency {
    double fraction = 0;
    size_t records = 0;
  };
  Frequency frequency(const std::function<bool(const RecordView&)>& holds) const;
  // Calls fn for every sampled record.
  void for_each(const std::function<void(const RecordView&)>& fn) const;

 private:
  class Copy;

  const Schema& schema_;
  mutable Mutex mu_;
  std::vector<std::unique_ptr<Copy>> records_ CLIO_GUARDED_BY(mu_);
  size_t next_ CLIO_GUARDED_BY(mu_) = 0;
};

}  // namespace clio::matcher::internal
