#include "clio/log/publisher.h"

#include <pthread.h>

namespace clio::log {

Publisher::Publisher(Capture& capture, std::unique_ptr<LogWriter> writer, PublisherOptions options)
    : capture_(capture), writer_(std::move(writer)), options_(std::move(options)) {}

Publisher::~Publisher() { stop(); }

Status Publisher::start() {
  if (options_.instance.empty()) return Status::InvalidArgument("the publisher needs an instance name");
  if (thread_.joinable()) return Status::AlreadyExists("the publisher is already started");
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "clio-publish");
    run();
  });
  return Status::Ok();
}

void Publisher::stop() {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
}

PublisherStats Publisher::stats() const {
  PublisherStats s;
  s.published = published_.load(std::memory_order_relaxed);
  s.dropped_log = dropped_log_.load(std::memory_order_relaxed);
  s.dropped_queue = capture_.queue().dropped();
  s.appends = appends_.load(std::memory_order_relaxed);
  s.failures = failures_.load(std::memory_order_relaxed);
  s.connected = connected_.load(std::memory_order_relaxed);
  MutexLock lock(&error_mu_);
  s.last_error = last_error_;
  return s;
}

bool Publisher::publish(std::vector<std::unique_ptr<Record>>& batch) {
  const SourceReport report{options_.instance, published_.load(std::memory_order_relaxed) + batch.size(),
                            dropped_log_.load(std::memory_order_relaxed) + capture_.queue().dropped()};
  size_t appended = 0;
  appends_.fetch_add(1, std::memory_order_relaxed);
  const Status s = writer_->append(batch, report, appended);
  published_.fetch_add(appended, std::memory_order_relaxed);
  dropped_log_.fetch_add(batch.size() - appended, std::memory_order_relaxed);
  connected_.store(s.ok(), std::memory_order_relaxed);
  if (!s.ok()) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    MutexLock lock(&error_mu_);
    last_error_ = s.message();
  }
  capture_.recycle(batch);
  return s.ok();
}

void Publisher::run() {
  using clock = std::chrono::steady_clock;
  std::vector<std::unique_ptr<Record>> batch;
  batch.reserve(options_.max_batch);
  auto backoff = options_.retry_min;
  clock::time_point retry_at{}, next_heartbeat{}, next_append{};
  while (!stopping_.load(std::memory_order_acquire)) {
    batch.clear();
    if (capture_.queue().depth() < options_.max_batch) std::this_thread::sleep_until(next_append);
    capture_.queue().pop_batch(batch, options_.max_batch, std::chrono::milliseconds(100));
    const auto now = clock::now();
    if (batch.empty() && now < next_heartbeat) continue;
    if (now < retry_at) {  // the log failed recently: drop, count, keep the queue moving
      dropped_log_.fetch_add(batch.size(), std::memory_order_relaxed);
      capture_.recycle(batch);
      continue;
    }
    next_append = now + options_.linger;
    if (publish(batch)) {
      backoff = options_.retry_min;
      next_heartbeat = clock::now() + options_.heartbeat;
    } else {
      writer_->disconnect();
      retry_at = clock::now() + backoff;
      next_heartbeat = retry_at;
      backoff = std::min(backoff * 2, options_.retry_max);
    }
  }
  // One last attempt for what is queued, unless the log is known down.
  batch.clear();
  capture_.queue().pop_batch(batch, capture_.queue().capacity(), std::chrono::milliseconds(0));
  if (!batch.empty()) {
    if (connected_.load(std::memory_order_relaxed)) {
      publish(batch);
    } else {
      dropped_log_.fetch_add(batch.size(), std::memory_order_relaxed);
      capture_.recycle(batch);
    }
  }
}

}  // namespace clio::log
