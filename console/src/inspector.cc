#include <civetweb.h>
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <unordered_set>

#include "clio/middleware/http_schema.h"
#include "clio/middleware/record_binary.h"
#include "inspector_impl.h"

namespace clio::console {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A channel message of the console carries at most about this much record
// JSON; larger batches are split over several messages.
constexpr size_t kMessageBudget = 60 * 1024;
constexpr size_t kBatchMax = 1024;
constexpr auto kCommandTimeout = 10s;

bool valid_client_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '@' || c == '-')) {
      return false;
    }
  }
  return true;
}

json subscription_json(const Subscription& s) {
  return {{"id", s.id},
          {"client_id", s.client_id},
          {"query", s.query},
          {"normalized", s.normalized},
          {"created", s.created},
          {"matches", s.matches.load(std::memory_order_relaxed)}};
}

// {"subscriptions":[ids],"record":<json>}
std::string item_text(const std::vector<uint64_t>& ids, std::string_view record_json) {
  std::string s = "{\"subscriptions\":[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s.push_back(',');
    s += std::to_string(ids[i]);
  }
  s += "],\"record\":";
  s += record_json;
  s.push_back('}');
  return s;
}

}  // namespace

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---------------------------------------------------------------- lifecycle

Status Inspector::Impl::open() {
  if (opts.prefix.size() < 2 || opts.prefix.front() != '/' || opts.prefix.back() != '/') {
    return Status::InvalidArgument("prefix must start and end with '/', e.g. \"/_clio/\"");
  }
  for (char c : opts.prefix) {
    if (c == '$' || c == '*' || c == '?' || c == '|' || c == '^') {
      return Status::InvalidArgument("prefix must not contain CivetWeb pattern characters ($*?|^)");
    }
  }
  StoreOptions so;
  so.path = opts.db_path;
  so.max_records = opts.stored_records;
  so.max_record_age = opts.stored_record_age;
  auto st = Store::open(so);
  if (!st.ok()) return st.status();
  store = std::move(*st);

  // Secrets: the channel's token key and the admin session key live in the
  // database so tokens and sessions survive restarts.
  auto channel_key = store->get_or_create_secret("channel_hmac_key", 32);
  if (!channel_key.ok()) return channel_key.status();
  auto session_key = store->get_or_create_secret("admin_session_key", 32);
  if (!session_key.ok()) return session_key.status();
  std::string admin_key = opts.admin_key;
  if (admin_key.empty()) {
    if (const char* env = std::getenv("CLIO_ADMIN_KEY"); env != nullptr && *env != '\0') admin_key = env;
  }
  if (admin_key.empty()) {
    auto generated = store->get_or_create_secret("admin_key", 24);
    if (!generated.ok()) return generated.status();
    admin_key = base64url(*generated);
    key_generated = true;
  }
  if (admin_key.size() < 8) return Status::InvalidArgument("the admin key must be at least 8 characters");
  AdminAuth::Options ao;
  ao.admin_key = admin_key;
  ao.session_key = *session_key;
  ao.session_ttl = opts.session_ttl;
  ao.allowed_origins = opts.allowed_origins;
  auth = std::make_unique<AdminAuth>(std::move(ao));

  CaptureOptions co = opts.capture;
  if (std::find(co.exclude_prefixes.begin(), co.exclude_prefixes.end(), opts.prefix) == co.exclude_prefixes.end()) {
    co.exclude_prefixes.push_back(opts.prefix);
  }
  capture = std::make_unique<Capture>(std::move(co));

  matcher::MatcherOptions mo;
  mo.query = opts.query;
  matcher = std::make_unique<matcher::Matcher>(http_schema(), mo);

  channel::ChannelOptions cho = opts.channel;
  cho.secret = *channel_key;
  cho.max_message_bytes = std::max<size_t>(cho.max_message_bytes, 1 << 20);
  cho.on_connect = [this](const std::string& id) { on_connect(id); };
  cho.on_disconnect = [this](const std::string& id) { on_disconnect(id); };
  channel = std::make_unique<channel::ChannelService>(std::move(cho));

  if (!opts.jsonl_path.empty()) {
    if (opts.jsonl_path == "-") {
      jsonl = stdout;
    } else {
      jsonl = std::fopen(opts.jsonl_path.c_str(), "ae");
      if (jsonl == nullptr) {
        return Status::Unavailable("cannot open '" + opts.jsonl_path + "' for writing: " + std::strerror(errno));
      }
      owns_jsonl = true;
    }
  }

  // Stored subscriptions resume; their clients get the grace period to come back.
  auto stored = store->load_subscriptions();
  if (!stored.ok()) return stored.status();
  next_id = 0;
  if (auto m = store->max_record_id(); m.ok()) next_id = *m;
  last_id = next_id;
  const double now = now_seconds();
  std::unordered_set<std::string> leased;
  for (const StoredSubscription& s : *stored) {
    auto parsed = matcher::parse(s.query, http_schema(), opts.query);
    if (!parsed.ok()) {
      // The limits may have changed since it was stored: drop it, loudly.
      std::fprintf(stderr, "clio: dropping stored subscription %llu (%s): %s\n",
                   static_cast<unsigned long long>(s.id), s.query.c_str(), parsed.error.to_string().c_str());
      store->delete_subscription(s.id);
      continue;
    }
    auto sub = std::make_shared<Subscription>();
    sub->id = s.id;
    sub->client_id = s.client_id;
    sub->query = s.query;
    sub->normalized = parsed.query->canonical();
    sub->created = s.created;
    const double lease = s.lease_expires > 0 ? s.lease_expires : now + static_cast<double>(opts.grace_period.count());
    sub->lease_expires = lease;
    // set_lease covers every subscription of the client: once per client.
    if (s.lease_expires <= 0 && leased.insert(s.client_id).second) store->set_lease(s.client_id, lease);
    if (auto e = matcher->subscribe(s.id, *parsed.query); !e.ok()) return Status::Internal(e.to_string());
    subs[s.id] = sub;
    per_client[s.client_id]++;
    total_reserved++;
  }
  return Status::Ok();
}

