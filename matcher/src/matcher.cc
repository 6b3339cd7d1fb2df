// The prospective-search engine.
//
// Each subscription is rewritten as an OR of ANDs ("branches") of literals
// (an atom or its negation). Every branch is filed under one index term:
//   1. equality key: the values of all its positive equalities (fields, map
//      keys, CIDR prefixes) form one combined key; a record builds the same key
//      for every field set in use and looks it up once. Inside a key's bucket,
//      branches with a one-sided range (`wall_time > 1000`) sit in a list
//      sorted by threshold, so a record walks exactly the prefix it satisfies.
//   2. `field in (a, b, ...)`: one equality key per item.
//   3. a substring (`path:"api"`): a table keyed by three (lower-cased) bytes
//      of the pattern, the least crowded window; the record's value is scanned
//      position by position.
//   4. a regex: RE2::Sets per field, which map a value to the patterns it
//      matches in one pass.
//   5. a one-sided range alone: a sorted list per (field, direction).
//   6. nothing indexable (pure negations): checked for every record.
// Literals the term does not imply are verified for the candidates only; an
// entry whose term implies the whole branch is emitted without verification.
//
// Concurrency: a "left-right" pair of index copies. Readers announce
// themselves on a per-version counter and read the copy `left_right` names;
// the writer updates the other copy, flips `left_right`, waits for readers
// of the old version to leave, and applies the same change to the first copy.
// Readers never wait; immutable pieces (subscriptions, RE2::Sets) are shared.
#include "clio/matcher/matcher.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <re2/set.h>

#include "ast.h"
#include "text.h"

namespace clio::matcher {

using internal::Atom;
using internal::NodeKind;
using internal::Num;
using internal::Op;
using internal::QueryImpl;
using internal::SourceKind;

namespace {

// A value source an index term reads: a fixed field or a map key; for IP
// fields, the prefix length the value is masked to.
struct Component {
  SourceKind kind = SourceKind::kField;
  uint32_t id = 0;
  std::string key;
  uint8_t prefix = 128;

  auto tie() const { return std::tie(kind, id, key, prefix); }
  bool operator<(const Component& o) const { return tie() < o.tie(); }
  bool operator==(const Component& o) const { return tie() == o.tie(); }
};

struct Lit {
  const Atom* atom;
  bool neg;
};

enum class Place : uint8_t { kKey, kRange, kSubstr, kRegex, kAlways };

constexpr uint32_t kNoField = UINT32_MAX;

// Which one or two one-sided ranges a sorted list holds. A range is stored in
// "lower bound" form: the literal holds iff x >= k, where x is the value (or
// its negation for an upper bound) and k the threshold (or its negation).
struct RangeKey {
  uint32_t f1 = 0;
  bool up1 = false;
  uint32_t f2 = kNoField;  // kNoField: no second range
  bool up2 = false;
  bool operator==(const RangeKey&) const = default;
};

struct Sub;

// One branch of a subscription with its index term and the literals left to
// verify. Immutable once the subscription is built.
struct Branch {
  const Sub* sub = nullptr;
  uint64_t id = 0;
  uint32_t slot = 0;       // dense per-subscription number, for de-duplication
  bool dedupe = false;     // the subscription has several index entries
  bool whole = false;      // verify the whole query (unindexable subscription)
  std::vector<Lit> residual;

