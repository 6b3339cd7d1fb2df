#include "clio/middleware/jsonl_sink.h"

#include "clio/middleware/private_file.h"

namespace clio {

Result<std::unique_ptr<JsonlSink>> JsonlSink::open(RecordQueue& queue, const std::string& path) {
  std::FILE* out = stdout;
  bool owns = false;
  if (path != "-") {
    auto opened = open_private_append(path);
    if (!opened.ok()) return opened.status();
    out = *opened;
    owns = true;
  }
  return std::unique_ptr<JsonlSink>(new JsonlSink(queue, out, owns));
}

JsonlSink::JsonlSink(RecordQueue& queue, std::FILE* out, bool owns)
    : queue_(queue), out_(out), owns_(owns), thread_([this] { run(); }) {}

JsonlSink::~JsonlSink() {
  stop();
  if (owns_) std::fclose(out_);
}

void JsonlSink::stop() {
  if (stopping_.exchange(true)) {
    if (thread_.joinable()) thread_.join();
    return;
  }
  if (thread_.joinable()) thread_.join();
}

void JsonlSink::run() {
  std::vector<std::unique_ptr<Record>> batch;
  std::string buf;
  for (;;) {
    batch.clear();
    const bool stopping = stopping_.load(std::memory_order_acquire);
    queue_.pop_batch(batch, 1024, std::chrono::milliseconds(stopping ? 0 : 50));
    if (batch.empty()) {
      if (stopping) break;
      continue;
    }
    buf.clear();
    for (const auto& r : batch) {
      append_json(*r, buf);
      buf.push_back('\n');
    }
    if (std::fwrite(buf.data(), 1, buf.size(), out_) != buf.size() || std::fflush(out_) != 0) {
      write_errors_.fetch_add(batch.size(), std::memory_order_relaxed);
    } else {
      written_.fetch_add(batch.size(), std::memory_order_relaxed);
    }
  }
}

}  // namespace clio
