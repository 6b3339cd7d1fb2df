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
//   std::sort(ids.data(), ids.data() + ids.size());
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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
