// The hub: lifecycle and use cases (hub_impl.h), and the public facade.
#include <civetweb.h>

#include <algorithm>
#include <cstdlib>
#include <unordered_set>

#include "clio/middleware/http_schema.h"
#include "clio/base/mutex.h"
#include "http_api.h"
#include "http_util.h"
#include "hub_impl.h"

namespace clio::console {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Record ids the in-process log reserves, kept in the hub's database.
class StoreIdReservations final : public log::IdReservations {
 public:
  explicit StoreIdReservations(Store& store) : store_(store) {}
  Result<uint64_t> reserved() override { return store_.reserved_record_ids(); }
  Status reserve(uint64_t through) override { return store_.reserve_record_ids(through); }

 private:
  Store& store_;
};

// "scheme://host[:port]" with an http or https scheme and nothing after.
bool valid_origin(std::string_view o) {
  const size_t scheme = o.find("://");
  if (scheme == std::string_view::npos) return false;
  const std::string_view s = o.substr(0, scheme), rest = o.substr(scheme + 3);
  return (s == "http" || s == "https") && !rest.empty() && rest.find_first_of("/?#@ ") == std::string_view::npos;
}

}  // namespace

uint64_t HubStats::published() const {
  uint64_t n = 0;
  for (const auto& i : instances) n += i.published;
  return n;
}

uint64_t HubStats::dropped_at_source() const {
  uint64_t n = 0;
  for (const auto& i : instances) n += i.dropped;
  return n;
}

// ---------------------------------------------------------------- lifecycle

Hub::Impl::Impl(HubOptions options, std::unique_ptr<log::LogReader> reader)
    : opts_(std::move(options)), reader_(std::move(reader)) {}

Hub::Impl::~Impl() { shutdown(); }

Status Hub::Impl::open() {
  if (reader_ == nullptr) return Status::InvalidArgument("the hub needs a record log reader");
  if (opts_.prefix.size() < 2 || opts_.prefix.front() != '/' || opts_.prefix.back() != '/') {
    return Status::InvalidArgument("prefix must start and end with '/', e.g. \"/_clio/\"");
  }
  for (char c : opts_.prefix) {
    if (c == '$' || c == '*' || c == '?' || c == '|' || c == '^') {
      return Status::InvalidArgument("prefix must not contain CivetWeb pattern characters ($*?|^)");
    }
  }
  if (!opts_.public_origin.empty() && !valid_origin(opts_.public_origin)) {
    return Status::InvalidArgument("public_origin must be scheme://host[:port], e.g. https://admin.example.com");
  }
  StoreOptions so;
  so.path = opts_.db_path;
  so.max_records = opts_.stored_records;
  so.max_record_age = opts_.stored_record_age;
  auto st = Store::open(so);
  if (!st.ok()) return st.status();
  store_ = std::move(*st);
  if (store_->repaired_permissions()) {
    std::fprintf(stderr,
                 "clio: the database %s was readable by other users; it is owner-only now. Its secrets may have "
                 "been read: rotate them (README, \"Security model\").\n",
                 opts_.db_path.c_str());
  }
  id_reservations_ = std::make_unique<StoreIdReservations>(*store_);

  // Secrets: the channel's token key and the admin session key live in the
  // database so tokens and sessions survive restarts.
  auto channel_key = store_->get_or_create_secret("channel_hmac_key", 32);
  if (!channel_key.ok()) return channel_key.status();
  auto session_key = store_->get_or_create_secret("admin_session_key", 32);
  if (!session_key.ok()) return session_key.status();
  std::string admin_key = opts_.admin_key;
  if (admin_key.empty()) {
    if (const char* env = std::getenv("CLIO_ADMIN_KEY"); env != nullptr && *env != '\0') admin_key = env;
  }
  if (admin_key.empty()) {
    auto generated = store_->get_or_create_secret("admin_key", 24);
    if (!generated.ok()) return generated.status();
    admin_key = base64url(*generated);
    key_generated_ = true;
  }
  if (admin_key.size() < 8) return Status::InvalidArgument("the admin key must be at least 8 characters");
  AdminAuth::Options ao;
  ao.admin_key = admin_key;
  ao.session_key = *session_key;
  ao.session_ttl = opts_.session_ttl;
  auth_ = std::make_unique<AdminAuth>(std::move(ao));
  const auto now = static_cast<int64_t>(now_seconds());
  auto revoked = store_->revoked_sessions(now);
  if (!revoked.ok()) return revoked.status();
  for (auto& [nonce, expires_at] : *revoked) auth_->revoke({std::move(nonce), expires_at}, now);
  throttle_ = std::make_unique<FailureThrottle>(FailureThrottle::Options{
      std::max(1, opts_.max_auth_failures_per_minute), std::chrono::seconds(60), 4096});

  channel::ChannelOptions cho = opts_.channel;
  cho.secret = *channel_key;
  cho.max_message_bytes = std::max<size_t>(cho.max_message_bytes, 1 << 20);
  if (cho.clock == nullptr) cho.clock = opts_.clock;
  cho.on_connect = [this](const std::string& id) {
    registry_->client_connected(id);
    presence_events_.fetch_add(1, std::memory_order_release);
  };
  cho.on_disconnect = [this](const std::string& id) {
    registry_->client_disconnected(id, now_seconds());
    presence_events_.fetch_add(1, std::memory_order_release);
  };
  channel_ = std::make_unique<channel::ChannelService>(std::move(cho));

  registry_ = std::make_unique<SubscriptionRegistry>(
      *store_, SubscriptionRegistry::Limits{opts_.max_subscriptions_per_client, opts_.max_subscriptions,
                                            opts_.grace_period});
  auto last_id = store_->max_record_id();
  if (!last_id.ok()) return last_id.status();
  recent_ = std::make_unique<RecentRecords>(*store_, opts_.memory_records, opts_.stored_records, *last_id);
  if (!opts_.jsonl_path.empty()) {
    auto w = JsonlWriter::open(opts_.jsonl_path);
    if (!w.ok()) return w.status();
    jsonl_ = std::move(*w);
  }
  Dispatcher::Options dopts;
  dopts.matcher.query = opts_.query;
  dopts.command_timeout = opts_.command_timeout;
  dispatcher_ = std::make_unique<Dispatcher>(
      Dispatcher::Deps{*reader_, *store_, *recent_, *channel_, jsonl_.get(), delivery_}, dopts);
  return restore_subscriptions();
}

