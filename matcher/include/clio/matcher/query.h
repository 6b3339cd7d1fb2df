// Query: one parsed query of the Clio query language (see
// the README, "Query language"), with its canonical text and the reference
// evaluator. Parsing never throws; errors are values with a byte position.
//
//   auto r = matcher::parse("status:5xx and wall > 1s", schema);
//   if (!r.ok()) { print(r.error.message, r.error.offset, r.error.length); return; }
//   std::string norm = r.query->canonical();   // status_code:5xx and wall_time > 1000
//   bool hit = r.query->matches(view);          // view: a matcher::RecordView
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "clio/matcher/schema.h"

namespace clio::matcher {

namespace internal {
struct QueryImpl;
struct QueryAccess;
}  // namespace internal

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value type). Bounds on what one query may cost;
// the defaults suit untrusted input typed in a console. Evaluating a query
// recurses as deep as its nesting, so keep max_nesting small.
struct QueryOptions {
  size_t max_length = 4096;           // bytes of query text
  int max_nesting = 64;               // depth of parentheses and negations
  int max_predicates = 256;           // predicates (bare terms included)
  int64_t max_regex_mem = 1 << 20;    // RE2 max_mem per pattern, bytes
};

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value type). A positioned parse error:
// `offset`/`length` are in bytes of the query text; `hint` may be empty. A
// default-constructed QueryError (empty code) means "no error".
struct QueryError {
  std::string code;     // stable machine-readable code, e.g. "unknown_field"
  size_t offset = 0;
  size_t length = 0;
  std::string message;  // one sentence, e.g. "unknown field 'stauts'"
  std::string hint;     // e.g. "did you mean 'status'?"

  bool ok() const { return code.empty(); }
  // "message (hint)" on one line.
  std::string to_string() const;
};

// Const methods are thread-safe, non-const methods need external
// synchronization. A parsed query: an immutable value, cheap to copy (copies
// share the parse tree). Borrows the Schema it was parsed with, which must
// outlive it.
class Query {
 public:
  // The normalised text: aliases resolved, shorthands expanded, units
  // converted to milliseconds and bytes, strings quoted, AND/OR flattened.
  // Stable: parse(canonical()).canonical() == canonical().
  std::string canonical() const;
  // The reference evaluator: walks the parse tree for one record.
  bool matches(const RecordView& record) const;
  // Number of predicates (bare terms and shorthands count as one each).
  int predicate_count() const;

  // The schema this query was parsed with.
  const Schema& schema() const;

 private:
  friend class Parser;
  friend struct internal::QueryAccess;
  const internal::QueryImpl& impl() const { return *impl_; }
  explicit Query(std::shared_ptr<const internal::QueryImpl> impl) : impl_(std::move(impl)) {}

  std::shared_ptr<const internal::QueryImpl> impl_;
};

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value type). Either a query or an error.
struct ParseResult {
  std::optional<Query> query;  // set on success
  QueryError error;            // set on failure

  bool ok() const { return query.has_value(); }
};

// Parses `text` against `schema`. Cost is bounded by `options`: no recursion
// deeper than max_nesting, no regex bigger than max_regex_mem.
ParseResult parse(std::string_view text, const Schema& schema, const QueryOptions& options = {});

}  // namespace clio::matcher
