#include "clio/log/in_process_log.h"

#include <charconv>

namespace clio::log {

namespace {
constexpr auto kReportEvery = std::chrono::milliseconds(250);
}

InProcessLog::InProcessLog(Capture& capture, std::string instance)
    : capture_(capture), instance_(std::move(instance)) {}

Status InProcessLog::start(const LogResume& resume) {
  uint64_t saved = 0;
  const std::string& p = resume.position;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), saved);
  if (ec != std::errc() || end != p.data() + p.size()) saved = 0;  // "" or another engine's
  last_id_ = std::max(saved, resume.last_id);
  return Status::Ok();
}

void InProcessLog::read(LogBatch& out, size_t max_records, std::chrono::milliseconds wait) {
  if (closed_.load(std::memory_order_acquire)) return;
  const size_t before = out.records.size();
  capture_.queue().pop_batch(out.records, max_records > before ? max_records - before : 0, wait);
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
  return s;
}

}  // namespace clio::log