  Place place = Place::kAlways;
  // kKey: key spec and keys (several for `in`); optional sorted range below.
  uint32_t spec = 0;
  std::vector<std::string> keys;
  bool has_range = false;
  RangeKey rk;
  double k1 = 0;            // sign-adjusted thresholds, see RangeKey
  double k2 = -INFINITY;
  // kSubstr / kRegex
  uint32_t source = 0;       // substring or regex source index
  uint64_t gram = 0;         // substring table key: 3 bytes of the needle
  uint32_t gram_offset = 0;  // where those bytes start in the needle
  const Atom* index_atom = nullptr;  // the substring or regex literal indexed
};

struct Sub {
  uint64_t id = 0;
  uint32_t slot = 0;
  // The parse tree, kept only while some branch needs it for verification
  // (residual literals, substring or regex terms, whole-query checks).
  std::optional<Query> query;
  std::vector<Branch> branches;  // reserved up front: addresses are stable
  bool unindexable = false;
  explicit Sub(Query q) : query(std::move(q)) {}
};

// An index entry: the branch is null when the entry implies its (single)
// subscription outright, so matching writes `id` without touching anything else.
struct Entry {
  double k1;
  double k2;
  uint64_t id;
  const Branch* br;
};

// Entries with k2 in [min_k2, max_k2], sorted by k1.
struct Group {
  double min_k2;
  double max_k2;
  std::vector<Entry> entries;
};

// Entries of one RangeKey: groups partition the k2 axis in ascending order, so
// a record walks, in each group whose k2 it passes, the k1 prefix it passes;
// only the one group straddling the record's k2 checks k2 entry by entry.
struct RangeList {
  RangeKey key;
  std::vector<Group> groups;
};

constexpr size_t kGroupMax = 128;

struct Bucket {
  std::vector<Entry> plain;
  std::vector<RangeList> ranges;
};

struct KeySpec {
  std::vector<Component> comps;
  uint32_t refs = 0;
};

struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};

// A compiled RE2::Set over some regex branches of one source. Immutable.
struct RegexChunk {
  std::shared_ptr<const RE2::Set> set;
  std::vector<const Branch*> branches;  // by Set index; null: removed
};

struct SubstrSource {
  Component src;
  uint32_t refs = 0;
  uint32_t by_len[4] = {0, 0, 0, 0};  // patterns indexed by 1, 2, 3 bytes
};

struct RegexSource {
  Component src;
  std::vector<std::shared_ptr<const RegexChunk>> chunks;
};

void append_bytes(std::string& k, const void* p, size_t n) { k.append(static_cast<const char*>(p), n); }

// Keys are short byte strings (most fit std::string's inline buffer):
// varints for ids, lengths and integers; IPv4 addresses in 4 bytes.
void append_varint(std::string& k, uint64_t v) {
  while (v >= 0x80) {
    k.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  k.push_back(static_cast<char>(v));
}
void append_u32(std::string& k, uint32_t v) { append_varint(k, v); }

// Per-thread scratch for matching: epochs for de-duplication.
struct Scratch {
  std::vector<uint32_t> epoch;
  uint32_t cur = 0;
  std::vector<int> set_hits;
  std::string key;
  std::string lowered;
  std::vector<FieldValue> vals;
  std::vector<double> nums;
  std::vector<FieldType> types;
};

thread_local Scratch t_scratch;

bool exact_int_threshold(double d) { return std::fabs(d) <= 4503599627370496.0; }  // 2^52

// The sorted-range form of a one-sided range literal: value >= thr (lower) or
// value <= thr (upper), exactly equivalent to the literal for present values.
bool range_threshold(const Atom& a, FieldType type, bool& upper, double& thr) {
  const Num& n = a.num;
  if (type == FieldType::kInt) {
    double t;
    switch (a.op) {
      case Op::kGt: t = n.is_int ? static_cast<double>(n.i) + 1 : std::ceil(n.f); upper = false; break;
      case Op::kGe: t = n.is_int ? static_cast<double>(n.i) : std::ceil(n.f); upper = false; break;
      case Op::kLt: t = n.is_int ? static_cast<double>(n.i) - 1 : std::floor(n.f); upper = true; break;
      case Op::kLe: t = n.is_int ? static_cast<double>(n.i) : std::floor(n.f); upper = true; break;
      default: return false;
    }
    if (n.is_int && !exact_int_threshold(static_cast<double>(n.i))) return false;
    if (!exact_int_threshold(t)) return false;
    thr = t;
    return true;
  }
  if (type != FieldType::kFloat) return false;
  switch (a.op) {
    case Op::kGt: thr = std::nextafter(n.f, INFINITY); upper = false; return true;
    case Op::kGe: thr = n.f; upper = false; return true;
    case Op::kLt: thr = std::nextafter(n.f, -INFINITY); upper = true; return true;
    case Op::kLe: thr = n.f; upper = true; return true;
    default: return false;
  }
}

// Appends the key bytes of a literal value for component `c` of type `type`.
void encode_int(std::string& k, int64_t v) {
  append_varint(k, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));  // zigzag
}
void encode_float(std::string& k, double v) {
  if (v == 0) v = 0;
  append_bytes(k, &v, 8);
}
void encode_str(std::string& k, std::string_view s) {
  append_varint(k, s.size());
  k.append(s);
}
void encode_ip(std::string& k, const IpAddr& ip) {
  if (ip.is_v4()) {
    k.push_back('4');
    append_bytes(k, &ip.bytes[12], 4);
  } else {
    k.push_back('6');
    append_bytes(k, ip.bytes.data(), 16);
  }
}

// An equality-like positive literal usable as a key component, with its
// encoded value; false if the literal cannot be a key.
bool key_component(const Atom& a, Component& c, std::string& value) {
  if (a.kind == SourceKind::kMapAny) return false;
  c = Component{a.kind, a.id, a.key, 128};
  value.clear();
  if (a.op == Op::kEq) {
    switch (a.type) {
      case FieldType::kString: encode_str(value, a.str); return true;
      case FieldType::kInt:
        if (!a.num.is_int) return false;
        encode_int(value, a.num.i);
        return true;
      case FieldType::kFloat: encode_float(value, a.num.f); return true;
      case FieldType::kIp: encode_ip(value, a.ip); return true;
    }
  }
  if (a.op == Op::kCidr) {
    c.prefix = a.prefix;
    encode_ip(value, a.ip);
    return true;
  }
  return false;
}

bool item_key(const Atom& a, const internal::Item& it, Component& c, std::string& value) {
  c = Component{a.kind, a.id, a.key, 128};
  value.clear();
  if (it.range) return false;
  switch (a.type) {
    case FieldType::kString: encode_str(value, it.s); return true;
    case FieldType::kInt:
      if (!it.lo.is_int) return false;
      encode_int(value, it.lo.i);
      return true;
    case FieldType::kFloat: encode_float(value, it.lo.f); return true;
    case FieldType::kIp:
      c.prefix = it.prefix;
      encode_ip(value, it.ip);
      return true;
  }
  return false;
}

bool is_range_op(Op op) { return op == Op::kLt || op == Op::kLe || op == Op::kGt || op == Op::kGe; }

}  // namespace

// ---------------------------------------------------------------------------
// One copy of the index. Mutated only by the writer while no reader uses it.

namespace {

class Index {
 public:
  void add(const Sub& s) {
    for (const auto& b : s.branches) add_branch(b);
  }
  void remove(const Sub& s) {
    for (const auto& b : s.branches) remove_branch(b);
  }
  void set_slots(uint32_t n) { slots_ = n; }
  void set_regex_chunks(uint32_t source, const Component& src,
                        std::vector<std::shared_ptr<const RegexChunk>> chunks) {
    if (regex_.size() <= source) regex_.resize(source + 1);
    regex_[source].src = src;
    regex_[source].chunks = std::move(chunks);
  }
  void set_spec(uint32_t spec, const std::vector<Component>& comps, int delta) {
    if (specs_.size() <= spec) specs_.resize(spec + 1);
    KeySpec& ks = specs_[spec];
    if (delta > 0 && ks.refs == 0) ks.comps = comps;
    ks.refs = static_cast<uint32_t>(static_cast<int>(ks.refs) + delta);
    if (ks.refs == 0) ks.comps.clear();
    active_specs_.clear();
    for (uint32_t i = 0; i < specs_.size(); ++i) {
      if (specs_[i].refs > 0) active_specs_.push_back(i);
    }
  }
  void set_substr_source(uint32_t source, const Component& src, size_t len, int delta) {
    if (substr_.size() <= source) substr_.resize(source + 1);
    SubstrSource& ss = substr_[source];
    if (delta > 0) ss.src = src;
    ss.refs = static_cast<uint32_t>(static_cast<int>(ss.refs) + delta);
    ss.by_len[len] = static_cast<uint32_t>(static_cast<int>(ss.by_len[len]) + delta);
  }

