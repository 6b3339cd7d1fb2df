// The hub's composition: one object of each job, wired together, and the
// use cases the HTTP layer calls (subscribe, unsubscribe, search, tokens,
// stats), each answering with a Status. Only http_api.cc knows HTTP.
//
// Threads: CivetWeb workers run the HTTP API; the dispatcher thread owns the
// matcher and the hot loop; the channel's event thread calls the presence
// hooks; the keeper thread expires the subscriptions of clients that did not
// come back; the store and the JSON-lines log have their writer threads.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "admin_auth.h"
#include "clio/base/clock.h"
#include "clio/base/mutex.h"
#include "clio/channel/channel.h"
#include "clio/console/hub.h"
#include "clio/console/store.h"
#include "clio/log/record_log.h"
#include "delivery.h"
#include "dispatcher.h"
#include "jsonl_writer.h"
#include "recent_records.h"
#include "registry.h"
#include "throttle.h"

struct mg_context;

namespace clio::console {

class HttpApi;

// Safe for concurrent use by multiple threads after attach().
class [[gnu::visibility("hidden")]] Hub::Impl {
 public:
  Impl(HubOptions options, std::unique_ptr<log::LogReader> reader);
  ~Impl();
  // Not copyable.
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  Status open();
  Status attach(mg_context* ctx);
  void shutdown();

  // --- use cases (any thread)

  // Creates a subscription for `client_id`: quota, row, the newest
  // `backfill` stored matches, then live matches. Errors: kInvalidArgument
  // (client id, backfill, a query the matcher refuses), kNotFound (a client
  // id the channel never issued a token for, or has forgotten),
  // kResourceExhausted (quotas), kUnavailable (store, shutting down).
  Result<std::shared_ptr<Subscription>> subscribe(const std::string& client_id, const std::string& text,
                                                  const matcher::Query& query, size_t backfill);
  // kNotFound when there is no such subscription.
  Status unsubscribe(uint64_t id);
  Result<std::vector<std::shared_ptr<const Record>>> search(const matcher::Query* q, size_t limit);

  // The matches of `client_id`'s subscriptions among the records held with
  // an id above `after`, oldest first, for a console that lost its channel's
  // buffer (the server restarted). At most `limit` items (the newest);
  // `truncated` counts the matching records left out, `lost` the record
  // ids above `after` no longer held (pruned).
  struct CatchUp {
    std::vector<std::pair<std::vector<uint64_t>, std::shared_ptr<const Record>>> items;
    uint64_t truncated = 0;
    uint64_t lost = 0;
  };
  Result<CatchUp> matches_after(const std::string& client_id, uint64_t after, size_t limit);
  HubStats stats() const;
  // Revokes the session of `cookie` durably (it stays refused after a
  // restart). A cookie that is no live session is not an error.
  // kUnavailable when the store cannot keep the revocation (it holds in
  // memory until the restart).
  Status log_out(std::string_view cookie);
  // Ends every admin session: a new session-signing key (stored, so it
  // holds after a restart), and every console's channel closed with
  // "revoked". kUnavailable (nothing changed) when the store fails.
  Status log_out_everywhere();
  // Whether a cookie-authenticated WebSocket may come from `origin`.
  bool origin_ok(std::string_view origin) const;

  const HubOptions& options() const { return opts_; }
  // Unix time by HubOptions::clock: every expiry decision of the console reads it.
  double now_seconds() const { return clock_or_real(opts_.clock).wall_seconds_f(); }
  AdminAuth& auth() { return *auth_; }
  FailureThrottle& throttle() { return *throttle_; }
  // The server's public origins: HubOptions::public_origin, or those of the
  // listening address. Set by attach().
  const std::vector<std::string>& public_origins() const { return public_origins_; }
  channel::ChannelService& channel() { return *channel_; }
  SubscriptionRegistry& registry() { return *registry_; }
  log::LogReader& reader() { return *reader_; }
  Dispatcher& dispatcher() { return *dispatcher_; }
  bool key_generated() const { return key_generated_; }

 private:
  // Removes a subscription everywhere and tells its client why.
  Status remove_subscription(uint64_t id, const char* reason);
  Status restore_subscriptions();
  void run_keeper() CLIO_EXCLUDES(keeper_mu_);

  // Constant after open().
  HubOptions opts_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<log::IdReservations> id_reservations_;  // on store_; the reader below uses it
  std::unique_ptr<log::LogReader> reader_;  // records held below return to it
  std::unique_ptr<channel::ChannelService> channel_;
  std::unique_ptr<AdminAuth> auth_;
  std::unique_ptr<FailureThrottle> throttle_;
  std::unique_ptr<SubscriptionRegistry> registry_;
  std::unique_ptr<RecentRecords> recent_;
  std::unique_ptr<JsonlWriter> jsonl_;
  DeliveryCounters delivery_;
  std::atomic<uint64_t> presence_events_{0};
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<HttpApi> http_;
  bool key_generated_ = false;

  // Constant after attach().
  mg_context* ctx_ = nullptr;
  std::vector<std::string> public_origins_;

  // The keeper thread, and shutdown.
  Mutex keeper_mu_;
  CondVar keeper_cv_;
  bool stopping_ CLIO_GUARDED_BY(keeper_mu_) = false;
  std::thread keeper_;
  std::once_flag shutdown_once_;
};

}  // namespace clio::console
