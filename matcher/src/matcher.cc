// The prospective-search engine's facade: identical queries shared, the
// planner (plan.cc) and two copies of the index (index.cc).
//
// Concurrency: a "left-right" pair of index copies. Readers announce
// themselves on a per-version counter and read the copy `left_right` names;
// the writer updates the other copy, flips `left_right`, waits for readers
// of the old version to leave, and applies the same change to the first copy.
// Readers never wait; immutable pieces (queries, branches, RE2::Sets) are shared.
#include "clio/matcher/matcher.h"

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "engine.h"
#include "index.h"
#include "plan.h"
#include "sample.h"

namespace clio::matcher {

using internal::Index;
using internal::Planner;
using internal::Sub;

std::string_view every_record_code(EveryRecordReason r) {
  switch (r) {
    case EveryRecordReason::kNone: return "indexed";
    case EveryRecordReason::kNegatedText: return "negated_text";
    case EveryRecordReason::kRegexWithoutLiteral: return "regex_without_literal";
    case EveryRecordReason::kRegexSetFull: return "regex_set_full";
    case EveryRecordReason::kAnyHeader: return "any_header";
    case EveryRecordReason::kTooManyBranches: return "too_many_branches";
    case EveryRecordReason::kNoCondition: return "no_condition";
  }
  return "indexed";
}

std::string_view every_record_text(EveryRecordReason r) {
  switch (r) {
    case EveryRecordReason::kNone: return "it is found through an index, not checked on every record";
    case EveryRecordReason::kNegatedText:
      return "it has only negated text conditions (like -method:OPTIONS or ua !~ bot), which are tested on every "
             "record; add a positive condition to index it";
    case EveryRecordReason::kRegexWithoutLiteral:
      return "its regex has no literal text a match must contain (like [0-9]{6}), or only text most records "
             "contain (like /), so the regex runs on every record; add literal text or another condition";
    case EveryRecordReason::kRegexSetFull:
      return "its regex did not fit the regex index's memory budget, so it runs on every record";
    case EveryRecordReason::kAnyHeader:
      return "it looks at any header (header.* or ~h) without literal text to look for, so every header of "
             "every record is checked";
    case EveryRecordReason::kTooManyBranches:
      return "it has too many alternatives after expanding and/or; split it into several queries";
    case EveryRecordReason::kNoCondition:
      return "it has no condition an index can look up (e.g. an empty substring)";
  }
  return "";
}

struct [[gnu::visibility("hidden")]] Matcher::State {
  State(const Schema& s, MatcherOptions o)
      : schema(s), options(std::move(o)), sample(schema), planner(schema, options, sample) {
    readers[0].store(0);
    readers[1].store(0);
  }

  const Schema& schema;
  const MatcherOptions options;
  internal::RecordSample sample;  // a few records seen, for the planner's estimates

  // Read side (left-right protocol).
  Index index[2];
  std::atomic<int> left_right{0};
  std::atomic<int> version{0};
  alignas(64) std::atomic<int64_t> readers[2];

  // Counters, written under mu, read by stats() from any thread.
  alignas(64) std::atomic<size_t> size{0};
  std::atomic<size_t> distinct{0};
  std::array<std::atomic<size_t>, kEveryRecordReasonCount> every_record{};
  std::atomic<size_t> key_specs{0};
  std::atomic<size_t> regex_sets{0};

  // Guarded by mu.
  mutable std::mutex mu;
  Planner planner;
  std::unordered_map<uint64_t, Sub*> by_id;
  std::unordered_map<std::string, std::unique_ptr<Sub>> by_text;
  std::vector<uint32_t> free_slots;
  uint32_t next_slot = 0;
  std::vector<uint32_t> free_tried;   // branch numbers (Branch::tried)
  uint32_t next_tried = 0;

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

  void count(const Sub& s, int delta) {
    auto& c = every_record[static_cast<size_t>(s.every_record)];
    c.store(static_cast<size_t>(static_cast<int64_t>(c.load()) + delta));
  }

  void publish() {
    size.store(by_id.size());
    distinct.store(by_text.size());
    key_specs.store(planner.key_specs());
    regex_sets.store(planner.regex_sets());
  }

