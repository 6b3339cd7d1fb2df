// Dispatcher: the hub's hot loop. It reads batches from the record log, puts
// them in the memory ring, queues them for the store (and the JSON-lines
// log), matches each record against the subscriptions and hands the matches
// to the channel. It owns the matcher and does no blocking I/O: the store,
// the JSON-lines file and the channel all take work through bounded queues.
//
// Subscribing and unsubscribing are commands the dispatcher runs between
// batches, so a subscription sees exactly the records after its backfill
// (no gap, no duplicate) and nothing is delivered after unsubscribe returns.
//
//   Dispatcher d(deps, options);
//   d.restore(sub, query);                 // stored subscriptions, before start
//   d.start({.position = saved, .last_id = stored_max});
//   Status s = d.subscribe(sub, query, backfilled_through);   // any thread, waits
//   d.stop();
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "clio/base/mutex.h"
#include "clio/channel/channel.h"
#include "clio/console/hub.h"
#include "clio/console/store.h"
#include "clio/log/record_log.h"
#include "clio/matcher/matcher.h"
#include "delivery.h"
#include "jsonl_writer.h"
#include "recent_records.h"
#include "registry.h"

namespace clio::console {

// Owned by its thread; start(), stop(), subscribe(), unsubscribe() and the
// accessors may be called from any thread (subscribe and unsubscribe wait,
// bounded, for the dispatcher to run them). restore() only before start().
class Dispatcher {
 public:
  // What the dispatcher works with; each must outlive it.
  struct Deps {
    log::LogReader& reader;
    Store& store;
    RecentRecords& recent;
    channel::ChannelService& channel;
    JsonlWriter* jsonl;  // optional
    DeliveryCounters& delivery;
  };
  struct Options {
    size_t batch_max = 1024;
    matcher::MatcherOptions matcher;
    std::chrono::milliseconds command_timeout{10000};
    size_t max_instances = 1024;  // per-instance counters kept (the least recently seen go)
  };
  Dispatcher(Deps deps, Options options);
  ~Dispatcher();  // stop()
  // Not copyable.
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Subscribes a stored subscription at start (no backfill).
  Status restore(const std::shared_ptr<Subscription>& sub, const matcher::Query& query);
  Status start(const log::LogResume& resume);
  // Dispatches what the log already returned, then stops. Idempotent.
  void stop();

  // Sends `sub` the matches among the records after `after_id` that the
  // ring holds (a "dropped" notice counts any it no longer holds), then adds
  // it to the matcher. kInvalidArgument when the matcher refuses the query,
  // kUnavailable when the dispatcher is stopping or did not answer in time
  // (then it was not added).
  Status subscribe(std::shared_ptr<Subscription> sub, const matcher::Query& query, uint64_t after_id);
  // Removes `id` from the matcher: no match of it is sent after this returns.
  Status unsubscribe(uint64_t id);

  // The highest id dispatched (all records up to it are in the ring or gone from it).
  uint64_t last_id() const { return last_id_.load(std::memory_order_acquire); }
  uint64_t dispatched() const { return dispatched_.load(std::memory_order_acquire); }
  uint64_t gaps() const { return gaps_.load(std::memory_order_relaxed); }
  uint64_t records_lost() const { return records_lost_.load(std::memory_order_relaxed); }
  std::vector<InstanceStats> instances() const;
  matcher::MatcherStats matcher_stats() const { return matcher_.stats(); }
  // How the matcher would find `query` (any thread; nothing is subscribed).
  matcher::AccessExplanation explain(const matcher::Query& query) const { return matcher_.explain(query); }

  // Holds the dispatcher between batches until called with false. Tests only.
  void pause_for_test(bool paused);

 private:
  struct Command;
  void run();
  // Queues a command and waits (bounded) until it ran; false when it did not.
  bool post(const std::shared_ptr<Command>& c);
  // post(), then the command's result.
  Status submit(const std::shared_ptr<Command>& c);
  void run_commands();
  Status run_subscribe(Command& c);
  void process(log::LogBatch& batch);
  void dispatch_records(std::vector<std::unique_ptr<Record>>& records, const std::string& position);
  void note_sources(const std::vector<log::SourceReport>& sources, const std::vector<std::unique_ptr<Record>>& records);
  void announce(const nlohmann::json& notice);

  // Constant after construction.
  const Deps deps_;
  const Options options_;
  matcher::Matcher matcher_;  // contents changed by the dispatcher thread only

  // Owned by the dispatcher thread (and by restore() before start()).
  std::unordered_map<uint64_t, std::shared_ptr<Subscription>> subs_;
  std::unordered_map<std::string, uint64_t> dropped_seen_;  // instance -> dropped already announced

  // Commands. Guarded by cmd_mu_.
  Mutex cmd_mu_;
  std::deque<std::shared_ptr<Command>> commands_ CLIO_GUARDED_BY(cmd_mu_);
  bool accepting_ CLIO_GUARDED_BY(cmd_mu_) = false;

  // Per-instance counters. Guarded by inst_mu_.
  mutable Mutex inst_mu_;
  std::unordered_map<std::string, InstanceStats> instances_ CLIO_GUARDED_BY(inst_mu_);

  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> paused_{false}, pause_acked_{false};
  std::atomic<uint64_t> last_id_{0}, dispatched_{0}, gaps_{0}, records_lost_{0};
};

}  // namespace clio::console
