// The query parser: a hand-written recursive-descent parser over the byte
// string, producing the tree of ast.h. Recursion happens only on parentheses
// and negations, and is bounded by QueryOptions::max_nesting.
#include <algorithm>
#include <charconv>
#include <cstring>
#include <cmath>
#include <limits>

#include "ast.h"
#include "text.h"

namespace clio::matcher {

using internal::Atom;
using internal::AtomExtra;
using internal::Item;
using internal::Node;
using internal::NodeKind;
using internal::Num;
using internal::Op;
using internal::QueryImpl;
using internal::SourceKind;

std::string QueryError::to_string() const {
  if (hint.empty()) return message;
  return message + " (" + hint + ")";
}

namespace {

size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment distance (adjacent transpositions count as one).
  const size_t n = a.size(), m = b.size();
  if (n > 64 || m > 64) return std::max(n, m);
  std::vector<size_t> d((n + 1) * (m + 1));
  auto at = [&](size_t i, size_t j) -> size_t& { return d[i * (m + 1) + j]; };
  for (size_t i = 0; i <= n; ++i) at(i, 0) = i;
  for (size_t j = 0; j <= m; ++j) at(0, j) = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = text::lower(a[i - 1]) == text::lower(b[j - 1]) ? 0 : 1;
      at(i, j) = std::min({at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost});
      if (i > 1 && j > 1 && text::lower(a[i - 1]) == text::lower(b[j - 2]) &&
          text::lower(a[i - 2]) == text::lower(b[j - 1])) {
        at(i, j) = std::min(at(i, j), at(i - 2, j - 2) + 1);
      }
    }
  }
  return at(n, m);
}