  void match(const Schema& schema, const RecordView& r, std::vector<uint64_t>& out) const;

 private:
  static Entry entry_for(const Branch& b) {
    const bool exact = !b.dedupe && !b.whole && b.residual.empty();
    return Entry{b.k1, b.k2, b.id, exact ? nullptr : &b};
  }

  static bool same(const Entry& a, const Entry& b) { return a.id == b.id && a.br == b.br; }

  static bool by_k1(const Entry& a, const Entry& b) { return a.k1 < b.k1; }

  // The group that holds (or should hold) k2: the first whose max_k2 >= k2.
  static size_t group_for(const RangeList& rl, double k2) {
    auto it = std::lower_bound(rl.groups.begin(), rl.groups.end(), k2,
                               [](const Group& g, double k) { return g.max_k2 < k; });
    if (it == rl.groups.end()) return rl.groups.size() - 1;
    return static_cast<size_t>(it - rl.groups.begin());
  }

  static void insert_sorted(RangeList& rl, const Entry& e) {
    if (rl.groups.empty()) rl.groups.push_back(Group{e.k2, e.k2, {}});
    const size_t gi = group_for(rl, e.k2);
    Group& g = rl.groups[gi];
    g.entries.insert(std::upper_bound(g.entries.begin(), g.entries.end(), e, by_k1), e);
    g.min_k2 = std::min(g.min_k2, e.k2);
    g.max_k2 = std::max(g.max_k2, e.k2);
    if (g.entries.size() <= kGroupMax || rl.key.f2 == kNoField) return;
    // Split at the median k2; both halves stay sorted by k1.
    std::vector<double> k2s;
    for (const Entry& x : g.entries) k2s.push_back(x.k2);
    std::nth_element(k2s.begin(), k2s.begin() + static_cast<long>(k2s.size() / 2), k2s.end());
    const double pivot = k2s[k2s.size() / 2];
    Group left{INFINITY, -INFINITY, {}}, right{INFINITY, -INFINITY, {}};
    for (const Entry& x : g.entries) {
      Group& to = x.k2 < pivot ? left : right;
      to.entries.push_back(x);
      to.min_k2 = std::min(to.min_k2, x.k2);
      to.max_k2 = std::max(to.max_k2, x.k2);
    }
    if (left.entries.empty()) return;  // all k2 equal: keep one group
    rl.groups[gi] = std::move(right);
    rl.groups.insert(rl.groups.begin() + static_cast<long>(gi), std::move(left));
  }

  static void erase_sorted(RangeList& rl, const Entry& e) {
    if (rl.groups.empty()) return;
    auto try_group = [&](size_t gi) {
      Group& g = rl.groups[gi];
      auto it = std::lower_bound(g.entries.begin(), g.entries.end(), e, by_k1);
      for (; it != g.entries.end() && it->k1 == e.k1; ++it) {
        if (!same(*it, e)) continue;
        g.entries.erase(it);
        if (g.entries.empty()) rl.groups.erase(rl.groups.begin() + static_cast<long>(gi));
        return true;
      }
      return false;
    };
    if (try_group(group_for(rl, e.k2))) return;
    for (size_t gi = 0; gi < rl.groups.size(); ++gi) {
      if (try_group(gi)) return;
    }
  }

  static void erase_plain(std::vector<Entry>& v, const Entry& e) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (same(v[i], e)) {
        v[i] = v.back();
        v.pop_back();
        return;
      }
    }
  }

  static RangeList& range_list(std::vector<RangeList>& lists, const RangeKey& key) {
    for (auto& rl : lists) {
      if (rl.key == key) return rl;
    }
    lists.push_back(RangeList{key, {}});
    return lists.back();
  }

  void add_branch(const Branch& b) {
    const Entry e = entry_for(b);
    switch (b.place) {
      case Place::kKey:
        for (const auto& k : b.keys) {
          Bucket& bk = buckets_[k];
          if (b.has_range) {
            insert_sorted(range_list(bk.ranges, b.rk), e);
          } else {
            bk.plain.push_back(e);
          }
        }
        return;
      case Place::kRange:
        insert_sorted(range_list(ranges_, b.rk), e);
        return;
      case Place::kSubstr:
        grams_[b.gram].push_back(e);
        return;
      case Place::kRegex:
        return;  // lives in the source's RE2::Sets
      case Place::kAlways:
        always_.push_back(e);
        return;
    }
  }

  void remove_branch(const Branch& b) {
    const Entry e = entry_for(b);
    switch (b.place) {
      case Place::kKey:
        for (const auto& k : b.keys) {
          auto it = buckets_.find(k);
          if (it == buckets_.end()) continue;
          Bucket& bk = it->second;
          if (b.has_range) {
            RangeList& rl = range_list(bk.ranges, b.rk);
            erase_sorted(rl, e);
            if (rl.groups.empty()) {
              bk.ranges.erase(std::find_if(bk.ranges.begin(), bk.ranges.end(),
                                           [&](const RangeList& x) { return &x == &rl; }));
            }
          } else {
            erase_plain(bk.plain, e);
          }
          if (bk.plain.empty() && bk.ranges.empty()) buckets_.erase(it);
        }
        return;
      case Place::kRange: {
        RangeList& rl = range_list(ranges_, b.rk);
        erase_sorted(rl, e);
        if (rl.groups.empty()) {
          ranges_.erase(std::find_if(ranges_.begin(), ranges_.end(),
                                     [&](const RangeList& x) { return &x == &rl; }));
        }
        return;
      }
      case Place::kSubstr: {
        auto it = grams_.find(b.gram);
        if (it == grams_.end()) return;
        erase_plain(it->second, e);
        if (it->second.empty()) grams_.erase(it);
        return;
      }
      case Place::kRegex:
        return;
      case Place::kAlways:
        erase_plain(always_, e);
        return;
    }
  }

  // Guarded by the left-right protocol: written only while no reader uses this copy.
  std::vector<KeySpec> specs_;
  std::vector<uint32_t> active_specs_;
  std::unordered_map<std::string, Bucket, StrHash, std::equal_to<>> buckets_;
  std::vector<RangeList> ranges_;
  std::unordered_map<uint64_t, std::vector<Entry>> grams_;
  std::vector<SubstrSource> substr_;
  std::vector<RegexSource> regex_;
  std::vector<Entry> always_;
  uint32_t slots_ = 0;
};

