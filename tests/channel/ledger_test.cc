// The channel's per-client accounting (channel/src/ledger.h): every seq is
// counted once as delivered or lost, and a delivered seq is counted lost
// again only when a resume shows the client never read it.
#include <doctest/doctest.h>

#include "ledger.h"

using clio::channel::Ledger;
using Eviction = Ledger::Eviction;

TEST_CASE("ledger: a seq is delivered once, however often it is written") {
  Ledger l(1);
  for (uint64_t s = 1; s <= 5; ++s) CHECK(l.deliver(s));
  CHECK_FALSE(l.deliver(3));  // a replay
  CHECK(l.accounted() == 5);
  CHECK(l.deliver(6));
}

TEST_CASE("ledger: evictions count unsent seqs once and delivered ones not at all") {
  Ledger l(10);
  CHECK(l.deliver(10));
  CHECK(l.evict(10, false) == Eviction::kNone);   // delivered, no sign it was missed
  CHECK(l.evict(11, false) == Eviction::kUnsent); // never sent
  CHECK(l.evict(12, true) == Eviction::kUnsent);
  CHECK(l.accounted() == 12);
  CHECK(l.runs() == 1);  // 11..12, one run
}

TEST_CASE("ledger: a resume below the ring counts delivered-but-unread seqs, once") {
  Ledger l(1);
  for (uint64_t s = 1; s <= 6; ++s) CHECK(l.deliver(s));
  for (uint64_t s = 1; s <= 6; ++s) CHECK(l.evict(s, false) == Eviction::kNone);
  CHECK(l.evict(7, false) == Eviction::kUnsent);  // 7 lost unsent
  // The client read 1..4; the ring starts at 8: 5 and 6 were delivered but
  // never read (now lost after delivery); 7 was already counted.
  CHECK(l.resume(4, 8).messages == 2);
  // The same resume again (the client missed the gap notice): nothing new.
  CHECK(l.resume(4, 8).messages == 0);
  CHECK(l.runs() == 1);
  // Going back to an earlier position is not counted again either.
  CHECK(l.resume(2, 8).messages == 0);
  // Past the gap the client confirmed 7: the runs below are dropped.
  CHECK(l.resume(7, 8).messages == 0);
  CHECK(l.runs() == 0);
}

TEST_CASE("ledger: a resume below the ring weighs the delivered-but-unread seqs it counts") {
  Ledger l(1, /*max_weighed=*/3);
  for (uint64_t s = 1; s <= 8; ++s) CHECK(l.deliver(s));
  // Weights 10, 20, ... 80, but seq 7 weighs nothing (a notice).
  for (uint64_t s = 1; s <= 8; ++s) CHECK(l.evict(s, false, s == 7 ? 0 : s * 10) == Eviction::kNone);
  // The client read 1..5: 6, 7 and 8 are lost after delivery; the ledger
  // kept the last three evictions, exactly what it needs.
  const Ledger::Loss loss = l.resume(5, 9);
  CHECK(loss.messages == 3);
  CHECK(loss.weight == 60 + 80);
  CHECK(loss.unweighed == 0);
  const Ledger::Loss again = l.resume(5, 9);
  CHECK(again.messages == 0);
  CHECK(again.weight == 0);
  // Read further back than it remembers: the count stays exact, and what it
  // no longer weighs is counted as such.
  Ledger m(1, 2);
  for (uint64_t s = 1; s <= 4; ++s) CHECK(m.deliver(s));
  for (uint64_t s = 1; s <= 4; ++s) CHECK(m.evict(s, false, 1) == Eviction::kNone);
  const Ledger::Loss old = m.resume(0, 5);
  CHECK(old.messages == 4);
  CHECK(old.weight == 2);
  CHECK(old.unweighed == 2);
}

TEST_CASE("ledger: a live session behind the ring loses delivered seqs it had to send again") {
  Ledger l(1);
  for (uint64_t s = 1; s <= 10; ++s) CHECK(l.deliver(s));
  CHECK(l.resume(5, 1).messages == 0);  // all still in the ring: they will be replayed
  // The resumed session (cursor 6) falls behind and the ring drops 1..7.
  for (uint64_t s = 1; s <= 5; ++s) CHECK(l.evict(s, false) == Eviction::kNone);
  CHECK(l.evict(6, true) == Eviction::kAfterDelivery);
  CHECK(l.evict(7, true) == Eviction::kAfterDelivery);
  // It drops before the gap notice arrives and resumes from 5 again.
  CHECK(l.resume(5, 8).messages == 0);
}

TEST_CASE("ledger: discarding counts the unsent seqs, and a later resume does not recount them") {
  Ledger l(1);
  for (uint64_t s = 1; s <= 3; ++s) CHECK(l.deliver(s));
  CHECK(l.discard(8) == 5);
  CHECK(l.discard(8) == 0);
  CHECK(l.accounted() == 8);
  CHECK(l.resume(3, 9).messages == 0);
  // The client had only read 1: 2 and 3 were delivered, not read.
  Ledger m(1);
  for (uint64_t s = 1; s <= 3; ++s) CHECK(m.deliver(s));
  CHECK(m.discard(5) == 2);
  CHECK(m.resume(1, 6).messages == 2);
}

TEST_CASE("ledger: a resume position from the future is clamped") {
  Ledger l(1);
  CHECK(l.deliver(1));
  CHECK(l.resume(1000, 2).messages == 0);
  CHECK(l.evict(2, false) == Eviction::kUnsent);
  CHECK(l.accounted() == 2);
}

TEST_CASE("ledger: separate losses between deliveries are separate runs") {
  Ledger l(1);
  uint64_t seq = 1;
  for (int i = 0; i < 5; ++i) {
    CHECK(l.deliver(seq++));
    CHECK(l.evict(seq - 1, false) == Eviction::kNone);
    CHECK(l.evict(seq++, true) == Eviction::kUnsent);
  }
  CHECK(l.runs() == 5);
  CHECK(l.resume(seq - 1, seq).messages == 0);
  CHECK(l.runs() == 0);
}
