// The planner: rewrites a query as branches (ANDs of literals), chooses each
// branch's access path by estimated selectivity, orders the leftover checks
// by cost and selectivity, and keeps the catalog both index copies share
// (key specs, sources, value cardinalities, regex sets). Private to
// clio::matcher.
//
//   Planner p(schema, options);          // owned by the matcher's writer
//   std::vector<Planner::IndexOp> ops;
//   p.plan(sub, ops);                    // fills sub.branches
//   for (auto& op : ops) op(index);      // then index.add(sub, false)
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine.h"
#include "index.h"
#include "sample.h"

namespace clio::matcher::internal {

// Const methods are thread-safe, non-const methods need external
// synchronization (the matcher's writer mutex).
class Planner {
 public:
  using IndexOp = std::function<void(Index&)>;

  // Borrows `sample` (records seen, for observed frequencies).
  Planner(const Schema& schema, const MatcherOptions& options, const RecordSample& sample);
  ~Planner();
  Planner(const Planner&) = delete;
  Planner& operator=(const Planner&) = delete;

  // Fills `s.branches` and `s.every_record` for `s.query`, taking what the
  // terms need from the catalog; appends to `ops` the catalog changes both
  // index copies must apply before `s` is added.
  void plan(Sub& s, std::vector<IndexOp>& ops);
  // Gives back what plan() took; appends the ops both copies apply after `s`
  // is removed.
  void unplan(const Sub& s, std::vector<IndexOp>& ops);
  // How `q` would be matched, without changing anything.
  AccessExplanation explain(const Query& q) const;

  size_t key_specs() const;
  size_t regex_sets() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clio::matcher::internal
