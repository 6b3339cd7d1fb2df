// A small recursive-descent reader of RE2 syntax that tracks, for each
// sub-expression, a set of literals one of which every match contains.
#include "regex_literal.h"

#include <algorithm>
#include <cctype>

#include "text.h"

namespace clio::matcher::internal {
namespace {

constexpr int kMaxDepth = 32;

// One of these texts occurs in every match; empty: nothing known.
using AnyOf = std::vector<std::string>;

// The weakest member decides how selective a set is: prefer a longer
// shortest literal, then fewer alternatives.
bool better(const AnyOf& a, const AnyOf& b) {
  if (a.empty()) return false;
  if (b.empty()) return true;
  auto shortest = [](const AnyOf& s) {
    size_t m = SIZE_MAX;
    for (const auto& x : s) m = std::min(m, x.size());
    return m;
  };
  const size_t la = shortest(a), lb = shortest(b);
  if (la != lb) return la > lb;
  return a.size() < b.size();
}

bool is_alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

class Reader {
 public:
  Reader(std::string_view p, size_t max_alts) : p_(p), max_alts_(max_alts) {}

  AnyOf read_all() {
    AnyOf r = alternation(0);
    if (pos_ != p_.size()) return {};  // stray ')': give up
    return r;
  }

 private:
  bool at_end() const { return pos_ >= p_.size(); }

  AnyOf alternation(int depth) {
    AnyOf all;
    bool complete = true;
    for (;;) {
      AnyOf one = concatenation(depth);
      if (one.empty()) complete = false;
      for (auto& s : one) all.push_back(std::move(s));
      if (at_end() || p_[pos_] != '|') break;
      ++pos_;
    }
    if (!complete) return {};
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    if (all.size() > max_alts_) return {};
    return all;
  }

  // Ends the current run of literal bytes, offering it as a candidate.
  void flush(std::string& run, AnyOf& best) {
    if (!run.empty() && better(AnyOf{run}, best)) best = AnyOf{run};
    run.clear();
  }

  // Drops the last UTF-8 character of `run` (a quantifier applies to it).
  static void drop_last_char(std::string& run) {
    while (!run.empty()) {
      const auto c = static_cast<unsigned char>(run.back());
      run.pop_back();
      if ((c & 0xC0) != 0x80) break;
    }
  }

  // Reads a quantifier if one follows; returns true when it allows zero
  // repetitions (?, *, {0...}) or could not be understood.
  bool quantifier(bool& present) {
    present = false;
    if (at_end()) return false;
    const char c = p_[pos_];
    if (c == '*' || c == '?' || c == '+') {
      present = true;
      ++pos_;
      if (!at_end() && (p_[pos_] == '?' || p_[pos_] == '+')) ++pos_;  // lazy / possessive
      return c != '+';
    }
    if (c != '{') return false;
    // {n}, {n,}, {n,m}; anything else is a literal '{' in RE2.
    size_t q = pos_ + 1;
    size_t digits = 0;
    bool zero = true;
    while (q < p_.size() && p_[q] >= '0' && p_[q] <= '9') {
      if (p_[q] != '0') zero = false;
      ++q;
      ++digits;
    }
    if (digits == 0) return false;
    while (q < p_.size() && (p_[q] == ',' || (p_[q] >= '0' && p_[q] <= '9'))) ++q;
    if (q >= p_.size() || p_[q] != '}') return false;
    pos_ = q + 1;
    present = true;
    if (!at_end() && p_[pos_] == '?') ++pos_;
    return zero;
  }

  // Skips a character class starting at '['.
  void skip_class() {
    ++pos_;
    if (!at_end() && p_[pos_] == '^') ++pos_;
    if (!at_end() && p_[pos_] == ']') ++pos_;
    while (!at_end() && p_[pos_] != ']') {
      if (p_[pos_] == '\\') {
        pos_ += 2;
        continue;
      }
      if (p_[pos_] == '[' && pos_ + 1 < p_.size() && p_[pos_ + 1] == ':') {
        const size_t end = p_.find(":]", pos_ + 2);
        pos_ = end == std::string_view::npos ? p_.size() : end + 2;
        continue;
      }
      ++pos_;
    }
    if (!at_end()) ++pos_;
  }

  // Skips an escape that is not a literal (\d, \pL, \p{Greek}, \x{41}, \123).
  void skip_escape_class() {
    const char c = p_[pos_];
    ++pos_;
    if ((c == 'p' || c == 'P' || c == 'x') && !at_end() && p_[pos_] == '{') {
      const size_t end = p_.find('}', pos_);
      pos_ = end == std::string_view::npos ? p_.size() : end + 1;
      return;
    }
    if (c == 'p' || c == 'P') {
      if (!at_end()) ++pos_;
      return;
    }
    // \x41, octal digits: skip the digits that may follow.
    size_t n = 0;
    while (!at_end() && n < 3 && is_alnum(p_[pos_]) && std::isxdigit(static_cast<unsigned char>(p_[pos_]))) {
      ++pos_;
      ++n;
    }
  }

