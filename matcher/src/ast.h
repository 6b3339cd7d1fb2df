// The parse tree of a query, shared by the parser, the canonical printer, the
// reference evaluator and the engine. Private to clio::matcher.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <re2/re2.h>

#include "clio/matcher/query.h"
#include "clio/matcher/schema.h"

namespace clio::matcher::internal {

enum class SourceKind : uint8_t {
  kField,   // a fixed field
  kMapKey,  // one key of a map field: header.user-agent
  kMapAny,  // any entry of a map, as the line "key: value": header.*
};

enum class Op : uint8_t {
  kEq, kNe, kLt, kLe, kGt, kGe,  // comparisons
  kRegex, kNotRegex,             // ~ !~ (RE2 partial match)
  kContains,                     // : on strings, ASCII case-insensitive
  kPresent,                      // field:*  (strings: present and not empty)
  kClass,                        // int field :Nxx -> lo..hi inclusive
  kCidr,                         // ip field :addr/len
  kIn,                           // field in (items)
};

// A numeric literal after unit conversion. `is_int` when it is integral and
// fits int64; `i` is then exact and `f` its double.
struct Num {
  double f = 0;
  int64_t i = 0;
  bool is_int = false;
};

// One item of an `in (...)` list: a value, a CIDR block, or an inclusive range.
struct Item {
  bool range = false;
  std::string s;        // string fields
  Num lo, hi;           // numeric value (lo) or range lo..hi
  IpAddr ip;            // ip fields: address, masked to `prefix`
  uint8_t prefix = 128;
};

// Rare payloads kept out of line so that common atoms stay small.
struct AtomExtra {
  std::unique_ptr<const RE2> re;  // kRegex / kNotRegex
  std::vector<Item> items;        // kIn
};

struct Atom {
  SourceKind kind = SourceKind::kField;
  Op op = Op::kEq;
  FieldType type = FieldType::kString;  // of the source (maps are strings)
  uint8_t prefix = 128;                 // kEq/kNe/kCidr on ip
  uint32_t id = 0;                      // FieldId or MapId
  std::string key;                      // map key (lower-case for case-insensitive maps)
  std::string str;                      // string value; lower-cased needle; regex pattern
  Num num;                              // numeric literal; kClass: lower bound (N00)
  IpAddr ip;                            // ip literal (masked for kCidr)
  std::shared_ptr<const AtomExtra> extra;
};

enum class NodeKind : uint8_t { kAnd, kOr, kNot, kAtom };

struct Node {
  NodeKind kind = NodeKind::kAtom;
  uint32_t atom = 0;        // kAtom: index into atoms
  uint32_t first_kid = 0;   // others: index into kids
  uint32_t kid_count = 0;
};

struct QueryImpl {
  const Schema* schema = nullptr;
  std::vector<Node> nodes;
  std::vector<Atom> atoms;
  std::vector<uint32_t> kids;
  uint32_t root = 0;
  int depth = 0;  // deepest nesting of the tree (bounded by max_nesting)
};

// The parse tree behind a Query, for the engine. Hidden: query.h names it
// (a friend), and a shared build exports only the public API.
struct [[gnu::visibility("hidden")]] QueryAccess {
  static const QueryImpl& impl(const Query& q) { return q.impl(); }
};

// Canonical text of one atom.
void print_atom(const QueryImpl& q, const Atom& a, std::string& out);
// Evaluates one atom on the value of its source (fields and map keys). The
// value is absent (present=false) for a missing field or key.
bool eval_atom_value(const Atom& a, const FieldValue& v);
// Evaluates one atom against a record (fetches the value itself).
bool eval_atom(const Atom& a, const RecordView& r);
// Evaluates the subtree at `node`; recursion is bounded by the tree's depth.
bool eval_node(const QueryImpl& q, uint32_t node, const RecordView& r);
// Canonical text of the subtree at `node`.
void print_node(const QueryImpl& q, uint32_t node, std::string& out);

// Integer-field comparison helpers: three-way compare of v with a literal.
// Returns <0, 0, >0; `equal_possible` false when the literal is not integral.
inline int cmp_int(int64_t v, const Num& n) {
  if (n.is_int) return v < n.i ? -1 : (v > n.i ? 1 : 0);
  const double d = static_cast<double>(v);
  return d < n.f ? -1 : 1;  // a non-integral literal is never equal
}

}  // namespace clio::matcher::internal
