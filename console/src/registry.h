// SubscriptionRegistry: the hub's table of subscriptions: who owns which,
// the quotas, the leases of disconnected clients, and their rows in the
// store. It does not match anything: the dispatcher owns the matcher, and
// the hub keeps the two in step (create, then subscribe in the dispatcher,
// then activate; or abandon when the dispatcher refuses).
//
//   SubscriptionRegistry reg(store, limits);
//   auto sub = reg.create("c-1", "status:5xx", "status_code in 500..599", connected);
//   if (!sub.ok()) return sub.status();          // quota, bad client id, store
//   ... dispatcher subscribes it ... reg.activate(*sub);   // or reg.abandon(*sub)
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "clio/base/mutex.h"
#include "clio/base/status.h"
#include "clio/console/store.h"

namespace clio::console {

// One subscription. Fields other than `matches` and `lease_expires` are
// constant after creation; those two are atomics, so a Subscription is safe
// for concurrent use by multiple threads.
struct Subscription {
  uint64_t id = 0;
  std::string client_id;
  std::string query;       // as the admin typed it
  std::string normalized;  // the canonical form
  double created = 0;
  std::atomic<double> lease_expires{0};  // 0: client connected (or never left)
  std::atomic<uint64_t> matches{0};
};

// Safe for concurrent use by multiple threads. Borrows `store`, which must
// outlive it. Every operation that writes the store does so synchronously
// on the calling thread (small statements).
class SubscriptionRegistry {
 public:
  struct Limits {
    size_t per_client = 100;
    size_t total = 10000;
    std::chrono::seconds grace_period{5 * 60};
  };
  SubscriptionRegistry(Store& store, Limits limits) : store_(store), limits_(limits) {}
  // Not copyable.
  SubscriptionRegistry(const SubscriptionRegistry&) = delete;
  SubscriptionRegistry& operator=(const SubscriptionRegistry&) = delete;

  // Reserves a place (kResourceExhausted beyond the quotas), takes a new id
  // and stores the row (kUnavailable when the store fails). kInvalidArgument
  // for a malformed client id. The subscription is not listed until
  // activate(); abandon() undoes it.
  Result<std::shared_ptr<Subscription>> create(const std::string& client_id, const std::string& query,
                                               const std::string& normalized, bool client_connected, double now);
  // Adds a loaded row (at start), counting it against the quotas.
  std::shared_ptr<Subscription> restore(const StoredSubscription& row, const std::string& normalized,
                                        double lease_expires);
  void activate(const std::shared_ptr<Subscription>& sub);
  // Deletes the row and releases the place of a subscription that never
  // became active.
  Status abandon(const Subscription& sub);
  // Removes an active subscription: no longer listed, row deleted (a row
  // the store refuses to delete is reported on stderr, comes back at the
  // next start and expires with its client's lease), place released.
  // kNotFound when it is not active. Returns it.
  Result<std::shared_ptr<Subscription>> remove(uint64_t id);

  std::shared_ptr<Subscription> find(uint64_t id) const;
  // Active subscriptions of `client_id` ("" = all), by increasing id.
  std::vector<std::shared_ptr<Subscription>> list(const std::string& client_id) const;
  // Client ids that hold active subscriptions.
  std::vector<std::string> clients() const;
  size_t size() const;

  // Leases: a client's subscriptions are kept for the grace period after it
  // disconnects, and expire unless it comes back.
  void client_connected(const std::string& client_id);
  void client_disconnected(const std::string& client_id, double now);
  // Active subscriptions whose lease ended at or before `now`.
  std::vector<uint64_t> expired(double now) const;

 private:
  void release_locked(const std::string& client_id) CLIO_REQUIRES(mu_);

  // Constant after construction.
  Store& store_;
  const Limits limits_;

  mutable Mutex mu_;
  // Guarded by mu_.
  std::unordered_map<uint64_t, std::shared_ptr<Subscription>> active_ CLIO_GUARDED_BY(mu_);
  std::unordered_map<std::string, size_t> per_client_ CLIO_GUARDED_BY(mu_);  // active + reserved
  size_t total_ CLIO_GUARDED_BY(mu_) = 0;  // active + reserved
};

// Whether `id` is a well-formed channel client id: 1-64 characters of
// letters, digits and . _ : @ -.
bool valid_client_id(const std::string& id);

}  // namespace clio::console