  QueryError add(uint64_t id, const Query& query);
  bool remove(uint64_t id);
};

QueryError Matcher::State::add(uint64_t id, const Query& query) {
  if (&query.schema() != &schema) {
    QueryError e;
    e.code = "schema_mismatch";
    e.message = "the query was parsed with another schema";
    return e;
  }
  std::string text = query.canonical();
  std::lock_guard<std::mutex> lock(mu);
  if (by_id.count(id) != 0) {
    QueryError e;
    e.code = "duplicate_id";
    e.message = "subscription " + std::to_string(id) + " already exists";
    e.hint = "unsubscribe it first or use another id";
    return e;
  }
  auto it = by_text.find(text);
  if (it != by_text.end()) {
    // An identical query: one more id for the same entries.
    Sub& s = *it->second;
    s.ids.push_back(id);
    const bool refile = !s.filed_shared;
    s.filed_shared = true;
    apply([&s, refile, ids = s.ids](Index& ix) {
      if (refile) {
        ix.remove(s, false);
        ix.add(s, true);
      }
      ix.set_ids(s.slot, ids);
    });
    by_id.emplace(id, &s);
    count(s, +1);
    publish();
    return {};
  }
  auto sub = std::make_unique<Sub>(query);
  Sub& s = *sub;
  s.ids.push_back(id);
  if (!free_slots.empty()) {
    s.slot = free_slots.back();
    free_slots.pop_back();
  } else {
    s.slot = next_slot++;
  }
  std::vector<Planner::IndexOp> ops;
  planner.plan(s, ops);
  for (auto& b : s.branches) {
    if (!free_tried.empty()) {
      b.tried = free_tried.back();
      free_tried.pop_back();
    } else {
      b.tried = next_tried++;
    }
  }
  const uint32_t slots = next_slot, tried = next_tried;
  apply([&](Index& ix) {
    for (const auto& op : ops) op(ix);
    ix.set_slots(slots, tried);
    ix.set_ids(s.slot, s.ids);
    ix.add(s, false);
  });
  by_id.emplace(id, &s);
  by_text.emplace(std::move(text), std::move(sub));
  count(s, +1);
  publish();
  return {};
}

bool Matcher::State::remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = by_id.find(id);
  if (it == by_id.end()) return false;
  Sub& s = *it->second;
  by_id.erase(it);
  count(s, -1);
  s.ids.erase(std::find(s.ids.begin(), s.ids.end(), id));
  if (!s.ids.empty()) {
    apply([&s, ids = s.ids](Index& ix) { ix.set_ids(s.slot, ids); });
    publish();
    return true;
  }
  std::vector<Planner::IndexOp> ops;
  planner.unplan(s, ops);
  const bool shared = s.filed_shared;
  s.ids.push_back(id);  // entries were filed with it; remove exactly those
  apply([&](Index& ix) {
    ix.remove(s, shared);
    for (const auto& op : ops) op(ix);
    ix.set_ids(s.slot, {});
  });
  free_slots.push_back(s.slot);
  for (const auto& b : s.branches) free_tried.push_back(b.tried);
  by_text.erase(s.query.canonical());  // no reader can reach it any more
  publish();
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
  s.sample.offer(record);
  const int vi = s.version.load();
  s.readers[vi].fetch_add(1);
  struct Leave {
    std::atomic<int64_t>& r;
    ~Leave() { r.fetch_sub(1); }
  } leave{s.readers[vi]};
  const int lr = s.left_right.load();
  s.index[lr].match(s.schema, record, out);
}

AccessExplanation Matcher::explain(const Query& query) const {
  if (&query.schema() != &state_->schema) {
    AccessExplanation e;
    e.text = "the query was parsed with another schema";
    return e;
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->planner.explain(query);
}

size_t Matcher::size() const { return state_->size.load(); }

MatcherStats Matcher::stats() const {
  MatcherStats st;
  st.subscriptions = state_->size.load();
  st.distinct_queries = state_->distinct.load();
  for (size_t r = 1; r < kEveryRecordReasonCount; ++r) {
    st.every_record_by_reason[r] = state_->every_record[r].load();
    st.every_record += st.every_record_by_reason[r];
  }
  st.key_specs = state_->key_specs.load();
  st.regex_sets = state_->regex_sets.load();
  return st;
}

}  // namespace clio::matcher
