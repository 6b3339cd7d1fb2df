// The inspector's internals, shared by inspector.cc (lifecycle, dispatcher,
// subscriptions) and http_api.cc (routes, admin auth).
//
// Threads: CivetWeb workers run the HTTP API; the dispatcher thread owns the
// matcher's contents, the record ring's writes and all sending of matches;
// the channel's event thread calls the presence hooks. Subscribing and
// unsubscribing are commands run by the dispatcher between batches, so a
// subscription sees exactly the records after its backfill (no gap, no
// duplicate) and no match is delivered after an unsubscribe returns.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "admin_auth.h"
#include "http_util.h"
#include "clio/channel/channel.h"
#include "clio/console/inspector.h"
#include "clio/console/store.h"
#include "clio/matcher/matcher.h"
#include "clio/middleware/capture.h"

struct mg_connection;

namespace clio::console {

// One live subscription. Fields other than `matches` and `lease_expires` are
// constant after creation; those two are atomics.
struct Subscription {
  uint64_t id = 0;
  std::string client_id;
  std::string query;
  std::string normalized;
  double created = 0;
  std::atomic<double> lease_expires{0};  // 0: client connected (or never left)
  std::atomic<uint64_t> matches{0};
};

// Safe for concurrent use by multiple threads (see the thread notes above).
class [[gnu::visibility("hidden")]] Inspector::Impl {
 public:
  explicit Impl(InspectorOptions o) : opts(std::move(o)) {}

  // --- lifecycle (inspector.cc)
  Status open();
  Status attach(mg_context* ctx);
  void shutdown();
  InspectorStats stats() const;
  bool drain(std::chrono::milliseconds timeout);

  // --- subscriptions, called by API threads (inspector.cc)
  struct SubscribeOutcome {
    int http_status = 201;
    nlohmann::json body;
  };
  SubscribeOutcome subscribe(const std::string& client_id, const std::string& text, size_t backfill);
  // 404 when unknown.
  int unsubscribe(uint64_t id, nlohmann::json& body);
  nlohmann::json list_subscriptions(const std::string& client_id) const;
  // One subscription as JSON, or null when unknown.
  nlohmann::json subscription(uint64_t id) const;
  // Newest first, matching `q` (null = all), at most `limit`; scans at most
  // the records kept in memory and in the store.
  Result<std::vector<std::shared_ptr<const Record>>> search(const matcher::Query* q, size_t limit);

  // --- HTTP (http_api.cc)
  static int handle_request(mg_connection* conn, void* self);
  static int handle_auth(mg_connection* conn, void* self);
  int route(mg_connection* conn);
  int authorize(mg_connection* conn);

  // --- dispatcher (inspector.cc)
  void run_dispatcher();
  void process_batch(std::vector<std::unique_ptr<Record>>& batch);
  void run_commands();
  void expire_leases(double now);
  void notify_dropped();
  // One match item: {"subscriptions":[..],"record":{..}}, covering `pairs`
  // (record, subscription) matches.
  struct Item {
    std::string text;
    size_t pairs = 1;
  };
  // Sends items to a client as one or more "matches" messages, counting
  // the pairs as delivered or dropped.
  void send_items(const std::string& client_id, const std::vector<Item>& items);
  void send_notice(const std::string& client_id, const nlohmann::json& notice);
  void remove_subscription(uint64_t id, const char* reason);

  // Presence (channel event thread).
  void on_connect(const std::string& client_id);
  void on_disconnect(const std::string& client_id);

  // Constant after open().
  InspectorOptions opts;
  std::unique_ptr<Store> store;
  std::unique_ptr<Capture> capture;
  std::unique_ptr<matcher::Matcher> matcher;
  std::unique_ptr<channel::ChannelService> channel;
  std::unique_ptr<AdminAuth> auth;
  bool key_generated = false;
  std::FILE* jsonl = nullptr;
  bool owns_jsonl = false;
  mg_context* ctx = nullptr;

  // Subscriptions. Guarded by subs_mu.
  mutable std::mutex subs_mu;
  std::unordered_map<uint64_t, std::shared_ptr<Subscription>> subs;
  std::unordered_map<std::string, size_t> per_client;  // live + reserved
  size_t total_reserved = 0;                           // live + reserved

  // Commands for the dispatcher. Guarded by cmd_mu.
  struct Command {
    bool subscribe = true;
    std::shared_ptr<Subscription> sub;
    std::optional<matcher::Query> query;
    size_t backfill = 0;
    std::promise<void> done;
  };
  std::mutex cmd_mu;
  std::deque<std::shared_ptr<Command>> commands;
  // Posts a command and waits (bounded) for the dispatcher to run it.
  bool post(const std::shared_ptr<Command>& c);

  // The newest records. Guarded by ring_mu; appended by the dispatcher.
  // Declared after `capture`, which the records return to when the ring
  // releases them, so it is destroyed first.
  mutable std::mutex ring_mu;
  std::deque<std::shared_ptr<const Record>> ring;

  // Dispatcher state. Owned by the dispatcher thread.
  uint64_t next_id = 0;
  uint64_t dropped_reported = 0;
  double next_expiry_check = 0;

  std::thread dispatcher;
  std::atomic<bool> running{false};
  std::atomic<bool> stopping{false};
  std::atomic<bool> shut_down{false};
  std::atomic<bool> paused_for_test{false};
  std::atomic<bool> pause_acked{false};

  // Counters.
  std::atomic<uint64_t> dispatched{0}, matched{0}, delivered{0}, dropped_channel{0};
  std::atomic<uint64_t> last_id{0};
};

double now_seconds();

}  // namespace clio::console
