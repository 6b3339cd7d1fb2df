// Access-path choice. Every literal offers the index terms that can find it
// (its "options"); a branch takes the option with the lowest estimated chance
// of firing per record, where estimates come from the literal's shape and the
// number of distinct values the subscriptions use on its field:
//   - positive equalities on fixed fields and CIDR blocks: one combined key
//     (with up to two one-sided ranges, or one interval, sorted in its bucket);
//   - map-key equalities: a (key, value) table probed with the record's own entries;
//   - ranges, status classes and `in` ranges: sorted lists (intervals);
//   - `in` lists: one term per item;
//   - substrings, and regexes through their required literals: a gram table;
//   - `field:*`: a presence list per source;
//   - negated ranges and classes: the complementary ranges plus "absent";
//   - negated equalities and `!=`: a table of value groups, all but the
//     record's own group fire;
//   - regexes without a literal: RE2::Sets (every record, counted);
//   - other negations: evaluated on every record (counted).
#include "plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <re2/set.h>

#include "keys.h"
#include "regex_literal.h"
#include "text.h"

namespace clio::matcher::internal {
namespace {

bool is_range_op(Op op) { return op == Op::kLt || op == Op::kLe || op == Op::kGt || op == Op::kGe; }

bool exact_threshold(double d) { return std::fabs(d) <= 4503599627370496.0; }  // 2^52

// The sorted-range form of a one-sided range: value >= thr (lower) or
// value <= thr (upper), exactly equivalent to the literal for present,
// ordered values.
bool range_threshold(Op op, const Num& n, FieldType type, bool& upper, double& thr) {
  if (type == FieldType::kInt) {
    double t;
    switch (op) {
      case Op::kGt: t = n.is_int ? static_cast<double>(n.i) + 1 : std::ceil(n.f); upper = false; break;
      case Op::kGe: t = n.is_int ? static_cast<double>(n.i) : std::ceil(n.f); upper = false; break;
      case Op::kLt: t = n.is_int ? static_cast<double>(n.i) - 1 : std::floor(n.f); upper = true; break;
      case Op::kLe: t = n.is_int ? static_cast<double>(n.i) : std::floor(n.f); upper = true; break;
      default: return false;
    }
    if (n.is_int && !exact_threshold(static_cast<double>(n.i))) return false;
    if (!exact_threshold(t)) return false;
    thr = t;
    return true;
  }
  if (type != FieldType::kFloat) return false;
  switch (op) {
    case Op::kGt: thr = std::nextafter(n.f, INFINITY); upper = false; return true;
    case Op::kGe: thr = n.f; upper = false; return true;
    case Op::kLt: thr = std::nextafter(n.f, -INFINITY); upper = true; return true;
    case Op::kLe: thr = n.f; upper = true; return true;
    default: return false;
  }
}

Op flipped(Op op) {
  switch (op) {
    case Op::kLt: return Op::kGe;
    case Op::kLe: return Op::kGt;
    case Op::kGt: return Op::kLe;
    default: return Op::kLt;  // kGe
  }
}

// The closed interval lo..hi of a class or an `in` range on a numeric field.
bool interval(FieldType type, const Num& lo, const Num& hi, double& klo, double& khi) {
  bool up;
  return range_threshold(Op::kGe, lo, type, up, klo) && range_threshold(Op::kLe, hi, type, up, khi);
}

Num int_num(int64_t v) {
  Num n;
  n.i = v;
  n.f = static_cast<double>(v);
  n.is_int = true;
  return n;
}

Component source_of(const Atom& a) { return Component{a.kind, a.id, a.kind == SourceKind::kField ? "" : a.key, 128}; }

// A literal value usable as an equality key for `a`'s source: equality on a
// field or map key, or a CIDR block; false otherwise.
bool key_component(const Atom& a, Component& c, std::string& value) {
  if (a.kind == SourceKind::kMapAny) return false;
  c = source_of(a);
  value.clear();
  if (a.op == Op::kEq || a.op == Op::kNe) {
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

double cidr_sel(uint8_t prefix, bool v4) {
  const double bits = v4 ? prefix - 96.0 : prefix / 2.0;
  return std::max(1e-4, std::pow(2.0, -bits / 2.0));
}

double contains_sel(size_t len) { return std::max(1e-4, std::pow(0.7, static_cast<double>(len))); }

constexpr double kRangeSel = 0.3;
constexpr double kIntervalSel = 0.1;
constexpr double kWeakPrefilter = 0.35;

// A term before the catalog has numbered it.
struct Draft {
  Term term;
  Component comp;                  // the source (kMapKey, kGram, kPresent, kRegexSet, kNotEqual)
  std::vector<Component> comps;    // kKey: the spec
  std::string value;               // kKey, kMapKey, kNotEqual: encoded value(s)
};

// One way to find a branch.
struct Choice {
  std::vector<Draft> drafts;
  std::vector<size_t> covered;     // literals the drafts decide exactly
  double est = 1;                  // chance per record that the branch is reached
  double cost = INFINITY;
  EveryRecordReason reason = EveryRecordReason::kNone;
  std::string how;                 // the literals used, for explanations
};

struct Planned {
  std::vector<std::vector<Lit>> branches;
  std::vector<Choice> choices;
  bool whole = false;  // the branches are one AND-ed part: verify the whole query
  EveryRecordReason forced = EveryRecordReason::kNone;
};

void print_lit(const QueryImpl& q, const Lit& l, std::string& out) {
  if (l.neg) out += "not ";
  print_atom(q, *l.atom, out);
}

// Drops repeated literals inside a branch and repeated branches (compared by
// their canonical text), e.g. `(method = POST or method = POST)`.
void dedupe_branches(const QueryImpl& q, std::vector<std::vector<Lit>>& dnf) {
  std::vector<std::string> seen;
  std::vector<std::vector<Lit>> kept;
  for (auto& lits : dnf) {
    std::vector<std::pair<std::string, Lit>> texts;
    for (const Lit& l : lits) {
      std::string t;
      print_lit(q, l, t);
      texts.emplace_back(std::move(t), l);
    }
    std::stable_sort(texts.begin(), texts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
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
    kept.push_back(std::move(uniq));
  }
  dnf = std::move(kept);
}

}  // namespace

struct Planner::Impl {
  Impl(const Schema& s, const MatcherOptions& o, const RecordSample& rs) : schema(s), options(o), sample(rs) {}

  const Schema& schema;
  const MatcherOptions& options;
  const RecordSample& sample;
  // Estimates of the query being planned, by atom (cleared per query).
  mutable std::unordered_map<const Atom*, double> sel_cache;

  std::map<std::vector<Component>, uint32_t> spec_ids;
  std::vector<uint32_t> spec_refs;
  std::vector<uint32_t> free_specs;
  size_t multi_specs = 0;                        // specs of two or more components
  std::map<Component, uint32_t> source_ids;      // kept once named (bounded by the names queries use)
  std::map<Component, uint32_t> table_ids;       // not-equal tables, likewise
  std::unordered_map<uint64_t, uint32_t> gram_counts;  // entries per (source, gram), see gram_count_key
  std::map<Component, std::unordered_map<std::string, uint32_t>> values;  // distinct equality values
  std::vector<std::vector<std::shared_ptr<const RegexChunk>>> regex_chunks;  // by source

  // --- Estimates -----------------------------------------------------------

  double eq_sel(const Component& c) const {
    double floor = 50;
    if (c.kind == SourceKind::kField) {
      switch (schema.field(c.id).type) {
        case FieldType::kString: floor = 50; break;
        case FieldType::kInt: floor = 10; break;
        case FieldType::kFloat:
        case FieldType::kIp: floor = 1000; break;
      }
    }
    Component plain = c;
    plain.prefix = 128;
    auto it = values.find(plain);
    const double card = it == values.end() ? 0 : static_cast<double>(it->second.size());
    return 1.0 / std::max(floor, card);
  }

  // Blends a shape-based guess with the frequency observed in sampled
  // records (the guess weighs as much as four records).
  double observed(double prior, const std::function<bool(const RecordView&)>& holds) const {
    const auto f = sample.frequency(holds);
    const double n = static_cast<double>(f.records);
    return std::clamp((f.fraction * n + prior * 4) / (n + 4), 1e-4, 1.0);
  }

  // Chance that the (positive) atom holds for a record.
  double atom_sel(const Atom& a) const {
    auto it = sel_cache.find(&a);
    if (it != sel_cache.end()) return it->second;
    const double s = observed(shape_sel(a), [&](const RecordView& r) { return eval_atom(a, r); });
    sel_cache.emplace(&a, s);
    return s;
  }

  // Chance that a record's value of `src` contains `needle` (lower-case).
  double needle_sel(const Component& src, const std::string& needle) const {
    return observed(contains_sel(needle.size()), [&](const RecordView& r) {
      if (src.kind == SourceKind::kField) {
        const FieldValue v = r.field(src.id);
        return v.present && text::icontains(v.s, needle);
      }
      if (src.kind == SourceKind::kMapKey) {
        auto v = r.map_value(src.id, src.key);
        return v.has_value() && text::icontains(*v, needle);
      }
      bool any = false;
      std::string line;
      r.for_each_map_entry(src.id, [&](std::string_view k, std::string_view v) {
        line.assign(k);
        line += ": ";
        line.append(v);
        any = any || text::icontains(line, needle);
      });
      return any;
    });
  }

  // The chance guessed from the atom's shape and the values subscriptions use.
  double shape_sel(const Atom& a) const {
    switch (a.op) {
      case Op::kEq: return a.kind == SourceKind::kMapAny ? 0.01 : eq_sel(source_of(a));
      case Op::kNe: return 1 - eq_sel(source_of(a));
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe: return kRangeSel;
      case Op::kClass: return kIntervalSel;
      case Op::kCidr: return cidr_sel(a.prefix, a.ip.is_v4());
      case Op::kContains: return contains_sel(a.str.size());
      case Op::kRegex: return 0.1;
      case Op::kNotRegex: return 0.9;
      case Op::kPresent: return 0.5;
      case Op::kIn: {
        double s = 0;
        for (const Item& it : a.extra->items) {
          if (it.range) {
            s += kIntervalSel;
          } else if (a.type == FieldType::kIp) {
            s += cidr_sel(it.prefix, it.ip.is_v4());
          } else {
            s += eq_sel(source_of(a));
          }
        }
        return std::min(1.0, s);
      }
    }
    return 0.5;
  }

  // Relative cost of evaluating the atom on one record.
  static double atom_cost(const Atom& a) {
    double c = 1;
    switch (a.op) {
      case Op::kIn: c = 1 + static_cast<double>(a.extra->items.size()) / 8; break;
      case Op::kContains: c = 3; break;
      case Op::kRegex:
      case Op::kNotRegex: c = 20; break;
      default: break;
    }
    if (a.kind == SourceKind::kMapKey) c += 3;
    if (a.kind == SourceKind::kMapAny) c *= 10;
    return c;
  }

  // Cheap and likely-to-fail checks first: ascending cost / chance to fail.
  void order_residual(std::vector<Lit>& lits) const {
    auto rank = [&](const Lit& l) {
      const double pass = l.neg ? 1 - atom_sel(*l.atom) : atom_sel(*l.atom);
      return atom_cost(*l.atom) / std::max(0.01, 1 - pass);
    };
    std::stable_sort(lits.begin(), lits.end(), [&](const Lit& x, const Lit& y) { return rank(x) < rank(y); });
  }

  // --- Options -------------------------------------------------------------

  bool can_make_spec(const std::vector<Component>& comps) const {
    return comps.size() == 1 || spec_ids.count(comps) != 0 || multi_specs < options.max_key_specs;
  }

  static Draft range_draft(uint32_t field, bool upper, double thr) {
    Draft d;
    d.term.access = Access::kRange;
    d.term.exact = true;
    d.term.rk = RangeKey{field, upper, kNoField, false};
    d.term.k1 = upper ? -thr : thr;
    return d;
  }

  static Draft interval_draft(uint32_t field, double lo, double hi) {
    Draft d;
    d.term.access = Access::kRange;
    d.term.exact = true;
    d.term.rk = RangeKey{field, false, field, true};
    d.term.k1 = lo;
    d.term.k2 = -hi;
    return d;
  }

  Draft key_draft(std::vector<Component> comps, std::string value) const {
    Draft d;
    d.term.access = Access::kKey;
    d.term.exact = true;
    d.comps = std::move(comps);
    d.value = std::move(value);
    return d;
  }

  Draft map_key_draft(const Component& c, std::string_view s) const {
    Draft d;
    d.term.access = Access::kMapKey;
    d.term.exact = true;
    d.comp = c;
    encode_str(d.value, s);
    return d;
  }

  // The combined key over the branch's positive equalities on fixed fields,
  // with up to two one-sided ranges (or one interval) sorted in its bucket.
  void combined_key(const QueryImpl& q, const std::vector<Lit>& lits, Choice& c) const {
    struct Eq {
      Component comp;
      std::string value;
      size_t lit;
    };
    std::vector<Eq> eqs;
    for (size_t i = 0; i < lits.size(); ++i) {
      const Atom& a = *lits[i].atom;
      if (lits[i].neg || a.kind != SourceKind::kField || a.op == Op::kNe) continue;
      Eq e;
      e.lit = i;
      if (!key_component(a, e.comp, e.value)) continue;
      bool dup = false;
      for (const auto& x : eqs) dup = dup || x.comp == e.comp;
      if (!dup) eqs.push_back(std::move(e));
    }
    if (eqs.empty()) return;
    std::sort(eqs.begin(), eqs.end(), [](const Eq& x, const Eq& y) { return x.comp < y.comp; });
    auto sel = [&](const Eq& e) { return atom_sel(*lits[e.lit].atom); };
    std::vector<Component> comps;
    for (const auto& e : eqs) comps.push_back(e.comp);
    if (!can_make_spec(comps)) {
      // Too many field sets in use: key on the most selective equality.
      size_t best = 0;
      for (size_t i = 1; i < eqs.size(); ++i) {
        if (sel(eqs[i]) < sel(eqs[best])) best = i;
      }
      Eq keep = std::move(eqs[best]);
      eqs.assign(1, std::move(keep));
      comps.assign(1, eqs[0].comp);
    }
    std::string value;
    c.est = 1;
    for (const auto& e : eqs) {
      value += e.value;
      c.est *= sel(e);
      c.covered.push_back(e.lit);
      if (!c.how.empty()) c.how += " and ";
      print_lit(q, lits[e.lit], c.how);
    }
    Draft d = key_draft(std::move(comps), std::move(value));
    // Ranges in the bucket.
    int slots = 2;
    for (size_t i = 0; i < lits.size() && slots > 0; ++i) {
      const Atom& a = *lits[i].atom;
      if (lits[i].neg || a.kind != SourceKind::kField) continue;
      if (a.op == Op::kClass && slots == 2) {
        double lo, hi;
        if (!interval(a.type, a.num, int_num(a.num.i + 99), lo, hi)) continue;
        d.term.has_range = true;
        d.term.rk = RangeKey{a.id, false, a.id, true};
        d.term.k1 = lo;
        d.term.k2 = -hi;
        slots = 0;
      } else if (is_range_op(a.op)) {
        bool upper;
        double thr;
        if (!range_threshold(a.op, a.num, a.type, upper, thr)) continue;
        const double k = upper ? -thr : thr;
        d.term.has_range = true;
        if (slots == 2) {
          d.term.rk.f1 = a.id;
          d.term.rk.up1 = upper;
          d.term.k1 = k;
        } else {
          d.term.rk.f2 = a.id;
          d.term.rk.up2 = upper;
          d.term.k2 = k;
        }
        --slots;
      } else {
        continue;
      }
      c.est *= atom_sel(a);
      c.covered.push_back(i);
    }
    c.drafts.push_back(std::move(d));
  }

  // The options of one literal alone; false if it has none.
  bool literal_option(const QueryImpl& q, const Lit& l, Choice& c) const {
    const Atom& a = *l.atom;
    const Component src = source_of(a);
    const bool numeric_field = a.kind == SourceKind::kField && (a.type == FieldType::kInt || a.type == FieldType::kFloat);
    print_lit(q, l, c.how);
    if (!l.neg) {
      switch (a.op) {
        case Op::kEq:
          if (a.kind != SourceKind::kMapKey) return false;  // fields: the combined key
          c.drafts.push_back(map_key_draft(src, a.str));
          c.est = atom_sel(a);
          return true;
        case Op::kLt:
        case Op::kLe:
        case Op::kGt:
        case Op::kGe: {
          bool upper;
          double thr;
          if (!numeric_field || !range_threshold(a.op, a.num, a.type, upper, thr)) return false;
          c.drafts.push_back(range_draft(a.id, upper, thr));
          c.est = atom_sel(a);
          return true;
        }
        case Op::kClass: {
          double lo, hi;
          if (!numeric_field || !interval(a.type, a.num, int_num(a.num.i + 99), lo, hi)) return false;
          c.drafts.push_back(interval_draft(a.id, lo, hi));
          c.est = atom_sel(a);
          return true;
        }
        case Op::kIn:
          if (!in_option(a, c)) return false;
          c.est = atom_sel(a);
          return true;
        case Op::kContains: {
          if (a.str.empty()) return false;
          Draft d;
          d.term.access = Access::kGram;
          d.term.exact = true;
          d.term.needle = a.str;
          d.comp = src;
          c.drafts.push_back(std::move(d));
          c.est = atom_sel(a);
          return true;
        }
        case Op::kRegex: {
          auto lits = required_literals(a.str);
          double found = 0;  // chance that some literal occurs
          for (const auto& x : lits) found += needle_sel(src, x);
          // A literal found in most records (like "/" in paths) is no filter:
          // one RE2::Set pass is cheaper than running the regexes one by one.
          if (lits.empty() || found > kWeakPrefilter) {
            Draft d;
            d.term.access = Access::kRegexSet;
            d.term.exact = true;
            d.term.lit = l;
            d.comp = src;
            c.drafts.push_back(std::move(d));
            c.est = 1;
            c.reason = a.kind == SourceKind::kMapAny ? EveryRecordReason::kAnyHeader
                                                     : EveryRecordReason::kRegexWithoutLiteral;
            return true;
          }
          c.est = found;
          for (auto& s : lits) {
            Draft d;
            d.term.access = Access::kGram;
            d.term.exact = false;  // the regex is verified for candidates
            d.term.needle = std::move(s);
            d.comp = src;
            c.drafts.push_back(std::move(d));
          }
          c.est = std::min(1.0, c.est * 1.5);
          return true;
        }
        case Op::kPresent: {
          if (a.kind == SourceKind::kMapAny) return false;
          Draft d;
          d.term.access = Access::kPresent;
          d.term.exact = true;
          d.comp = src;
          c.drafts.push_back(std::move(d));
          c.est = atom_sel(a);
          return true;
        }
        case Op::kNe: return not_equal_option(a, false, c);
        case Op::kCidr:      // fields: the combined key
        case Op::kNotRegex:  // a negation in disguise
          break;
      }
      if (a.op == Op::kNotRegex) return negation_option(l, c);
      return false;
    }
    // Negations: flip ranges and classes; complement equalities.
    if (numeric_field && (is_range_op(a.op) || a.op == Op::kClass)) {
      if (a.op == Op::kClass) {
        double lo, hi;
        if (!interval(a.type, a.num, int_num(a.num.i + 99), lo, hi)) return negation_option(l, c);
        c.drafts.push_back(range_draft(a.id, true, lo - 1));
        c.drafts.push_back(range_draft(a.id, false, hi + 1));
        c.est = 1 - atom_sel(a);
      } else {
        bool upper;
        double thr;
        if (!range_threshold(flipped(a.op), a.num, a.type, upper, thr)) return negation_option(l, c);
        c.drafts.push_back(range_draft(a.id, upper, thr));
        c.est = 1 - atom_sel(a);
      }
      Draft u;
      u.term.access = Access::kUnordered;
      u.term.exact = true;
      u.term.field = a.id;
      c.drafts.push_back(std::move(u));
      return true;
    }
    if ((a.op == Op::kEq || a.op == Op::kCidr) && a.kind != SourceKind::kMapAny) return not_equal_option(a, true, c);
    return negation_option(l, c);
  }

  bool in_option(const Atom& a, Choice& c) const {
    if (a.kind == SourceKind::kMapAny) return false;
    const Component src = source_of(a);
    c.est = 0;
    for (const Item& it : a.extra->items) {
      if (a.kind == SourceKind::kMapKey) {
        c.drafts.push_back(map_key_draft(src, it.s));
        c.est += eq_sel(src);
        continue;
      }
      std::string v;
      Component comp = src;
      switch (a.type) {
        case FieldType::kString: encode_str(v, it.s); break;
        case FieldType::kIp:
          comp.prefix = it.prefix;
          encode_ip(v, it.ip);
          break;
        case FieldType::kInt:
        case FieldType::kFloat:
          if (it.range) {
            double lo, hi;
            if (!interval(a.type, it.lo, it.hi, lo, hi)) return false;
            c.drafts.push_back(interval_draft(a.id, lo, hi));
            c.est += kIntervalSel;
            continue;
          }
          if (a.type == FieldType::kInt) {
            if (!it.lo.is_int) continue;  // a fraction never equals an int
            encode_int(v, it.lo.i);
          } else {
            encode_float(v, it.lo.f);
          }
          break;
      }
      if (!can_make_spec({comp})) return false;
      c.est += a.type == FieldType::kIp ? cidr_sel(it.prefix, it.ip.is_v4()) : eq_sel(comp);
      c.drafts.push_back(key_draft({comp}, std::move(v)));
    }
    if (c.drafts.empty()) {
      // No item can ever match: the literal is false. An interval that is
      // empty for every record keeps the branch out of every-record lists.
      c.drafts.push_back(interval_draft(a.id, 1, 0));
      c.est = 0;
    }
    c.est = std::min(1.0, c.est);
    return true;
  }

  bool not_equal_option(const Atom& a, bool fires_when_absent, Choice& c) const {
    Component comp;
    std::string v;
    if (!key_component(a, comp, v)) return false;
    Draft d;
    d.term.access = Access::kNotEqual;
    d.term.exact = true;
    d.term.fires_when_absent = fires_when_absent;
    d.comp = comp;
    d.value = std::move(v);
    c.drafts.push_back(std::move(d));
    c.est = a.op == Op::kNe ? atom_sel(a) : 1 - atom_sel(a);
    return true;
  }

  static bool negation_option(const Lit& l, Choice& c) {
    Draft d;
    d.term.access = Access::kNegation;
    d.term.exact = true;
    d.term.lit = l;
    c.drafts.push_back(std::move(d));
    c.est = 1;
    c.reason = l.atom->kind == SourceKind::kMapAny ? EveryRecordReason::kAnyHeader : EveryRecordReason::kNegatedText;
    return true;
  }

  static double penalty(const Choice& c) {
    double p = 0;
    for (const Draft& d : c.drafts) {
      switch (d.term.access) {
        case Access::kNegation: p = std::max(p, 10.0); break;
        case Access::kRegexSet: p = std::max(p, 20.0); break;
        case Access::kAlways: p = std::max(p, 100.0); break;
        default: break;
      }
    }
    return p;
  }

  Choice choose(const QueryImpl& q, const std::vector<Lit>& lits) const {
    Choice best;
    auto consider = [&](Choice&& c) {
      bool exact = true;
      for (const Draft& d : c.drafts) exact = exact && d.term.exact;
      c.cost = c.est * (exact ? 1.0 : 1.3) + penalty(c);
      if (c.cost < best.cost) best = std::move(c);
    };
    {
      Choice c;
      combined_key(q, lits, c);
      if (!c.drafts.empty()) consider(std::move(c));
    }
    for (size_t i = 0; i < lits.size(); ++i) {
      Choice c;
      if (!literal_option(q, lits[i], c)) continue;
      bool exact = true;
      for (const Draft& d : c.drafts) exact = exact && d.term.exact;
      if (exact) c.covered.push_back(i);
      consider(std::move(c));
    }
    if (best.drafts.empty()) {
      Draft d;
      d.term.access = Access::kAlways;
      best.drafts.push_back(std::move(d));
      best.est = 1;
      bool any = false;
      for (const Lit& l : lits) any = any || l.atom->kind == SourceKind::kMapAny;
      best.reason = any ? EveryRecordReason::kAnyHeader : EveryRecordReason::kNoCondition;
      best.how.clear();
    }
    return best;
  }

  // --- The query as branches ----------------------------------------------

  bool to_dnf(const QueryImpl& q, uint32_t node, bool neg, std::vector<std::vector<Lit>>& out) const {
    const Node& n = q.nodes[node];
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
            for (const auto& x : out) {
              for (const auto& y : kid) {
                prod.push_back(x);
                prod.back().insert(prod.back().end(), y.begin(), y.end());
              }
            }
            out = std::move(prod);
          } else {
            if (out.size() + kid.size() > options.max_branches) return false;
            for (auto& y : kid) out.push_back(std::move(y));
          }
        }
        return true;
      }
    }
    return false;
  }