Status Inspector::Impl::attach(mg_context* c) {
  if (c == nullptr) return Status::InvalidArgument("no CivetWeb context");
  if (ctx != nullptr) return Status::AlreadyExists("the inspector is already attached");
  ctx = c;
  if (Status s = channel->mount(ctx, opts.prefix + "channel"); !s.ok()) return s;
  mg_set_auth_handler(ctx, opts.prefix.c_str(), &Impl::handle_auth, this);
  mg_set_request_handler(ctx, opts.prefix.c_str(), &Impl::handle_request, this);
  running = true;
  dispatcher = std::thread([this] {
    pthread_setname_np(pthread_self(), "clio-dispatch");
    run_dispatcher();
  });
  return Status::Ok();
}

void Inspector::Impl::shutdown() {
  if (shut_down.exchange(true)) return;
  stopping = true;
  if (dispatcher.joinable()) dispatcher.join();
  running = false;
  {
    // Commands that will never run: release their waiters.
    std::lock_guard<std::mutex> lock(cmd_mu);
    for (auto& c : commands) c->done.set_value();
    commands.clear();
  }
  if (channel) channel->shutdown();
  if (store) store->flush();
  if (jsonl) std::fflush(jsonl);
}

InspectorStats Inspector::Impl::stats() const {
  InspectorStats s;
  const auto cs = capture->stats();
  s.captured = cs.captured;
  s.dropped_queue = cs.dropped_queue;
  s.dispatched = dispatched.load();
  s.matched = matched.load();
  s.delivered = delivered.load();
  s.dropped_channel = dropped_channel.load();
  const auto ss = store->stats();
  s.stored = ss.written;
  s.store_dropped = ss.dropped;
  s.store_errors = ss.write_errors;
  s.queue_depth = capture->queue().depth();
  {
    std::lock_guard<std::mutex> lock(subs_mu);
    s.subscriptions = subs.size();
  }
  s.sessions = channel->session_count();
  s.last_id = last_id.load();
  return s;
}

bool Inspector::Impl::drain(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (dispatched.load() >= capture->stats().captured && capture->queue().depth() == 0) return true;
    std::this_thread::sleep_for(2ms);
  }
  return false;
}