// Per-record matching context over one Index.
class MatchRun {
 public:
  MatchRun(const Schema& schema, const RecordView& r, std::vector<uint64_t>& out, Scratch& sc)
      : r_(r), out_(out), sc_(sc), vals_(sc.vals), nums_(sc.nums), types_(sc.types) {
    const size_t n = schema.field_count();
    vals_.resize(n);
    nums_.resize(n);
    types_.resize(n);
    for (FieldId f = 0; f < n; ++f) {
      vals_[f] = r.field(f);
      const FieldType t = schema.field(f).type;
      types_[f] = t;
      nums_[f] = t == FieldType::kInt ? static_cast<double>(vals_[f].i) : vals_[f].f;
    }
  }

  // The value of a component's source, or absent.
  FieldValue value(const Component& c) const {
    if (c.kind == SourceKind::kField) return vals_[c.id];
    auto v = r_.map_value(c.id, c.key);
    return v ? FieldValue::of_string(*v) : FieldValue{};
  }

  // Appends the key bytes of the record's value for `c`; false if absent.
  bool encode(const Component& c, std::string& k) const {
    const FieldValue v = value(c);
    if (!v.present) return false;
    const FieldType t = c.kind == SourceKind::kField ? types_[c.id] : FieldType::kString;
    switch (t) {
      case FieldType::kString: encode_str(k, v.s); return true;
      case FieldType::kInt: encode_int(k, v.i); return true;
      case FieldType::kFloat:
        if (v.f != v.f) return false;
        encode_float(k, v.f);
        return true;
      case FieldType::kIp: encode_ip(k, v.ip.masked(c.prefix)); return true;
    }
    return false;
  }

  bool lit(const Lit& l) const {
    const Atom& a = *l.atom;
    bool v;
    switch (a.kind) {
      case SourceKind::kField: v = internal::eval_atom_value(a, vals_[a.id]); break;
      default: v = internal::eval_atom(a, r_); break;
    }
    return v != l.neg;
  }

  void candidate(const Branch& b) {
    if (b.dedupe && sc_.epoch[b.slot] == sc_.cur) return;
    if (b.whole) {
      if (!b.sub->query->matches(r_)) return;
    } else {
      for (const Lit& l : b.residual) {
        if (!lit(l)) return;
      }
    }
    if (b.dedupe) sc_.epoch[b.slot] = sc_.cur;
    out_.push_back(b.id);
  }

  void emit(const Entry& e) {
    if (e.br == nullptr) {
      out_.push_back(e.id);
    } else {
      candidate(*e.br);
    }
  }

  void walk(const RangeList& rl) {
    const RangeKey& k = rl.key;
    if (!vals_[k.f1].present) return;
    const double x1 = k.up1 ? -nums_[k.f1] : nums_[k.f1];
    double x2 = INFINITY;
    if (k.f2 != kNoField) {
      if (!vals_[k.f2].present) return;
      x2 = k.up2 ? -nums_[k.f2] : nums_[k.f2];
    }
    for (const Group& g : rl.groups) {
      if (!(g.min_k2 <= x2)) break;
      if (g.max_k2 <= x2) {
        for (const Entry& e : g.entries) {
          if (!(e.k1 <= x1)) break;
          emit(e);
        }
      } else {
        for (const Entry& e : g.entries) {
          if (!(e.k1 <= x1)) break;
          if (e.k2 <= x2) emit(e);
        }
      }
    }
  }

  const RecordView& r_;
  std::vector<uint64_t>& out_;
  Scratch& sc_;
  std::vector<FieldValue>& vals_;
  std::vector<double>& nums_;
  std::vector<FieldType>& types_;
};

void Index::match(const Schema& schema, const RecordView& r, std::vector<uint64_t>& out) const {
  Scratch& sc = t_scratch;
  if (sc.epoch.size() < slots_) sc.epoch.resize(slots_, 0);
  if (++sc.cur == 0) {
    std::fill(sc.epoch.begin(), sc.epoch.end(), 0);
    sc.cur = 1;
  }
  MatchRun run(schema, r, out, sc);

  // 1, 2: equality keys, with sorted ranges inside the buckets.
  for (uint32_t spec : active_specs_) {
    std::string& k = sc.key;
    k.clear();
    append_u32(k, spec);
    bool ok = true;
    for (const Component& c : specs_[spec].comps) {
      if (!run.encode(c, k)) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    auto it = buckets_.find(std::string_view(k));
    if (it == buckets_.end()) continue;
    for (const Entry& e : it->second.plain) run.emit(e);
    for (const RangeList& rl : it->second.ranges) run.walk(rl);
  }
  // 3: ranges alone.
  for (const RangeList& rl : ranges_) run.walk(rl);
  // 4: substrings.
  for (uint32_t s = 0; s < substr_.size(); ++s) {
    const SubstrSource& ss = substr_[s];
    if (ss.refs == 0) continue;
    const FieldValue v = run.value(ss.src);
    if (!v.present) continue;
    std::string& low = sc.lowered;
    low.assign(v.s);
    for (char& ch : low) ch = text::lower(ch);
    for (size_t i = 0; i < low.size(); ++i) {
      for (uint32_t len = 1; len <= 3 && i + len <= low.size(); ++len) {
        if (ss.by_len[len] == 0) continue;
        uint64_t g = (static_cast<uint64_t>(s) << 32) | (static_cast<uint64_t>(len) << 24);
        for (uint32_t j = 0; j < len; ++j) {
          g |= static_cast<uint64_t>(static_cast<unsigned char>(low[i + j])) << (16 - 8 * j);
        }
        auto it = grams_.find(g);
        if (it == grams_.end()) continue;
        for (const Entry& e : it->second) {
          const Branch& b = *e.br;
          if (b.index_atom->str.size() > 3 &&
              (i < b.gram_offset || !text::iprefix_at(low, i - b.gram_offset, b.index_atom->str))) {
            continue;
          }
          run.candidate(b);
        }
      }
    }
  }
  // 5: regexes.
  for (const RegexSource& rs : regex_) {
    if (rs.chunks.empty()) continue;
    const FieldValue v = run.value(rs.src);
    if (!v.present) continue;
    for (const auto& chunk : rs.chunks) {
      sc.set_hits.clear();
      RE2::Set::ErrorInfo info;
      if (chunk->set->Match(v.s, &sc.set_hits, &info)) {
        for (int h : sc.set_hits) {
          const Branch* b = chunk->branches[static_cast<size_t>(h)];
          if (b != nullptr) run.candidate(*b);
        }
      } else if (info.kind != RE2::Set::kNoError) {
        // The DFA ran out of memory: fall back to the patterns one by one.
        for (const Branch* b : chunk->branches) {
          if (b != nullptr && RE2::PartialMatch(v.s, *b->index_atom->extra->re)) run.candidate(*b);
        }
      }
    }
  }
  // 6: always-check.
  for (const Entry& e : always_) run.emit(e);
}

}  // namespace