  bool choose_all(const QueryImpl& q, std::vector<std::vector<Lit>> dnf, Planned& p) const {
    dedupe_branches(q, dnf);
    p.branches = std::move(dnf);
    p.choices.clear();
    for (const auto& lits : p.branches) p.choices.push_back(choose(q, lits));
    return true;
  }

  Planned draft_plan(const QueryImpl& q) const {
    Planned p;
    std::vector<std::vector<Lit>> dnf;
    if (q.depth <= 256 && to_dnf(q, q.root, false, dnf)) {
      choose_all(q, std::move(dnf), p);
      return p;
    }
    // Too many branches: index one AND-ed part (a necessary condition) and
    // verify the whole query for its candidates.
    uint32_t node = q.root;
    bool neg = false;
    while (q.nodes[node].kind == NodeKind::kNot) {
      node = q.kids[q.nodes[node].first_kid];
      neg = !neg;
    }
    const Node& n = q.nodes[node];
    const bool conj = (n.kind == NodeKind::kAnd && !neg) || (n.kind == NodeKind::kOr && neg);
    double best = INFINITY;
    if (conj && q.depth <= 256) {
      for (uint32_t i = 0; i < n.kid_count; ++i) {
        Planned part;
        if (!to_dnf(q, q.kids[n.first_kid + i], neg, dnf)) continue;
        choose_all(q, std::move(dnf), part);
        double est = 0;
        bool every = false;
        for (const auto& c : part.choices) {
          est += c.est;
          every = every || c.reason != EveryRecordReason::kNone;
        }
        if (every || est >= best) continue;
        best = est;
        p = std::move(part);
      }
    }
    if (best == INFINITY) {
      p = Planned{};
      p.forced = EveryRecordReason::kTooManyBranches;
    }
    p.whole = true;
    return p;
  }

