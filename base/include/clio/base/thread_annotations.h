// Clang thread-safety annotations: which mutex guards which member, and which
// functions need, take or must not hold it. Under clang, -Wthread-safety
// checks them at compile time (scripts/test builds once with it, as errors);
// under other compilers the macros expand to nothing.
//
//   class Counter {
//    public:
//     void Add(int n) CLIO_EXCLUDES(mu_) { clio::MutexLock l(&mu_); total_ += n; }
//    private:
//     clio::Mutex mu_;
//     int total_ CLIO_GUARDED_BY(mu_) = 0;
//   };
//
// The macros carry a CLIO_ prefix because public Clio headers use them and an
// app may define its own GUARDED_BY. Functions named *_locked are annotated
// CLIO_REQUIRES(the mutex) as well: the name is for the reader, the
// annotation for the compiler.
#pragma once

#if defined(__clang__)
#define CLIO_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define CLIO_THREAD_ANNOTATION(x)
#endif

// On a class: it is a lock (a capability the analysis tracks).
#define CLIO_CAPABILITY(name) CLIO_THREAD_ANNOTATION(capability(name))
// On a class: an RAII guard that holds a lock for its lifetime.
#define CLIO_SCOPED_CAPABILITY CLIO_THREAD_ANNOTATION(scoped_lockable)

// On a data member: read and written only with the lock held.
#define CLIO_GUARDED_BY(mu) CLIO_THREAD_ANNOTATION(guarded_by(mu))
// On a pointer member: what it points to is read and written only with the lock held.
#define CLIO_PT_GUARDED_BY(mu) CLIO_THREAD_ANNOTATION(pt_guarded_by(mu))
// On a mutex member: the order in which locks are taken.
#define CLIO_ACQUIRED_AFTER(...) CLIO_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define CLIO_ACQUIRED_BEFORE(...) CLIO_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))

// On a function: the caller must hold the lock.
#define CLIO_REQUIRES(...) CLIO_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
// On a function: the caller must not hold the lock (the function takes it).
#define CLIO_EXCLUDES(...) CLIO_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// On a function: it takes, releases or tries to take the lock.
#define CLIO_ACQUIRE(...) CLIO_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define CLIO_RELEASE(...) CLIO_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define CLIO_TRY_ACQUIRE(...) CLIO_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// On a function: it checks at run time that the lock is held, and tells the analysis so.
#define CLIO_ASSERT_HELD(x) CLIO_THREAD_ANNOTATION(assert_capability(x))
// On a function: it returns a reference to this lock.
#define CLIO_RETURN_CAPABILITY(x) CLIO_THREAD_ANNOTATION(lock_returned(x))
// On a function the analysis cannot follow; say why next to each use.
#define CLIO_NO_THREAD_SAFETY_ANALYSIS CLIO_THREAD_ANNOTATION(no_thread_safety_analysis)