  // Appends one literal byte (with folding rules) or ends the run.
  void literal_byte(char c, std::string& run, AnyOf& best) {
    const auto u = static_cast<unsigned char>(c);
    if (fold_ && (u >= 0x80 || text::lower(c) == 'k' || text::lower(c) == 's')) {
      flush(run, best);
      return;
    }
    run.push_back(text::lower(c));
  }

  AnyOf concatenation(int depth) {
    AnyOf best;
    std::string run;
    while (!at_end()) {
      const char c = p_[pos_];
      if (c == '|' || c == ')') break;
      if (c == '(') {
        flush(run, best);
        AnyOf inner = group(depth);
        if (failed_) return {};
        bool q;
        if (quantifier(q)) inner.clear();
        if (better(inner, best)) best = std::move(inner);
        continue;
      }
      if (c == '[') {
        flush(run, best);
        skip_class();
        bool q;
        quantifier(q);
        continue;
      }
      if (c == '.' || c == '^' || c == '$') {
        flush(run, best);
        ++pos_;
        bool q;
        quantifier(q);
        continue;
      }
      if (c == '*' || c == '+' || c == '?' || c == '{') {
        // A quantifier with nothing before it, or a literal '{' in RE2:
        // skip it without trusting it.
        flush(run, best);
        bool q;
        if (!quantifier(q)) ++pos_;
        continue;
      }
      // One literal character (escaped punctuation, or a UTF-8 sequence).
      std::string ch;
      if (c == '\\') {
        if (pos_ + 1 >= p_.size()) {
          ++pos_;
          flush(run, best);
          continue;
        }
        const char e = p_[pos_ + 1];
        if (e == 'Q') {  // \Q...\E quoting: give up on the rest
          flush(run, best);
          pos_ = p_.size();
          break;
        }
        if (is_alnum(e) || static_cast<unsigned char>(e) >= 0x80) {
          flush(run, best);
          ++pos_;
          skip_escape_class();
          bool q;
          quantifier(q);
          continue;
        }
        ch.push_back(e);
        pos_ += 2;
      } else {
        ch.push_back(c);
        ++pos_;
        while (!at_end() && (static_cast<unsigned char>(p_[pos_]) & 0xC0) == 0x80) ch.push_back(p_[pos_++]);
      }
      for (char b : ch) literal_byte(b, run, best);
      bool q;
      const bool optional = quantifier(q);
      if (q && optional) {
        // The character may be absent: the run ends before it.
        drop_last_char(run);
        flush(run, best);
      } else if (q) {
        // One or more copies: the run up to the first copy is required, and
        // a new run starts with the last copy (`ab+c` contains "ab" and "bc").
        flush(run, best);
        for (char b : ch) literal_byte(b, run, best);
      }
    }
    flush(run, best);
    return best;
  }

  // A group at '(' : (?flags), (?flags:...), (?P<name>...), (?:...), (...).
  AnyOf group(int depth) {
    ++pos_;
    if (!at_end() && p_[pos_] == '?') {
      ++pos_;
      if (!at_end() && p_[pos_] == 'P') {  // (?P<name>
        const size_t end = p_.find('>', pos_);
        if (end == std::string_view::npos) return fail();
        pos_ = end + 1;
      } else {
        bool sets_fold = false;
        while (!at_end() && p_[pos_] != ')' && p_[pos_] != ':') {
          if (p_[pos_] == 'i') sets_fold = true;
          ++pos_;
        }
        if (at_end()) return fail();
        if (p_[pos_] == ')') {  // (?i): flags for the rest of the enclosing group
          ++pos_;
          if (sets_fold) fold_ = true;
          // A quantifier after flags applies to the item before them
          // (`a(?i)?` is `a?`): too odd to follow, give up.
          bool q;
          const size_t at = pos_;
          quantifier(q);
          if (q || (!at_end() && (p_[pos_] == '*' || p_[pos_] == '+' || p_[pos_] == '?' || p_[pos_] == '{'))) {
            return fail();
          }
          pos_ = at;
          return {};
        }
        ++pos_;  // ':'
        if (sets_fold) {
          // Folding inside the group only; stay folded afterwards too
          // (folding is only ever more conservative).
          fold_ = true;
        }
      }
    }
    if (depth >= kMaxDepth) return fail();
    AnyOf inner = alternation(depth + 1);
    if (at_end() || p_[pos_] != ')') return fail();
    ++pos_;
    return inner;
  }

  AnyOf fail() {
    failed_ = true;
    pos_ = p_.size();
    return {};
  }

  std::string_view p_;
  size_t max_alts_;
  size_t pos_ = 0;
  bool fold_ = false;
  bool failed_ = false;
};

}  // namespace

std::vector<std::string> required_literals(std::string_view pattern, size_t max_alternatives) {
  Reader r(pattern, max_alternatives);
  AnyOf out = r.read_all();
  for (const auto& s : out) {
    if (s.empty()) return {};
  }
  return out;
}

}  // namespace clio::matcher::internal
