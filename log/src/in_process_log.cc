#include "clio/log/in_process_log.h"

#include <pthread.h>

#include <algorithm>
#include <charconv>

namespace clio::log {

namespace {
constexpr auto kReportEvery = std::chrono::milliseconds(250);
constexpr auto kRetryMin = std::chrono::milliseconds(50);
constexpr auto kRetryMax = std::chrono::milliseconds(2000);
}  // namespace

InProcessLog::InProcessLog(Capture& capture, std::string instance)
    : capture_(capture), instance_(std::move(instance)) {}

InProcessLog::~InProcessLog() {
  close();
  if (reserver_.joinable()) reserver_.join();
}

Status InProcessLog::start(const LogResume& resume) {
  uint64_t saved = 0;
  const std::string& p = resume.position;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), saved);
  if (ec != std::errc() || end != p.data() + p.size()) saved = 0;  // "" or another engine's
  last_id_ = std::max(saved, resume.last_id);
  ids_ = resume.ids;
  if (ids_ == nullptr) return Status::Ok();
  auto reserved = ids_->reserved();
  if (!reserved.ok()) return reserved.status();
  last_id_ = std::max(last_id_, *reserved);
  if (Status s = ids_->reserve(last_id_ + kIdBlock); !s.ok()) return s;
  {
    MutexLock lock(&ids_mu_);
    reserved_ = wanted_ = last_id_ + kIdBlock;
  }
  reserver_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "clio-ids");
    run_reservations();
  });
  return Status::Ok();
}

void InProcessLog::close() {
  {
    MutexLock lock(&ids_mu_);
    closed_.store(true, std::memory_order_release);
  }
  ids_cv_.SignalAll();
}

uint64_t InProcessLog::available_ids(std::chrono::milliseconds wait) {
  if (ids_ == nullptr) return UINT64_MAX;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  MutexLock lock(&ids_mu_);
  // Ask for the next block once half of this one is used.
  if (reserved_ - last_id_ < kIdBlock / 2 && wanted_ <= reserved_) {
    wanted_ = reserved_ + kIdBlock;
    ids_cv_.SignalAll();
  }
  while (reserved_ == last_id_ && !closed_.load(std::memory_order_acquire) && ids_cv_.WaitUntil(&ids_mu_, deadline)) {
  }
  return reserved_ - last_id_;
}

void InProcessLog::run_reservations() {
  auto retry = kRetryMin;
  MutexLock lock(&ids_mu_);
  for (;;) {
    while (!closed_.load(std::memory_order_acquire) && wanted_ <= reserved_) ids_cv_.Wait(&ids_mu_);
    if (closed_.load(std::memory_order_acquire)) return;
    const uint64_t target = wanted_;
    ids_mu_.Unlock();
    Status s = ids_->reserve(target);
    ids_mu_.Lock();
    if (s.ok()) {
      reserved_ = std::max(reserved_, target);
      reserve_error_.clear();
      retry = kRetryMin;
      ids_cv_.SignalAll();
      continue;
    }
    reserve_error_ = "cannot reserve record ids: " + s.message();
    const auto retry_at = std::chrono::steady_clock::now() + retry;
    while (!closed_.load(std::memory_order_acquire) && ids_cv_.WaitUntil(&ids_mu_, retry_at)) {
    }
    retry = std::min(retry * 2, kRetryMax);
  }
}

void InProcessLog::read(LogBatch& out, size_t max_records, std::chrono::milliseconds wait) {
  if (closed_.load(std::memory_order_acquire)) return;
  const size_t before = out.records.size();
  const uint64_t ids = available_ids(wait);
  const size_t room = max_records > before ? max_records - before : 0;
  const size_t want = static_cast<size_t>(std::min<uint64_t>(room, ids));
  if (want > 0) capture_.queue().pop_batch(out.records, want, wait);
  for (size_t i = before; i < out.records.size(); ++i) {
    Record& r = *out.records[i];
    r.id = ++last_id_;
    r.instance = instance_;
  }
  records_.fetch_add(out.records.size() - before, std::memory_order_relaxed);
  out.position = std::to_string(last_id_);
  const auto now = std::chrono::steady_clock::now();
  if (now >= next_report_) {
    out.sources.push_back(live_sources().front());
    next_report_ = now + kReportEvery;
  }
}

std::vector<SourceReport> InProcessLog::live_sources() const {
  const Capture::Stats s = capture_.stats();
  return {{instance_, s.captured, s.dropped_queue}};
}

LogReaderStats InProcessLog::stats() const {
  LogReaderStats s;
  s.records = records_.load(std::memory_order_relaxed);
  s.entries = s.records;
  s.backlog = capture_.queue().depth();
  MutexLock lock(&ids_mu_);
  s.last_error = reserve_error_;
  s.connected = reserve_error_.empty();
  return s;
}

}  // namespace clio::log