// ---------------------------------------------------------------------------

struct [[gnu::visibility("hidden")]] Matcher::State {
  State(const Schema& s, MatcherOptions o) : schema(s), options(std::move(o)) {
    readers[0].store(0);
    readers[1].store(0);
  }

  const Schema& schema;
  const MatcherOptions options;

  // Read side (left-right protocol).
  Index index[2];
  std::atomic<int> left_right{0};
  std::atomic<int> version{0};
  alignas(64) std::atomic<int64_t> readers[2];
  alignas(64) std::atomic<size_t> size{0};
  std::atomic<size_t> unindexable{0};
  std::atomic<size_t> key_specs{0};
  std::atomic<size_t> regex_sets{0};

  // Guarded by mu.
  std::mutex mu;
  std::unordered_map<uint64_t, std::unique_ptr<Sub>> subs;
  std::vector<uint32_t> free_slots;
  uint32_t next_slot = 0;
  std::map<std::vector<Component>, uint32_t> spec_ids;
  std::vector<uint32_t> spec_refs;
  std::vector<uint32_t> free_specs;
  std::map<Component, uint32_t> substr_ids;
  std::unordered_map<uint64_t, uint32_t> gram_counts;  // substring entries per table slot
  std::map<Component, uint32_t> regex_ids;
  std::vector<std::vector<std::shared_ptr<const RegexChunk>>> regex_chunks;  // by regex source

  // Applies `op` to both copies; readers keep going on the other copy.
  void apply(const std::function<void(Index&)>& op) {
    const int lr = left_right.load();
    op(index[1 - lr]);
    left_right.store(1 - lr);
    const int prev = version.load();
    const int next = 1 - prev;
    while (readers[next].load() != 0) std::this_thread::yield();
    version.store(next);
    while (readers[prev].load() != 0) std::this_thread::yield();
    op(index[lr]);
  }

  uint32_t acquire_spec(const std::vector<Component>& comps, bool may_create, bool& ok) {
    auto it = spec_ids.find(comps);
    uint32_t id;
    if (it != spec_ids.end()) {
      id = it->second;
    } else {
      if (!may_create || spec_ids.size() >= options.max_key_specs) {
        ok = false;
        return 0;
      }
      if (!free_specs.empty()) {
        id = free_specs.back();
        free_specs.pop_back();
      } else {
        id = static_cast<uint32_t>(spec_refs.size());
        spec_refs.push_back(0);
      }
      spec_ids.emplace(comps, id);
    }
    ++spec_refs[id];
    ok = true;
    return id;
  }

  void release_spec(uint32_t id) {
    if (--spec_refs[id] != 0) return;
    for (auto it = spec_ids.begin(); it != spec_ids.end(); ++it) {
      if (it->second == id) {
        spec_ids.erase(it);
        break;
      }
    }
    free_specs.push_back(id);
  }

  static uint32_t source_id(std::map<Component, uint32_t>& m, const Component& c) {
    auto it = m.find(c);
    if (it != m.end()) return it->second;
    const auto id = static_cast<uint32_t>(m.size());
    m.emplace(c, id);
    return id;
  }

  bool to_dnf(const QueryImpl& q, uint32_t node, bool neg, std::vector<std::vector<Lit>>& out) const;
  void plan_branch(Branch& b, std::vector<std::function<void(Index&)>>& extra_ops);
  QueryError add(uint64_t id, const Query& query);
  bool remove(uint64_t id);
  std::vector<std::shared_ptr<const RegexChunk>> rebuild_chunks(uint32_t source, const Branch* add,
                                                                const Branch* drop, bool& added);
};

