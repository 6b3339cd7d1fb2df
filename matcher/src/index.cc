// The index structures and the per-record walk over them.
#include "index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "keys.h"
#include "text.h"

namespace clio::matcher::internal {
namespace {

// What a sorted entry emits: the subscription id itself when the entry
// implies it (top bit clear), else kVerify | the branch's dense number.
constexpr uint64_t kVerify = uint64_t{1} << 63;

uint64_t payload(const Entry& e) { return e.br == nullptr ? e.id : kVerify | e.br->tried; }

// Entries with k2 in [min_k2, max_k2], sorted by k1; thresholds and payloads
// in separate arrays. A record passes a prefix of k1 (found by binary
// search); when no payload needs verifying, that prefix of `pay` is the
// output as it stands and is copied in one piece.
struct Group {
  double min_k2 = INFINITY;
  double max_k2 = -INFINITY;
  std::vector<double> k1, k2;
  std::vector<uint64_t> pay;
  uint32_t verify = 0;  // payloads with kVerify

  size_t size() const { return k1.size(); }
  void insert_at(size_t i, double a, double b, uint64_t p) {
    k1.insert(k1.begin() + static_cast<long>(i), a);
    k2.insert(k2.begin() + static_cast<long>(i), b);
    pay.insert(pay.begin() + static_cast<long>(i), p);
    min_k2 = std::min(min_k2, b);
    max_k2 = std::max(max_k2, b);
    verify += (p & kVerify) != 0 ? 1 : 0;
  }
  void erase_at(size_t i) {
    verify -= (pay[i] & kVerify) != 0 ? 1 : 0;
    k1.erase(k1.begin() + static_cast<long>(i));
    k2.erase(k2.begin() + static_cast<long>(i));
    pay.erase(pay.begin() + static_cast<long>(i));
  }
  // How many entries have k1 <= x (x is not NaN).
  size_t passing(double x) const {
    return static_cast<size_t>(std::upper_bound(k1.begin(), k1.end(), x) - k1.begin());
  }
};

// Entries of one RangeKey: groups partition the k2 axis in ascending order, so
// a record walks, in each group whose k2 it passes, the k1 prefix it passes;
// only the one group straddling the record's k2 checks k2 entry by entry.
struct RangeList {
  RangeKey key;
  std::vector<Group> groups;
};

constexpr size_t kGroupMax = 128;
constexpr uint32_t kFewKeys = 8;  // map keys looked up one by one, below this many

// Entries under one equality key. Those that imply their subscription are
// kept as bare ids, which a matching record copies out in one piece.
struct Bucket {
  std::vector<uint64_t> ids;
  std::vector<Entry> plain;  // to verify
  std::vector<RangeList> ranges;
  bool empty() const { return ids.empty() && plain.empty() && ranges.empty(); }
};

struct KeySpec {
  std::vector<Component> comps;
  uint32_t refs = 0;
};

// A substring entry, verified at the position where its gram was found: the
// needle's first bytes are kept here, so most wrong positions are rejected
// without touching the term.
struct GramEntry {
  const Term* term;
  const Branch* br;
  uint64_t head;       // the needle's first head_len bytes (lower-case), little-endian
  uint32_t offset;     // where the gram starts in the needle
  uint16_t len;        // needle length (capped)
  uint8_t head_len;

  static GramEntry make(const Term& t, const Branch& b) {
    GramEntry e{&t, &b, 0, t.gram_offset, static_cast<uint16_t>(std::min<size_t>(t.needle.size(), 65535)), 0};
    e.head_len = static_cast<uint8_t>(std::min<size_t>(8, t.needle.size()));
    std::memcpy(&e.head, t.needle.data(), e.head_len);
    return e;
  }
  // True if the needle occurs in `low` where this gram was found at `i`.
  bool found(std::string_view low, size_t i) const {
    if (i < offset) return false;
    const size_t p = i - offset;
    if (p + len > low.size()) return false;
    uint64_t w = 0;
    std::memcpy(&w, low.data() + p, head_len);
    if (w != head) return false;
    return len <= 8 || text::iprefix_at(low, p, term->needle);
  }
};

// A counting filter over the grams of one source, so that most positions of
// a value cost one array read instead of a hash probe. Sized to its grams.
class GramFilter {
 public:
  static uint32_t hash(uint64_t g) { return static_cast<uint32_t>((g * 0x9E3779B97F4A7C15ull) >> 40); }
  bool maybe(uint64_t g) const { return !counts_.empty() && counts_[hash(g) & mask_] != 0; }
  // Called after an entry for `g` was added to (delta +1) or removed from
  // (delta -1) `all`; grows (x4, rebuilding from `all`) as grams are added.
  void add(uint64_t g, int delta, const std::unordered_map<uint64_t, std::vector<GramEntry>>& all) {
    if (delta > 0 && all.size() * 4 > counts_.size() && counts_.size() < kMaxSize) {
      const size_t n = std::min(kMaxSize, std::max<size_t>(1024, counts_.size() * 4));
      counts_.assign(n, 0);
      mask_ = static_cast<uint32_t>(n - 1);
      for (const auto& [k, v] : all) counts_[hash(k) & mask_] += static_cast<uint32_t>(v.size());
      return;
    }
    if (counts_.empty()) return;
    uint32_t& c = counts_[hash(g) & mask_];
    c = static_cast<uint32_t>(static_cast<int64_t>(c) + delta);
  }

