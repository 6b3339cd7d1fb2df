// One copy of the engine's index: the structures a record is looked up in.
// The planner decides the terms; the Index files entries under them and, per
// record, enumerates the entries whose terms the record satisfies. Private to
// clio::matcher.
//
//   Index ix;                          // mutated only while no reader uses it
//   ix.define_source(0, comp);         // planner ops first, then
//   ix.add(sub, /*shared=*/false);     // the subscription's entries
//   ix.match(schema, view, ids);       // const, any number of threads
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <re2/set.h>

#include "engine.h"
#include "keys.h"

namespace clio::matcher::internal {

// A compiled RE2::Set over some regex branches of one source. Immutable,
// shared by both index copies.
struct RegexChunk {
  std::shared_ptr<const RE2::Set> set;
  std::vector<const Branch*> branches;  // by Set index; null: removed
};

struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return key_hash(s); }
};
template <typename V>
using StrMap = std::unordered_map<std::string, V, StrHash, std::equal_to<>>;

// Const methods are thread-safe, non-const methods need external
// synchronization (the left-right protocol in matcher.cc).
class Index {
 public:
  Index();
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  // Planner ops: catalog changes both copies apply before adding entries.
  void define_source(uint32_t slot, const Component& c);
  void set_spec(uint32_t spec, const std::vector<Component>& comps, int delta);
  void define_not_equal(uint32_t table, const Component& c);
  void set_regex_chunks(uint32_t slot, std::vector<std::shared_ptr<const RegexChunk>> chunks);
  // The ids a query stands for, by its slot.
  void set_ids(uint32_t slot, std::vector<uint64_t> ids);
  // How many query slots and branch numbers are in use (scratch sizes).
  void set_slots(uint32_t queries, uint32_t branches);

  // Files (or removes) every term of every branch of `s`. With `shared` (the
  // query stands for several ids), no entry is exact: all emit through ids.
  void add(const Sub& s, bool shared);
  void remove(const Sub& s, bool shared);

  void match(const Schema& schema, const RecordView& r, std::vector<uint64_t>& out) const;

 private:
  friend class MatchRun;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clio::matcher::internal