// Drops repeated literals inside a branch and repeated branches (compared by
// their canonical text), e.g. `(method = POST or method = POST)`.
void dedupe_branches(const QueryImpl& q, std::vector<std::vector<Lit>>& dnf) {
  std::vector<std::string> seen;
  std::vector<std::vector<Lit>> kept;
  for (auto& lits : dnf) {
    std::vector<std::pair<std::string, Lit>> texts;
    for (const Lit& l : lits) {
      std::string t = l.neg ? "!" : "";
      internal::print_atom(q, *l.atom, t);
      texts.emplace_back(std::move(t), l);
    }
    std::stable_sort(texts.begin(), texts.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Lit> uniq;
    std::string sig;
    for (size_t i = 0; i < texts.size(); ++i) {
      if (i > 0 && texts[i].first == texts[i - 1].first) continue;
      uniq.push_back(texts[i].second);
      sig += texts[i].first;
      sig += '\n';
    }
    if (std::find(seen.begin(), seen.end(), sig) != seen.end()) continue;
    seen.push_back(std::move(sig));
    // Keep the literals in query order (the first range literal is the sort key).
    std::vector<Lit> ordered;
    for (const Lit& l : lits) {
      for (const Lit& u : uniq) {
        if (u.atom == l.atom && u.neg == l.neg) ordered.push_back(l);
      }
    }
    kept.push_back(std::move(ordered));
  }
  dnf = std::move(kept);
}

bool Matcher::State::to_dnf(const QueryImpl& q, uint32_t node, bool neg,
                            std::vector<std::vector<Lit>>& out) const {
  const internal::Node& n = q.nodes[node];
  out.clear();
  switch (n.kind) {
    case NodeKind::kAtom:
      out.push_back({Lit{&q.atoms[n.atom], neg}});
      return true;
    case NodeKind::kNot:
      return to_dnf(q, q.kids[n.first_kid], !neg, out);
    case NodeKind::kAnd:
    case NodeKind::kOr: {
      const bool conj = (n.kind == NodeKind::kAnd) != neg;
      std::vector<std::vector<Lit>> kid;
      if (conj) out.push_back({});
      for (uint32_t i = 0; i < n.kid_count; ++i) {
        if (!to_dnf(q, q.kids[n.first_kid + i], neg, kid)) return false;
        if (conj) {
          if (out.size() * kid.size() > options.max_branches) return false;
          std::vector<std::vector<Lit>> prod;
          prod.reserve(out.size() * kid.size());
          for (const auto& a : out) {
            for (const auto& b : kid) {
              prod.push_back(a);
              prod.back().insert(prod.back().end(), b.begin(), b.end());
            }
          }
          out = std::move(prod);
        } else {
          if (out.size() + kid.size() > options.max_branches) return false;
          for (auto& b : kid) out.push_back(std::move(b));
        }
      }
      return true;
    }
  }
  return false;
}

std::vector<std::shared_ptr<const RegexChunk>> Matcher::State::rebuild_chunks(uint32_t source,
                                                                              const Branch* add,
                                                                              const Branch* drop,
                                                                              bool& added) {
  auto chunks = regex_chunks[source];
  added = false;
  auto build = [&](std::vector<const Branch*> brs) -> std::shared_ptr<const RegexChunk> {
    RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(options.regex_set_max_mem);
    auto set = std::make_shared<RE2::Set>(o, RE2::UNANCHORED);
    for (const Branch* b : brs) {
      if (set->Add(b->index_atom->str, nullptr) < 0) return nullptr;
    }
    if (!set->Compile()) return nullptr;
    auto chunk = std::make_shared<RegexChunk>();
    chunk->set = std::move(set);
    chunk->branches = std::move(brs);
    return chunk;
  };
  if (drop != nullptr) {
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto& brs = chunks[i]->branches;
      auto it = std::find(brs.begin(), brs.end(), drop);
      if (it == brs.end()) continue;
      std::vector<const Branch*> rest;
      for (const Branch* b : brs) {
        if (b != drop && b != nullptr) rest.push_back(b);
      }
      if (rest.empty()) {
        chunks.erase(chunks.begin() + static_cast<long>(i));
      } else if (auto c = build(rest)) {
        chunks[i] = std::move(c);
      } else {
        // A subset of a compiled set should compile too; if it does not, keep
        // the old set and leave a hole where the removed branch was.
        auto same_set = std::make_shared<RegexChunk>(*chunks[i]);
        for (auto& b : same_set->branches) {
          if (b == drop) b = nullptr;
        }
        chunks[i] = std::move(same_set);
      }
      break;
    }
  }
  if (add != nullptr) {
    if (!chunks.empty() && chunks.back()->branches.size() < options.regex_set_size) {
      std::vector<const Branch*> brs;
      for (const Branch* x : chunks.back()->branches) {
        if (x != nullptr) brs.push_back(x);
      }
      brs.push_back(add);
      if (auto c = build(std::move(brs))) {
        chunks.back() = std::move(c);
        added = true;
      }
    }
    if (!added) {
      if (auto c = build({add})) {
        chunks.push_back(std::move(c));
        added = true;
      }
    }
  }
  return chunks;
}

