// IdOut: where the index writes a record's matching ids. A fixed chunk on the
// stack, so the per-id write stays in the cache, handed on whole when it fills
// and once at the end: appended to a caller's vector, or given to a caller's
// visitor (Matcher::match). Private to clio::matcher.
//
//   IdOut out(visit);        // or IdOut out(vec);
//   out.push(7);
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

// Owned by the thread that matches one record; not copyable. Borrows its
// target, which must outlive it.
class IdOut {
 public:
  explicit IdOut(std::vector<uint64_t>& vec) : vec_(&vec) {}
  explicit IdOut(const MatchVisitor& visit) : visit_(&visit) {}
  IdOut(const IdOut&) = delete;
  IdOut& operator=(const IdOut&) = delete;

  void push(uint64_t id) {
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
  // Hands on what the chunk holds.
  void flush() {
    if (n_ == 0) return;
    if (vec_ != nullptr) {
      vec_->insert(vec_->end(), buf_, buf_ + n_);
    } else {
      (*visit_)(std::span<const uint64_t>(buf_, n_));
    }
    n_ = 0;
  }

 private:
  std::vector<uint64_t>* vec_ = nullptr;
  const MatchVisitor* visit_ = nullptr;
  size_t n_ = 0;
  uint64_t buf_[kMatchChunk];
};

}  // namespace clio::matcher::internal