 private:
  static constexpr size_t kMaxSize = 1 << 15;
  std::vector<uint32_t> counts_;  // entries per hash slot
  uint32_t mask_ = 0;
};

struct Source {
  Component src;
  uint32_t refs = 0;                 // entries filed under this source
  uint32_t by_len[kGramMax + 1] = {};  // gram entries by gram length
  uint32_t eq = 0;                     // map-key equality entries
  std::unordered_map<uint64_t, std::vector<GramEntry>> grams;  // by gram_key
  GramFilter filter;
  std::vector<Entry> present;
  std::vector<std::shared_ptr<const RegexChunk>> chunks;
};

// A counting Bloom filter (one hash) over the keys of a table, so that a
// record's probe for a key nobody subscribed to usually costs one byte read.
// Counters stick at 255 (then they only cause extra probes).
class KeyFilter {
 public:
  KeyFilter() : counts_(1 << 17, 0) {}
  bool maybe(std::string_view k) const { return counts_[key_hash(k) >> 47] != 0; }
  void add(std::string_view k, int delta) {
    uint8_t& c = counts_[key_hash(k) >> 47];
    if (c == 255) return;
    c = static_cast<uint8_t>(c + delta);
  }

 private:
  std::vector<uint8_t> counts_;
};

struct NotEqualTable {
  Component comp;
  uint32_t refs = 0;
  StrMap<std::vector<Entry>> groups;  // by the value the entries exclude
};

bool same(const Entry& a, const Entry& b) { return a.id == b.id && a.br == b.br && a.k1 == b.k1 && a.k2 == b.k2; }

void erase_entry(std::vector<Entry>& v, const Entry& e) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (same(v[i], e)) {
      v[i] = v.back();
      v.pop_back();
      return;
    }
  }
}

void erase_plain(Bucket& bk, const Entry& e) {
  if (e.br != nullptr) {
    erase_entry(bk.plain, e);
    return;
  }
  auto it = std::find(bk.ids.begin(), bk.ids.end(), e.id);
  if (it == bk.ids.end()) return;
  *it = bk.ids.back();
  bk.ids.pop_back();
}

void add_or_erase(std::vector<Entry>& v, const Entry& e, bool add) {
  if (add) {
    v.push_back(e);
  } else {
    erase_entry(v, e);
  }
}

// The group that holds (or should hold) k2: the first whose max_k2 >= k2.
size_t group_for(const RangeList& rl, double k2) {
  auto it = std::lower_bound(rl.groups.begin(), rl.groups.end(), k2,
                             [](const Group& g, double k) { return g.max_k2 < k; });
  if (it == rl.groups.end()) return rl.groups.size() - 1;
  return static_cast<size_t>(it - rl.groups.begin());
}

void insert_sorted(RangeList& rl, const Entry& e) {
  if (rl.groups.empty()) rl.groups.emplace_back();
  const size_t gi = group_for(rl, e.k2);
  Group& g = rl.groups[gi];
  const auto at = std::upper_bound(g.k1.begin(), g.k1.end(), e.k1) - g.k1.begin();
  g.insert_at(static_cast<size_t>(at), e.k1, e.k2, payload(e));
  if (g.size() <= kGroupMax || rl.key.f2 == kNoField) return;
  // Split at the median k2; both halves stay sorted by k1.
  std::vector<double> k2s = g.k2;
  std::nth_element(k2s.begin(), k2s.begin() + static_cast<long>(k2s.size() / 2), k2s.end());
  const double pivot = k2s[k2s.size() / 2];
  Group left, right;
  for (size_t i = 0; i < g.size(); ++i) {
    Group& to = g.k2[i] < pivot ? left : right;
    to.insert_at(to.size(), g.k1[i], g.k2[i], g.pay[i]);
  }
  if (left.size() == 0) return;  // all k2 equal: keep one group
  rl.groups[gi] = std::move(right);
  rl.groups.insert(rl.groups.begin() + static_cast<long>(gi), std::move(left));
}

