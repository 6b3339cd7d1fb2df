// Ledger: what became of each message of one client id, so the channel's
// counters are exact. Every accepted message (seq) is counted once, as
// delivered (handed to a socket) or as lost (it will never reach the client),
// plus a correction when a delivered message turns out lost (the connection
// died before the client read it and the ring no longer held it when the
// client resumed). Private to the channel module.
//
//   Ledger l(first_seq);
//   l.deliver(seq);                      // the sender took seq for writing
//   l.evict(seq, behind, weight);        // the ring dropped seq
//   Ledger::Loss n = l.resume(last, first);  // a client resumed after `last`
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace clio::channel {

// Const methods are thread-safe, non-const methods need external
// synchronization (the channel's mu_).
//
// Invariant: every seq <= accounted() has been counted exactly once as
// delivered or lost; seqs are accounted in increasing order. `runs_` lists
// the lost seqs above the client's confirmed position (the last seq it said
// it had when it resumed), so a later resume does not count them again.
class Ledger {
 public:
  // `max_weighed`: how many delivered messages gone from the ring the ledger
  // remembers the weight of (see resume).
  explicit Ledger(uint64_t first_seq, size_t max_weighed = 1024)
      : accounted_(first_seq - 1), confirmed_(first_seq - 1), max_weighed_(max_weighed) {}

  // What an eviction meant.
  enum class Eviction { kNone, kUnsent, kAfterDelivery };

  // The sender took `seq` for writing. True (and counted delivered) the first
  // time; seqs are taken in increasing order, so seq == accounted() + 1 then.
  bool deliver(uint64_t seq);
  // The ring dropped `seq` (its oldest entry). `behind`: a live session still
  // had it to send (seq >= its cursor), so its client does not have it.
  // kUnsent: never delivered, now lost. kAfterDelivery: delivered to an
  // earlier connection the client did not read, now lost. kNone: delivered
  // and, as far as is known, received.
  // `weight` is the message's (MessageCounts::weight_accepted); a delivered
  // one (kNone) above the client's position is remembered in case a resume
  // shows it lost.
  Eviction evict(uint64_t seq, bool behind, uint64_t weight = 0);
  // Messages and their weight in all.
  struct Loss {
    uint64_t messages = 0;
    uint64_t weight = 0;
    uint64_t unweighed = 0;  // of the messages, those whose weight was forgotten
  };
  // A client resumed and said it has everything through `client_seq`; the
  // ring now starts at `ring_first`. The resume gap covers the seqs below
  // ring_first the client lacks; returns how many of them had been counted
  // delivered (now also lost), and their weight: exact for those among the
  // last max_weighed delivered evictions above the client's previous
  // position, and the older ones are counted as unweighed.
  Loss resume(uint64_t client_seq, uint64_t ring_first);
  // Seqs accounted() + 1 .. `last` are discarded without being sent (revoked,
  // forgotten, shut down); returns how many.
  uint64_t discard(uint64_t last);

  uint64_t accounted() const { return accounted_; }
  // Separate runs of lost seqs held; bounded by the caller (a session that
  // keeps falling behind is closed so its client confirms a position).
  size_t runs() const { return runs_.size(); }

 private:
  struct Run {
    uint64_t from, to;
  };
  void add_lost(uint64_t from, uint64_t to);
  // Lost seqs held in runs within [from, to].
  uint64_t lost_within(uint64_t from, uint64_t to) const;

  uint64_t accounted_;
  uint64_t confirmed_;
  std::deque<Run> runs_;  // ascending, disjoint, all in (confirmed_, accounted_]
  // Delivered seqs gone from the ring, above confirmed_, with their
  // weights: ascending, at most max_weighed_ (the oldest go).
  struct Weighed {
    uint64_t seq, weight;
  };
  std::deque<Weighed> weighed_;
  size_t max_weighed_;
};

}  // namespace clio::channel
