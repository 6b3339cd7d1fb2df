// The record log on Redis Streams: several app instances publish into one
// stream, one console hub reads it. Needs Redis 5 or later (tested with
// Debian 12's redis-server 7); one server, not Redis Cluster; no TLS in the
// hiredis of Debian 12, so run it on a private network or through a tunnel.
//
//   clio::log::RedisLogOptions o;
//   o.url = "redis://:secret@10.0.0.5:6379/0";
//   auto writer = clio::log::make_redis_writer(o);   // app side (a Publisher uses it)
//   auto reader = clio::log::make_redis_reader(o);   // console side (the hub uses it)
//
// Layout in Redis (NAME = RedisLogOptions::stream):
// - NAME, a stream. One entry per batch of up to records_per_entry records
//   of one instance: fields v ("1"), e (the log's epoch), i (instance),
//   n (first record id), c (record count), p and d (the instance's records
//   published and dropped so far), r (the records, each
//   clio::append_binary(), one after another). An entry with c = 0 is a
//   heartbeat: it carries only the instance's counts. Trimmed with
//   XADD MAXLEN ~ max_entries.
// - NAME:seq, the id counter; NAME:epoch, a random string naming this
//   incarnation of the log. One Lua script reserves the entry's ids with
//   INCRBY and appends it, atomically, so ids follow stream order.
//
// Ids. A record's id is n + its index in its entry: the same for every
// reader, increasing in stream order, never reused. When the counter does
// not exist (a new log, or Redis restarted empty) it starts at
// max(now in ms * 1000, the publisher's highest id): ids stay below 2^53
// until the year 2255, and a restarted Redis hands out ids above the old
// ones as long as the log averaged under a million records per second
// since it was last seeded (the reader skips, and counts as stale, any id
// not above the last it delivered).
//
// Reading. The reader starts after its saved position (epoch, entry id,
// last record id). Without one it starts at the oldest entry the stream
// keeps. It reports every loss as a LogGap: ids missing between two entries
// ("trimmed": the stream was trimmed past the reader, with the exact
// count), an entry that did not decode ("malformed", exact count when its
// header was readable; else skipped and counted in stats().malformed), and
// a new epoch ("reset": Redis restarted empty; the count is unknown).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "clio/base/status.h"
#include "clio/log/record_log.h"

namespace clio::log {

// Where a Redis server is. A plain value type.
struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user;      // ACL user (Redis 6+); "" = the default user
  std::string password;  // "" = no AUTH
  int db = 0;
  // "redis://host:port/db", without credentials: safe to print.
  std::string describe() const;
};

// Parses redis://[[user]:password@]host[:port][/db]. Host names and IPv4
// addresses; port defaults to 6379, db to 0. Percent-escapes in the user
// and password are decoded. Errors never repeat the password.
Result<RedisAddress> parse_redis_url(std::string_view url);

// Settings of both sides. A plain value type.
struct RedisLogOptions {
  std::string url = "redis://127.0.0.1:6379";
  // The stream's key; NAME:seq and NAME:epoch sit beside it.
  std::string stream = "clio:records";
  // XADD MAXLEN ~: the stream keeps about this many entries (each holds up
  // to records_per_entry records and entry_bytes of them). Retention in
  // time = max_entries / entries per second.
  size_t max_entries = 20000;
  size_t records_per_entry = 100;
  size_t entry_bytes = 64 * 1024;
  std::chrono::milliseconds connect_timeout{1000};
  // Bound of one write or read (beyond the reader's block time).
  std::chrono::milliseconds io_timeout{2000};
  // Reader: entries per XREAD, how long one XREAD waits, and how many
  // decoded records may wait for the hub before the reader stops reading
  // (Redis keeps the rest).
  size_t read_count = 128;
  std::chrono::milliseconds block{250};
  size_t reader_queue_records = 16384;
  // Reader: reconnect backoff after a failure, doubling from min to max.
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
};

// The app side. Checks the options and the URL; connects on first use
// (so an app starts while Redis is down).
Result<std::unique_ptr<LogWriter>> make_redis_writer(const RedisLogOptions& options);
// The console side. Checks the options and the URL; connects in start()'s
// background thread, and keeps reconnecting with backoff.
Result<std::unique_ptr<LogReader>> make_redis_reader(const RedisLogOptions& options);

}  // namespace clio::log