void erase_sorted(RangeList& rl, const Entry& e) {
  const uint64_t p = payload(e);
  auto try_group = [&](size_t gi) {
    Group& g = rl.groups[gi];
    for (auto i = static_cast<size_t>(std::lower_bound(g.k1.begin(), g.k1.end(), e.k1) - g.k1.begin());
         i < g.size() && g.k1[i] == e.k1; ++i) {
      if (g.pay[i] != p || g.k2[i] != e.k2) continue;
      g.erase_at(i);
      if (g.size() == 0) rl.groups.erase(rl.groups.begin() + static_cast<long>(gi));
      return true;
    }
    return false;
  };
  if (rl.groups.empty()) return;
  if (try_group(group_for(rl, e.k2))) return;
  for (size_t gi = 0; gi < rl.groups.size(); ++gi) {
    if (try_group(gi)) return;
  }
}

RangeList& range_list(std::vector<RangeList>& lists, const RangeKey& key) {
  for (auto& rl : lists) {
    if (rl.key == key) return rl;
  }
  lists.push_back(RangeList{key, {}});
  return lists.back();
}

void erase_from_lists(std::vector<RangeList>& lists, const RangeKey& key, const Entry& e) {
  for (size_t i = 0; i < lists.size(); ++i) {
    if (!(lists[i].key == key)) continue;
    erase_sorted(lists[i], e);
    if (lists[i].groups.empty()) lists.erase(lists.begin() + static_cast<long>(i));
    return;
  }
}

// Per-thread scratch for matching.
struct Scratch {
  std::vector<uint32_t> epoch;  // by query slot: matched this record
  std::vector<uint32_t> tried;  // by branch number: verified this record
  uint32_t cur = 0;
  std::vector<int> set_hits;
  std::string key;
  std::string lowered;
  std::string line;
  std::string name;
  std::vector<FieldValue> vals;   // by field: the record's value, read when first needed
  std::vector<double> nums;       // by field: the value as a number, for ranges
  std::vector<uint32_t> loaded;   // by field: equals `cur` once vals/nums hold this record's
  struct MapEntry {
    std::string_view name;   // lower-cased for case-insensitive maps (then in `lowered`)
    std::string_view value;
    std::string lowered;
  };
  std::vector<MapEntry> entries;
};

thread_local Scratch t_scratch;

}  // namespace

struct Index::Impl {
  // Guarded by the left-right protocol: written only while no reader uses this copy.
  std::vector<KeySpec> specs;
  std::vector<uint32_t> active_specs;
  StrMap<Bucket> buckets;
  KeyFilter bucket_filter;
  std::vector<RangeList> ranges;
  std::vector<std::vector<Entry>> unordered;  // by field
  std::vector<uint32_t> unordered_fields;     // fields with entries
  std::vector<Source> sources;
  std::vector<uint32_t> field_sources;       // active sources on fixed fields
  std::vector<uint32_t> any_sources;         // active sources on map-any
  StrMap<uint32_t> map_key_sources;          // map key name -> active source
  std::vector<uint32_t> map_key_list;        // the same sources, in a list
  std::vector<uint32_t> maps_in_use;         // per map: active map-key sources
  StrMap<std::vector<Entry>> map_eq;         // source + value -> entries
  std::vector<NotEqualTable> not_equal;
  std::vector<uint32_t> active_not_equal;
  std::vector<Entry> negations;
  std::vector<Entry> always;
  std::vector<std::vector<uint64_t>> ids;    // by query slot
  std::vector<const Branch*> branch_of;      // by branch number (Branch::tried)
  uint32_t slots = 0;
  uint32_t branch_slots = 0;

  static std::string map_key_name(const Component& c) {
    std::string k;
    append_varint(k, c.id);
    k += c.key;
    return k;
  }

