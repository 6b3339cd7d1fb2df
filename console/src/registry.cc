#include "registry.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace clio::console {

bool valid_client_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
  });
}

Result<std::shared_ptr<Subscription>> SubscriptionRegistry::create(const std::string& client_id,
                                                                  const std::string& query,
                                                                  const std::string& normalized,
                                                                  bool client_connected, double now) {
  if (!valid_client_id(client_id)) {
    return Status::InvalidArgument("client_id must be 1-64 characters of letters, digits and . _ : @ -");
  }
  {
    MutexLock lock(&mu_);
    if (total_ >= limits_.total) {
      return Status::ResourceExhausted("the console holds its maximum of " + std::to_string(limits_.total) +
                                       " subscriptions");
    }
    if (per_client_[client_id] >= limits_.per_client) {
      return Status::ResourceExhausted("a client may hold at most " + std::to_string(limits_.per_client) +
                                       " subscriptions; remove one first");
    }
    per_client_[client_id]++;
    total_++;
  }
  auto release = [&] {
    MutexLock lock(&mu_);
    release_locked(client_id);
  };
  auto id = store_.next_subscription_id();
  if (!id.ok()) {
    release();
    return Status::Unavailable(id.status().message());
  }
  auto sub = std::make_shared<Subscription>();
  sub->id = *id;
  sub->client_id = client_id;
  sub->query = query;
  sub->normalized = normalized;
  sub->created = now;
  sub->lease_expires = client_connected ? 0.0 : now + static_cast<double>(limits_.grace_period.count());
  const StoredSubscription row{sub->id, client_id, query, sub->created, sub->lease_expires.load()};
  if (Status s = store_.insert_subscription(row); !s.ok()) {
    release();
    return Status::Unavailable(s.message());
  }
  return sub;
}

std::shared_ptr<Subscription> SubscriptionRegistry::restore(const StoredSubscription& row,
                                                            const std::string& normalized, double lease_expires) {
  auto sub = std::make_shared<Subscription>();
  sub->id = row.id;
  sub->client_id = row.client_id;
  sub->query = row.query;
  sub->normalized = normalized;
  sub->created = row.created;
  sub->lease_expires = lease_expires;
  MutexLock lock(&mu_);
  per_client_[row.client_id]++;
  total_++;
  return sub;
}

void SubscriptionRegistry::activate(const std::shared_ptr<Subscription>& sub) {
  MutexLock lock(&mu_);
  active_[sub->id] = sub;
}

Status SubscriptionRegistry::abandon(const Subscription& sub) {
  Status s = store_.delete_subscription(sub.id);
  MutexLock lock(&mu_);
  release_locked(sub.client_id);
  return s.code() == StatusCode::kNotFound ? Status::Ok() : s;
}

Result<std::shared_ptr<Subscription>> SubscriptionRegistry::remove(uint64_t id) {
  std::shared_ptr<Subscription> sub;
  {
    MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it == active_.end()) return Status::NotFound("no subscription " + std::to_string(id));
    sub = std::move(it->second);
    active_.erase(it);
    release_locked(sub->client_id);
  }
  // A row the store refuses to delete now comes back at the next start and
  // expires with its client's lease.
  if (Status s = store_.delete_subscription(id); !s.ok() && s.code() != StatusCode::kNotFound) {
    std::fprintf(stderr, "clio: subscription %llu removed, but not from the database: %s\n",
                 static_cast<unsigned long long>(id), s.message().c_str());
  }
  return sub;
}

void SubscriptionRegistry::release_locked(const std::string& client_id) {
  auto it = per_client_.find(client_id);
  if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
  if (total_ > 0) --total_;
}

std::shared_ptr<Subscription> SubscriptionRegistry::find(uint64_t id) const {
  MutexLock lock(&mu_);
  auto it = active_.find(id);
  return it == active_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Subscription>> SubscriptionRegistry::list(const std::string& client_id) const {
  std::vector<std::shared_ptr<Subscription>> v;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, s] : active_) {
      if (client_id.empty() || s->client_id == client_id) v.push_back(s);
    }
  }
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  return v;
}

std::vector<std::string> SubscriptionRegistry::clients() const {
  std::vector<std::string> out;
  MutexLock lock(&mu_);
  for (const auto& [id, s] : active_) out.push_back(s->client_id);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

size_t SubscriptionRegistry::size() const {
  MutexLock lock(&mu_);
  return active_.size();
}

void SubscriptionRegistry::client_connected(const std::string& client_id) {
  {
    MutexLock lock(&mu_);
    for (auto& [id, s] : active_) {
      if (s->client_id == client_id) s->lease_expires = 0;
    }
  }
  store_.set_lease(client_id, 0);
}

void SubscriptionRegistry::client_disconnected(const std::string& client_id, double now) {
  const double lease = now + static_cast<double>(limits_.grace_period.count());
  {
    MutexLock lock(&mu_);
    for (auto& [id, s] : active_) {
      if (s->client_id == client_id) s->lease_expires = lease;
    }
  }
  store_.set_lease(client_id, lease);
}

std::vector<uint64_t> SubscriptionRegistry::expired(double now) const {
  std::vector<uint64_t> out;
  MutexLock lock(&mu_);
  for (const auto& [id, s] : active_) {
    const double lease = s->lease_expires.load();
    if (lease > 0 && lease <= now) out.push_back(id);
  }
  return out;
}

}  // namespace clio::console