// ---------------------------------------------------------------- subscriptions

bool Inspector::Impl::post(const std::shared_ptr<Command>& c) {
  auto done = c->done.get_future();
  {
    std::lock_guard<std::mutex> lock(cmd_mu);
    if (!running || stopping) return false;
    commands.push_back(c);
  }
  return done.wait_for(kCommandTimeout) == std::future_status::ready && !stopping;
}

Inspector::Impl::SubscribeOutcome Inspector::Impl::subscribe(const std::string& client_id,
                                                             const std::string& text, size_t backfill) {
  SubscribeOutcome out;
  auto fail = [&](int status, const std::string& code, const std::string& message) {
    out.http_status = status;
    out.body = {{"error", {{"code", code}, {"message", message}}}};
    return out;
  };
  if (!valid_client_id(client_id)) {
    return fail(400, "bad_client_id", "client_id must be 1-64 characters of letters, digits and . _ : @ -");
  }
  if (backfill > opts.max_backfill) {
    return fail(400, "bad_backfill", "backfill must be at most " + std::to_string(opts.max_backfill));
  }
  auto parsed = matcher::parse(text, http_schema(), opts.query);
  if (!parsed.ok()) {
    out.http_status = 400;
    out.body = {{"error", query_error_json(parsed.error)}};
    return out;
  }
  {
    std::lock_guard<std::mutex> lock(subs_mu);
    if (total_reserved >= opts.max_subscriptions) {
      return fail(429, "too_many_subscriptions",
                  "the inspector holds its maximum of " + std::to_string(opts.max_subscriptions) + " subscriptions");
    }
    if (per_client[client_id] >= opts.max_subscriptions_per_client) {
      return fail(429, "too_many_subscriptions",
                  "a client may hold at most " + std::to_string(opts.max_subscriptions_per_client) +
                      " subscriptions; remove one first");
    }
    per_client[client_id]++;
    total_reserved++;
  }
  auto release = [&] {
    std::lock_guard<std::mutex> lock(subs_mu);
    if (--per_client[client_id] == 0) per_client.erase(client_id);
    total_reserved--;
  };
  auto id = store->next_subscription_id();
  if (!id.ok()) {
    release();
    return fail(503, "store_unavailable", id.status().message());
  }
  auto sub = std::make_shared<Subscription>();
  sub->id = *id;
  sub->client_id = client_id;
  sub->query = text;
  sub->normalized = parsed.query->canonical();
  sub->created = now_seconds();
  sub->lease_expires = channel->is_connected(client_id) ? 0.0 : sub->created + static_cast<double>(opts.grace_period.count());
  StoredSubscription row{sub->id, client_id, text, sub->created, sub->lease_expires.load()};
  if (Status s = store->insert_subscription(row); !s.ok()) {
    release();
    return fail(503, "store_unavailable", s.message());
  }
  auto cmd = std::make_shared<Command>();
  cmd->subscribe = true;
  cmd->sub = sub;
  cmd->query = *parsed.query;
  cmd->backfill = backfill;
  if (!post(cmd)) {
    // Not run: undo what we did. (If it ran late, the dispatcher owns it.)
    return fail(503, "unavailable", "the inspector is shutting down");
  }
  out.body = subscription_json(*sub);
  return out;
}

int Inspector::Impl::unsubscribe(uint64_t id, json& body) {
  std::shared_ptr<Subscription> sub;
  {
    std::lock_guard<std::mutex> lock(subs_mu);
    auto it = subs.find(id);
    if (it != subs.end()) sub = it->second;
  }
  if (!sub) {
    body = {{"error", {{"code", "not_found"}, {"message", "no subscription " + std::to_string(id)}}}};
    return 404;
  }
  auto cmd = std::make_shared<Command>();
  cmd->subscribe = false;
  cmd->sub = sub;
  if (!post(cmd)) {
    body = {{"error", {{"code", "unavailable"}, {"message", "the inspector is shutting down"}}}};
    return 503;
  }
  body = {{"id", id}};
  return 200;
}

