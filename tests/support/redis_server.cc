#include "support/redis_server.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

namespace clio::test {

namespace {

using namespace std::chrono_literals;

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

RedisReply flatten(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      out.text.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.error = true;
      out.text.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.integer = r->integer;
      break;
    case REDIS_REPLY_NIL:
      out.nil = true;
      break;
    case REDIS_REPLY_ARRAY:
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(flatten(r->element[i]));
      break;
    default:
      break;
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<RedisServer>> RedisServer::start(std::vector<std::string> extra) {
  std::unique_ptr<RedisServer> s(new RedisServer());
  char dir[] = "/tmp/clio-redis-XXXXXX";
  if (mkdtemp(dir) == nullptr) return Status::Unavailable("mkdtemp failed");
  s->dir_ = dir;
  s->extra_ = std::move(extra);
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {  // the free port may be taken meanwhile
    s->port_ = free_port();
    last = s->launch();
    if (last.ok()) return s;
  }
  return last;
}

Status RedisServer::launch() {
  const std::string port = std::to_string(port_);
  std::vector<std::string> args = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", dir_, "--daemonize", "no",
                                    "--logfile", dir_ + "/redis.log"};
  args.insert(args.end(), extra_.begin(), extra_.end());
  const pid_t pid = fork();
  if (pid < 0) return Status::Unavailable("fork failed");
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp("redis-server", argv.data());
    _exit(127);
  }
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Unavailable("redis-server exited at start (is it installed? port " + port + " taken?)");
    }
    auto pong = command({"PING"});
    if (pong.ok() && pong->text == "PONG") return Status::Ok();
    std::this_thread::sleep_for(20ms);
  }
  kill();
  return Status::Unavailable("redis-server did not answer PING within 10 s");
}

RedisServer::~RedisServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    if (pid_ > 0) kill();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void RedisServer::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void RedisServer::freeze(bool frozen) {
  if (pid_ > 0) ::kill(pid_, frozen ? SIGSTOP : SIGCONT);
}

Status RedisServer::restart() {
  kill();
  return launch();
}

Result<RedisReply> RedisServer::command(const std::vector<std::string_view>& args) const {
  timeval tv{2, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (c == nullptr || c->err != 0) {
    const std::string why = c ? c->errstr : "out of memory";
    if (c) redisFree(c);
    return Status::Unavailable("cannot connect to redis: " + why);
  }
  redisSetTimeout(c, tv);
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (r == nullptr) {
    const std::string why = c->errstr;
    redisFree(c);
    return Status::Unavailable("redis command failed: " + why);
  }
  RedisReply out = flatten(r);
  freeReplyObject(r);
  redisFree(c);
  return out;
}

}  // namespace clio::test
