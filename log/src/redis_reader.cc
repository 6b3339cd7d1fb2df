// The console side of the Redis log: a thread reads the stream with
// XREAD BLOCK, decodes each entry into records and hands them to read()
// through a bounded queue (redis_log.h describes positions, ids and gaps).
#include <pthread.h>

#include <charconv>
#include <deque>
#include <thread>
#include <unordered_map>

#include "clio/log/redis_log.h"
#include "clio/base/mutex.h"
#include "clio/middleware/record_binary.h"
#include "redis_common.h"
#include "redis_conn.h"

namespace clio::log {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kPositionTag = "redis1";
constexpr uint64_t kMaxId = (uint64_t{1} << 53) - 1;
constexpr auto kEpochCheckEvery = 1s;

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// "redis1 EPOCH ENTRY-ID LAST-ID"
struct Position {
  std::string epoch;
  std::string entry = "0-0";
  uint64_t last_id = 0;

  std::string str() const {
    return std::string(kPositionTag) + " " + epoch + " " + entry + " " + std::to_string(last_id);
  }
  static bool parse(std::string_view s, Position& p) {
    std::string_view parts[4];
    for (int i = 0; i < 4; ++i) {
      const size_t sp = i < 3 ? s.find(' ') : s.size();
      if (sp == std::string_view::npos) return false;
      parts[i] = s.substr(0, sp);
      s.remove_prefix(std::min(s.size(), sp + 1));
    }
    if (parts[0] != kPositionTag || parts[1].empty() || parts[2].empty()) return false;
    p.epoch = std::string(parts[1]);
    p.entry = std::string(parts[2]);
    return parse_u64(parts[3], p.last_id);
  }
};

// One stream entry's fields, as views into the reply.
struct EntryFields {
  std::string_view v, e, i, n, c, p, d, r;
};

bool read_fields(const redisReply* fields, EntryFields& f) {
  size_t n = 0;
  if (!is_array(fields, &n) || n % 2 != 0) return false;
  for (size_t k = 0; k + 1 < n; k += 2) {
    const std::string_view name = reply_text(element(fields, k)), value = reply_text(element(fields, k + 1));
    if (name.size() != 1) continue;  // unknown fields are ignored
    switch (name[0]) {
      case 'v': f.v = value; break;
      case 'e': f.e = value; break;
      case 'i': f.i = value; break;
      case 'n': f.n = value; break;
      case 'c': f.c = value; break;
      case 'p': f.p = value; break;
      case 'd': f.d = value; break;
      case 'r': f.r = value; break;
      default: break;
    }
  }
  return true;
}

// Safe for concurrent use by multiple threads: the reader thread fills the
// queue; read(), recycle() and start() belong to the hub's dispatcher
// thread; stats(), describe() and close() may be called from any thread.
class RedisReader final : public LogReader {
 public:
  RedisReader(RedisLogOptions o, RedisAddress a)
      : o_(std::move(o)), address_(std::move(a)), epoch_key_(redis::epoch_key(o_.stream)),
        count_(std::to_string(o_.read_count)), block_(std::to_string(o_.block.count())) {
    stats_.connected = false;  // until the reader thread connects
  }

  ~RedisReader() override {
    close();
    if (thread_.joinable()) thread_.join();
  }