json Inspector::Impl::list_subscriptions(const std::string& client_id) const {
  std::vector<std::shared_ptr<Subscription>> v;
  {
    std::lock_guard<std::mutex> lock(subs_mu);
    for (const auto& [id, s] : subs) {
      if (client_id.empty() || s->client_id == client_id) v.push_back(s);
    }
  }
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  json arr = json::array();
  for (const auto& s : v) arr.push_back(subscription_json(*s));
  return {{"subscriptions", arr}};
}

json Inspector::Impl::subscription(uint64_t id) const {
  std::shared_ptr<Subscription> s;
  {
    std::lock_guard<std::mutex> lock(subs_mu);
    auto it = subs.find(id);
    if (it == subs.end()) return nullptr;
    s = it->second;
  }
  return subscription_json(*s);
}

Result<std::vector<std::shared_ptr<const Record>>> Inspector::Impl::search(const matcher::Query* q, size_t limit) {
  std::vector<std::shared_ptr<const Record>> out;
  std::vector<std::shared_ptr<const Record>> recent;
  {
    std::lock_guard<std::mutex> lock(ring_mu);
    recent.assign(ring.begin(), ring.end());
  }
  uint64_t oldest = 0;
  for (auto it = recent.rbegin(); it != recent.rend() && out.size() < limit; ++it) {
    oldest = (*it)->id;
    if (q == nullptr || q->matches(HttpRecordView(**it))) out.push_back(*it);
  }
  if (out.size() >= limit) return out;
  if (!recent.empty() && recent.size() < opts.memory_records) return out;  // the ring holds everything
  // Older records from the store, newest first, bounded by what it keeps.
  if (Status s = store->flush(); !s.ok()) return s;
  const uint64_t before = recent.empty() ? 0 : oldest;
  Status s = store->scan(before, opts.stored_records, [&](Record&& r) {
    if (q == nullptr || q->matches(HttpRecordView(r))) out.push_back(std::make_shared<const Record>(std::move(r)));
    return out.size() < limit;
  });
  if (!s.ok()) return s;
  return out;
}

// ---------------------------------------------------------------- dispatcher

void Inspector::Impl::run_dispatcher() {
  std::vector<std::unique_ptr<Record>> batch;
  batch.reserve(kBatchMax);
  while (!stopping.load(std::memory_order_acquire)) {
    run_commands();
    if (paused_for_test.load(std::memory_order_acquire)) {
      pause_acked = true;
      std::this_thread::sleep_for(5ms);
      continue;
    }
    pause_acked = false;
    batch.clear();
    capture->queue().pop_batch(batch, kBatchMax, 20ms);
    if (!batch.empty()) process_batch(batch);
    notify_dropped();
    const double now = now_seconds();
    if (now >= next_expiry_check) {
      expire_leases(now);
      next_expiry_check = now + 1.0;
    }
  }
  // Dispatch what is already queued, then stop.
  for (int i = 0; i < 64; ++i) {
    batch.clear();
    if (capture->queue().pop_batch(batch, kBatchMax, 0ms) == 0) break;
    process_batch(batch);
  }
}

