// The app side of the Redis log: appends batches of records as stream
// entries through one Lua script (ids reserved and entry added atomically),
// pipelined.
#include <random>

#include "clio/log/redis_log.h"
#include "clio/middleware/record_binary.h"
#include "redis_common.h"
#include "redis_conn.h"

namespace clio::log {
namespace {

// KEYS: stream, NAME:seq, NAME:epoch.
// ARGV: max_entries, floor, the writer's random tag, instance, count, published, dropped, records.
// Seeds the counter (see redis_log.h) and, when missing, the epoch (the tag
// and the server's time: new at every seeding, whoever seeds),
// reserves `count` ids, appends the entry; returns the last id reserved.
constexpr const char* kPublishScript = R"lua(
local seq = redis.call('GET', KEYS[2])
local epoch = redis.call('GET', KEYS[3])
if not seq or not epoch then
  local t = redis.call('TIME')
  local seed = tonumber(t[1]) * 1000000 + math.floor(tonumber(t[2]) / 1000) * 1000
  local floor = tonumber(ARGV[2])
  if floor > seed then seed = floor end
  if seq and tonumber(seq) > seed then seed = tonumber(seq) end
  redis.call('SET', KEYS[2], string.format('%.0f', seed))
  if not epoch then
    epoch = ARGV[3] .. '.' .. t[1] .. '.' .. t[2]
    redis.call('SET', KEYS[3], epoch)
  end
end
local n = tonumber(ARGV[5])
local last = redis.call('INCRBY', KEYS[2], n)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'v', '1', 'e', epoch, 'i', ARGV[4],
  'n', string.format('%.0f', last - n + 1), 'c', ARGV[5], 'p', ARGV[6], 'd', ARGV[7], 'r', ARGV[8])
return last
)lua";

std::string random_epoch() {
  std::random_device rd;
  std::string s;
  static const char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 4; ++i) {
    uint32_t v = rd();
    for (int k = 0; k < 8; ++k, v >>= 4) s.push_back(kHex[v & 15]);
  }
  return s;
}

// Owned by the publisher's thread.
class RedisWriter final : public LogWriter {
 public:
  RedisWriter(RedisLogOptions o, RedisAddress a)
      : o_(std::move(o)), address_(std::move(a)), seq_(redis::seq_key(o_.stream)),
        epoch_key_(redis::epoch_key(o_.stream)), max_entries_(std::to_string(o_.max_entries)) {}

  Status append(const std::vector<std::unique_ptr<Record>>& records, const SourceReport& report,
                size_t& appended) override {
    appended = 0;
    if (Status s = ensure_connected(); !s.ok()) return s;
    // Cut the batch into entries (their buffers keep their capacity from call to call).
    size_t used = 0, i = 0;
    do {
      if (used == entries_.size()) entries_.emplace_back();
      Entry& e = entries_[used++];
      e.body.clear();
      e.count = 0;
      e.sent = false;
      while (i < records.size() && e.count < o_.records_per_entry && e.body.size() < o_.entry_bytes) {
        append_binary(*records[i++], e.body);
        ++e.count;
      }
    } while (i < records.size());
    Status s = send_entries(report, used, appended, /*retry_noscript=*/true);
    if (!s.ok() && conn_ && conn_->broken()) conn_.reset();
    return s;
  }

  void disconnect() override { conn_.reset(); }
  std::string describe() const override { return address_.describe() + " stream " + o_.stream; }

 private:
  Status ensure_connected() {
    if (conn_) return Status::Ok();
    auto c = RedisConn::connect(address_, o_.connect_timeout, o_.io_timeout);
    if (!c.ok()) return c.status();
    auto sha = (*c)->command({"SCRIPT", "LOAD", kPublishScript});
    if (!sha.ok()) return Status::Unavailable("cannot load the publish script: " + sha.status().message());
    sha_ = std::string(reply_text(sha->get()));
    conn_ = std::move(*c);
    return Status::Ok();
  }

  // Sends the first `n` entries_ not yet sent, pipelined; adds the records
  // of the entries the server took to `appended`; returns the first failure.
  Status send_entries(const SourceReport& report, size_t n, size_t& appended, bool retry_noscript) {
    const std::string floor = std::to_string(floor_);
    const std::string published = std::to_string(report.published), dropped = std::to_string(report.dropped);
    for (size_t k = 0; k < n; ++k) {
      const Entry& e = entries_[k];
      if (e.sent) continue;
      const std::string count = std::to_string(e.count);
      conn_->append({"EVALSHA", sha_, "3", o_.stream, seq_, epoch_key_, max_entries_, floor, epoch_tag_,
                     report.instance, count, published, dropped, e.body});
    }
    Status first_error;
    bool noscript = false;  // some entry was refused because the server had lost the script
    for (size_t k = 0; k < n; ++k) {
      Entry& e = entries_[k];
      if (e.sent) continue;
      auto r = conn_->get_reply();
      long long last = 0;
      if (r.ok() && reply_integer(r->get(), last)) {
        floor_ = std::max<uint64_t>(floor_, static_cast<uint64_t>(last));
        appended += e.count;
        e.sent = true;
        continue;
      }
      if (!r.ok() && r.status().message().find("NOSCRIPT") != std::string::npos) {
        noscript = true;
        continue;
      }
      e.sent = true;  // refused for good: dropped
      if (first_error.ok()) first_error = r.ok() ? Status::Internal("unexpected reply to the publish script") : r.status();
      if (conn_->broken()) return first_error;
    }
    if (noscript) {
      if (!retry_noscript) return Status::Internal("redis " + address_.describe() + " refuses the publish script");
      // The server's script cache was flushed: load it again and resend the
      // entries it refused (they were not added).
      conn_.reset();
      if (Status s = ensure_connected(); !s.ok()) return s;
      Status s = send_entries(report, n, appended, /*retry_noscript=*/false);
      if (first_error.ok()) first_error = s;
    }
    return first_error;
  }

  // Constant after construction.
  const RedisLogOptions o_;
  const RedisAddress address_;
  const std::string seq_, epoch_key_, max_entries_;
  const std::string epoch_tag_ = random_epoch();

  std::unique_ptr<RedisConn> conn_;
  std::string sha_;
  uint64_t floor_ = 0;  // the highest id this writer was given
  struct Entry {
    std::string body;
    size_t count = 0;
    bool sent = false;  // answered by the server (taken or refused)
  };
  std::vector<Entry> entries_;
};

}  // namespace

Result<std::unique_ptr<LogWriter>> make_redis_writer(const RedisLogOptions& options) {
  auto address = redis::check_options(options);
  if (!address.ok()) return address.status();
  return std::unique_ptr<LogWriter>(new RedisWriter(options, std::move(*address)));
}

}  // namespace clio::log