void Matcher::State::plan_branch(Branch& b, std::vector<std::function<void(Index&)>>& ops) {
  // 1. Combined equality key over all positive equalities.
  std::vector<std::pair<Component, std::string>> eqs;
  std::vector<size_t> eq_lits;
  for (size_t i = 0; i < b.residual.size(); ++i) {
    const Lit& l = b.residual[i];
    if (l.neg) continue;
    Component c;
    std::string v;
    if (!key_component(*l.atom, c, v)) continue;
    bool dup = false;
    for (const auto& e : eqs) dup = dup || e.first == c;
    if (dup) continue;
    eqs.emplace_back(std::move(c), std::move(v));
    eq_lits.push_back(i);
  }
  // Up to two one-sided ranges become the sorted list's keys.
  auto take_range = [&](std::vector<size_t>& consumed) {
    int taken = 0;
    for (size_t i = 0; i < b.residual.size() && taken < 2; ++i) {
      const Lit& l = b.residual[i];
      if (l.neg || l.atom->kind != SourceKind::kField || !is_range_op(l.atom->op)) continue;
      bool upper;
      double thr;
      if (!range_threshold(*l.atom, l.atom->type, upper, thr)) continue;
      const double k = upper ? -thr : thr;
      if (taken == 0) {
        b.has_range = true;
        b.rk.f1 = l.atom->id;
        b.rk.up1 = upper;
        b.k1 = k;
      } else {
        b.rk.f2 = l.atom->id;
        b.rk.up2 = upper;
        b.k2 = k;
      }
      ++taken;
      consumed.push_back(i);
    }
  };
  auto drop_consumed = [&](std::vector<size_t> consumed) {
    std::sort(consumed.rbegin(), consumed.rend());
    for (size_t i : consumed) b.residual.erase(b.residual.begin() + static_cast<long>(i));
  };
  auto use_spec = [&](std::vector<Component> comps, std::vector<std::string> keys, bool& ok) {
    const uint32_t spec = acquire_spec(comps, true, ok);
    if (!ok) return;
    b.place = Place::kKey;
    b.spec = spec;
    for (auto& k : keys) {
      std::string full;
      append_u32(full, spec);
      full += k;
      b.keys.push_back(std::move(full));
    }
    ops.push_back([spec, comps](Index& ix) { ix.set_spec(spec, comps, +1); });
  };
  if (!eqs.empty()) {
    std::vector<size_t> order(eqs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return eqs[x].first < eqs[y].first; });
    std::vector<Component> comps;
    std::string key;
    std::vector<size_t> consumed;
    for (size_t i : order) {
      comps.push_back(eqs[i].first);
      key += eqs[i].second;
      consumed.push_back(eq_lits[i]);
    }
    bool ok = false;
    use_spec(comps, {key}, ok);
    if (!ok) {
      // Too many field sets: key on the first equality alone.
      comps.assign(1, eqs[0].first);
      consumed.assign(1, eq_lits[0]);
      use_spec(comps, {eqs[0].second}, ok);
    }
    if (ok) {
      take_range(consumed);
      drop_consumed(consumed);
      return;
    }
  }
  // 2. `in` lists of plain values: one key per item.
  for (size_t i = 0; i < b.residual.size(); ++i) {
    const Lit& l = b.residual[i];
    if (l.neg || l.atom->op != Op::kIn || l.atom->kind == SourceKind::kMapAny) continue;
    const auto& items = l.atom->extra->items;
    if (items.size() > options.max_in_keys) continue;
    // Group items by component (IP items may differ in prefix).
    std::map<Component, std::vector<std::string>> by_comp;
    bool usable = true;
    for (const auto& it : items) {
      Component c;
      std::string v;
      if (!item_key(*l.atom, it, c, v)) {
        usable = false;
        break;
      }
      by_comp[c].push_back(std::move(v));
    }
    if (!usable || by_comp.size() != 1) continue;  // mixed prefixes: not keyed
    bool ok = false;
    auto& [comp, keys] = *by_comp.begin();
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    use_spec({comp}, keys, ok);
    if (!ok) continue;
    std::vector<size_t> consumed{i};
    take_range(consumed);
    drop_consumed(consumed);
    return;
  }
  // 3. A substring of three or more bytes; 6. a shorter one. Among several,
  // the one whose table slot is least crowded, then the longest.
  auto take_substring = [&](size_t min_len) {
    size_t best = b.residual.size();
    uint64_t best_gram = 0;
    uint32_t best_count = 0, best_offset = 0;
    for (size_t i = 0; i < b.residual.size(); ++i) {
      const Lit& l = b.residual[i];
      if (l.neg || l.atom->op != Op::kContains || l.atom->kind == SourceKind::kMapAny ||
          l.atom->str.size() < min_len || l.atom->str.empty()) {
        continue;
      }
      const Atom& a = *l.atom;
      const uint32_t source = source_id(substr_ids, Component{a.kind, a.id, a.key, 128});
      const size_t len = std::min<size_t>(3, a.str.size());
      // Any 3-byte window of the needle can be its key: take the least crowded.
      for (size_t off = 0; off + len <= a.str.size(); ++off) {
        uint64_t g = (static_cast<uint64_t>(source) << 32) | (static_cast<uint64_t>(len) << 24);
        for (size_t j = 0; j < len; ++j) {
          g |= static_cast<uint64_t>(static_cast<unsigned char>(a.str[off + j])) << (16 - 8 * j);
        }
        auto it = gram_counts.find(g);
        const uint32_t count = it == gram_counts.end() ? 0 : it->second;
        if (best == b.residual.size() || count < best_count ||
            (count == best_count && a.str.size() > b.residual[best].atom->str.size())) {
          best = i;
          best_gram = g;
          best_count = count;
          best_offset = static_cast<uint32_t>(off);
        }
      }
    }
    if (best == b.residual.size()) return false;
    const Atom& a = *b.residual[best].atom;
    const Component c{a.kind, a.id, a.key, 128};
    const uint32_t source = source_id(substr_ids, c);
    const size_t len = std::min<size_t>(3, a.str.size());
    b.place = Place::kSubstr;
    b.source = source;
    b.gram = best_gram;
    b.gram_offset = best_offset;
    b.index_atom = &a;
    b.dedupe = true;  // a pattern may occur at several positions
    ++gram_counts[best_gram];
    ops.push_back([source, c, len](Index& ix) { ix.set_substr_source(source, c, len, +1); });
    drop_consumed({best});
    return true;
  };
  if (take_substring(3)) return;
  // 4. A regex, in the source's RE2::Sets.
  for (size_t i = 0; i < b.residual.size(); ++i) {
    const Lit& l = b.residual[i];
    if (l.neg || l.atom->op != Op::kRegex || l.atom->kind == SourceKind::kMapAny) continue;
    const Atom& a = *l.atom;
    const Component c{a.kind, a.id, a.key, 128};
    const uint32_t source = source_id(regex_ids, c);
    if (regex_chunks.size() <= source) regex_chunks.resize(source + 1);
    b.index_atom = &a;
    bool added = false;
    auto chunks = rebuild_chunks(source, &b, nullptr, added);
    if (!added) {
      b.index_atom = nullptr;
      continue;
    }
    b.place = Place::kRegex;
    b.source = source;
    regex_chunks[source] = chunks;
    ops.push_back([source, c, chunks](Index& ix) { ix.set_regex_chunks(source, c, chunks); });
    drop_consumed({i});
    return;
  }
  // 5. A one-sided range alone.
  {
    std::vector<size_t> consumed;
    take_range(consumed);
    if (b.has_range) {
      b.place = Place::kRange;
      drop_consumed(consumed);
      return;
    }
  }
  if (take_substring(1)) return;
  b.place = Place::kAlways;
}

