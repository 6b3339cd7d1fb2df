// IdOut: where the index writes a record's matching ids for a caller's
// visitor (Matcher::match); for the vector overload it writes to the vector. A fixed chunk on the stack, so the per-id write
// stays in the cache, handed to the visitor whenever it fills and once at the
// end. Private to clio::matcher.
//
//   IdOut out(visit);
//   out.push_back(7);        // as a std::vector<uint64_t> would take it
//   out.append(ids_of_a_shared_query);
//   out.flush();             // before the match leaves the index
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "clio/matcher/matcher.h"

namespace clio::matcher::internal {

// Owned by the thread that matches one record; not copyable. Borrows the
// visitor, which must outlive it.
class IdOut {
 public:
  explicit IdOut(const MatchVisitor& visit) : visit_(visit) {}
  IdOut(const IdOut&) = delete;
  IdOut& operator=(const IdOut&) = delete;

  void push_back(uint64_t id) {
    if (n_ == kMatchChunk) flush();
    buf_[n_++] = id;
  }
  void append(const std::vector<uint64_t>& ids) {
    const uint64_t* from = ids.data();
    size_t left = ids.size();
    while (left > 0) {
      if (n_ == kMatchChunk) flush();
      const size_t n = std::min(left, kMatchChunk - n_);
      std::copy(from, from + n, buf_ + n_);
      n_ += n;
      from += n;
      left -= n;
    }
  }
  // Hands the visitor what the chunk holds.
  void flush() {
    if (n_ == 0) return;
    visit_(std::span<const uint64_t>(buf_, n_));
    n_ = 0;
  }

 private:
  const MatchVisitor& visit_;
  size_t n_ = 0;
  uint64_t buf_[kMatchChunk];
};

}  // namespace clio::matcher::internal