  void source_ref(uint32_t slot, int delta) {
    Source& s = sources[slot];
    const uint32_t before = s.refs;
    s.refs = static_cast<uint32_t>(static_cast<int>(s.refs) + delta);
    if ((before == 0) == (s.refs == 0)) return;
    const bool on = s.refs > 0;
    auto toggle = [&](std::vector<uint32_t>& v) {
      if (on) {
        v.push_back(slot);
      } else {
        v.erase(std::find(v.begin(), v.end(), slot));
      }
    };
    switch (s.src.kind) {
      case SourceKind::kField: toggle(field_sources); break;
      case SourceKind::kMapAny: toggle(any_sources); break;
      case SourceKind::kMapKey:
        if (maps_in_use.size() <= s.src.id) maps_in_use.resize(s.src.id + 1, 0);
        toggle(map_key_list);
        if (on) {
          map_key_sources[map_key_name(s.src)] = slot;
          ++maps_in_use[s.src.id];
        } else {
          map_key_sources.erase(map_key_name(s.src));
          --maps_in_use[s.src.id];
        }
        break;
    }
  }

  void not_equal_ref(uint32_t table, int delta) {
    NotEqualTable& t = not_equal[table];
    const uint32_t before = t.refs;
    t.refs = static_cast<uint32_t>(static_cast<int>(t.refs) + delta);
    if (before == 0 && t.refs > 0) active_not_equal.push_back(table);
    if (before > 0 && t.refs == 0) {
      active_not_equal.erase(std::find(active_not_equal.begin(), active_not_equal.end(), table));
    }
  }

  void file(const Branch& b, const Term& t, const Entry& e, bool add) {
    switch (t.access) {
      case Access::kKey: {
        if (add) {
          auto [slot, created] = buckets.try_emplace(t.key);
          if (created) bucket_filter.add(t.key, +1);
          Bucket& bk = slot->second;
          if (t.has_range) {
            insert_sorted(range_list(bk.ranges, t.rk), e);
          } else if (e.br == nullptr) {
            bk.ids.push_back(e.id);
          } else {
            bk.plain.push_back(e);
          }
          return;
        }
        auto it = buckets.find(t.key);
        if (it == buckets.end()) return;
        if (t.has_range) {
          erase_from_lists(it->second.ranges, t.rk, e);
        } else {
          erase_plain(it->second, e);
        }
        if (it->second.empty()) {
          bucket_filter.add(t.key, -1);
          buckets.erase(it);
        }
        return;
      }
      case Access::kRange:
        if (add) {
          insert_sorted(range_list(ranges, t.rk), e);
        } else {
          erase_from_lists(ranges, t.rk, e);
        }
        return;
      case Access::kUnordered: {
        if (unordered.size() <= t.field) unordered.resize(t.field + 1);
        auto& v = unordered[t.field];
        if (add) {
          if (v.empty()) unordered_fields.push_back(t.field);
          v.push_back(e);
        } else {
          erase_entry(v, e);
          if (v.empty()) unordered_fields.erase(std::find(unordered_fields.begin(), unordered_fields.end(), t.field));
        }
        return;
      }
      case Access::kMapKey: {
        Source& s = sources[t.source];
        if (add) {
          map_eq[t.key].push_back(e);
          ++s.eq;
        } else {
          auto it = map_eq.find(t.key);
          if (it != map_eq.end()) {
            erase_entry(it->second, e);
            if (it->second.empty()) map_eq.erase(it);
          }
          --s.eq;
        }
        source_ref(t.source, add ? 1 : -1);
        return;
      }
      case Access::kGram: {
        Source& s = sources[t.source];
        const uint64_t g = t.gram;
        const auto len = static_cast<uint32_t>(g >> 32);
        if (add) {
          s.grams[g].push_back(GramEntry::make(t, b));
          s.filter.add(g, +1, s.grams);
          ++s.by_len[len];
        } else {
          auto it = s.grams.find(g);
          if (it != s.grams.end()) {
            auto& v = it->second;
            for (size_t i = 0; i < v.size(); ++i) {
              if (v[i].term == &t) {
                v[i] = v.back();
                v.pop_back();
                break;
              }
            }
            if (v.empty()) s.grams.erase(it);
          }
          s.filter.add(g, -1, s.grams);
          --s.by_len[len];
        }
        source_ref(t.source, add ? 1 : -1);
        return;
      }
      case Access::kPresent:
        add_or_erase(sources[t.source].present, e, add);
        source_ref(t.source, add ? 1 : -1);
        return;
      case Access::kRegexSet:
        // The pattern lives in the source's RE2::Sets (set_regex_chunks).
        source_ref(t.source, add ? 1 : -1);
        return;
      case Access::kNotEqual: {
        NotEqualTable& tb = not_equal[t.source];
        Entry x = e;
        x.k1 = t.fires_when_absent ? 1 : 0;
        if (add) {
          tb.groups[t.key].push_back(x);
        } else {
          auto it = tb.groups.find(t.key);
          if (it != tb.groups.end()) {
            erase_entry(it->second, x);
            if (it->second.empty()) tb.groups.erase(it);
          }
        }
        not_equal_ref(t.source, add ? 1 : -1);
        return;
      }
      case Access::kNegation:
        add_or_erase(negations, e, add);
        return;
      case Access::kAlways:
        add_or_erase(always, e, add);
        return;
    }
  }