void Inspector::Impl::process_batch(std::vector<std::unique_ptr<Record>>& batch) {
  // Every record is encoded in binary for the store; JSON, which costs more
  // to produce and three times the bytes, only for the records that matched
  // (the channel's messages) and for the JSON-lines log when one is open.
  RecordChunk chunk;
  chunk.first_id = next_id + 1;
  chunk.count = batch.size();
  chunk.min_time = batch.front()->time;
  chunk.max_time = batch.front()->time;
  chunk.body = store->take_buffer();
  chunk.body.reserve(batch.size() * 256);
  // The batch's records share one owner: the ring's pointers alias it, so a
  // batch costs one allocation for ownership, not one per record. When the
  // last of them leaves the ring, the records go back to capture for reuse.
  std::shared_ptr<std::vector<std::unique_ptr<Record>>> owner(
      new std::vector<std::unique_ptr<Record>>(std::move(batch)),
      [c = capture.get()](std::vector<std::unique_ptr<Record>>* v) {
        c->recycle(*v);
        delete v;
      });
  batch = std::vector<std::unique_ptr<Record>>();
  batch.reserve(kBatchMax);
  const std::vector<std::unique_ptr<Record>>& records = *owner;
  for (const auto& r : records) {
    r->id = ++next_id;
    chunk.min_time = std::min(chunk.min_time, r->time);
    chunk.max_time = std::max(chunk.max_time, r->time);
    append_binary(*r, chunk.body);
  }
  std::vector<std::shared_ptr<const Record>> evicted;  // freed after the lock is released
  {
    std::lock_guard<std::mutex> lock(ring_mu);
    for (const auto& r : records) ring.emplace_back(owner, r.get());
    while (ring.size() > opts.memory_records) {
      evicted.push_back(std::move(ring.front()));
      ring.pop_front();
    }
  }
  evicted.clear();
  last_id = next_id;

  // Match, then group by client: client -> items, each item one record with
  // the ids of that client's subscriptions it matched.
  std::unordered_map<std::string, std::vector<Item>> out;
  std::vector<uint64_t> ids;
  std::unordered_map<std::string, std::vector<uint64_t>> by_client;
  std::string json_text;
  for (size_t k = 0; k < records.size(); ++k) {
    ids.clear();
    matcher->match(HttpRecordView(*records[k]), ids);
    if (ids.empty()) continue;
    std::sort(ids.begin(), ids.end());
    by_client.clear();
    {
      std::lock_guard<std::mutex> lock(subs_mu);
      for (uint64_t id : ids) {
        auto it = subs.find(id);
        if (it == subs.end()) continue;
        it->second->matches.fetch_add(1, std::memory_order_relaxed);
        by_client[it->second->client_id].push_back(id);
      }
    }
    matched.fetch_add(ids.size(), std::memory_order_relaxed);
    json_text.clear();
    append_json(*records[k], json_text);
    for (auto& [client, sub_ids] : by_client) out[client].push_back({item_text(sub_ids, json_text), sub_ids.size()});
  }
  if (jsonl) {
    std::string lines;
    lines.reserve(records.size() * 512);
    for (const auto& r : records) {
      append_json(*r, lines);
      lines.push_back('\n');
    }
    std::fwrite(lines.data(), 1, lines.size(), jsonl);
    std::fflush(jsonl);
  }
  store->append_chunk(std::move(chunk));
  for (const auto& [client, items] : out) send_items(client, items);
  dispatched.fetch_add(records.size(), std::memory_order_release);
}

void Inspector::Impl::send_items(const std::string& client_id, const std::vector<Item>& items) {
  size_t i = 0;
  while (i < items.size()) {
    std::string msg = "{\"kind\":\"matches\",\"items\":[";
    const size_t first = i;
    size_t pairs = 0;
    while (i < items.size() && (i == first || msg.size() + items[i].text.size() < kMessageBudget)) {
      if (i > first) msg.push_back(',');
      msg += items[i].text;
      pairs += items[i].pairs;
      ++i;
    }
    msg += "]}";
    if (channel->send_message(client_id, std::move(msg)) == channel::SendResult::kQueued) {
      delivered.fetch_add(pairs, std::memory_order_relaxed);
    } else {
      dropped_channel.fetch_add(pairs, std::memory_order_relaxed);
    }
  }
}

void Inspector::Impl::send_notice(const std::string& client_id, const json& notice) {
  channel->send_message(client_id, notice.dump());
}

void Inspector::Impl::run_commands() {
  std::deque<std::shared_ptr<Command>> todo;
  {
    std::lock_guard<std::mutex> lock(cmd_mu);
    todo.swap(commands);
  }
  for (auto& c : todo) {
    if (c->subscribe) {
      const std::shared_ptr<Subscription>& sub = c->sub;
      // Backfill: the newest matching records already dispatched, sent
      // oldest first before any live match of this subscription.
      if (c->backfill > 0) {
        auto found = search(&*c->query, c->backfill);
        if (found.ok() && !found->empty()) {
          std::vector<Item> items;
          const std::vector<uint64_t> ids{sub->id};
          for (auto it = found->rbegin(); it != found->rend(); ++it) items.push_back({item_text(ids, to_json(**it)), 1});
          sub->matches.fetch_add(found->size(), std::memory_order_relaxed);
          send_items(sub->client_id, items);
        }
      }
      if (auto e = matcher->subscribe(sub->id, *c->query); e.ok()) {
        std::lock_guard<std::mutex> lock(subs_mu);
        subs[sub->id] = sub;
      }
    } else {
      remove_subscription(c->sub->id, "deleted");
    }
    c->done.set_value();
  }
}

