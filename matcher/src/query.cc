// The reference evaluator and the canonical printer.
#include <charconv>
#include <cmath>

#include "ast.h"
#include "text.h"

namespace clio::matcher {

using internal::Atom;
using internal::NodeKind;
using internal::Num;
using internal::Op;
using internal::QueryImpl;
using internal::SourceKind;

namespace internal {
namespace {

bool item_matches(const Atom& a, const Item& it, const FieldValue& v) {
  switch (a.type) {
    case FieldType::kString: return v.s == it.s;
    case FieldType::kIp: return v.ip.masked(it.prefix) == it.ip;
    case FieldType::kInt:
      if (it.range) return cmp_int(v.i, it.lo) >= 0 && cmp_int(v.i, it.hi) <= 0;
      return cmp_int(v.i, it.lo) == 0;
    case FieldType::kFloat:
      if (it.range) return v.f >= it.lo.f && v.f <= it.hi.f;
      return v.f == it.lo.f;
  }
  return false;
}

bool equals(const Atom& a, const FieldValue& v) {
  switch (a.type) {
    case FieldType::kString: return v.s == a.str;
    case FieldType::kInt: return cmp_int(v.i, a.num) == 0;
    case FieldType::kFloat: return v.f == a.num.f;
    case FieldType::kIp: return v.ip == a.ip;
  }
  return false;
}

// Three-way order of a numeric value against the literal; NaN compares as
// unordered (every ordering predicate false).
template <typename Pred>
bool ordered(const Atom& a, const FieldValue& v, Pred pred) {
  if (a.type == FieldType::kInt) return pred(cmp_int(v.i, a.num), 0);
  if (v.f != v.f) return false;
  return pred(v.f < a.num.f ? -1 : (v.f > a.num.f ? 1 : 0), 0);
}

}  // namespace

bool eval_atom_value(const Atom& a, const FieldValue& v) {
  if (!v.present) return false;
  switch (a.op) {
    case Op::kEq: return equals(a, v);
    case Op::kNe: return !equals(a, v);
    case Op::kLt: return ordered(a, v, [](int c, int z) { return c < z; });
    case Op::kLe: return ordered(a, v, [](int c, int z) { return c <= z; });
    case Op::kGt: return ordered(a, v, [](int c, int z) { return c > z; });
    case Op::kGe: return ordered(a, v, [](int c, int z) { return c >= z; });
    case Op::kRegex: return RE2::PartialMatch(v.s, *a.extra->re);
    case Op::kNotRegex: return !RE2::PartialMatch(v.s, *a.extra->re);
    case Op::kContains: return text::icontains(v.s, a.str);
    case Op::kPresent: return a.type != FieldType::kString || !v.s.empty();
    case Op::kClass: return v.i >= a.num.i && v.i <= a.num.i + 99;
    case Op::kCidr: return v.ip.masked(a.prefix) == a.ip;
    case Op::kIn:
      for (const Item& it : a.extra->items) {
        if (item_matches(a, it, v)) return true;
      }
      return false;
  }
  return false;
}

bool eval_atom(const Atom& a, const RecordView& r) {
  switch (a.kind) {
    case SourceKind::kField: return eval_atom_value(a, r.field(a.id));
    case SourceKind::kMapKey: {
      auto v = r.map_value(a.id, a.key);
      return eval_atom_value(a, v ? FieldValue::of_string(*v) : FieldValue{});
    }
    case SourceKind::kMapAny: {
      // "key: value" lines; true when some line satisfies the atom. For !~,
      // true when there is a line and none matches the pattern.
      bool any = false, all_fail = true;
      std::string line;
      r.for_each_map_entry(a.id, [&](std::string_view k, std::string_view val) {
        line.assign(k);
        line += ": ";
        line.append(val);
        bool hit;
        if (a.op == Op::kNotRegex) {
          hit = RE2::PartialMatch(line, *a.extra->re);
          if (hit) all_fail = false;
          any = true;
          return;
        }
        hit = eval_atom_value(a, FieldValue::of_string(line));
        if (hit) any = true;
      });
      if (a.op == Op::kNotRegex) return any && all_fail;
      return any;
    }
  }
  return false;
}

bool eval_node(const QueryImpl& q, uint32_t node, const RecordView& r) {
  const Node& n = q.nodes[node];
  switch (n.kind) {
    case NodeKind::kAtom: return eval_atom(q.atoms[n.atom], r);
    case NodeKind::kNot: return !eval_node(q, q.kids[n.first_kid], r);
    case NodeKind::kAnd:
      for (uint32_t i = 0; i < n.kid_count; ++i) {
        if (!eval_node(q, q.kids[n.first_kid + i], r)) return false;
      }
      return true;
    case NodeKind::kOr:
      for (uint32_t i = 0; i < n.kid_count; ++i) {
        if (eval_node(q, q.kids[n.first_kid + i], r)) return true;
      }
      return false;
  }
  return false;
}

namespace {

void print_string(std::string_view s, std::string& out) {
  out.push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

void print_num(const Num& n, FieldType type, std::string& out) {
  char buf[40];
  if (type == FieldType::kInt && n.is_int) {
    auto [e, ec] = std::to_chars(buf, buf + sizeof buf, n.i);
    out.append(buf, e);
    return;
  }
  if (std::floor(n.f) == n.f && std::fabs(n.f) < 1e15) {  // integral: no exponent
    auto [e, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(n.f));
    out.append(buf, e);
    return;
  }
  auto [e, ec] = std::to_chars(buf, buf + sizeof buf, n.f);
  out.append(buf, e);
}

void print_ip(const IpAddr& ip, uint8_t prefix, std::string& out) {
  std::string t = ip.to_string();
  if (prefix < 128) {
    t += '/';
    t += std::to_string(ip.is_v4() ? prefix - 96 : prefix);
  }
  print_string(t, out);
}

void print_name(const QueryImpl& q, const Atom& a, std::string& out) {
  switch (a.kind) {
    case SourceKind::kField: out += q.schema->field(a.id).name; return;
    case SourceKind::kMapKey: out += q.schema->map(a.id).name; out += '.'; out += a.key; return;
    case SourceKind::kMapAny: out += q.schema->map(a.id).name; out += ".*"; return;
  }
}

void print_scalar(const Atom& a, std::string& out) {
  switch (a.type) {
    case FieldType::kString: print_string(a.str, out); return;
    case FieldType::kIp: print_ip(a.ip, a.prefix, out); return;
    case FieldType::kInt:
    case FieldType::kFloat: print_num(a.num, a.type, out); return;
  }
}

}  // namespace

void print_atom(const QueryImpl& q, const Atom& a, std::string& out) {
  print_name(q, a, out);
  switch (a.op) {
    case Op::kEq: out += " = "; print_scalar(a, out); return;
    case Op::kNe: out += " != "; print_scalar(a, out); return;
    case Op::kLt: out += " < "; print_scalar(a, out); return;
    case Op::kLe: out += " <= "; print_scalar(a, out); return;
    case Op::kGt: out += " > "; print_scalar(a, out); return;
    case Op::kGe: out += " >= "; print_scalar(a, out); return;
    case Op::kRegex: out += " ~ "; print_string(a.str, out); return;
    case Op::kNotRegex: out += " !~ "; print_string(a.str, out); return;
    case Op::kContains: out += ':'; print_string(a.str, out); return;
    case Op::kPresent: out += ":*"; return;
    case Op::kClass: out += ':'; out += static_cast<char>('0' + a.num.i / 100); out += "xx"; return;
    case Op::kCidr: out += ':'; print_ip(a.ip, a.prefix, out); return;
    case Op::kIn: {
      out += " in (";
      bool first = true;
      for (const Item& it : a.extra->items) {
        if (!first) out += ", ";
        first = false;
        switch (a.type) {
          case FieldType::kString: print_string(it.s, out); break;
          case FieldType::kIp: print_ip(it.ip, it.prefix, out); break;
          case FieldType::kInt:
          case FieldType::kFloat:
            print_num(it.lo, a.type, out);
            if (it.range) {
              out += "..";
              print_num(it.hi, a.type, out);
            }
            break;
        }
      }
      out += ')';
      return;
    }
  }
}

void print_node(const QueryImpl& q, uint32_t node, std::string& out) {
  const Node& n = q.nodes[node];
  switch (n.kind) {
    case NodeKind::kAtom: print_atom(q, q.atoms[n.atom], out); return;
    case NodeKind::kNot: {
      out += "not ";
      const uint32_t kid = q.kids[n.first_kid];
      const NodeKind k = q.nodes[kid].kind;
      const bool paren = k == NodeKind::kAnd || k == NodeKind::kOr;
      if (paren) out += '(';
      print_node(q, kid, out);
      if (paren) out += ')';
      return;
    }
    case NodeKind::kAnd:
    case NodeKind::kOr:
      for (uint32_t i = 0; i < n.kid_count; ++i) {
        if (i > 0) out += n.kind == NodeKind::kAnd ? " and " : " or ";
        const uint32_t kid = q.kids[n.first_kid + i];
        const bool paren = n.kind == NodeKind::kAnd && q.nodes[kid].kind == NodeKind::kOr;
        if (paren) out += '(';
        print_node(q, kid, out);
        if (paren) out += ')';
      }
      return;
  }
}

}  // namespace internal

std::string Query::canonical() const {
  std::string out;
  internal::print_node(*impl_, impl_->root, out);
  return out;
}

bool Query::matches(const RecordView& record) const { return internal::eval_node(*impl_, impl_->root, record); }

const Schema& Query::schema() const { return *impl_->schema; }

int Query::predicate_count() const { return static_cast<int>(impl_->atoms.size()); }

}  // namespace clio::matcher
