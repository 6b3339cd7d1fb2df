// Matcher: the prospective-search engine. Stored queries (subscriptions) are
// indexed so that matching a record costs about the number of the record's
// fields plus the number of matches, not the number of subscriptions.
//
//   matcher::Matcher m(schema);
//   if (auto e = m.subscribe(7, "status:5xx and host = api"); !e.ok()) report(e);
//   std::vector<uint64_t> ids;
//   m.match(view, ids);   // appends 7 if the record matches
//   m.unsubscribe(7);
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "clio/matcher/query.h"
#include "clio/matcher/schema.h"

namespace clio::matcher {

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value type). Bounds on what the index may cost.
struct MatcherOptions {
  QueryOptions query;              // limits for subscribe(id, text)
  // A subscription is rewritten as an OR of ANDs; one with more branches than
  // this is not indexed but evaluated for every record.
  size_t max_branches = 64;
  // Distinct sets of fields combined into one equality key (e.g. {status,
  // method}). Beyond this, new subscriptions key on a single field.
  size_t max_key_specs = 64;
  // `field in (...)` lists longer than this are not used as index keys.
  size_t max_in_keys = 64;
  // Regexes are indexed per field in RE2::Sets of at most this many patterns,
  // each Set with this memory budget. A pattern that does not fit is checked
  // for every record instead.
  size_t regex_set_size = 128;
  int64_t regex_set_max_mem = 8 << 20;
};

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value type). A snapshot of the matcher's counters.
struct MatcherStats {
  size_t subscriptions = 0;
  size_t unindexable = 0;   // subscriptions evaluated for every record
  size_t key_specs = 0;     // field sets in use as equality keys
  size_t regex_sets = 0;    // RE2::Sets in use
};

// Safe for concurrent use by multiple threads. match() may run on any number
// of threads while another thread subscribes and unsubscribes; matching never
// waits for a subscribe (the index is kept twice and writers switch readers
// between the copies), while subscribe/unsubscribe are serialised among
// themselves and wait only for matches already in progress.
class Matcher {
 public:
  // Borrows `schema`, which must outlive the matcher.
  explicit Matcher(const Schema& schema, MatcherOptions options = {});
  ~Matcher();
  // Not copyable.
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;

  // Parses `query` and stores it under `id`. Returns the parse error, or an
  // error with code "duplicate_id" if `id` is taken; ok() on success.
  QueryError subscribe(uint64_t id, std::string_view query);
  // Stores an already parsed query; code "schema_mismatch" if it was parsed
  // with another schema.
  QueryError subscribe(uint64_t id, const Query& query);
  // Removes subscription `id`; false if there was none.
  bool unsubscribe(uint64_t id);

  // Appends to `out` the id of every subscription that matches `record`, each
  // once, in no particular order (sort them if order matters).
  void match(const RecordView& record, std::vector<uint64_t>& out) const;

  size_t size() const;
  MatcherStats stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace clio::matcher
