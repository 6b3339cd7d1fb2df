#include "dispatcher.h"

#include <pthread.h>

#include <algorithm>

#include "clio/base/mutex.h"
#include "clio/middleware/http_schema.h"
#include "clio/middleware/record_binary.h"

namespace clio::console {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {
constexpr auto kReadWait = 20ms;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Status matcher_status(const matcher::QueryError& e) {
  if (e.ok()) return Status::Ok();
  if (e.code == "duplicate_id" || e.code == "schema_mismatch") return Status::Internal(e.to_string());
  return Status::InvalidArgument(e.to_string());
}
}  // namespace

// A subscribe or unsubscribe for the dispatcher thread. The poster waits for
// `state` to become kDone; one that gives up while the command is still
// kPending cancels it, so a command that timed out never runs late.
struct Dispatcher::Command {
  enum State { kPending, kRunning, kDone, kCancelled };
  bool subscribe = true;
  std::shared_ptr<Subscription> sub;
  std::optional<matcher::Query> query;
  uint64_t after_id = 0;
  uint64_t id = 0;  // unsubscribe

  Mutex mu;
  CondVar cv;
  State state CLIO_GUARDED_BY(mu) = kPending;
  Status result CLIO_GUARDED_BY(mu);  // set with kDone
};

Dispatcher::Dispatcher(Deps deps, Options options)
    : deps_(deps), options_(std::move(options)), matcher_(http_schema(), options_.matcher) {}

Dispatcher::~Dispatcher() { stop(); }

Status Dispatcher::restore(const std::shared_ptr<Subscription>& sub, const matcher::Query& query) {
  if (thread_.joinable()) return Status::Internal("restore() after start()");
  if (Status s = matcher_status(matcher_.subscribe(sub->id, query)); !s.ok()) return s;
  subs_[sub->id] = sub;
  return Status::Ok();
}

Status Dispatcher::start(const log::LogResume& resume) {
  if (thread_.joinable()) return Status::AlreadyExists("the dispatcher is already running");
  if (Status s = deps_.reader.start(resume); !s.ok()) return s;
  last_id_ = resume.last_id;
  {
    MutexLock lock(&cmd_mu_);
    accepting_ = true;
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "clio-dispatch");
    run();
  });
  return Status::Ok();
}

void Dispatcher::stop() {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  deps_.reader.close();
  // Commands that will never run: release their waiters.
  std::deque<std::shared_ptr<Command>> left;
  {
    MutexLock lock(&cmd_mu_);
    accepting_ = false;
    left.swap(commands_);
  }
  for (auto& c : left) {
    MutexLock lock(&c->mu);
    c->state = Command::kDone;
    c->result = Status::Unavailable("the console is shutting down");
    c->cv.SignalAll();
  }
}

bool Dispatcher::post(const std::shared_ptr<Command>& c) {
  {
    MutexLock lock(&cmd_mu_);
    if (!accepting_) return false;
    commands_.push_back(c);
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.command_timeout;
  MutexLock lock(&c->mu);
  while (c->state != Command::kDone && c->cv.WaitUntil(&c->mu, deadline)) {
  }
  if (c->state == Command::kDone) return true;
  if (c->state == Command::kPending) {
    c->state = Command::kCancelled;
    return false;
  }
  while (c->state != Command::kDone) c->cv.Wait(&c->mu);  // running: it finishes promptly
  return true;
}

Status Dispatcher::submit(const std::shared_ptr<Command>& c) {
  if (!post(c)) return Status::Unavailable("the console is shutting down or too busy; try again");
  MutexLock lock(&c->mu);
  return c->result;
}

Status Dispatcher::subscribe(std::shared_ptr<Subscription> sub, const matcher::Query& query, uint64_t after_id) {
  auto c = std::make_shared<Command>();
  c->subscribe = true;
  c->sub = std::move(sub);
  c->query = query;
  c->after_id = after_id;
  return submit(c);
}

Status Dispatcher::unsubscribe(uint64_t id) {
  auto c = std::make_shared<Command>();
  c->subscribe = false;
  c->id = id;
  return submit(c);
}

void Dispatcher::pause_for_test(bool paused) {
  paused_ = paused;
  // Wait (bounded) until the dispatcher has seen it, so no batch is in flight.
  for (int i = 0; i < 1000 && paused && !pause_acked_.load(); ++i) std::this_thread::sleep_for(1ms);
}

std::vector<InstanceStats> Dispatcher::instances() const {
  std::vector<InstanceStats> out;
  {
    MutexLock lock(&inst_mu_);
    for (const auto& [name, s] : instances_) out.push_back(s);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.instance < b.instance; });
  return out;
}