// Stored subscriptions resume; their clients get the grace period to come back.
Status Hub::Impl::restore_subscriptions() {
  auto stored = store_->load_subscriptions();
  if (!stored.ok()) return stored.status();
  const double now = now_seconds();
  std::unordered_set<std::string> leased;
  for (const StoredSubscription& s : *stored) {
    auto parsed = matcher::parse(s.query, http_schema(), opts_.query);
    if (!parsed.ok()) {
      // The limits may have changed since it was stored: drop it, loudly.
      std::fprintf(stderr, "clio: dropping stored subscription %llu (%s): %s\n",
                   static_cast<unsigned long long>(s.id), s.query.c_str(), parsed.error.to_string().c_str());
      store_->delete_subscription(s.id);
      continue;
    }
    const double lease = s.lease_expires > 0 ? s.lease_expires : now + static_cast<double>(opts_.grace_period.count());
    auto sub = registry_->restore(s, parsed.query->canonical(), lease);
    if (Status st = dispatcher_->restore(sub, *parsed.query); !st.ok()) {
      std::fprintf(stderr, "clio: dropping stored subscription %llu (%s): %s\n",
                   static_cast<unsigned long long>(s.id), s.query.c_str(), st.message().c_str());
      registry_->abandon(*sub);
      continue;
    }
    registry_->activate(sub);
    // set_lease covers every subscription of the client: once per client.
    if (s.lease_expires <= 0 && leased.insert(s.client_id).second) store_->set_lease(s.client_id, lease);
  }
  return Status::Ok();
}

Status Hub::Impl::attach(mg_context* c) {
  if (c == nullptr) return Status::InvalidArgument("no CivetWeb context");
  if (ctx_ != nullptr) return Status::AlreadyExists("the console is already attached");
  ctx_ = c;
  public_origins_ = opts_.public_origin.empty() ? listening_origins(ctx_) : std::vector{opts_.public_origin};
  if (Status s = channel_->mount(ctx_, opts_.prefix + "channel"); !s.ok()) return s;
  http_ = std::make_unique<HttpApi>(*this);
  http_->mount(ctx_);
  auto position = store_->log_position();
  if (!position.ok()) return position.status();
  auto last_id = store_->max_record_id();
  if (!last_id.ok()) return last_id.status();
  if (Status s = dispatcher_->start({*position, *last_id, id_reservations_.get()}); !s.ok()) return s;
  keeper_ = std::thread([this] { run_keeper(); });
  return Status::Ok();
}

void Hub::Impl::shutdown() {
  std::call_once(shutdown_once_, [this] {
    {
      MutexLock lock(&keeper_mu_);
      stopping_ = true;
    }
    keeper_cv_.SignalAll();
    if (keeper_.joinable()) keeper_.join();
    if (dispatcher_) dispatcher_->stop();
    if (reader_) reader_->close();
    if (channel_) channel_->shutdown();
    if (store_) store_->flush();
    if (jsonl_) jsonl_->flush();
  });
}

