#include "redis_conn.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <charconv>

namespace clio::log {

namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

}  // namespace

void ReplyFree::operator()(redisReply* r) const { freeReplyObject(r); }

Result<std::unique_ptr<RedisConn>> RedisConn::connect(const RedisAddress& address,
                                                      std::chrono::milliseconds connect_timeout,
                                                      std::chrono::milliseconds io_timeout) {
  const std::string where = address.describe();
  redisContext* c = redisConnectWithTimeout(address.host.c_str(), address.port, to_timeval(connect_timeout));
  if (c == nullptr) return Status::Unavailable("cannot connect to " + where + ": out of memory");
  if (c->err != 0) {
    std::string why = c->errstr;
    redisFree(c);
    return Status::Unavailable("cannot connect to " + where + ": " + why);
  }
  std::unique_ptr<RedisConn> conn(new RedisConn(c, where));
  conn->set_io_timeout(io_timeout);
  redisEnableKeepAlive(c);
  if (!address.password.empty()) {
    std::vector<std::string_view> auth = {"AUTH"};
    if (!address.user.empty()) auth.push_back(address.user);
    auth.push_back(address.password);
    auto r = conn->command(auth);
    if (!r.ok()) return Status::Unavailable("cannot authenticate to " + where + ": " + r.status().message());
  }
  if (address.db != 0) {
    const std::string db = std::to_string(address.db);
    auto r = conn->command({"SELECT", db});
    if (!r.ok()) return Status::Unavailable("cannot select database " + db + " on " + where + ": " + r.status().message());
  }
  return conn;
}

RedisConn::~RedisConn() { redisFree(c_); }

void RedisConn::set_io_timeout(std::chrono::milliseconds timeout) { redisSetTimeout(c_, to_timeval(timeout)); }

Status RedisConn::io_error() {
  broken_ = true;
  std::string why = c_->err != 0 ? c_->errstr : "connection lost";
  if (why.find("Resource temporarily unavailable") != std::string::npos) why = "timed out";
  return Status::Unavailable("redis " + where_ + ": " + why);
}

void RedisConn::append(const std::vector<std::string_view>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK) broken_ = true;
}

Result<Reply> RedisConn::get_reply() {
  if (broken_) return io_error();
  void* raw = nullptr;
  if (redisGetReply(c_, &raw) != REDIS_OK || raw == nullptr) return io_error();
  Reply r(static_cast<redisReply*>(raw));
  if (r->type == REDIS_REPLY_ERROR) return Status::Internal("redis " + where_ + ": " + std::string(reply_text(r.get())));
  return r;
}

Result<Reply> RedisConn::command(const std::vector<std::string_view>& args) {
  append(args);
  return get_reply();
}

std::string_view reply_text(const redisReply* r) {
  if (r == nullptr) return {};
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR) {
    return std::string_view(r->str, r->len);
  }
  return {};
}

bool is_array(const redisReply* r, size_t* n) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return false;
  if (n != nullptr) *n = r->elements;
  return true;
}

const redisReply* element(const redisReply* r, size_t i) {
  if (!is_array(r) || i >= r->elements) return nullptr;
  return r->element[i];
}

bool is_nil(const redisReply* r) { return r != nullptr && r->type == REDIS_REPLY_NIL; }

bool reply_integer(const redisReply* r, long long& out) {
  if (r == nullptr) return false;
  if (r->type == REDIS_REPLY_INTEGER) {
    out = r->integer;
    return true;
  }
  const std::string_view s = reply_text(r);
  if (s.empty() || r->type == REDIS_REPLY_ERROR) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace clio::log