// ---------------------------------------------------------------- the loop

void Dispatcher::run() {
  log::LogBatch batch;
  while (!stopping_.load(std::memory_order_acquire)) {
    if (paused_.load(std::memory_order_acquire)) {
      pause_acked_ = true;
      std::this_thread::sleep_for(5ms);
      continue;
    }
    pause_acked_ = false;
    run_commands();
    batch.clear();
    deps_.reader.read(batch, options_.batch_max, kReadWait);
    if (!batch.empty()) process(batch);
  }
  // Dispatch what the log already holds for us, then stop.
  for (int i = 0; i < 64; ++i) {
    batch.clear();
    deps_.reader.read(batch, options_.batch_max, 0ms);
    if (batch.empty()) break;
    process(batch);
  }
}

void Dispatcher::process(log::LogBatch& batch) {
  for (const log::LogGap& g : batch.gaps) {
    gaps_.fetch_add(1, std::memory_order_relaxed);
    if (g.count) records_lost_.fetch_add(*g.count, std::memory_order_relaxed);
    json notice = {{"kind", "dropped"}, {"reason", g.reason}};
    notice["count"] = g.count ? json(*g.count) : json(nullptr);
    announce(notice);
  }
  note_sources(batch.sources, batch.records);
  if (!batch.records.empty()) dispatch_records(batch.records, batch.position);
}

void Dispatcher::note_sources(const std::vector<log::SourceReport>& sources,
                              const std::vector<std::unique_ptr<Record>>& records) {
  const double now = unix_now();
  std::vector<json> notices;
  {
    MutexLock lock(&inst_mu_);
    auto entry = [&](const std::string& name) -> InstanceStats& {
      inst_mu_.AssertHeld();  // called below, under the lock
      auto it = instances_.find(name);
      if (it != instances_.end()) return it->second;
      if (instances_.size() >= options_.max_instances) {
        auto oldest = std::min_element(instances_.begin(), instances_.end(), [](const auto& a, const auto& b) {
          return a.second.last_seen < b.second.last_seen;
        });
        instances_.erase(oldest);
      }
      InstanceStats& s = instances_[name];
      s.instance = name;
      return s;
    };
    // Records come in runs of one instance: one lookup per run.
    for (size_t i = 0; i < records.size();) {
      size_t j = i + 1;
      while (j < records.size() && records[j]->instance == records[i]->instance) ++j;
      InstanceStats& s = entry(records[i]->instance);
      s.records += j - i;
      s.last_seen = now;
      i = j;
    }
    for (const log::SourceReport& r : sources) {
      InstanceStats& s = entry(r.instance);
      s.published = r.published;
      s.dropped = r.dropped;
      s.last_seen = now;
    }
  }
  // Drops at the source since the last report: told to the consoles (the
  // first report of an instance is its baseline).
  for (const log::SourceReport& r : sources) {
    auto [it, first] = dropped_seen_.try_emplace(r.instance, r.dropped);
    if (!first && r.dropped > it->second) {
      notices.push_back({{"kind", "dropped"}, {"reason", "source"}, {"instance", r.instance},
                         {"count", r.dropped - it->second}});
    }
    it->second = std::max(it->second, r.dropped);
  }
  if (dropped_seen_.size() > 4 * options_.max_instances) dropped_seen_.clear();  // bounded; re-baselined
  for (const json& n : notices) announce(n);
}

