#include "ledger.h"

#include <algorithm>

namespace clio::channel {

bool Ledger::deliver(uint64_t seq) {
  if (seq <= accounted_) return false;  // a replay: counted when first taken
  accounted_ = seq;
  return true;
}

Ledger::Eviction Ledger::evict(uint64_t seq, bool behind, uint64_t weight) {
  if (seq > accounted_) {
    accounted_ = seq;
    add_lost(seq, seq);
    return Eviction::kUnsent;
  }
  // Delivered before. Only a live session that still has to send it again
  // (its client resumed from below it) shows the client does not have it.
  if (behind && seq > confirmed_) {
    add_lost(seq, seq);
    return Eviction::kAfterDelivery;
  }
  if (seq > confirmed_ && max_weighed_ > 0) {
    if (weighed_.size() == max_weighed_) weighed_.pop_front();
    weighed_.push_back(Weighed{seq, weight});
  }
  return Eviction::kNone;
}

Ledger::Loss Ledger::resume(uint64_t client_seq, uint64_t ring_first) {
  // Positions only move forward: a client that goes back to an earlier one
  // is not counted again.
  const uint64_t pos = std::min(client_seq, accounted_);
  if (pos > confirmed_) {
    confirmed_ = pos;
    while (!runs_.empty() && runs_.front().to <= confirmed_) runs_.pop_front();
    if (!runs_.empty() && runs_.front().from <= confirmed_) runs_.front().from = confirmed_ + 1;
    while (!weighed_.empty() && weighed_.front().seq <= confirmed_) weighed_.pop_front();
  }
  if (ring_first == 0) return {};
  const uint64_t hi = std::min(ring_first - 1, accounted_);
  if (hi <= confirmed_) return {};
  const uint64_t lo = confirmed_ + 1;
  Loss loss;
  loss.messages = (hi - lo + 1) - lost_within(lo, hi);
  // Every remembered seq is above confirmed_ and was delivered: those up to
  // hi are lost ones.
  uint64_t weighed = 0;
  while (!weighed_.empty() && weighed_.front().seq <= hi) {
    loss.weight += weighed_.front().weight;
    weighed_.pop_front();
    ++weighed;
  }
  loss.unweighed = loss.messages - weighed;
  // All of lo..hi is lost now: one run replaces those inside it.
  std::deque<Run> rest;
  for (const Run& r : runs_) {
    if (r.from > hi) rest.push_back(r);
  }
  runs_.clear();
  runs_.push_back(Run{lo, hi});
  for (const Run& r : rest) runs_.push_back(r);
  return loss;
}

uint64_t Ledger::discard(uint64_t last) {
  if (last <= accounted_) return 0;
  const uint64_t n = last - accounted_;
  add_lost(accounted_ + 1, last);
  accounted_ = last;
  return n;
}

void Ledger::add_lost(uint64_t from, uint64_t to) {
  if (!runs_.empty() && runs_.back().to + 1 == from) {
    runs_.back().to = to;
  } else {
    runs_.push_back(Run{from, to});
  }
}

uint64_t Ledger::lost_within(uint64_t from, uint64_t to) const {
  uint64_t n = 0;
  for (const Run& r : runs_) {
    const uint64_t a = std::max(r.from, from);
    const uint64_t b = std::min(r.to, to);
    if (a <= b) n += b - a + 1;
  }
  return n;
}

}  // namespace clio::channel
