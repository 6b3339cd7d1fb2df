// A synchronous Redis connection (hiredis), with errors as Status: the one
// place the log module talks to hiredis.
//
//   auto conn = RedisConn::connect(address, 1000ms, 2000ms);
//   if (!conn.ok()) return conn.status();
//   auto reply = (*conn)->command({"XADD", "s", "*", "f", "v"});
//   (*conn)->append({"PING"}); (*conn)->append({"PING"});   // pipelined
//   auto a = (*conn)->get_reply(), b = (*conn)->get_reply();
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "clio/base/status.h"
#include "clio/log/redis_log.h"

struct redisContext;
struct redisReply;

namespace clio::log {

struct ReplyFree {
  void operator()(redisReply* r) const;
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

// Owned by one thread (a hiredis context is not thread-safe). After an I/O
// error the connection is broken(): every later call fails; connect anew.
class RedisConn {
 public:
  // Connects, authenticates and selects the database of `address`. Every
  // failure is kUnavailable naming the server (never the password).
  static Result<std::unique_ptr<RedisConn>> connect(const RedisAddress& address,
                                                    std::chrono::milliseconds connect_timeout,
                                                    std::chrono::milliseconds io_timeout);
  ~RedisConn();
  // Not copyable.
  RedisConn(const RedisConn&) = delete;
  RedisConn& operator=(const RedisConn&) = delete;

  // Runs one command (binary-safe arguments). An error reply from the
  // server is kInternal with the server's message; an I/O error or timeout
  // is kUnavailable and breaks the connection.
  Result<Reply> command(const std::vector<std::string_view>& args);
  // Pipelining: queue commands, then read one reply per command in order.
  void append(const std::vector<std::string_view>& args);
  Result<Reply> get_reply();

  // Sets the timeout of every read and write from now on.
  void set_io_timeout(std::chrono::milliseconds timeout);
  bool broken() const { return broken_; }

 private:
  RedisConn(redisContext* c, std::string where) : c_(c), where_(std::move(where)) {}
  Status io_error();

  redisContext* c_;
  const std::string where_;  // address for messages, without the password
  bool broken_ = false;
};

// The string of a string, status or error reply ("" for others).
std::string_view reply_text(const redisReply* r);
// True for an array reply; `n` its element count.
bool is_array(const redisReply* r, size_t* n = nullptr);
const redisReply* element(const redisReply* r, size_t i);
bool is_nil(const redisReply* r);
// The integer of an integer reply, or of a string reply holding digits.
bool reply_integer(const redisReply* r, long long& out);

}  // namespace clio::log