  void file_sub(const Sub& s, bool shared, bool add) {
    const uint64_t id = s.ids.empty() ? 0 : s.ids.front();
    for (const Branch& b : s.branches) {
      if (branch_of.size() <= b.tried) branch_of.resize(b.tried + 1, nullptr);
      branch_of[b.tried] = add ? &b : nullptr;
      for (const Term& t : b.terms) {
        // (An id with the top bit set cannot be a sorted entry's payload.)
        const bool exact = !shared && !b.dedupe && !b.whole && b.residual.empty() && t.exact &&
                           t.access != Access::kNegation && t.access != Access::kAlways && (id & kVerify) == 0;
        file(b, t, exact ? Entry{t.k1, t.k2, id, nullptr} : Entry{t.k1, t.k2, 0, &b}, add);
      }
    }
  }
};

Index::Index() : impl_(std::make_unique<Impl>()) {}
Index::~Index() = default;

void Index::define_source(uint32_t slot, const Component& c) {
  if (impl_->sources.size() <= slot) impl_->sources.resize(slot + 1);
  impl_->sources[slot].src = c;
}

void Index::set_spec(uint32_t spec, const std::vector<Component>& comps, int delta) {
  auto& specs = impl_->specs;
  if (specs.size() <= spec) specs.resize(spec + 1);
  KeySpec& ks = specs[spec];
  if (delta > 0 && ks.refs == 0) ks.comps = comps;
  ks.refs = static_cast<uint32_t>(static_cast<int>(ks.refs) + delta);
  if (ks.refs == 0) ks.comps.clear();
  impl_->active_specs.clear();
  for (uint32_t i = 0; i < specs.size(); ++i) {
    if (specs[i].refs > 0) impl_->active_specs.push_back(i);
  }
}

void Index::define_not_equal(uint32_t table, const Component& c) {
  if (impl_->not_equal.size() <= table) impl_->not_equal.resize(table + 1);
  impl_->not_equal[table].comp = c;
}

void Index::set_regex_chunks(uint32_t slot, std::vector<std::shared_ptr<const RegexChunk>> chunks) {
  impl_->sources[slot].chunks = std::move(chunks);
}

void Index::set_ids(uint32_t slot, std::vector<uint64_t> ids) {
  if (impl_->ids.size() <= slot) impl_->ids.resize(slot + 1);
  impl_->ids[slot] = std::move(ids);
}

void Index::set_slots(uint32_t queries, uint32_t branches) {
  impl_->slots = queries;
  impl_->branch_slots = branches;
}

void Index::add(const Sub& s, bool shared) { impl_->file_sub(s, shared, true); }
void Index::remove(const Sub& s, bool shared) { impl_->file_sub(s, shared, false); }

// Per-record matching context over one Index.
class MatchRun {
 public:
  MatchRun(const Schema& schema, const Index::Impl& ix, const RecordView& r, std::vector<uint64_t>& out,
           Scratch& sc)
      : ix_(ix), r_(r), out_(out), sc_(sc), vals_(sc.vals), nums_(sc.nums), schema_(&schema) {
    const size_t n = schema.field_count();
    if (vals_.size() < n) {
      vals_.resize(n);
      nums_.resize(n);
      sc.loaded.resize(n, 0);
    }
  }

  void run();