  // --- The catalog ---------------------------------------------------------

  // The number of `c` in `ids`; a new one is announced to both copies.
  static uint32_t number(std::map<Component, uint32_t>& ids, const Component& c, std::vector<IndexOp>& ops,
                         void (Index::*define)(uint32_t, const Component&)) {
    auto it = ids.find(c);
    if (it != ids.end()) return it->second;
    const auto id = static_cast<uint32_t>(ids.size());
    ids.emplace(c, id);
    ops.push_back([id, c, define](Index& ix) { (ix.*define)(id, c); });
    return id;
  }

  uint32_t source(const Component& c, std::vector<IndexOp>& ops) {
    const uint32_t id = number(source_ids, c, ops, &Index::define_source);
    regex_chunks.resize(source_ids.size());
    return id;
  }

  uint32_t table(const Component& c, std::vector<IndexOp>& ops) {
    return number(table_ids, c, ops, &Index::define_not_equal);
  }

  uint32_t acquire_spec(const std::vector<Component>& comps) {
    auto it = spec_ids.find(comps);
    uint32_t id;
    if (it != spec_ids.end()) {
      id = it->second;
    } else {
      if (!free_specs.empty()) {
        id = free_specs.back();
        free_specs.pop_back();
      } else {
        id = static_cast<uint32_t>(spec_refs.size());
        spec_refs.push_back(0);
      }
      spec_ids.emplace(comps, id);
      if (comps.size() > 1) ++multi_specs;
    }
    ++spec_refs[id];
    return id;
  }