QueryError Matcher::State::add(uint64_t id, const Query& query) {
  if (&query.schema() != &schema) {
    QueryError e;
    e.code = "schema_mismatch";
    e.message = "the query was parsed with another schema";
    return e;
  }
  std::lock_guard<std::mutex> lock(mu);
  if (subs.count(id) != 0) {
    QueryError e;
    e.code = "duplicate_id";
    e.message = "subscription " + std::to_string(id) + " already exists";
    e.hint = "unsubscribe it first or use another id";
    return e;
  }
  auto sub = std::make_unique<Sub>(query);
  sub->id = id;
  if (!free_slots.empty()) {
    sub->slot = free_slots.back();
    free_slots.pop_back();
  } else {
    sub->slot = next_slot++;
  }
  const QueryImpl& q = query.impl();
  std::vector<std::vector<Lit>> dnf;
  const bool indexable = q.depth <= 256 && to_dnf(q, q.root, false, dnf);
  if (!indexable) {
    dnf.assign(1, {});
  } else {
    dedupe_branches(q, dnf);
  }
  std::vector<std::function<void(Index&)>> ops;
  sub->branches.reserve(dnf.size());
  for (auto& lits : dnf) {
    sub->branches.emplace_back();
    Branch* b = &sub->branches.back();
    b->sub = sub.get();
    b->id = id;
    b->slot = sub->slot;
    b->residual = std::move(lits);
    b->whole = !indexable;
    if (indexable) plan_branch(*b, ops);
    if (b->place == Place::kAlways) sub->unindexable = true;
  }
  // A record yields one key per key spec, so entries under one spec with
  // distinct keys (`method = GET or method = PUT`) can never both fire.
  size_t entries = 0;
  bool one_spec = true;
  std::vector<std::string_view> keys;
  for (const auto& b : sub->branches) {
    entries += b.place == Place::kKey ? b.keys.size() : 1;
    one_spec = one_spec && b.place == Place::kKey && b.spec == sub->branches[0].spec;
    if (b.place == Place::kKey) keys.insert(keys.end(), b.keys.begin(), b.keys.end());
  }
  std::sort(keys.begin(), keys.end());
  const bool distinct = std::adjacent_find(keys.begin(), keys.end()) == keys.end();
  const bool dedupe = entries > 1 && !(one_spec && distinct);
  bool needs_tree = false;
  for (auto& b : sub->branches) {
    b.dedupe = dedupe || b.place == Place::kSubstr;
    needs_tree = needs_tree || b.whole || !b.residual.empty() || b.index_atom != nullptr;
  }
  if (!needs_tree) sub->query.reset();  // the index alone decides: free the tree
  const uint32_t slots = next_slot;
  const Sub* raw = sub.get();
  apply([&](Index& ix) {
    for (const auto& op : ops) op(ix);
    ix.set_slots(slots);
    ix.add(*raw);
  });
  if (sub->unindexable) unindexable.fetch_add(1);
  subs.emplace(id, std::move(sub));
  size.store(subs.size());
  key_specs.store(spec_ids.size());
  size_t sets = 0;
  for (const auto& c : regex_chunks) sets += c.size();
  regex_sets.store(sets);
  return {};
}

bool Matcher::State::remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = subs.find(id);
  if (it == subs.end()) return false;
  Sub& sub = *it->second;
  std::vector<std::function<void(Index&)>> ops;
  for (const Branch& b : sub.branches) {
    switch (b.place) {
      case Place::kKey: {
        const uint32_t spec = b.spec;
        std::vector<Component> comps;
        for (const auto& [k, v] : spec_ids) {
          if (v == spec) comps = k;
        }
        ops.push_back([spec, comps](Index& ix) { ix.set_spec(spec, comps, -1); });
        release_spec(spec);
        break;
      }
      case Place::kSubstr: {
        if (--gram_counts[b.gram] == 0) gram_counts.erase(b.gram);
        const uint32_t source = b.source;
        const size_t len = std::min<size_t>(3, b.index_atom->str.size());
        ops.push_back([source, len](Index& ix) { ix.set_substr_source(source, Component{}, len, -1); });
        break;
      }
      case Place::kRegex: {
        const uint32_t source = b.source;
        bool added = false;
        auto chunks = rebuild_chunks(source, nullptr, &b, added);
        regex_chunks[source] = chunks;
        Component c;
        for (const auto& [k, v] : regex_ids) {
          if (v == source) c = k;
        }
        ops.push_back([source, c, chunks](Index& ix) { ix.set_regex_chunks(source, c, chunks); });
        break;
      }
      default:
        break;
    }
  }
  const Sub* raw = &sub;
  apply([&](Index& ix) {
    ix.remove(*raw);
    for (const auto& op : ops) op(ix);
  });
  if (sub.unindexable) unindexable.fetch_sub(1);
  free_slots.push_back(sub.slot);
  subs.erase(it);  // no reader can reach it any more
  size.store(subs.size());
  key_specs.store(spec_ids.size());
  size_t sets = 0;
  for (const auto& c : regex_chunks) sets += c.size();
  regex_sets.store(sets);
  return true;
}

Matcher::Matcher(const Schema& schema, MatcherOptions options)
    : state_(std::make_unique<State>(schema, std::move(options))) {}

Matcher::~Matcher() = default;

QueryError Matcher::subscribe(uint64_t id, std::string_view query) {
  ParseResult r = parse(query, state_->schema, state_->options.query);
  if (!r.ok()) return r.error;
  return state_->add(id, *r.query);
}

QueryError Matcher::subscribe(uint64_t id, const Query& query) { return state_->add(id, query); }

bool Matcher::unsubscribe(uint64_t id) { return state_->remove(id); }

void Matcher::match(const RecordView& record, std::vector<uint64_t>& out) const {
  State& s = *state_;
  const int vi = s.version.load();
  s.readers[vi].fetch_add(1);
  struct Leave {
    std::atomic<int64_t>& r;
    ~Leave() { r.fetch_sub(1); }
  } leave{s.readers[vi]};
  const int lr = s.left_right.load();
  s.index[lr].match(s.schema, record, out);
}

size_t Matcher::size() const { return state_->size.load(); }

MatcherStats Matcher::stats() const {
  MatcherStats st;
  st.subscriptions = state_->size.load();
  st.unindexable = state_->unindexable.load();
  st.key_specs = state_->key_specs.load();
  st.regex_sets = state_->regex_sets.load();
  return st;
}

}  // namespace clio::matcher
