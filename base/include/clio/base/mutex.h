// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable with
// clang thread-safety annotations, so that -Wthread-safety checks every
// member marked CLIO_GUARDED_BY and every function marked CLIO_REQUIRES.
//
//   clio::Mutex mu_;
//   std::deque<Job> jobs_ CLIO_GUARDED_BY(mu_);
//   clio::CondVar jobs_cv_;
//   { clio::MutexLock l(&mu_); jobs_.push_back(j); }  jobs_cv_.Signal();
//   { clio::MutexLock l(&mu_); while (jobs_.empty()) jobs_cv_.Wait(&mu_); ... }
//
// Waits are written as explicit loops over the condition rather than with a
// predicate lambda, because the analysis checks a lambda's body as a separate
// function that holds no lock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "clio/base/thread_annotations.h"

namespace clio {

// Safe for concurrent use by multiple threads. A non-recursive mutex; not
// copyable or movable.
class CLIO_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() CLIO_ACQUIRE() { mu_.lock(); }
  void Unlock() CLIO_RELEASE() { mu_.unlock(); }
  bool TryLock() CLIO_TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis the caller holds the lock (where it cannot see it,
  // e.g. in a callback run under the lock). Checks nothing at run time.
  void AssertHeld() CLIO_ASSERT_HELD(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Owned by the thread that creates it: holds a Mutex for its lifetime.
class CLIO_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) CLIO_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() CLIO_RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Safe for concurrent use by multiple threads. A condition variable used with
// a Mutex: every waiter passes the same Mutex, held.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases *mu, blocks until signalled (or woken spuriously), takes *mu again.
  void Wait(Mutex* mu) CLIO_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // As Wait, but returns false once `deadline` has passed.
  template <class Clock, class Duration>
  bool WaitUntil(Mutex* mu, const std::chrono::time_point<Clock, Duration>& deadline) CLIO_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool in_time = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    lock.release();
    return in_time;
  }

  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace clio