  void release_spec(uint32_t id) {
    if (--spec_refs[id] != 0) return;
    for (auto it = spec_ids.begin(); it != spec_ids.end(); ++it) {
      if (it->second == id) {
        if (it->first.size() > 1) --multi_specs;
        spec_ids.erase(it);
        break;
      }
    }
    free_specs.push_back(id);
  }

  static uint64_t gram_count_key(uint32_t source, uint64_t gram) { return (static_cast<uint64_t>(source) << 35) ^ gram; }

  // The needle's window of (up to) kGramMax bytes that is rarest in sampled
  // values of its source, then least crowded in the index, then rightmost
  // (the specific end of a path rather than its common prefix).
  void place_gram(Term& t, const Component& src) {
    const size_t len = std::min(kGramMax, t.needle.size());
    const size_t windows = t.needle.size() - len + 1;
    std::vector<uint32_t> seen(windows, 0);
    if (windows > 1 && windows <= 64) {
      sample.for_each([&](const RecordView& r) {
        auto count_in = [&](std::string_view v) {
          const std::string low = text::to_lower(v);
          for (size_t off = 0; off < windows; ++off) {
            if (low.find(std::string_view(t.needle).substr(off, len)) != std::string::npos) ++seen[off];
          }
        };
        if (src.kind == SourceKind::kField) {
          const FieldValue v = r.field(src.id);
          if (v.present && schema.field(src.id).type == FieldType::kString) count_in(v.s);
        } else if (src.kind == SourceKind::kMapKey) {
          if (auto v = r.map_value(src.id, src.key)) count_in(*v);
        }
      });
    }
    uint64_t best = UINT64_MAX;
    for (size_t off = 0; off < windows; ++off) {
      const uint64_t g = gram_key(t.needle, off, len);
      auto it = gram_counts.find(gram_count_key(t.source, g));
      const uint64_t crowd = it == gram_counts.end() ? 0 : it->second;
      const uint64_t score = (static_cast<uint64_t>(seen[off]) << 32) | crowd;
      if (score <= best) {
        best = score;
        t.gram = g;
        t.gram_offset = static_cast<uint32_t>(off);
      }
    }
    ++gram_counts[gram_count_key(t.source, t.gram)];
  }