void Inspector::Impl::remove_subscription(uint64_t id, const char* reason) {
  std::shared_ptr<Subscription> sub;
  {
    std::lock_guard<std::mutex> lock(subs_mu);
    auto it = subs.find(id);
    if (it == subs.end()) return;
    sub = it->second;
    subs.erase(it);
    if (--per_client[sub->client_id] == 0) per_client.erase(sub->client_id);
    total_reserved--;
  }
  matcher->unsubscribe(id);
  store->delete_subscription(id);
  send_notice(sub->client_id, {{"kind", "subscription_removed"}, {"id", id}, {"reason", reason}});
}

void Inspector::Impl::expire_leases(double now) {
  std::vector<uint64_t> expired;
  {
    std::lock_guard<std::mutex> lock(subs_mu);
    for (const auto& [id, s] : subs) {
      const double lease = s->lease_expires.load();
      if (lease > 0 && lease <= now) expired.push_back(id);
    }
  }
  for (uint64_t id : expired) remove_subscription(id, "expired");
}

void Inspector::Impl::notify_dropped() {
  const uint64_t dropped = capture->queue().dropped();
  if (dropped <= dropped_reported) return;
  const json notice = {{"kind", "dropped"}, {"count", dropped - dropped_reported}};
  dropped_reported = dropped;
  std::vector<std::string> clients;
  {
    std::lock_guard<std::mutex> lock(subs_mu);
    for (const auto& [client, n] : per_client) clients.push_back(client);
  }
  for (const auto& c : clients) {
    if (channel->is_connected(c)) send_notice(c, notice);
  }
}

void Inspector::Impl::on_connect(const std::string& client_id) {
  {
    std::lock_guard<std::mutex> lock(subs_mu);
    for (auto& [id, s] : subs) {
      if (s->client_id == client_id) s->lease_expires = 0;
    }
  }
  store->set_lease(client_id, 0);
}

void Inspector::Impl::on_disconnect(const std::string& client_id) {
  const double lease = now_seconds() + static_cast<double>(opts.grace_period.count());
  {
    std::lock_guard<std::mutex> lock(subs_mu);
    for (auto& [id, s] : subs) {
      if (s->client_id == client_id) s->lease_expires = lease;
    }
  }
  store->set_lease(client_id, lease);
}

// ---------------------------------------------------------------- facade

Result<std::unique_ptr<Inspector>> Inspector::create(InspectorOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (Status s = impl->open(); !s.ok()) return s;
  return std::unique_ptr<Inspector>(new Inspector(std::move(impl)));
}

Inspector::Inspector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Inspector::~Inspector() {
  impl_->shutdown();
  if (impl_->owns_jsonl) std::fclose(impl_->jsonl);
}

Status Inspector::install(mg_callbacks* callbacks) { return impl_->capture->install(callbacks); }
Status Inspector::attach(mg_context* ctx) { return impl_->attach(ctx); }
void Inspector::shutdown() { impl_->shutdown(); }
std::string Inspector::new_login_code() {
  return impl_->auth->new_login_code(static_cast<int64_t>(now_seconds()));
}
const std::string& Inspector::prefix() const { return impl_->opts.prefix; }
bool Inspector::admin_key_generated() const { return impl_->key_generated; }
InspectorStats Inspector::stats() const { return impl_->stats(); }
Capture& Inspector::capture() { return *impl_->capture; }
bool Inspector::drain_for_test(std::chrono::milliseconds timeout) { return impl_->drain(timeout); }
void Inspector::pause_dispatcher_for_test(bool paused) {
  impl_->paused_for_test = paused;
  // Wait (bounded) until the dispatcher has seen it, so no batch is in flight.
  for (int i = 0; i < 1000 && paused && !impl_->pause_acked.load(); ++i) std::this_thread::sleep_for(1ms);
}

}  // namespace clio::console