void Hub::Impl::run_keeper() {
  MutexLock lock(&keeper_mu_);
  for (;;) {
    const auto next = std::chrono::steady_clock::now() + 1s;
    while (!stopping_ && keeper_cv_.WaitUntil(&keeper_mu_, next)) {
    }
    if (stopping_) return;
    keeper_mu_.Unlock();
    for (uint64_t id : registry_->expired(now_seconds())) remove_subscription(id, "expired");
    keeper_mu_.Lock();
  }
}

// ---------------------------------------------------------------- use cases

Result<std::shared_ptr<Subscription>> Hub::Impl::subscribe(const std::string& client_id, const std::string& text,
                                                           const matcher::Query& query, size_t backfill) {
  if (backfill > opts_.max_backfill) {
    return Status::InvalidArgument("backfill must be at most " + std::to_string(opts_.max_backfill));
  }
  // A client id the channel does not know could never receive a match.
  if (valid_client_id(client_id) && !channel_->has_client(client_id)) {
    return Status::NotFound("no channel for client id '" + client_id + "': get one with POST api/token first");
  }
  auto created = registry_->create(client_id, text, query.canonical(), channel_->is_connected(client_id), now_seconds());
  if (!created.ok()) return created.status();
  std::shared_ptr<Subscription> sub = std::move(*created);
  // Backfill from what is dispatched now; the dispatcher then sends what it
  // dispatches in between, before any live match: no gap, no duplicate.
  const uint64_t through = dispatcher_->last_id();
  if (backfill > 0) {
    auto found = recent_->search(&query, backfill, through + 1);
    if (found.ok() && !found->empty()) {
      std::vector<MatchItem> items;
      const std::vector<uint64_t> ids{sub->id};
      for (auto it = found->rbegin(); it != found->rend(); ++it) items.push_back({match_item(ids, to_json(**it)), 1});
      sub->matches.fetch_add(found->size(), std::memory_order_relaxed);
      send_matches(*channel_, client_id, items, delivery_);
    }
  }
  if (Status s = dispatcher_->subscribe(sub, query, through); !s.ok()) {
    registry_->abandon(*sub);
    return s;
  }
  registry_->activate(sub);
  return sub;
}

Status Hub::Impl::unsubscribe(uint64_t id) { return remove_subscription(id, "deleted"); }

Status Hub::Impl::remove_subscription(uint64_t id, const char* reason) {
  if (registry_->find(id) == nullptr) return Status::NotFound("no subscription " + std::to_string(id));
  if (Status s = dispatcher_->unsubscribe(id); !s.ok() && s.code() != StatusCode::kNotFound) return s;
  auto removed = registry_->remove(id);
  if (!removed.ok()) return removed.status();
  send_notice(*channel_, (*removed)->client_id, {{"kind", "subscription_removed"}, {"id", id}, {"reason", reason}});
  return Status::Ok();
}

Result<std::vector<std::shared_ptr<const Record>>> Hub::Impl::search(const matcher::Query* q, size_t limit) {
  return recent_->search(q, limit);
}

Result<Hub::Impl::CatchUp> Hub::Impl::matches_after(const std::string& client_id, uint64_t after, size_t limit) {
  std::vector<std::pair<uint64_t, matcher::Query>> queries;
  for (const auto& sub : registry_->list(client_id)) {
    auto parsed = matcher::parse(sub->query, http_schema(), opts_.query);
    if (parsed.ok()) queries.emplace_back(sub->id, *parsed.query);
  }
  CatchUp out;
  if (client_id.empty() || queries.empty()) return out;
  uint64_t oldest_seen = 0;
  bool reached = false;  // a record at or below `after` was seen: nothing between is missing
  Status s = recent_->visit([&](const std::shared_ptr<const Record>& r) {
    if (r->id <= after) {
      reached = true;
      return false;
    }
    oldest_seen = r->id;
    std::vector<uint64_t> ids;
    const HttpRecordView view(*r);
    for (const auto& [id, q] : queries) {
      if (q.matches(view)) ids.push_back(id);
    }
    if (ids.empty()) return true;
    if (out.items.size() < limit) {
      out.items.emplace_back(std::move(ids), r);
    } else {
      ++out.truncated;
    }
    return true;
  });
  if (!s.ok()) return s;
  if (!reached && after > 0 && oldest_seen > after + 1) out.lost = oldest_seen - after - 1;
  std::reverse(out.items.begin(), out.items.end());
  return out;
}

