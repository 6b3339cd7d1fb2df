// The engine's shared vocabulary: a subscription rewritten as branches of
// literals, each branch filed under index terms (its access path). Written by
// the planner (plan.cc), read by the index (index.cc). Private to clio::matcher.
//
//   Sub s(query);                 // one distinct query
//   planner.plan(s, ops);         // s.branches[i].terms: where to file it
//   index.add(s, /*shared=*/false);
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "ast.h"
#include "clio/matcher/matcher.h"

namespace clio::matcher::internal {

// A value source: a fixed field, one key of a map, or every entry of a map
// (as "key: value" lines). For IP fields, the prefix the value is masked to.
struct Component {
  SourceKind kind = SourceKind::kField;
  uint32_t id = 0;
  std::string key;
  uint8_t prefix = 128;

  auto tie() const { return std::tie(kind, id, key, prefix); }
  bool operator<(const Component& o) const { return tie() < o.tie(); }
  bool operator==(const Component& o) const { return tie() == o.tie(); }
};

// An atom or its negation.
struct Lit {
  const Atom* atom;
  bool neg;
};

constexpr uint32_t kNoField = UINT32_MAX;

// Which one or two one-sided ranges a sorted list holds. A range is stored in
// "lower bound" form: the literal holds iff x >= k, where x is the value (or
// its negation for an upper bound) and k the threshold (or its negation). An
// interval lo..hi on one field is f1 = f2 = the field, up1 = false, up2 = true.
struct RangeKey {
  uint32_t f1 = 0;
  bool up1 = false;
  uint32_t f2 = kNoField;  // kNoField: no second range
  bool up2 = false;
  bool operator==(const RangeKey&) const = default;
};

// How a term reaches a record.
enum class Access : uint8_t {
  kKey,         // combined key over fixed fields (spec), optionally with sorted ranges inside its bucket
  kMapKey,      // (map key, value) equality, found from the record's own map entries
  kRange,       // sorted one-sided ranges or an interval on fixed numeric fields
  kUnordered,   // the field is absent (or NaN): what `not f < N` also accepts
  kGram,        // substring table (contains, and regexes through their required literals)
  kPresent,     // `field:*`: present and not empty
  kRegexSet,    // a regex without a required literal, in its source's RE2::Sets
  kNotEqual,    // complement of an equality: every value group but the record's own
  kNegation,    // a negated literal evaluated on every record
  kAlways,      // nothing indexable: the branch is evaluated on every record
};

// One index term of a branch. Only the members of its `access` are used.
struct Term {
  Access access = Access::kAlways;
  bool exact = false;        // the term alone implies its literal (no verification)
  // kKey: key bytes (spec number first); kMapKey: source + value bytes;
  // kNotEqual: the literal's value bytes.
  std::string key;
  uint32_t spec = 0;         // kKey
  uint32_t source = 0;       // kMapKey, kGram, kPresent, kRegexSet, kNotEqual: source slot
  // kKey with ranges, kRange: the sorted-list key and thresholds.
  bool has_range = false;
  RangeKey rk;
  double k1 = 0;
  double k2 = -INFINITY;
  uint32_t field = 0;        // kUnordered
  // kGram: table key (length, up to kGramMax bytes), where they sit in the needle.
  uint64_t gram = 0;
  uint32_t gram_offset = 0;
  std::string needle;        // kGram: lower-cased literal
  bool fires_when_absent = false;  // kNotEqual: `not f = v` (true) or `f != v` (false)
  Lit lit{nullptr, false};   // kRegexSet, kNegation: the literal
};

struct Sub;

// One branch (a conjunction) of a subscription: its terms (an OR: the branch
// is a candidate when any term fires) and the literals left to verify, in
// evaluation order. Immutable once built.
struct Branch {
  const Sub* sub = nullptr;
  bool whole = false;        // verify the whole query (the terms are only a necessary condition)
  bool dedupe = false;       // several entries of the subscription can fire for one record
  uint32_t tried = 0;        // dense number: verified at most once per record when de-duplicating
  std::vector<Term> terms;
  std::vector<Lit> residual;
};

// A distinct query (by canonical text) and every subscription id that holds
// it: identical queries are indexed and evaluated once.
struct Sub {
  explicit Sub(Query q) : query(std::move(q)) {}
  Query query;
  uint32_t slot = 0;                 // dense number, for de-duplication
  std::vector<Branch> branches;      // reserved up front: addresses are stable
  EveryRecordReason every_record = EveryRecordReason::kNone;
  // The writer's: read only under the matcher's mutex.
  std::vector<uint64_t> ids;         // subscriptions holding this query
  bool filed_shared = false;         // how its entries were filed (Index::add)
};

// An index entry. `br` is null when the entry implies its single-id
// subscription outright, so matching writes `id` and touches nothing else;
// otherwise `id` is 0 and the branch is verified (and emits its ids).
struct Entry {
  double k1;
  double k2;
  uint64_t id;
  const Branch* br;
};

}  // namespace clio::matcher::internal