 private:
  // The record's value of field f, read from the record the first time this
  // record needs it: most records meet few of the fields the index knows.
  const FieldValue& val(FieldId f) const {
    if (sc_.loaded[f] != sc_.cur) {
      FieldValue& v = vals_[f];
      v = r_.field(f);
      const FieldType t = schema_->field(f).type;
      nums_[f] = t == FieldType::kInt ? static_cast<double>(v.i) : t == FieldType::kIp ? 0 : v.f;
      sc_.loaded[f] = sc_.cur;
    }
    return vals_[f];
  }
  double num(FieldId f) const {
    val(f);
    return nums_[f];
  }

  FieldValue value(const Component& c) const {
    if (c.kind == SourceKind::kField) return val(c.id);
    auto v = r_.map_value(c.id, c.key);
    return v ? FieldValue::of_string(*v) : FieldValue{};
  }

  FieldType type_of(const Component& c) const {
    return c.kind == SourceKind::kField ? schema_->field(c.id).type : FieldType::kString;
  }

  // Appends the key bytes of the record's value for `c`; false if absent
  // (or NaN, which equals nothing).
  bool encode(const Component& c, std::string& k) const {
    const FieldValue v = value(c);
    if (!v.present) return false;
    return encode_value(type_of(c), v, c.prefix, k);
  }

  bool lit(const Lit& l) const {
    const Atom& a = *l.atom;
    const bool v = a.kind == SourceKind::kField ? eval_atom_value(a, val(a.id)) : eval_atom(a, r_);
    return v != l.neg;
  }

  void emit_ids(const Branch& b) {
    const auto& ids = ix_.ids[b.sub->slot];
    out_.insert(out_.end(), ids.begin(), ids.end());
  }

  void candidate(const Branch& b) {
    const uint32_t slot = b.sub->slot;
    if (b.dedupe) {
      // Once per record: the query already matched, or this branch was tried.
      if (sc_.epoch[slot] == sc_.cur || sc_.tried[b.tried] == sc_.cur) return;
      sc_.tried[b.tried] = sc_.cur;
    }
    if (b.whole) {
      if (!b.sub->query.matches(r_)) return;
    } else {
      for (const Lit& l : b.residual) {
        if (!lit(l)) return;
      }
    }
    if (b.dedupe) sc_.epoch[slot] = sc_.cur;
    emit_ids(b);
  }

  void emit(const Entry& e) {
    if (e.br == nullptr) {
      out_.push_back(e.id);
    } else {
      candidate(*e.br);
    }
  }

  void emit(uint64_t payload) {
    if ((payload & kVerify) == 0) {
      out_.push_back(payload);
    } else {
      candidate(*ix_.branch_of[payload & ~kVerify]);
    }
  }

  void walk(const RangeList& rl) {
    const RangeKey& k = rl.key;
    if (!val(k.f1).present) return;
    const double x1 = k.up1 ? -num(k.f1) : num(k.f1);
    double x2 = INFINITY;
    if (k.f2 != kNoField) {
      if (!val(k.f2).present) return;
      x2 = k.up2 ? -num(k.f2) : num(k.f2);
    }
    if (std::isnan(x1)) return;  // passes no threshold
    for (const Group& g : rl.groups) {
      if (!(g.min_k2 <= x2)) break;
      const size_t n = g.passing(x1);
      const uint64_t* pay = g.pay.data();
      if (g.max_k2 <= x2) {
        if (g.verify == 0) {
          out_.insert(out_.end(), pay, pay + n);
        } else {
          for (size_t i = 0; i < n; ++i) emit(pay[i]);
        }
        continue;
      }
      // A group straddling x2: any of its entries may fail k2, so no branch.
      const double* k2 = g.k2.data();
      if (g.verify == 0) {
        const size_t at = out_.size();
        out_.resize(at + n);
        uint64_t* o = out_.data() + at;
        size_t m = 0;
        for (size_t i = 0; i < n; ++i) {
          o[m] = pay[i];
          m += k2[i] <= x2 ? 1 : 0;
        }
        out_.resize(at + m);
      } else {
        for (size_t i = 0; i < n; ++i) {
          if (k2[i] <= x2) emit(pay[i]);
        }
      }
    }
  }