  std::shared_ptr<const RegexChunk> build_chunk(std::vector<const Branch*> brs, const std::vector<const Atom*>& pats) {
    RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(options.regex_set_max_mem);
    auto set = std::make_shared<RE2::Set>(o, RE2::UNANCHORED);
    for (const Atom* a : pats) {
      if (set->Add(a->str, nullptr) < 0) return nullptr;
    }
    if (!set->Compile()) return nullptr;
    auto chunk = std::make_shared<RegexChunk>();
    chunk->set = std::move(set);
    chunk->branches = std::move(brs);
    return chunk;
  }

  static const Atom* regex_atom(const Branch* b) {
    for (const Term& t : b->terms) {
      if (t.access == Access::kRegexSet) return t.lit.atom;
    }
    return nullptr;
  }

  // The source's RE2::Sets with `add` added or `drop` removed; false if `add`
  // fits in no set.
  bool rebuild_chunks(uint32_t src, const Branch* add, const Branch* drop, std::vector<IndexOp>& ops) {
    auto chunks = regex_chunks[src];
    auto rebuild = [&](std::vector<const Branch*> brs) {
      std::vector<const Atom*> pats;
      for (const Branch* b : brs) pats.push_back(regex_atom(b));
      return build_chunk(std::move(brs), pats);
    };
    bool added = add == nullptr;
    if (drop != nullptr) {
      for (size_t i = 0; i < chunks.size(); ++i) {
        const auto& brs = chunks[i]->branches;
        if (std::find(brs.begin(), brs.end(), drop) == brs.end()) continue;
        std::vector<const Branch*> rest;
        for (const Branch* b : brs) {
          if (b != drop && b != nullptr) rest.push_back(b);
        }
        std::shared_ptr<const RegexChunk> c = rest.empty() ? nullptr : rebuild(rest);
        if (rest.empty()) {
          chunks.erase(chunks.begin() + static_cast<long>(i));
        } else if (c) {
          chunks[i] = std::move(c);
        } else {
          // A subset of a compiled set should compile too; if not, keep the
          // old set with a hole where the removed branch was.
          auto same = std::make_shared<RegexChunk>(*chunks[i]);
          for (auto& b : same->branches) {
            if (b == drop) b = nullptr;
          }
          chunks[i] = std::move(same);
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
        if (auto c = rebuild(std::move(brs))) {
          chunks.back() = std::move(c);
          added = true;
        }
      }
      if (!added) {
        if (auto c = rebuild({add})) {
          chunks.push_back(std::move(c));
          added = true;
        }
      }
    }
    if (!added) return false;
    regex_chunks[src] = chunks;
    ops.push_back([src, chunks](Index& ix) { ix.set_regex_chunks(src, chunks); });
    return true;
  }

  void count_values(const QueryImpl& q, int delta) {
    for (const Atom& a : q.atoms) {
      if (a.kind == SourceKind::kMapAny) continue;
      Component c = source_of(a);
      auto bump = [&](const std::string& v) {
        auto& m = values[c];
        auto& n = m[v];
        n = static_cast<uint32_t>(static_cast<int>(n) + delta);
        if (n == 0) m.erase(v);
        if (m.empty()) values.erase(c);
      };
      std::string v;
      if (a.op == Op::kEq || a.op == Op::kNe) {
        Component ignored;
        if (key_component(a, ignored, v)) bump(v);
      } else if (a.op == Op::kIn && a.type != FieldType::kIp) {
        for (const Item& it : a.extra->items) {
          if (it.range) continue;
          v.clear();
          if (a.type == FieldType::kString) {
            encode_str(v, it.s);
          } else {
            encode_float(v, it.lo.f);
          }
          bump(v);
        }
      }
    }
  }

  // Numbers the drafts' terms in the catalog and moves them into `b`.
  EveryRecordReason commit(Branch& b, Choice& c, std::vector<IndexOp>& ops) {
    EveryRecordReason reason = c.reason;
    for (Draft& d : c.drafts) {
      Term& t = d.term;
      switch (t.access) {
        case Access::kKey: {
          const uint32_t spec = acquire_spec(d.comps);
          t.spec = spec;
          append_varint(t.key, spec);
          t.key += d.value;
          ops.push_back([spec, comps = d.comps](Index& ix) { ix.set_spec(spec, comps, +1); });
          break;
        }
        case Access::kMapKey:
          t.source = source(d.comp, ops);
          append_varint(t.key, t.source);
          t.key += d.value;
          break;
        case Access::kGram:
          t.source = source(d.comp, ops);
          place_gram(t, d.comp);
          break;
        case Access::kPresent:
        case Access::kRegexSet:
          t.source = source(d.comp, ops);
          break;
        case Access::kNotEqual:
          t.source = table(d.comp, ops);
          t.key = std::move(d.value);
          break;
        default:
          break;
      }
      b.terms.push_back(std::move(t));
    }
    return reason;
  }

  void release(const Branch& b, std::vector<IndexOp>& ops) {
    for (const Term& t : b.terms) {
      switch (t.access) {
        case Access::kKey: {
          const uint32_t spec = t.spec;
          release_spec(spec);
          ops.push_back([spec](Index& ix) { ix.set_spec(spec, {}, -1); });
          break;
        }
        case Access::kGram: {
          const uint64_t k = gram_count_key(t.source, t.gram);
          if (--gram_counts[k] == 0) gram_counts.erase(k);
          break;
        }
        case Access::kRegexSet:
          rebuild_chunks(t.source, nullptr, &b, ops);
          break;
        default:
          break;
      }
    }
  }
};

Planner::Planner(const Schema& schema, const MatcherOptions& options, const RecordSample& sample)
    : impl_(std::make_unique<Impl>(schema, options, sample)) {}
Planner::~Planner() = default;

void Planner::plan(Sub& s, std::vector<IndexOp>& ops) {
  const QueryImpl& q = QueryAccess::impl(s.query);
  impl_->sel_cache.clear();
  Planned p = impl_->draft_plan(q);
  s.every_record = p.forced;
  if (p.forced != EveryRecordReason::kNone) {
    s.branches.reserve(1);
    Branch& b = s.branches.emplace_back();
    b.sub = &s;
    b.whole = true;
    b.terms.push_back(Term{});  // kAlways
    impl_->count_values(q, +1);
    return;
  }
  s.branches.reserve(p.branches.size());
  for (size_t i = 0; i < p.branches.size(); ++i) {
    Branch& b = s.branches.emplace_back();
    b.sub = &s;
    b.whole = p.whole;
    Choice& c = p.choices[i];
    EveryRecordReason reason = impl_->commit(b, c, ops);
    // Regexes without a literal go into an RE2::Set; one that fits none is
    // checked on every record instead.
    for (Term& t : b.terms) {
      if (t.access != Access::kRegexSet) continue;
      if (impl_->rebuild_chunks(t.source, &b, nullptr, ops)) continue;
      t.access = Access::kAlways;
      t.exact = false;
      c.covered.clear();
      reason = EveryRecordReason::kRegexSetFull;
    }
    if (!b.whole) {
      const auto& lits = p.branches[i];
      for (size_t k = 0; k < lits.size(); ++k) {
        if (std::find(c.covered.begin(), c.covered.end(), k) == c.covered.end()) b.residual.push_back(lits[k]);
      }
      impl_->order_residual(b.residual);
    }
    if (s.every_record == EveryRecordReason::kNone) s.every_record = reason;
  }
  // De-duplication: needed when one record can reach the query through two
  // entries, unless every entry is a key of one spec and the keys differ.
  size_t terms = 0;
  bool one_spec = true, grams = false;
  std::vector<std::string_view> keys;
  for (const Branch& b : s.branches) {
    for (const Term& t : b.terms) {
      ++terms;
      one_spec = one_spec && t.access == Access::kKey && t.spec == s.branches[0].terms[0].spec;
      grams = grams || t.access == Access::kGram;
      if (t.access == Access::kKey) keys.push_back(t.key);
    }
  }
  std::sort(keys.begin(), keys.end());
  const bool distinct = std::adjacent_find(keys.begin(), keys.end()) == keys.end();
  bool flip_only = s.branches.size() == 1;  // the pieces of one flipped negation are disjoint
  for (const Term& t : s.branches[0].terms) {
    flip_only = flip_only && (t.access == Access::kRange || t.access == Access::kUnordered) &&
                (t.access == Access::kUnordered || t.rk.f2 == kNoField);
  }
  const bool dedupe = grams || (terms > 1 && !(one_spec && distinct) && !flip_only);
  for (Branch& b : s.branches) {
    bool any = false;
    for (const Term& t : b.terms) {
      const auto& src = t.access == Access::kRegexSet ? t.lit.atom : nullptr;
      any = any || (src != nullptr && src->kind == SourceKind::kMapAny);
    }
    b.dedupe = dedupe || any;
  }
  impl_->count_values(q, +1);
}

void Planner::unplan(const Sub& s, std::vector<IndexOp>& ops) {
  for (const Branch& b : s.branches) impl_->release(b, ops);
  impl_->count_values(QueryAccess::impl(s.query), -1);
}

AccessExplanation Planner::explain(const Query& query) const {
  const QueryImpl& q = QueryAccess::impl(query);
  impl_->sel_cache.clear();
  Planned p = impl_->draft_plan(q);
  AccessExplanation e;
  e.reason = p.forced;
  std::string how;
  for (const Choice& c : p.choices) {
    if (e.reason == EveryRecordReason::kNone) e.reason = c.reason;
    if (how.empty()) how = c.how;
  }
  e.every_record = e.reason != EveryRecordReason::kNone;
  if (e.every_record) {
    e.text = "checked on every record: ";
    e.text += every_record_text(e.reason);
    return e;
  }
  e.text = "indexed by " + how;
  if (p.choices.size() > 1) e.text += " (and " + std::to_string(p.choices.size() - 1) + " more alternatives)";
  if (p.whole) e.text += "; the whole query is verified for what it finds";
  return e;
}

size_t Planner::key_specs() const { return impl_->spec_ids.size(); }

size_t Planner::regex_sets() const {
  size_t n = 0;
  for (const auto& c : impl_->regex_chunks) n += c.size();
  return n;
}

}  // namespace clio::matcher::internal