Status Hub::Impl::log_out(std::string_view cookie) {
  const auto now = static_cast<int64_t>(now_seconds());
  auto id = auth_->session_id(cookie, now);
  if (!id) return Status::Ok();
  auth_->revoke(*id, now);
  return store_->revoke_session(id->nonce, id->expires_at);
}

Status Hub::Impl::log_out_everywhere() {
  std::string key = random_token(32);
  if (Status s = store_->put_secret("admin_session_key", key); !s.ok()) return s;
  auth_->set_session_key(std::move(key));
  // Open consoles hold channel tokens, not cookies: close them for good;
  // reconnecting needs a session again.
  for (const std::string& id : channel_->connected_clients()) channel_->disconnect(id, channel::DisconnectReason::kRevoked);
  return Status::Ok();
}

bool Hub::Impl::origin_ok(std::string_view origin) const {
  if (origin.empty()) return false;
  auto is = [&](const std::string& o) { return o == origin; };
  return std::any_of(public_origins_.begin(), public_origins_.end(), is) ||
         std::any_of(opts_.allowed_origins.begin(), opts_.allowed_origins.end(), is);
}

HubStats Hub::Impl::stats() const {
  HubStats s;
  s.dispatched = dispatcher_->dispatched();
  // Pairs: handed to the channel (matched), refused by it at once, or
  // accepted and then delivered, lost or still pending, as it counts them.
  s.matched = delivery_.pairs.load(std::memory_order_relaxed);
  const channel::ChannelStats cs = channel_->stats();
  s.delivered = cs.weight_delivered - cs.weight_lost_after_delivery;
  s.dropped_channel = delivery_.refused.load(std::memory_order_relaxed) + cs.weight_lost;
  s.pending_channel = cs.weight_pending;
  s.presence_events = presence_events_.load(std::memory_order_acquire);
  for (const channel::ClientStats& c : channel_->all_client_stats()) {
    s.consoles.push_back({c.client_id, c.connected, c.weight_delivered - c.weight_lost_after_delivery, c.weight_lost,
                          c.weight_pending, c.delivered - c.lost_after_delivery, c.messages_lost, c.lost_unweighed});
  }
  const auto ss = store_->stats();
  s.stored = ss.written;
  s.store_dropped = ss.dropped;
  s.store_errors = ss.write_errors;
  s.store_lost = ss.lost;
  s.store_queued = ss.queued;
  s.log_gaps = dispatcher_->gaps();
  s.log_records_lost = dispatcher_->records_lost();
  s.subscriptions = registry_->size();
  s.sessions = channel_->session_count();
  s.last_id = dispatcher_->last_id();
  const FailureThrottle::Stats t = throttle_->stats();
  s.auth_failures_login_key = t.failures[FailureThrottle::kLoginKey];
  s.auth_failures_bearer = t.failures[FailureThrottle::kBearer];
  s.auth_failures_login_code = t.failures[FailureThrottle::kLoginCode];
  s.auth_refused = t.refused;
  s.log_engine = reader_->describe();
  s.log = reader_->stats();
  s.matcher = dispatcher_->matcher_stats();
  s.instances = dispatcher_->instances();
  // Instances the reader sees directly count as of now.
  for (const log::SourceReport& live : reader_->live_sources()) {
    auto it = std::find_if(s.instances.begin(), s.instances.end(),
                           [&](const InstanceStats& i) { return i.instance == live.instance; });
    if (it == s.instances.end()) it = s.instances.insert(s.instances.end(), InstanceStats{live.instance});
    it->published = live.published;
    it->dropped = live.dropped;
  }
  return s;
}

// ---------------------------------------------------------------- facade

Result<std::unique_ptr<Hub>> Hub::create(HubOptions options, std::unique_ptr<log::LogReader> reader) {
  auto impl = std::make_unique<Impl>(std::move(options), std::move(reader));
  if (Status s = impl->open(); !s.ok()) return s;
  return std::unique_ptr<Hub>(new Hub(std::move(impl)));
}

Hub::Hub(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Hub::~Hub() { impl_->shutdown(); }
Status Hub::attach(mg_context* ctx) { return impl_->attach(ctx); }
void Hub::shutdown() { impl_->shutdown(); }
std::string Hub::new_login_code() {
  return impl_->auth().new_login_code(static_cast<int64_t>(impl_->now_seconds()));
}
const std::string& Hub::prefix() const { return impl_->options().prefix; }
bool Hub::admin_key_generated() const { return impl_->key_generated(); }
HubStats Hub::stats() const { return impl_->stats(); }
log::LogReader& Hub::reader() { return impl_->reader(); }
void Hub::pause_dispatcher_for_test(bool paused) { impl_->dispatcher().pause_for_test(paused); }

}  // namespace clio::console
