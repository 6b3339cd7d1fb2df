// A real redis-server for tests: started on a free loopback port in a
// scratch directory, with nothing written to disk, and stopped (SIGTERM,
// then SIGKILL) when the object goes. Never the system's instance.
//
//   auto redis = clio::test::RedisServer::start();
//   REQUIRE_MESSAGE(redis.ok(), redis.status().message());
//   std::string url = (*redis)->url();                  // redis://127.0.0.1:PORT
//   auto n = (*redis)->command({"XLEN", "clio:records"});
//   (*redis)->kill(); (*redis)->restart();              // an empty server again, same port
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "clio/base/status.h"

namespace clio::test {

// The reply of one command, flattened: a string, status or error reply's
// text, an integer, or the elements of an array (recursively flattened).
struct RedisReply {
  bool error = false;
  bool nil = false;
  long long integer = 0;
  std::string text;
  std::vector<RedisReply> elements;
};

// Owned by one thread (external synchronization).
class RedisServer {
 public:
  // `extra` are more redis-server arguments ("--stream-node-max-entries",
  // "10"). Waits until the server answers PING (at most 10 s).
  static Result<std::unique_ptr<RedisServer>> start(std::vector<std::string> extra = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  bool running() const { return pid_ > 0; }

  // Stops the server abruptly (SIGKILL) and waits for it.
  void kill();
  // Freezes the server (SIGSTOP: connections stay open, nothing answers) or
  // lets it go on (SIGCONT): a Redis that is slow without limit.
  void freeze(bool frozen);
  // Starts it again on the same port, empty.
  Status restart();
  // Runs one command on a new connection.
  Result<RedisReply> command(const std::vector<std::string_view>& args) const;

 private:
  RedisServer() = default;
  Status launch();

  int port_ = 0;
  pid_t pid_ = -1;
  std::string dir_;
  std::vector<std::string> extra_;
};

}  // namespace clio::test
