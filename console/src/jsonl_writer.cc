#include "jsonl_writer.h"

#include <pthread.h>

#include <cerrno>
#include <cstring>

#include "clio/base/mutex.h"
#include "clio/middleware/private_file.h"

namespace clio::console {

Result<std::unique_ptr<JsonlWriter>> JsonlWriter::open(const std::string& path) {
  if (path == "-") return std::unique_ptr<JsonlWriter>(new JsonlWriter(stdout, false, path));
  auto f = open_private_append(path);
  if (!f.ok()) return f.status();
  return std::unique_ptr<JsonlWriter>(new JsonlWriter(*f, true, path));
}

JsonlWriter::JsonlWriter(std::FILE* f, bool owned, std::string path)
    : file_(f), owned_(owned), path_(std::move(path)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "clio-jsonl");
    run();
  });
}

JsonlWriter::~JsonlWriter() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  thread_.join();
  if (owned_) std::fclose(file_);
  else std::fflush(file_);
}

bool JsonlWriter::post(std::shared_ptr<const RecordBatch> batch) {
  {
    MutexLock lock(&mu_);
    if (queue_.size() >= kMaxQueued || stopping_) {
      stats_.dropped += batch->size();
      return false;
    }
    queue_.push_back(std::move(batch));
    ++posted_;
  }
  cv_.SignalAll();
  return true;
}

void JsonlWriter::flush() {
  MutexLock lock(&mu_);
  const uint64_t target = posted_;
  while (done_ < target) cv_.Wait(&mu_);
}

JsonlWriter::Stats JsonlWriter::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

void JsonlWriter::run() {
  std::string lines;
  MutexLock lock(&mu_);
  for (;;) {
    while (!stopping_ && queue_.empty()) cv_.Wait(&mu_);
    if (queue_.empty()) return;  // stopping, and everything is written
    std::shared_ptr<const RecordBatch> batch = std::move(queue_.front());
    queue_.pop_front();
    mu_.Unlock();
    lines.clear();
    for (const auto& r : *batch) {
      append_json(*r, lines);
      lines.push_back('\n');
    }
    const bool ok = std::fwrite(lines.data(), 1, lines.size(), file_) == lines.size() && std::fflush(file_) == 0;
    const std::string why = ok ? "" : std::strerror(errno);
    const size_t n = batch->size();
    batch.reset();  // the records go back to the log before the lock is taken
    mu_.Lock();
    if (ok) {
      stats_.written += n;
    } else {
      stats_.dropped += n;
      stats_.last_error = "cannot write '" + path_ + "': " + why;
    }
    ++done_;
    cv_.SignalAll();
  }
}

}  // namespace clio::console