// The closest candidate within a small edit distance, or empty.
std::string_view closest(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  size_t best_d = std::numeric_limits<size_t>::max();
  const size_t limit = word.size() <= 3 ? 1 : 2;
  for (auto c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d <= limit && d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

// Shorthand pseudo-fields that accept only ':' (DevTools filters).
const std::vector<std::string_view>& pseudo_fields() {
  static const std::vector<std::string_view> k = {"status-code", "larger-than", "domain"};
  return k;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Characters that end a field name or a bare term.
bool ends_name(char c) {
  return is_space(c) || c == '(' || c == ')' || c == '"' || c == '=' || c == '!' || c == '<' ||
         c == '>' || c == '~' || c == ':' || c == ',';
}

}  // namespace

// Builds a QueryImpl; see the grammar in the README ("Query language").
class [[gnu::visibility("hidden")]] Parser {
 public:
  Parser(std::string_view text, const Schema& schema, const QueryOptions& opts)
      : s_(text), schema_(schema), opts_(opts), q_(std::make_shared<QueryImpl>()) {
    q_->schema = &schema;
  }

  ParseResult run() {
    ParseResult r;
    if (s_.size() > opts_.max_length) {
      fail("too_long", opts_.max_length, s_.size() - opts_.max_length,
           "query is " + std::to_string(s_.size()) + " bytes; the limit is " +
               std::to_string(opts_.max_length),
           "split it into several subscriptions");
      r.error = std::move(err_);
      return r;
    }
    skip_ws();
    if (pos_ == s_.size()) {
      fail("empty_query", 0, s_.size(), "the query is empty",
           "try e.g. status >= 500, or a word to find in the path");
      r.error = std::move(err_);
      return r;
    }
    uint32_t root = 0;
    if (parse_or(0, root)) {
      skip_ws();
      if (pos_ < s_.size()) {
        if (s_[pos_] == ')') {
          fail("unbalanced_paren", pos_, 1, "')' without a matching '('", "remove it or add a '(' before");
        } else {
          fail("unexpected_token", pos_, token_len(pos_), "unexpected '" + std::string(token_at(pos_)) + "'", "");
        }
      }
    }
    if (!err_.ok()) {
      r.error = std::move(err_);
      return r;
    }
    q_->root = root;
    r.query = Query(std::move(q_));
    return r;
  }

 private:
  // ---- errors and scanning -------------------------------------------------

  bool fail(std::string code, size_t off, size_t len, std::string msg, std::string hint) {
    if (!err_.ok()) return false;  // keep the first error
    err_.code = std::move(code);
    err_.offset = std::min(off, s_.size());
    err_.length = std::min(len, s_.size() - err_.offset);
    err_.message = std::move(msg);
    err_.hint = std::move(hint);
    return false;
  }

  void skip_ws() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }
  bool at_end() const { return pos_ >= s_.size(); }
  bool starts(std::string_view p) const { return s_.substr(pos_, p.size()) == p; }

  // Length of the word-ish token at `at`, for error spans.
  size_t token_len(size_t at) const {
    if (at >= s_.size()) return 0;
    size_t e = at;
    while (e < s_.size() && !ends_name(s_[e])) ++e;
    return std::max<size_t>(1, e - at);
  }
  std::string_view token_at(size_t at) const { return s_.substr(at, token_len(at)); }

  // The keyword `kw` (case-insensitive) as a whole word at pos_.
  bool keyword_at(std::string_view kw) const {
    if (pos_ + kw.size() > s_.size() || !text::iequals(s_.substr(pos_, kw.size()), kw)) return false;
    const size_t e = pos_ + kw.size();
    return e == s_.size() || ends_name(s_[e]);
  }
  bool or_at() const { return keyword_at("or") || starts("||"); }
  bool and_at() const { return keyword_at("and") || starts("&&"); }

  // ---- tree building -------------------------------------------------------

  uint32_t add_node(NodeKind kind, uint32_t atom, const std::vector<uint32_t>& kids) {
    Node n;
    n.kind = kind;
    n.atom = atom;
    n.first_kid = static_cast<uint32_t>(q_->kids.size());
    n.kid_count = static_cast<uint32_t>(kids.size());
    q_->kids.insert(q_->kids.end(), kids.begin(), kids.end());
    q_->nodes.push_back(n);
    return static_cast<uint32_t>(q_->nodes.size() - 1);
  }

  // Adds a node of `kind` over `kids`, flattening nested nodes of the same kind.
  uint32_t add_flat(NodeKind kind, const std::vector<uint32_t>& kids) {
    std::vector<uint32_t> flat;
    for (uint32_t k : kids) {
      const Node& n = q_->nodes[k];
      if (n.kind == kind) {
        for (uint32_t j = 0; j < n.kid_count; ++j) flat.push_back(q_->kids[n.first_kid + j]);
      } else {
        flat.push_back(k);
      }
    }
    return add_node(kind, 0, flat);
  }

  bool add_atom(Atom a, size_t at, size_t len, uint32_t& out) {
    if (++predicates_ > opts_.max_predicates) {
      return fail("too_many_predicates", at, len,
                  "more than " + std::to_string(opts_.max_predicates) + " predicates",
                  "split the query into several subscriptions");
    }
    q_->atoms.push_back(std::move(a));
    out = add_node(NodeKind::kAtom, static_cast<uint32_t>(q_->atoms.size() - 1), {});
    return true;
  }

  // ---- grammar ---------------------------------------------------------------

  bool parse_or(int depth, uint32_t& out) {
    std::vector<uint32_t> parts;
    uint32_t first = 0;
    if (!parse_and(depth, first)) return false;
    parts.push_back(first);
    for (;;) {
      skip_ws();
      if (!or_at()) break;
      const size_t op_at = pos_;
      pos_ += 2;
      skip_ws();
      if (at_end() || s_[pos_] == ')') {
        return fail("expected_operand", op_at, 2, "'or' needs a condition on its right", "");
      }
      uint32_t next = 0;
      if (!parse_and(depth, next)) return false;
      parts.push_back(next);
    }
    out = parts.size() == 1 ? parts[0] : add_flat(NodeKind::kOr, parts);
    return true;
  }

  bool parse_and(int depth, uint32_t& out) {
    std::vector<uint32_t> parts;
    for (;;) {
      skip_ws();
      if (at_end() || s_[pos_] == ')' || or_at()) break;
      if (and_at()) {
        const size_t op_at = pos_;
        const size_t len = s_[pos_] == '&' ? 2 : 3;
        if (parts.empty()) {
          return fail("expected_operand", op_at, len, "'and' needs a condition on its left", "");
        }
        pos_ += len;
        skip_ws();
        if (at_end() || s_[pos_] == ')' || or_at() || and_at()) {
          return fail("expected_operand", op_at, len, "'and' needs a condition on its right", "");
        }
      }
      uint32_t u = 0;
      if (!parse_unary(depth, u)) return false;
      parts.push_back(u);
    }
    if (parts.empty()) {
      if (at_end()) return fail("unexpected_end", pos_, 0, "expected a condition", "");
      if (s_[pos_] == ')') return fail("empty_group", pos_, 1, "expected a condition before ')'", "");
      return fail("expected_operand", pos_, 2, "'or' needs a condition on its left", "");
    }
    out = parts.size() == 1 ? parts[0] : add_flat(NodeKind::kAnd, parts);
    return true;
  }

  bool too_deep(int depth, size_t at) {
    if (depth <= opts_.max_nesting) return false;
    fail("too_deep", at, 1, "nesting deeper than " + std::to_string(opts_.max_nesting) + " levels",
         "simplify the parentheses and negations");
    return true;
  }

  bool parse_unary(int depth, uint32_t& out) {
    skip_ws();
    const size_t at = pos_;
    const char c = s_[pos_];
    bool negate = false;
    size_t neg_len = 0;
    if (keyword_at("not")) {
      negate = true;
      neg_len = 3;
    } else if (c == '!' || c == '-') {
      negate = true;
      neg_len = 1;
    }
    if (negate) {
      if (too_deep(depth + 1, at)) return false;
      pos_ += neg_len;
      skip_ws();
      if (at_end() || s_[pos_] == ')' || or_at() || and_at()) {
        return fail("expected_operand", at, neg_len, "'not' needs a condition after it", "");
      }
      uint32_t kid = 0;
      if (!parse_unary(depth + 1, kid)) return false;
      out = add_node(NodeKind::kNot, 0, {kid});
      q_->depth = std::max(q_->depth, depth + 1);
      return true;
    }
    if (c == '(') {
      if (too_deep(depth + 1, at)) return false;
      ++pos_;
      uint32_t inner = 0;
      if (!parse_or(depth + 1, inner)) return false;
      skip_ws();
      if (at_end() || s_[pos_] != ')') {
        return fail("unbalanced_paren", at, 1, "'(' is never closed", "add a ')'");
      }
      ++pos_;
      out = inner;
      q_->depth = std::max(q_->depth, depth + 1);
      return true;
    }
    q_->depth = std::max(q_->depth, depth);
    return parse_predicate(out);
  }

  // ---- values ----------------------------------------------------------------

  struct Value {
    std::string text;
    bool quoted = false;
    size_t at = 0;
    size_t len = 0;
  };

  // A quoted string or a bare value word. Bare value words end at whitespace,
  // parentheses, commas, quotes, "&&" and "||" (they may contain ':' and '=').
  bool read_value(Value& v, const char* what) {
    skip_ws();
    v = Value{};
    v.at = pos_;
    if (at_end()) return fail("expected_value", pos_, 0, std::string("expected ") + what, "");
    if (s_[pos_] == '"') {
      v.quoted = true;
      size_t i = pos_ + 1;
      for (;;) {
        if (i >= s_.size()) {
          return fail("unterminated_string", pos_, s_.size() - pos_, "string is never closed",
                      "add a closing '\"'");
        }
        const char ch = s_[i];
        if (ch == '"') break;
        if (ch == '\\' && i + 1 < s_.size() && (s_[i + 1] == '"' || s_[i + 1] == '\\')) {
          v.text.push_back(s_[i + 1]);
          i += 2;
          continue;
        }
        v.text.push_back(ch);
        ++i;
      }
      pos_ = i + 1;
      v.len = pos_ - v.at;
      return true;
    }
    size_t i = pos_;
    while (i < s_.size()) {
      const char ch = s_[i];
      if (is_space(ch) || ch == '(' || ch == ')' || ch == ',' || ch == '"') break;
      if ((ch == '&' || ch == '|') && i + 1 < s_.size() && s_[i + 1] == ch) break;
      ++i;
    }
    if (i == pos_) {
      return fail("expected_value", pos_, token_len(pos_), std::string("expected ") + what, "");
    }
    v.text.assign(s_.substr(pos_, i - pos_));
    pos_ = i;
    v.len = i - v.at;
    return true;
  }

  struct UnitInfo {
    const char* name;
    UnitClass cls;
    double factor;
  };

  static const UnitInfo* find_unit(std::string_view u) {
    static const UnitInfo k[] = {
        {"us", UnitClass::kTime, 0.001}, {"ms", UnitClass::kTime, 1},
        {"s", UnitClass::kTime, 1000},   {"m", UnitClass::kTime, 60000},
        {"b", UnitClass::kBytes, 1},     {"kb", UnitClass::kBytes, 1e3},
        {"mb", UnitClass::kBytes, 1e6},  {"gb", UnitClass::kBytes, 1e9},
        {"kib", UnitClass::kBytes, 1024.0}, {"mib", UnitClass::kBytes, 1048576.0},
        {"gib", UnitClass::kBytes, 1073741824.0},
    };
    for (const auto& x : k) {
      if (text::iequals(u, x.name)) return &x;
    }
    return nullptr;
  }

  static Num make_num(double d) {
    Num n;
    if (d == 0) d = 0;  // no negative zero: canonical text must re-parse to itself
    n.f = d;
    if (std::floor(d) == d && d >= -9.2e18 && d <= 9.2e18) {
      n.is_int = true;
      n.i = static_cast<int64_t>(d);
    }
    return n;
  }

  // Parses a number with an optional unit for a field of unit class `cls`.
  bool parse_number(std::string_view t, size_t at, UnitClass cls, std::string_view field, Num& out) {
    const size_t len = t.size();
    // Exact integers first, so that large ids compare exactly.
    {
      int64_t iv = 0;
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), iv);
      if (ec == std::errc() && p == t.data() + t.size()) {
        out.i = iv;
        out.f = static_cast<double>(iv);
        out.is_int = true;
        return true;
      }
    }
    double d = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), d, std::chars_format::general);
    if (p == t.data() || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
      return fail("bad_number", at, len, "'" + std::string(t) + "' is not a number",
                  "'" + std::string(field) + "' is numeric");
    }
    if (ec == std::errc::result_out_of_range || !std::isfinite(d)) {
      return fail("bad_number", at, len, "'" + std::string(t) + "' is out of range", "");
    }
    std::string_view unit = t.substr(static_cast<size_t>(p - t.data()));
    if (!unit.empty()) {
      const UnitInfo* u = find_unit(unit);
      if (u == nullptr) {
        return fail("bad_unit", at, len, "unknown unit '" + std::string(unit) + "'", unit_hint(cls, field));
      }
      if (u->cls != cls) {
        return fail("bad_unit", at, len,
                    "unit '" + std::string(unit) + "' does not apply to '" + std::string(field) + "'",
                    unit_hint(cls, field));
      }
      d *= u->factor;
      if (!std::isfinite(d)) return fail("bad_number", at, len, "'" + std::string(t) + "' is out of range", "");
    }
    out = make_num(d);
    return true;
  }

  static std::string unit_hint(UnitClass cls, std::string_view field) {
    switch (cls) {
      case UnitClass::kTime: return "time units: us, ms, s, m (the default is ms)";
      case UnitClass::kBytes: return "byte units: b, kb, mb, gb, kib, mib, gib (the default is bytes)";
      case UnitClass::kNone: break;
    }
    return "'" + std::string(field) + "' takes no unit";
  }

  // Parses an IP address or, when `allow_cidr`, a CIDR block.
  bool parse_ip(const Value& v, bool allow_cidr, IpAddr& ip, uint8_t& prefix) {
    std::string_view t = v.text;
    int bits = -1;
    const size_t slash = t.find('/');
    if (slash != std::string_view::npos) {
      if (!allow_cidr) {
        return fail("bad_operator", v.at, v.len, "a CIDR block needs ':' or 'in'", "write remote_ip:" + v.text);
      }
      int b = 0;
      std::string_view bs = t.substr(slash + 1);
      auto [p, ec] = std::from_chars(bs.data(), bs.data() + bs.size(), b);
      if (bs.empty() || ec != std::errc() || p != bs.data() + bs.size() || b < 0 || b > 128) {
        return fail("bad_ip", v.at, v.len, "bad prefix length in '" + v.text + "'", "e.g. 10.0.0.0/8");
      }
      bits = b;
      t = t.substr(0, slash);
    }
    auto a = IpAddr::parse(t);
    if (!a) {
      return fail("bad_ip", v.at, v.len, "'" + v.text + "' is not an IP address",
                  "e.g. 10.0.0.1, 10.0.0.0/8, \"::1\" (quote IPv6)");
    }
    if (bits >= 0) {
      if (a->is_v4()) {
        if (bits > 32) return fail("bad_ip", v.at, v.len, "IPv4 prefix longer than 32", "");
        bits += 96;
      }
      ip = a->masked(bits);
      prefix = static_cast<uint8_t>(bits);
    } else {
      ip = *a;
      prefix = 128;
    }
    return true;
  }

  // ---- predicates ------------------------------------------------------------

  struct Field {
    SourceKind kind = SourceKind::kField;
    uint32_t id = 0;
    std::string key;
    FieldType type = FieldType::kString;
    UnitClass unit = UnitClass::kNone;
    std::string name;  // canonical, for messages
  };

  bool known_name(std::string_view word) const {
    const size_t dot = word.find('.');
    if (dot != std::string_view::npos && schema_.find_map(word.substr(0, dot))) return true;
    for (auto p : pseudo_fields()) {
      if (text::iequals(word, p)) return true;
    }
    return schema_.find_field(word).has_value();
  }

  bool resolve_field(std::string_view word, size_t at, Field& f) {
    const size_t dot = word.find('.');
    if (dot != std::string_view::npos) {
      auto m = schema_.find_map(word.substr(0, dot));
      if (m) {
        const MapSpec& spec = schema_.map(*m);
        std::string_view key = word.substr(dot + 1);
        if (key.empty()) {
          return fail("bad_map_key", at, word.size(), "'" + std::string(word) + "' needs a name after the dot",
                      "e.g. " + spec.name + ".user-agent");
        }
        f.type = FieldType::kString;
        f.id = *m;
        if (key == "*") {
          f.kind = SourceKind::kMapAny;
          f.name = spec.name + ".*";
        } else {
          f.kind = SourceKind::kMapKey;
          f.key = spec.case_insensitive_keys ? text::to_lower(key) : std::string(key);
          f.name = spec.name + "." + f.key;
        }
        return true;
      }
    }
    auto id = schema_.find_field(word);
    if (!id) {
      std::string hint;
      auto names = schema_.all_names();
      for (auto p : pseudo_fields()) names.push_back(p);
      std::string_view base = dot == std::string_view::npos ? word : word.substr(0, dot);
      std::string_view best = closest(base, names);
      if (!best.empty()) {
        hint = "did you mean '" + std::string(best) + "'?";
      } else if (dot == std::string_view::npos) {
        hint = "quote it to search the path: \"" + std::string(word) + "\"";
      }
      return fail("unknown_field", at, word.size(), "unknown field '" + std::string(word) + "'", hint);
    }
    const FieldSpec& spec = schema_.field(*id);
    f.kind = SourceKind::kField;
    f.id = *id;
    f.type = spec.type;
    f.unit = spec.unit;
    f.name = spec.name;
    return true;
  }

  static Atom atom_for(const Field& f, Op op) {
    Atom a;
    a.kind = f.kind;
    a.id = f.id;
    a.key = f.key;
    a.type = f.type;
    a.op = op;
    return a;
  }

  bool parse_predicate(uint32_t& out) {
    const size_t at = pos_;
    if (s_[pos_] == '~' && pos_ + 1 < s_.size() && std::isalpha(static_cast<unsigned char>(s_[pos_ + 1]))) {
      return parse_mitm(out);
    }
    if (s_[pos_] == '"') {
      Value v;
      if (!read_value(v, "a value")) return false;
      return bare_term(v, out);
    }
    size_t e = pos_;
    while (e < s_.size() && !ends_name(s_[e])) ++e;
    if (e == pos_) {
      return fail("unexpected_token", pos_, 1, "unexpected '" + std::string(1, s_[pos_]) + "'",
                  "a condition starts with a field name, a word, '(' or 'not'");
    }
    const std::string_view word = s_.substr(pos_, e - pos_);
    pos_ = e;
    skip_ws();
    // Which operator follows, if any.
    Op op = Op::kEq;
    size_t op_len = 0;
    bool colon = false, in_list = false;
    const size_t op_at = pos_;
    if (starts("==")) { op = Op::kEq; op_len = 2; }
    else if (starts("!=")) { op = Op::kNe; op_len = 2; }
    else if (starts("!~")) { op = Op::kNotRegex; op_len = 2; }
    else if (starts("<=")) { op = Op::kLe; op_len = 2; }
    else if (starts(">=")) { op = Op::kGe; op_len = 2; }
    else if (starts("=")) { op = Op::kEq; op_len = 1; }
    else if (starts("<")) { op = Op::kLt; op_len = 1; }
    else if (starts(">")) { op = Op::kGt; op_len = 1; }
    else if (starts("~")) { op = Op::kRegex; op_len = 1; }
    else if (starts(":")) { colon = true; op_len = 1; }
    else if (keyword_at("in")) {
      size_t k = pos_ + 2;
      while (k < s_.size() && is_space(s_[k])) ++k;
      if (k < s_.size() && s_[k] == '(') { in_list = true; op_len = 2; }
    }
    // `word ~c 500`: a bare term followed by a shorthand, not a regex on an
    // unknown field named `word`.
    if ((op == Op::kRegex || op == Op::kNotRegex) && !colon && !in_list && !known_name(word)) {
      const size_t t = pos_ + op_len - 1;  // the '~'
      if (t + 2 <= s_.size() && std::strchr("cmuhd", s_[t + 1]) != nullptr && s_[t + 1] != '\0' &&
          (t + 2 == s_.size() || is_space(s_[t + 2]))) {
        op_len = 0;
      }
    }
    if (op_len == 0) {
      // No operator: a bare term. Keywords cannot be bare terms.
      if (text::iequals(word, "and") || text::iequals(word, "or") || text::iequals(word, "in")) {
        return fail("expected_operand", at, word.size(), "'" + std::string(word) + "' needs a condition first",
                    "quote it to search for the word: \"" + std::string(word) + "\"");
      }
      Value v;
      v.text.assign(word);
      v.at = at;
      v.len = word.size();
      return bare_term(v, out);
    }
    pos_ += op_len;
    // DevTools pseudo-fields.
    for (auto p : pseudo_fields()) {
      if (text::iequals(word, p)) {
        if (!colon) {
          return fail("bad_operator", op_at, op_len, "'" + std::string(p) + "' takes only ':'",
                      "write " + std::string(p) + ":VALUE");
        }
        return parse_devtools(p, at, out);
      }
    }
    Field f;
    if (!resolve_field(word, at, f)) return false;
    if (in_list) return parse_in(f, at, out);
    Value v;
    if (!read_value(v, "a value")) return false;
    const size_t span = pos_ - at;
    if (colon) return colon_predicate(f, v, at, span, out);
    return compare_predicate(f, op, op_at, op_len, v, at, span, out);
  }

  bool bare_term(const Value& v, uint32_t& out) {
    auto path = schema_.find_field("path");
    if (!path || schema_.field(*path).type != FieldType::kString) {
      return fail("unknown_field", v.at, v.len, "a bare word searches 'path', which this schema lacks", "");
    }
    Field f;
    f.id = *path;
    f.type = FieldType::kString;
    Atom a = atom_for(f, Op::kContains);
    a.str = text::to_lower(v.text);
    return add_atom(std::move(a), v.at, v.len, out);
  }

  bool parse_mitm(uint32_t& out) {
    const size_t at = pos_;
    size_t e = pos_ + 1;
    while (e < s_.size() && std::isalpha(static_cast<unsigned char>(s_[e]))) ++e;
    const std::string flag(s_.substr(pos_, e - pos_));
    pos_ = e;
    const char* field = nullptr;
    Op op = Op::kEq;
    if (flag == "~c") { field = "status_code"; op = Op::kEq; }
    else if (flag == "~m") { field = "method"; op = Op::kEq; }
    else if (flag == "~u") { field = "path"; op = Op::kRegex; }
    else if (flag == "~d") { field = "host"; op = Op::kContains; }
    else if (flag == "~h") { field = nullptr; op = Op::kRegex; }
    else {
      return fail("unknown_shorthand", at, flag.size(), "unknown shorthand '" + flag + "'",
                  "supported: ~c CODE, ~m METHOD, ~u REGEX, ~h REGEX, ~d HOST");
    }
    Field f;
    if (field != nullptr) {
      if (!resolve_field(field, at, f)) return false;
    } else {
      auto m = schema_.find_map("header");
      if (!m) return fail("unknown_field", at, flag.size(), "this schema has no headers", "");
      f.kind = SourceKind::kMapAny;
      f.id = *m;
      f.type = FieldType::kString;
    }
    Value v;
    if (!read_value(v, "a value after the shorthand")) return false;
    const size_t span = pos_ - at;
    if (op == Op::kContains) return host_contains(f, v, span, at, out);
    return compare_predicate(f, op, at, flag.size(), v, at, span, out);
  }

  // `domain:HOST`, `~d HOST`: case-insensitive substring of host; a leading
  // '*' (DevTools wildcard) is dropped.
  bool host_contains(const Field& f, Value v, size_t span, size_t at, uint32_t& out) {
    std::string_view t = v.text;
    while (!t.empty() && t.front() == '*') t.remove_prefix(1);
    Atom a = atom_for(f, Op::kContains);
    a.str = text::to_lower(t);
    return add_atom(std::move(a), at, span, out);
  }

  bool parse_devtools(std::string_view pseudo, size_t at, uint32_t& out) {
    Value v;
    if (!read_value(v, "a value")) return false;
    const size_t span = pos_ - at;
    Field f;
    if (pseudo == "status-code") {
      if (!resolve_field("status_code", at, f)) return false;
      return colon_predicate(f, v, at, span, out);
    }
    if (pseudo == "domain") {
      if (!resolve_field("host", at, f)) return false;
      return host_contains(f, v, span, at, out);
    }
    // larger-than:N with DevTools suffixes k / m (powers of 1024) or our byte units.
    if (!resolve_field("response_bytes", at, f)) return false;
    std::string t = v.text;
    double factor = 1;
    if (!t.empty() && (t.back() == 'k' || t.back() == 'K')) { factor = 1024; t.pop_back(); }
    else if (!t.empty() && (t.back() == 'm' || t.back() == 'M') && t.size() >= 2 &&
             std::isdigit(static_cast<unsigned char>(t[t.size() - 2]))) { factor = 1048576; t.pop_back(); }
    Num n;
    if (!parse_number(t, v.at, f.unit, "larger-than", n)) return false;
    Atom a = atom_for(f, Op::kGt);
    a.num = make_num(n.f * factor);
    if (factor == 1) a.num = n;
    return add_atom(std::move(a), at, span, out);
  }

  bool parse_in(const Field& f, size_t at, uint32_t& out) {
    if (f.kind == SourceKind::kMapAny) {
      return fail("bad_operator", at, pos_ - at, "'" + f.name + "' supports only '~', '!~' and ':'",
                  "e.g. " + f.name + " ~ \"^x-debug: \"");
    }
    skip_ws();
    const size_t open = pos_;
    ++pos_;  // '('
    auto extra = std::make_shared<AtomExtra>();
    for (;;) {
      Value v;
      skip_ws();
      if (!at_end() && s_[pos_] == ')' && extra->items.empty()) {
        return fail("empty_list", open, pos_ - open + 1, "'in' needs at least one value", "");
      }
      if (!read_value(v, "a value in the list")) return false;
      Item it;
      if (!parse_item(f, v, it)) return false;
      extra->items.push_back(std::move(it));
      skip_ws();
      if (at_end()) return fail("unbalanced_paren", open, 1, "'(' is never closed", "add a ')'");
      if (s_[pos_] == ',') { ++pos_; continue; }
      if (s_[pos_] == ')') { ++pos_; break; }
      return fail("unexpected_token", pos_, token_len(pos_), "expected ',' or ')' in the list", "");
    }
    Atom a = atom_for(f, Op::kIn);
    a.extra = std::move(extra);
    return add_atom(std::move(a), at, pos_ - at, out);
  }

  bool parse_item(const Field& f, const Value& v, Item& it) {
    switch (f.type) {
      case FieldType::kString:
        it.s = v.text;
        return true;
      case FieldType::kIp:
        return parse_ip(v, /*allow_cidr=*/true, it.ip, it.prefix);
      case FieldType::kInt:
      case FieldType::kFloat:
        break;
    }
    const size_t dots = v.quoted ? std::string::npos : v.text.find("..");
    if (dots != std::string::npos) {
      it.range = true;
      std::string_view t = v.text;
      if (!parse_number(t.substr(0, dots), v.at, f.unit, f.name, it.lo)) return false;
      if (!parse_number(t.substr(dots + 2), v.at + dots + 2, f.unit, f.name, it.hi)) return false;
      if (it.lo.f > it.hi.f) {
        return fail("bad_range", v.at, v.len, "range '" + v.text + "' is empty", "write the smaller bound first");
      }
      return true;
    }
    return parse_number(v.text, v.at, f.unit, f.name, it.lo);
  }

  bool colon_predicate(const Field& f, const Value& v, size_t at, size_t span, uint32_t& out) {
    if (!v.quoted && v.text == "*") {
      return add_atom(atom_for(f, Op::kPresent), at, span, out);
    }
    switch (f.type) {
      case FieldType::kString: {
        Atom a = atom_for(f, Op::kContains);
        a.str = text::to_lower(v.text);
        return add_atom(std::move(a), at, span, out);
      }
      case FieldType::kIp: {
        Atom a = atom_for(f, Op::kCidr);
        if (!parse_ip(v, /*allow_cidr=*/true, a.ip, a.prefix)) return false;
        if (a.prefix == 128) a.op = Op::kEq;
        return add_atom(std::move(a), at, span, out);
      }
      case FieldType::kInt:
        if (v.text.size() == 3 && v.text[0] >= '1' && v.text[0] <= '9' &&
            text::lower(v.text[1]) == 'x' && text::lower(v.text[2]) == 'x') {
          Atom a = atom_for(f, Op::kClass);
          const int c = v.text[0] - '0';
          a.num = make_num(c * 100);
          return add_atom(std::move(a), at, span, out);
        }
        [[fallthrough]];
      case FieldType::kFloat: {
        Atom a = atom_for(f, Op::kEq);
        if (!parse_number(v.text, v.at, f.unit, f.name, a.num)) return false;
        return add_atom(std::move(a), at, span, out);
      }
    }
    return false;
  }

  bool compare_predicate(const Field& f, Op op, size_t op_at, size_t op_len, const Value& v, size_t at,
                         size_t span, uint32_t& out) {
    const bool ordering = op == Op::kLt || op == Op::kLe || op == Op::kGt || op == Op::kGe;
    const bool regex = op == Op::kRegex || op == Op::kNotRegex;
    if (f.kind == SourceKind::kMapAny && !regex) {
      return fail("bad_operator", op_at, op_len, "'" + f.name + "' supports only '~', '!~' and ':'",
                  "e.g. " + f.name + " ~ \"^x-debug: \" or " + f.name + ":TEXT");
    }
    if (regex) {
      if (f.type != FieldType::kString) {
        return fail("bad_operator", op_at, op_len, "'~' needs a string field; '" + f.name + "' is not one",
                    f.type == FieldType::kIp ? "use ':' with an address or CIDR block"
                                             : "use =, <, >, or ':' for numbers");
      }
      RE2::Options o;
      o.set_log_errors(false);
      o.set_max_mem(opts_.max_regex_mem);
      auto re = std::make_unique<RE2>(v.text, o);
      if (!re->ok()) {
        if (re->error_code() == RE2::ErrorPatternTooLarge) {
          return fail("regex_too_big", v.at, v.len, "regex needs more than the memory limit",
                      "simplify it (e.g. smaller repetition counts)");
        }
        return fail("bad_regex", v.at, v.len, "bad regex: " + re->error(), "");
      }
      Atom a = atom_for(f, op);
      a.str = v.text;
      auto extra = std::make_shared<AtomExtra>();
      extra->re = std::move(re);
      a.extra = std::move(extra);
      return add_atom(std::move(a), at, span, out);
    }
    Atom a = atom_for(f, op);
    switch (f.type) {
      case FieldType::kString:
        if (ordering) {
          return fail("bad_operator", op_at, op_len,
                      "'" + std::string(s_.substr(op_at, op_len)) + "' needs a numeric field; '" + f.name +
                          "' is a string",
                      "use ':' for a substring or '~' for a regex");
        }
        a.str = v.text;
        break;
      case FieldType::kIp:
        if (ordering) {
          return fail("bad_operator", op_at, op_len, "'" + f.name + "' cannot be ordered",
                      "use ':' with a CIDR block, e.g. " + f.name + ":10.0.0.0/8");
        }
        if (!parse_ip(v, /*allow_cidr=*/false, a.ip, a.prefix)) return false;
        break;
      case FieldType::kInt:
      case FieldType::kFloat:
        if (!parse_number(v.text, v.at, f.unit, f.name, a.num)) return false;
        break;
    }
    return add_atom(std::move(a), at, span, out);
  }

  std::string_view s_;
  const Schema& schema_;
  const QueryOptions& opts_;
  std::shared_ptr<QueryImpl> q_;
  size_t pos_ = 0;
  int predicates_ = 0;
  QueryError err_;
};

ParseResult parse(std::string_view text, const Schema& schema, const QueryOptions& options) {
  Parser p(text, schema, options);
  return p.run();
}

}  // namespace clio::matcher
