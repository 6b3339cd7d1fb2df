// IdBuffer: the matching ids of a batch of records (`clio match --queries`),
// one record after the other, as 32-bit numbers. Appending goes around the
// cache: 16-byte non-temporal stores where the CPU has them (four ids a
// store; 4-byte stores cost about 2.5 times as much on the shared
// workload), into memory that is never zero-filled, so keeping a record's
// ~3,300 ids costs little memory traffic and does not evict the index the
// next match needs.
//
//   IdBuffer ids;
//   hot.clear(); matcher.match(view, hot); ids.append(hot);
//   ids.fence();                       // before reading ids.data()
//   IdSorter sorter(queries);          // then, record by record:
//   uint32_t* end = sorter.sort(first, last);
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// IdSorter: sorts one record's ids, all distinct and (to be fast) below
// `bound`, the number of queries, by marking them in a bitmap and reading it
// back in order: about as many steps as ids plus bound/64, where a
// comparison sort of the shared workload's ~3,300 ids a record took about
// 80 us. Few ids (fewer than the bitmap's words / 16), or any at or above
// `bound`, are sorted by comparison instead.
// Owned by one thread; not copyable.
class IdSorter {
 public:
  explicit IdSorter(size_t bound) : bound_(bound), words_((bound + 63) / 64, 0) {}
  IdSorter(const IdSorter&) = delete;
  IdSorter& operator=(const IdSorter&) = delete;

  // Sorts [first, last); returns the end of the sorted ids (`last`, as
  // they are distinct).
  uint32_t* sort(uint32_t* first, uint32_t* last) {
    if (static_cast<size_t>(last - first) * 16 < words_.size() ||
        std::any_of(first, last, [this](uint32_t id) { return id >= bound_; })) {
      std::sort(first, last);
      return last;
    }
    for (const uint32_t* p = first; p != last; ++p) words_[*p >> 6] |= uint64_t{1} << (*p & 63);
    uint32_t* out = first;
    for (size_t w = 0; w < words_.size(); ++w) {
      uint64_t bits = words_[w];
      if (bits == 0) continue;
      words_[w] = 0;
      for (; bits != 0; bits &= bits - 1) *out++ = static_cast<uint32_t>(w * 64 + std::countr_zero(bits));
    }
    return out;
  }

 private:
  size_t bound_;
  std::vector<uint64_t> words_;  // all zero between calls
};

// Owned by one thread; not copyable. Ids must fit in 32 bits (query line
// numbers); higher bits are dropped.
class IdBuffer {
 public:
  IdBuffer() = default;
  IdBuffer(const IdBuffer&) = delete;
  IdBuffer& operator=(const IdBuffer&) = delete;

  size_t size() const { return size_; }
  uint32_t* data() { return data_.get(); }
  void clear() { size_ = 0; }

  void append(std::span<const uint64_t> src) {
    if (size_ + src.size() > capacity_) grow(size_ + src.size());
    uint32_t* out = data_.get() + size_;
    size_ += src.size();
#if defined(__x86_64__)
    size_t i = 0;
    for (; i < src.size() && (reinterpret_cast<uintptr_t>(out + i) & 15) != 0; ++i) {
      _mm_stream_si32(reinterpret_cast<int*>(out + i), static_cast<int>(src[i]));
    }
    for (; i + 4 <= src.size(); i += 4) {  // the low halves of four ids, one store
      const __m128 a = _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src.data() + i)));
      const __m128 b = _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src.data() + i + 2)));
      _mm_stream_si128(reinterpret_cast<__m128i*>(out + i), _mm_castps_si128(_mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))));
    }
    for (; i < src.size(); ++i) _mm_stream_si32(reinterpret_cast<int*>(out + i), static_cast<int>(src[i]));
#else
    std::copy(src.begin(), src.end(), out);
#endif
  }

  // Makes what append() wrote visible to ordinary loads.
  void fence() {
#if defined(__x86_64__)
    _mm_sfence();
#endif
  }

 private:
  void grow(size_t need) {
    fence();
    const size_t cap = std::max(need, capacity_ * 2);
    std::unique_ptr<uint32_t[]> bigger(new uint32_t[cap]);  // not initialised
    std::copy(data_.get(), data_.get() + size_, bigger.get());
    data_ = std::move(bigger);
    capacity_ = cap;
  }

  std::unique_ptr<uint32_t[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};