  // Every position of the value against the grams in use: a sliding window
  // of the last kGramMax bytes, masked to each gram length the source uses.
  void scan_grams(const Source& s, std::string_view value) {
    std::string& low = sc_.lowered;
    low.assign(value);
    for (char& ch : low) ch = text::lower(ch);
    uint32_t lens[kGramMax];
    size_t nlens = 0;
    for (uint32_t len = 1; len <= kGramMax; ++len) {
      if (s.by_len[len] != 0) lens[nlens++] = len;
    }
    const size_t n = low.size();
    uint64_t window = 0;
    for (size_t end = 0; end < n; ++end) {
      window = ((window << 8) | static_cast<unsigned char>(low[end])) & 0xFFFFFFFFull;
      for (size_t k = 0; k < nlens; ++k) {
        const uint32_t len = lens[k];
        if (len > end + 1) break;
        const uint64_t bytes = len == 4 ? window : window & ((uint64_t{1} << (8 * len)) - 1);
        const uint64_t g = (static_cast<uint64_t>(len) << 32) | bytes;
        if (!s.filter.maybe(g)) continue;
        auto it = s.grams.find(g);
        if (it == s.grams.end()) continue;
        const size_t start = end + 1 - len;
        for (const GramEntry& ge : it->second) {
          if (ge.found(low, start)) candidate(*ge.br);
        }
      }
    }
  }

  void match_regex_sets(const Source& s, std::string_view value) {
    for (const auto& chunk : s.chunks) {
      sc_.set_hits.clear();
      RE2::Set::ErrorInfo info;
      if (chunk->set->Match(value, &sc_.set_hits, &info)) {
        for (int h : sc_.set_hits) {
          const Branch* b = chunk->branches[static_cast<size_t>(h)];
          if (b != nullptr) candidate(*b);
        }
      } else if (info.kind != RE2::Set::kNoError) {
        // The DFA ran out of memory: fall back to the patterns one by one.
        for (const Branch* b : chunk->branches) {
          if (b == nullptr) continue;
          for (const Term& t : b->terms) {
            if (t.access == Access::kRegexSet && RE2::PartialMatch(value, *t.lit.atom->extra->re)) candidate(*b);
          }
        }
      }
    }
  }

  // Everything filed under one source, for one value of it.
  void scan_source(uint32_t slot, const Source& s, const FieldValue& v) {
    if (!v.present) return;
    const bool is_string = s.src.kind != SourceKind::kField || schema_->field(s.src.id).type == FieldType::kString;
    if (!s.present.empty() && (!is_string || !v.s.empty())) {
      for (const Entry& e : s.present) emit(e);
    }
    if (!is_string) return;
    if (s.eq > 0) {
      std::string& k = sc_.key;
      k.clear();
      append_varint(k, slot);
      encode_str(k, v.s);
      auto it = ix_.map_eq.find(std::string_view(k));
      if (it != ix_.map_eq.end()) {
        for (const Entry& e : it->second) emit(e);
      }
    }
    if (!s.grams.empty()) scan_grams(s, v.s);
    if (!s.chunks.empty()) match_regex_sets(s, v.s);
  }