  Status start(const LogResume& resume) override {
    if (thread_.joinable()) return Status::AlreadyExists("the reader is already started");
    Position p;
    if (Position::parse(resume.position, p)) {
      pos_ = p;
      fresh_ = false;
    }
    // A fresh reader (no position of this engine) starts at the oldest entry
    // and counts no gap before its first one.
    pos_.last_id = std::max(pos_.last_id, resume.last_id);
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "clio-log-read");
      run();
    });
    return Status::Ok();
  }

  void read(LogBatch& out, size_t max_records, std::chrono::milliseconds wait) override {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    MutexLock lock(&mu_);
    while (!closed_ && queue_.empty() && cv_.WaitUntil(&mu_, deadline)) {
    }
    while (!queue_.empty() && out.records.size() < max_records) {
      Piece& piece = queue_.front();
      queued_records_ -= piece.records.size();
      for (auto& r : piece.records) out.records.push_back(std::move(r));
      for (auto& g : piece.gaps) out.gaps.push_back(std::move(g));
      for (auto& s : piece.sources) merge_source(out.sources, std::move(s));
      out.position = std::move(piece.position);
      queue_.pop_front();
    }
    room_cv_.SignalAll();
  }

  void recycle(std::vector<std::unique_ptr<Record>>& records) override {
    MutexLock lock(&spare_mu_);
    for (auto& r : records) {
      if (spares_.size() >= kMaxSpares) break;
      spares_.push_back(std::move(r));
    }
    records.clear();
  }

  void close() override {
    {
      MutexLock lock(&mu_);
      closed_ = true;
    }
    cv_.SignalAll();
    room_cv_.SignalAll();
  }

  LogReaderStats stats() const override {
    MutexLock lock(&mu_);
    LogReaderStats s = stats_;
    s.backlog = queued_records_;
    return s;
  }

  std::string describe() const override { return address_.describe() + " stream " + o_.stream; }

 private:
  struct Piece {
    std::vector<std::unique_ptr<Record>> records;
    std::vector<LogGap> gaps;
    std::vector<SourceReport> sources;
    std::string position;
  };
  static constexpr size_t kMaxSpares = 4096;

  static void merge_source(std::vector<SourceReport>& into, SourceReport s) {
    for (auto& have : into) {
      if (have.instance == s.instance) {
        have = std::move(s);
        return;
      }
    }
    into.push_back(std::move(s));
  }

  bool closed() CLIO_EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    return closed_;
  }

  // Waits up to `d` unless closed; false once closed.
  bool pause(std::chrono::milliseconds d) CLIO_EXCLUDES(mu_) {
    const auto deadline = std::chrono::steady_clock::now() + d;
    MutexLock lock(&mu_);
    while (!closed_ && cv_.WaitUntil(&mu_, deadline)) {
    }
    return !closed_;
  }

  void set_connected(bool connected, const std::string& error) CLIO_EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    stats_.connected = connected;
    if (!error.empty()) stats_.last_error = error;
  }

  // Hands a piece to read(), waiting while the queue is full. False once closed.
  bool push(Piece&& piece) CLIO_EXCLUDES(mu_) {
    mu_.Lock();
    while (!closed_ && queued_records_ >= o_.reader_queue_records) room_cv_.Wait(&mu_);
    if (closed_) {
      mu_.Unlock();
      return false;
    }
    stats_.records += piece.records.size();
    for (const LogGap& g : piece.gaps) {
      ++stats_.gaps;
      if (g.count) stats_.records_lost += *g.count;
      if (g.reason == "reset") ++stats_.resets;
    }
    queued_records_ += piece.records.size();
    queue_.push_back(std::move(piece));
    mu_.Unlock();
    cv_.SignalAll();
    return true;
  }

  std::unique_ptr<Record> take_record() CLIO_EXCLUDES(spare_mu_) {
    MutexLock lock(&spare_mu_);
    if (spares_.empty()) return std::make_unique<Record>();
    auto r = std::move(spares_.back());
    spares_.pop_back();
    return r;
  }

  // The log restarted empty (or its epoch changed): report a gap of unknown
  // size and read the new log from its start.
  bool on_reset(const std::string& new_epoch) {
    Piece p;
    p.gaps.push_back({std::nullopt, "reset"});
    pos_.epoch = new_epoch;
    pos_.entry = "0-0";
    fresh_ = true;  // ids of the new log are not compared with the old ones for gaps
    p.position = pos_.str();
    return push(std::move(p));
  }

  // Compares the log's epoch with ours. False once closed.
  bool check_epoch() {
    auto r = conn_->command({"GET", epoch_key_});
    if (!r.ok()) return true;  // the next read reports the failure
    last_epoch_check_ = std::chrono::steady_clock::now();
    if (is_nil(r->get())) {
      // No log (yet): a reader that knew one sees Redis restarted empty.
      if (!pos_.epoch.empty()) return on_reset("");
      return true;
    }
    const std::string epoch(reply_text(r->get()));
    if (pos_.epoch.empty()) {
      pos_.epoch = epoch;
      return true;
    }
    if (epoch != pos_.epoch) return on_reset(epoch);
    return true;
  }

  void run() {
    auto backoff = o_.reconnect_min;
    while (!closed()) {
      if (!conn_) {
        auto c = RedisConn::connect(address_, o_.connect_timeout, o_.io_timeout + o_.block);
        if (!c.ok()) {
          set_connected(false, c.status().message());
          if (!pause(backoff)) return;
          backoff = std::min(backoff * 2, o_.reconnect_max);
          continue;
        }
        conn_ = std::move(*c);
        set_connected(true, "");
        backoff = o_.reconnect_min;
        if (!check_epoch()) return;
      }
      auto r = conn_->command({"XREAD", "COUNT", count_, "BLOCK", block_, "STREAMS", o_.stream, pos_.entry});
      if (!r.ok()) {
        set_connected(false, r.status().message());
        conn_.reset();
        if (!pause(o_.reconnect_min)) return;
        continue;
      }
      if (is_nil(r->get())) {
        if (std::chrono::steady_clock::now() - last_epoch_check_ >= kEpochCheckEvery && !check_epoch()) return;
        continue;
      }
      // [[stream, [[id, [field, value, ...]], ...]]]
      const redisReply* entries = element(element(r->get(), 0), 1);
      size_t n = 0;
      if (!is_array(entries, &n)) continue;
      for (size_t k = 0; k < n; ++k) {
        const redisReply* entry = element(entries, k);
        const std::string_view id = reply_text(element(entry, 0));
        if (id.empty()) continue;
        if (!handle_entry(id, element(entry, 1))) return;
      }
    }
  }

  // Decodes one entry into a piece for read(). False once closed.
  bool handle_entry(std::string_view entry_id, const redisReply* fields) {
    pos_.entry = std::string(entry_id);
    {
      MutexLock lock(&mu_);
      ++stats_.entries;
    }
    EntryFields f;
    uint64_t first = 0, count = 0, published = 0, dropped = 0;
    const bool header_ok = read_fields(fields, f) && f.v == redis::kFormatVersion && !f.e.empty() &&
                           !f.i.empty() && parse_u64(f.n, first) && parse_u64(f.c, count) &&
                           parse_u64(f.p, published) && parse_u64(f.d, dropped) && first >= 1 &&
                           count <= 1000000 && first + count - 1 <= kMaxId;
    if (!header_ok) return skip_malformed(std::nullopt);
    if (f.e != pos_.epoch) {
      // Entries of a new log reached us before the epoch check did.
      if (!pos_.epoch.empty() && !on_reset(std::string(f.e))) return false;
      pos_.epoch = std::string(f.e);
    }
    Piece p;
    p.sources.push_back({std::string(f.i), published, dropped});
    if (count > 0) {
      const uint64_t last = first + count - 1;
      std::vector<std::unique_ptr<Record>> records;
      records.reserve(count);
      std::string_view body = f.r;
      for (uint64_t k = 0; k < count; ++k) {
        auto r = take_record();
        if (!decode_binary(body, *r).ok()) {
          recycle(records);
          return skip_malformed(std::make_pair(first, count));
        }
        records.push_back(std::move(r));
      }
      if (!body.empty()) {
        recycle(records);
        return skip_malformed(std::make_pair(first, count));
      }
      if (last <= pos_.last_id) {
        count_stale(count);
        recycle(records);
      } else {
        size_t skip = 0;
        if (first <= pos_.last_id) {
          skip = static_cast<size_t>(pos_.last_id - first + 1);
          count_stale(skip);
        } else if (!fresh_ && first > pos_.last_id + 1) {
          p.gaps.push_back({first - pos_.last_id - 1, missing_since_malformed_ ? "missing" : "trimmed"});
        }
        for (size_t k = skip; k < records.size(); ++k) {
          Record& r = *records[k];
          r.id = first + k;
          if (r.instance.empty()) r.instance.assign(f.i);
          p.records.push_back(std::move(records[k]));
        }
        std::vector<std::unique_ptr<Record>> skipped(std::make_move_iterator(records.begin()),
                                                     std::make_move_iterator(records.begin() + skip));
        recycle(skipped);
        pos_.last_id = last;
        fresh_ = false;
        missing_since_malformed_ = false;
      }
    }
    p.position = pos_.str();
    return push(std::move(p));
  }

  // An entry that does not decode: counted, and reported as a gap of its
  // records when its header said how many.
  bool skip_malformed(std::optional<std::pair<uint64_t, uint64_t>> ids) {
    {
      MutexLock lock(&mu_);
      ++stats_.malformed;
    }
    Piece p;
    if (ids && ids->second > 0 && ids->first + ids->second - 1 > pos_.last_id) {
      const uint64_t from = std::max(ids->first, pos_.last_id + 1);
      const uint64_t last = ids->first + ids->second - 1;
      if (!fresh_ && from > pos_.last_id + 1) p.gaps.push_back({from - pos_.last_id - 1, "trimmed"});
      p.gaps.push_back({last - from + 1, "malformed"});
      pos_.last_id = last;
      fresh_ = false;
    } else if (!ids) {
      missing_since_malformed_ = true;
    }
    p.position = pos_.str();
    return push(std::move(p));
  }

  void count_stale(uint64_t n) CLIO_EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    stats_.stale += n;
  }

  // Constant after construction.
  const RedisLogOptions o_;
  const RedisAddress address_;
  const std::string epoch_key_, count_, block_;

  // Owned by the reader thread (set by start() before it runs).
  std::unique_ptr<RedisConn> conn_;
  Position pos_;
  bool fresh_ = true;
  bool missing_since_malformed_ = false;
  std::chrono::steady_clock::time_point last_epoch_check_{};

  // Guarded by mu_.
  mutable Mutex mu_;
  CondVar cv_;       // queue_ not empty, or closed
  CondVar room_cv_;  // queue_ has room, or closed
  std::deque<Piece> queue_ CLIO_GUARDED_BY(mu_);
  size_t queued_records_ CLIO_GUARDED_BY(mu_) = 0;
  bool closed_ CLIO_GUARDED_BY(mu_) = false;
  LogReaderStats stats_ CLIO_GUARDED_BY(mu_);

  // Guarded by spare_mu_.
  Mutex spare_mu_;
  std::vector<std::unique_ptr<Record>> spares_ CLIO_GUARDED_BY(spare_mu_);

  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<LogReader>> make_redis_reader(const RedisLogOptions& options) {
  auto address = redis::check_options(options);
  if (!address.ok()) return address.status();
  return std::unique_ptr<LogReader>(new RedisReader(options, std::move(*address)));
}

}  // namespace clio::log
