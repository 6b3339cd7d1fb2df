// Matcher: the prospective-search engine. Stored queries (subscriptions) are
// indexed so that matching a record costs about the number of the record's
// fields plus the number of matches, not the number of subscriptions. What
// cannot be indexed is checked on every record, counted, and explained.
//
//   matcher::Matcher m(schema);
//   if (auto e = m.subscribe(7, "status:5xx and host = api"); !e.ok()) report(e);
//   std::vector<uint64_t> ids;
//   m.match(view, ids);   // appends 7 if the record matches
//   auto a = m.explain(*matcher::parse("-method:OPTIONS", schema).query);
//   if (a.every_record) show(a.text);   // "checked on every record: ..."
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "clio/matcher/query.h"
#include "clio/matcher/schema.h"

namespace clio::matcher {

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value type). Bounds on what the index may cost.
// None of them degrades silently: a subscription that does not fit is
// checked on every record and counted under its EveryRecordReason.
struct MatcherOptions {
  QueryOptions query;              // limits for subscribe(id, text)
  // A subscription is rewritten as an OR of ANDs. With more branches than
  // this, it is indexed through one AND-ed part of it instead (verifying the
  // whole query for candidates), or, when no part fits, checked on every
  // record (kTooManyBranches).
  size_t max_branches = 1024;
  // Distinct sets of two or more fields combined into one equality key (e.g.
  // {status, method}); each costs one hash probe per record. Beyond this a
  // branch keys on one field (single fields are always allowed).
  size_t max_key_specs = 64;
  // Regexes without a required literal are indexed per field in RE2::Sets of
  // at most this many patterns, each Set with this memory budget. A pattern
  // that does not fit is checked on every record (kRegexSetFull).
  size_t regex_set_size = 64;
  int64_t regex_set_max_mem = 8 << 20;
};

// Why a subscription is checked on every record. Stable string codes and
// admin-readable texts come from every_record_code() / every_record_text().
enum class EveryRecordReason : uint8_t {
  kNone = 0,            // "indexed": found through an index term
  kNegatedText,         // "negated_text": only negated substrings, regexes, presence, `in` or `!~`
  kRegexWithoutLiteral, // "regex_without_literal": a regex with no text it must contain (or only text
                        // found in most records, like "/"), matched through an RE2::Set
  kRegexSetFull,        // "regex_set_full": such a regex did not fit the RE2::Set memory budget
  kAnyHeader,           // "any_header": header.* / ~h without a literal text to look for
  kTooManyBranches,     // "too_many_branches": too many alternatives after expanding and/or
  kNoCondition,         // "no_condition": nothing to look up (e.g. path:"" is always true)
};
constexpr size_t kEveryRecordReasonCount = 7;

// "indexed", "negated_text", ... (stable, for APIs and metrics labels).
std::string_view every_record_code(EveryRecordReason r);
// One sentence for an admin, e.g. "it has only negated text conditions
// (like -method:OPTIONS), which are tested on every record".
std::string_view every_record_text(EveryRecordReason r);

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value type). A snapshot of the matcher's counters.
struct MatcherStats {
  size_t subscriptions = 0;
  size_t distinct_queries = 0;  // identical queries (same canonical text) are evaluated once
  // Subscriptions checked on every record, in all and by reason (indexed by
  // EveryRecordReason; [kNone] is always 0).
  size_t every_record = 0;
  std::array<size_t, kEveryRecordReasonCount> every_record_by_reason{};
  size_t key_specs = 0;     // field sets in use as equality keys
  size_t regex_sets = 0;    // RE2::Sets in use
};

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value type). How a query would be matched.
struct AccessExplanation {
  bool every_record = false;
  EveryRecordReason reason = EveryRecordReason::kNone;
  // Short text for the admin, e.g. "indexed by path:\"/api/v1/\"" or
  // "checked on every record: it has only negated text conditions ...".
  std::string text;
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

  // Whether `query` (subscribed or not; parsed with this matcher's schema)
  // would be checked on every record, and why, without subscribing it. The
  // answer depends on the query's shape and the options, and for a regex
  // whose only literal text is common in the records seen so far (like "/"),
  // on that traffic; it does not depend on what is subscribed. Costs about one
  // subscribe's planning.
  AccessExplanation explain(const Query& query) const;

  size_t size() const;
  MatcherStats stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace clio::matcher