void Dispatcher::dispatch_records(std::vector<std::unique_ptr<Record>>& taken, const std::string& position) {
  // The batch's records share one owner: the ring's pointers alias it. When
  // the last of them leaves the ring (and the JSON-lines writer is done),
  // the records go back to the log for reuse.
  log::LogReader* reader = &deps_.reader;
  std::shared_ptr<const RecordBatch> owner(new RecordBatch(std::move(taken)), [reader](const RecordBatch* v) {
    auto* records = const_cast<RecordBatch*>(v);
    reader->recycle(*records);
    delete records;
  });
  taken = RecordBatch();
  const RecordBatch& records = *owner;

  // The store: one chunk per run of consecutive ids (the log may skip ids),
  // the log position with the last, so both commit together.
  std::vector<RecordChunk> chunks;
  for (const auto& r : records) {
    if (chunks.empty() || r->id != chunks.back().first_id + chunks.back().count) {
      RecordChunk& c = chunks.emplace_back();
      c.first_id = r->id;
      c.min_time = c.max_time = r->time;
      c.body = deps_.store.take_buffer();
      c.body.reserve(records.size() * 128);
    }
    RecordChunk& c = chunks.back();
    ++c.count;
    c.min_time = std::min(c.min_time, r->time);
    c.max_time = std::max(c.max_time, r->time);
    append_binary(*r, c.body);
  }
  chunks.back().log_position = position;
  deps_.recent.append(owner);
  last_id_.store(records.back()->id, std::memory_order_release);

  // Match, then group by client: client -> items, each item one record with
  // the ids of that client's subscriptions it matched.
  std::unordered_map<std::string, std::vector<MatchItem>> out;
  std::unordered_map<std::string, std::vector<uint64_t>> by_client;
  std::vector<uint64_t> ids;
  std::string record_json;
  for (const auto& r : records) {
    ids.clear();
    matcher_.match(HttpRecordView(*r), ids);
    if (ids.empty()) continue;
    std::sort(ids.begin(), ids.end());
    by_client.clear();
    for (uint64_t id : ids) {
      auto it = subs_.find(id);
      if (it == subs_.end()) continue;
      it->second->matches.fetch_add(1, std::memory_order_relaxed);
      by_client[it->second->client_id].push_back(id);
    }
    record_json.clear();
    append_json(*r, record_json);
    for (auto& [client, sub_ids] : by_client) out[client].push_back({match_item(sub_ids, record_json), sub_ids.size()});
  }
  for (RecordChunk& c : chunks) deps_.store.append_chunk(std::move(c));
  if (deps_.jsonl) deps_.jsonl->post(owner);
  for (const auto& [client, items] : out) send_matches(deps_.channel, client, items, deps_.delivery);
  dispatched_.fetch_add(records.size(), std::memory_order_release);
}

void Dispatcher::announce(const json& notice) {
  std::vector<std::string> clients;
  for (const auto& [id, s] : subs_) clients.push_back(s->client_id);
  std::sort(clients.begin(), clients.end());
  clients.erase(std::unique(clients.begin(), clients.end()), clients.end());
  for (const auto& c : clients) {
    if (deps_.channel.is_connected(c)) send_notice(deps_.channel, c, notice);
  }
}

// ---------------------------------------------------------------- commands

void Dispatcher::run_commands() {
  std::deque<std::shared_ptr<Command>> todo;
  {
    MutexLock lock(&cmd_mu_);
    todo.swap(commands_);
  }
  for (auto& c : todo) {
    {
      MutexLock lock(&c->mu);
      if (c->state == Command::kCancelled) continue;
      c->state = Command::kRunning;
    }
    Status result;
    if (c->subscribe) {
      result = run_subscribe(*c);
    } else if (subs_.erase(c->id) == 0 || !matcher_.unsubscribe(c->id)) {
      result = Status::NotFound("no subscription " + std::to_string(c->id));
    }
    MutexLock lock(&c->mu);
    c->result = std::move(result);
    c->state = Command::kDone;
    c->cv.SignalAll();
  }
}

Status Dispatcher::run_subscribe(Command& c) {
  const Subscription& sub = *c.sub;
  if (Status s = matcher_status(matcher_.subscribe(sub.id, *c.query)); !s.ok()) return s;
  subs_[sub.id] = c.sub;
  // Catch up: the records dispatched since the caller's backfill, from the
  // ring, before any live match (which starts with the next batch).
  const uint64_t through = last_id();
  if (c.after_id >= through) return Status::Ok();
  uint64_t oldest = 0;
  const auto recent = deps_.recent.after(c.after_id, oldest);
  if (oldest > c.after_id + 1) {
    // Dispatched and already out of the ring: tell the client how many.
    send_notice(deps_.channel, sub.client_id,
                {{"kind", "dropped"}, {"reason", "backfill"}, {"subscription", sub.id},
                 {"count", oldest - c.after_id - 1}});
  }
  std::vector<MatchItem> items;
  const std::vector<uint64_t> ids{sub.id};
  for (const auto& r : recent) {
    if (r->id > through || !c.query->matches(HttpRecordView(*r))) continue;
    items.push_back({match_item(ids, to_json(*r)), 1});
  }
  c.sub->matches.fetch_add(items.size(), std::memory_order_relaxed);
  send_matches(deps_.channel, sub.client_id, items, deps_.delivery);
  return Status::Ok();
}

}  // namespace clio::console