  // Map keys and map lines. With few keys in use, each is looked up;
  // with more, the record's own entries drive it: one probe per entry,
  // however many keys the subscriptions name.
  void scan_maps() {
    for (MapId m = 0; m < schema_->map_count(); ++m) {
      bool keys = m < ix_.maps_in_use.size() && ix_.maps_in_use[m] > 0;
      if (keys && ix_.maps_in_use[m] <= kFewKeys) {
        for (uint32_t slot : ix_.map_key_list) {
          const Source& s = ix_.sources[slot];
          if (s.src.id != m) continue;
          if (auto v = r_.map_value(m, s.src.key)) scan_source(slot, s, FieldValue::of_string(*v));
        }
        keys = false;
      }
      const Source* any = nullptr;
      uint32_t any_slot = 0;
      for (uint32_t slot : ix_.any_sources) {
        if (ix_.sources[slot].src.id == m) {
          any = &ix_.sources[slot];
          any_slot = slot;
        }
      }
      if (!keys && any == nullptr) continue;
      const bool ci = schema_->map(m).case_insensitive_keys;
      auto& entries = sc_.entries;
      size_t count = 0;
      r_.for_each_map_entry(m, [&](std::string_view k, std::string_view v) {
        if (keys) {
          if (entries.size() <= count) entries.emplace_back();
          auto& e = entries[count++];
          e.value = v;
          e.name = k;
          if (ci && std::any_of(k.begin(), k.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; })) {
            e.lowered.assign(k);
            for (char& ch : e.lowered) ch = text::lower(ch);
            e.name = e.lowered;
          }
        }
        if (any != nullptr) {
          sc_.line.assign(k);
          sc_.line += ": ";
          sc_.line.append(v);
          scan_source(any_slot, *any, FieldValue::of_string(sc_.line));
        }
      });
      std::string& name = sc_.name;
      for (size_t i = 0; i < count; ++i) {
        bool repeated = false;  // `map.KEY` is the first occurrence
        for (size_t j = 0; j < i && !repeated; ++j) repeated = entries[j].name == entries[i].name;
        if (repeated) continue;
        name.clear();
        append_varint(name, m);
        name += entries[i].name;
        auto it = ix_.map_key_sources.find(std::string_view(name));
        if (it == ix_.map_key_sources.end()) continue;
        scan_source(it->second, ix_.sources[it->second], FieldValue::of_string(entries[i].value));
      }
    }
  }

  void scan_not_equal() {
    for (uint32_t ti : ix_.active_not_equal) {
      const NotEqualTable& t = ix_.not_equal[ti];
      std::string& k = sc_.key;
      k.clear();
      const FieldValue v = value(t.comp);
      if (!v.present) {
        for (const auto& [val, entries] : t.groups) {
          for (const Entry& e : entries) {
            if (e.k1 != 0) emit(e);
          }
        }
        continue;
      }
      const bool keyed = encode_value(type_of(t.comp), v, t.comp.prefix, k);
      const std::vector<Entry>* own = nullptr;
      if (keyed) {
        auto it = t.groups.find(std::string_view(k));
        if (it != t.groups.end()) own = &it->second;
      }
      for (const auto& [val, entries] : t.groups) {
        if (&entries == own) continue;
        for (const Entry& e : entries) emit(e);
      }
    }
  }

  const Index::Impl& ix_;
  const RecordView& r_;
  std::vector<uint64_t>& out_;
  Scratch& sc_;
  std::vector<FieldValue>& vals_;
  std::vector<double>& nums_;
  const Schema* schema_;
};

void MatchRun::run() {
  // Equality keys, with sorted ranges inside the buckets.
  for (uint32_t spec : ix_.active_specs) {
    std::string& k = sc_.key;
    k.clear();
    append_varint(k, spec);
    bool ok = true;
    for (const Component& c : ix_.specs[spec].comps) {
      if (!encode(c, k)) {
        ok = false;
        break;
      }
    }
    if (!ok || !ix_.bucket_filter.maybe(k)) continue;
    auto it = ix_.buckets.find(std::string_view(k));
    if (it == ix_.buckets.end()) continue;
    out_.insert(out_.end(), it->second.ids.begin(), it->second.ids.end());
    for (const Entry& e : it->second.plain) emit(e);
    for (const RangeList& rl : it->second.ranges) walk(rl);
  }
  // Ranges and intervals alone; absent or NaN values for flipped negations.
  for (const RangeList& rl : ix_.ranges) walk(rl);
  for (uint32_t f : ix_.unordered_fields) {
    const FieldValue& v = val(f);
    if (v.present && !(schema_->field(f).type == FieldType::kFloat && std::isnan(v.f))) continue;
    for (const Entry& e : ix_.unordered[f]) emit(e);
  }
  // Sources: fixed fields, then map keys and map lines from the record's own entries.
  for (uint32_t slot : ix_.field_sources) {
    const Source& s = ix_.sources[slot];
    scan_source(slot, s, val(s.src.id));
  }
  if (!ix_.any_sources.empty() || !ix_.map_key_sources.empty()) scan_maps();
  scan_not_equal();
  for (const Entry& e : ix_.negations) {
    const Branch& b = *e.br;
    if (lit(b.terms.front().lit)) candidate(b);
  }
  for (const Entry& e : ix_.always) emit(e);
}

void Index::match(const Schema& schema, const RecordView& r, std::vector<uint64_t>& out) const {
  Scratch& sc = t_scratch;
  if (sc.epoch.size() < impl_->slots) sc.epoch.resize(impl_->slots, 0);
  if (sc.tried.size() < impl_->branch_slots) sc.tried.resize(impl_->branch_slots, 0);
  if (++sc.cur == 0) {
    std::fill(sc.epoch.begin(), sc.epoch.end(), 0);
    std::fill(sc.tried.begin(), sc.tried.end(), 0);
    std::fill(sc.loaded.begin(), sc.loaded.end(), 0);
    sc.cur = 1;
  }
  MatchRun run(schema, *impl_, r, out, sc);
  run.run();
}

}  // namespace clio::matcher::internal
