// clio_chat: the chat room of the App Engine Channel API era, rebuilt on the
// Clio channel alone. `clio_chat --port 0` prints the URL it listens on.
//
//   GET  /            the page (uses goog.appengine.Channel, shows text only)
//   GET  /channel.js, /_ah/channel/jsapi   the channel client, which finds
//                     this server's channel even from a page on another origin
//   GET|POST /login   -> {"client_id", "token", "expires_at", "refresh_key", "users"}
//   POST /token       form client_id, refresh_key -> {"token", "expires_at"}
//   POST /post        form client_id, value; every logged-in user receives
//                     {"message": {"value", "client_id", "datetime"}}, also one
//                     that is reconnecting (the channel keeps it for them)
//   WebSocket /channel  the channel; on every connect and disconnect every
//                     logged-in user receives {"users": [{"client_id": ...}, ...]}
//                     listing those connected
//
// A user stays logged in until the channel forgets their client id (away for
// longer than its replay window). --cors ORIGIN answers /login, /token and
// /post for pages on ORIGIN ('*' for any), as the App Engine chat did.
// --threads N sets CivetWeb's worker threads: the channel admits N - 8
// sessions (one thread each) and answers the next with 503, so plain HTTP
// keeps 8 threads.
#include <civetweb.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "clio/channel/channel.h"
#include "page.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void stop_handler(int) { g_stop = 1; }

constexpr size_t kMaxValueBytes = 4000;
constexpr size_t kMaxUsers = 10000;
constexpr const char* kChannelPath = "/channel";

std::string random_id(size_t bytes) {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lk(mu);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rng() & 0xFF);
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 15]);
  }
  return s;
}

std::string utc_now_iso() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms));
  return std::string(buf) + frac;
}

// `cors`: the origin allowed to read the answer (Access-Control-Allow-Origin), if any.
int reply(mg_connection* c, int status, const char* type, const std::string& body, const std::string& cors = {}) {
  mg_response_header_start(c, status);
  if (!cors.empty()) mg_response_header_add(c, "Access-Control-Allow-Origin", cors.c_str(), -1);
  mg_response_header_add(c, "Content-Type", type, -1);
  mg_response_header_add(c, "Cache-Control", "no-store", -1);
  mg_response_header_add(c, "X-Content-Type-Options", "nosniff", -1);
  mg_response_header_add(c, "Content-Length", std::to_string(body.size()).c_str(), -1);
  mg_response_header_send(c);
  mg_write(c, body.data(), body.size());
  return status;
}

int reply_json(mg_connection* c, int status, const nlohmann::json& j, const std::string& cors = {}) {
  return reply(c, status, "application/json", j.dump(), cors);
}

int reply_error(mg_connection* c, int status, const std::string& message, const std::string& cors = {}) {
  return reply_json(c, status, {{"error", message}}, cors);
}

// The request body (bounded) or query string, for form fields.
std::string form_data(mg_connection* c) {
  const mg_request_info* ri = mg_get_request_info(c);
  std::string body;
  if (ri->content_length > 64 * 1024) return {};
  char buf[8192];
  int n;
  while (body.size() < 64 * 1024 && (n = mg_read(c, buf, sizeof buf)) > 0) body.append(buf, static_cast<size_t>(n));
  if (body.empty() && ri->query_string) body = ri->query_string;
  return body;
}

bool form_field(const std::string& form, const char* name, std::string* out) {
  std::vector<char> buf(form.size() + 1);
  const int n = mg_get_var(form.data(), form.size(), name, buf.data(), buf.size());
  if (n < 0) return false;
  out->assign(buf.data(), static_cast<size_t>(n));
  return true;
}

// Chat is safe for concurrent use by multiple threads. It holds the chat
// room: logged-in users (with their token refresh keys) and the channel.
class Chat {
 public:
  // `cors`: the origin whose pages may use /login, /token and /post, or empty.
  Chat(std::chrono::seconds token_duration, std::string cors)
      : token_duration_(token_duration), cors_(std::move(cors)), channel_(make_options()) {}

  clio::channel::ChannelService& channel() { return channel_; }

  int login(mg_connection* c) {
    const std::string id = random_id(16);
    const std::string key = random_id(16);
    auto tok = channel_.create_channel(id, token_duration_);
    if (!tok.ok()) return reply_error(c, 503, tok.status().message(), cors_);
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (users_.size() >= kMaxUsers) evict_locked();
      users_[id] = key;
    }
    return reply_json(c, 200,
                      {{"client_id", id}, {"token", tok->token}, {"expires_at", tok->expires_at},
                               {"refresh_key", key}, {"users", users_json()["users"]}},
                      cors_);
  }

  int token(mg_connection* c) {
    const std::string form = form_data(c);
    std::string id, key;
    if (!form_field(form, "client_id", &id) || !form_field(form, "refresh_key", &key)) {
      return reply_error(c, 400, "form fields client_id and refresh_key are required", cors_);
    }
    if (!known(id, &key)) return reply_error(c, 403, "unknown client_id or refresh_key", cors_);
    auto tok = channel_.create_channel(id, token_duration_);
    if (!tok.ok()) return reply_error(c, 503, tok.status().message(), cors_);
    return reply_json(c, 200, {{"token", tok->token}, {"expires_at", tok->expires_at}}, cors_);
  }

  int post(mg_connection* c) {
    const std::string form = form_data(c);
    std::string id, value;
    if (!form_field(form, "client_id", &id) || !form_field(form, "value", &value)) {
      return reply_error(c, 400, "form fields client_id and value are required", cors_);
    }
    if (value.size() > kMaxValueBytes) return reply_error(c, 413, "value is longer than 4000 bytes", cors_);
    if (!known(id, nullptr)) return reply_error(c, 403, "unknown client_id: log in first", cors_);
    const nlohmann::json msg = {{"message", {{"value", value}, {"client_id", id}, {"datetime", utc_now_iso()}}}};
    const std::string text = msg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    broadcast(text);
    return reply(c, 200, "application/json", text, cors_);
  }

  // Sends `text` to every logged-in user, connected or not: the channel keeps
  // it for a user who is reconnecting. A user the channel has forgotten
  // (away for longer than its replay window) is logged out.
  void broadcast(const std::string& text) {
    std::vector<std::string> ids, gone;
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (const auto& [id, key] : users_) ids.push_back(id);
    }
    for (const std::string& id : ids) {
      if (channel_.send_message(id, text) == clio::channel::SendResult::kNoSuchClient) gone.push_back(id);
    }
    std::lock_guard<std::mutex> lk(mu_);
    for (const std::string& id : gone) users_.erase(id);
  }

 private:
  clio::channel::ChannelOptions make_options() {
    clio::channel::ChannelOptions o;
    o.on_connect = [this](const std::string&) { broadcast(users_json().dump()); };
    o.on_disconnect = [this](const std::string&) { broadcast(users_json().dump()); };
    return o;
  }

  nlohmann::json users_json() {
    nlohmann::json list = nlohmann::json::array();
    for (const std::string& id : channel_.connected_clients()) list.push_back({{"client_id", id}});
    return {{"users", list}};
  }

  // With `key`, also checks the refresh key.
  bool known(const std::string& id, const std::string* key) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = users_.find(id);
    return it != users_.end() && (key == nullptr || it->second == *key);
  }

  void evict_locked() {
    for (auto it = users_.begin(); it != users_.end();) {
      it = channel_.is_connected(it->first) ? std::next(it) : users_.erase(it);
    }
  }

  const std::chrono::seconds token_duration_;
  const std::string cors_;
  std::mutex mu_;
  std::map<std::string, std::string> users_;  // client id -> refresh key; guarded by mu_
  clio::channel::ChannelService channel_;     // last: its callbacks use the members above
};

int handle(mg_connection* c, void* cbdata) {
  Chat* chat = static_cast<Chat*>(cbdata);
  const mg_request_info* ri = mg_get_request_info(c);
  const std::string uri = ri->local_uri ? ri->local_uri : "";
  const std::string method = ri->request_method ? ri->request_method : "";
  if (uri == "/" && (method == "GET" || method == "HEAD")) return reply(c, 200, "text/html; charset=utf-8", kPage);
  if (uri == "/login" && (method == "GET" || method == "POST")) return chat->login(c);
  if (uri == "/token" && method == "POST") return chat->token(c);
  if (uri == "/post" && method == "POST") return chat->post(c);
  if (uri == "/" || uri == "/login" || uri == "/token" || uri == "/post") {
    return reply_error(c, 405, "method not allowed");
  }
  return reply_error(c, 404, "not found");
}

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: clio_chat [--port N] [--listen ADDR] [--threads N] [--cors ORIGIN] [--token-seconds S]\n"
               "  --port N           port (default 8080; 0 picks a free one)\n"
               "  --listen ADDR      IPv4 address to bind (default 127.0.0.1)\n"
               "  --threads N        CivetWeb worker threads (default 64): N - 8 chat sessions,\n"
               "                     one thread each; 8 stay for HTTP\n"
               "  --cors ORIGIN      let pages on ORIGIN ('*': any) use /login, /token, /post\n"
               "  --token-seconds S  channel token lifetime (default 7200)\n");
}

}  // namespace

int main(int argc, char** argv) {
  long port = 8080;
  long token_seconds = 7200;
  long threads = 64;
  std::string listen = "127.0.0.1";
  std::string cors;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      usage(stdout);
      return 0;
    }
    const bool known = k == "--port" || k == "--listen" || k == "--token-seconds" || k == "--threads" || k == "--cors";
    if (i + 1 >= argc || !known) {
      usage(stderr);
      return 2;
    }
    const char* v = argv[++i];
    if (k == "--listen" || k == "--cors") {
      (k == "--listen" ? listen : cors) = v;
      continue;
    }
    char* end;
    const long n = std::strtol(v, &end, 10);
    const bool bad = *end || n < 0 || (k == "--port" && n > 65535) || (k == "--token-seconds" && n < 1) ||
                     (k == "--threads" && (n < 9 || n > 10000));
    if (bad) {
      std::fprintf(stderr, "clio_chat: bad value for %s: '%s'%s\n", k.c_str(), v,
                   k == "--threads" ? " (9 to 10000: 8 threads stay for HTTP)" : "");
      return 2;
    }
    (k == "--port" ? port : k == "--threads" ? threads : token_seconds) = n;
  }

  mg_init_library(0);
  Chat chat{std::chrono::seconds(token_seconds), cors};
  std::vector<std::string> opts = {"listening_ports", listen + ":" + std::to_string(port),
                                   "num_threads", std::to_string(threads)};
  if (cors.empty()) {
    opts.insert(opts.end(), {"access_control_allow_methods", ""});  // CivetWeb answers no preflight
  } else {
    opts.insert(opts.end(), {"access_control_allow_origin", cors, "access_control_allow_methods", "GET, POST",
                             "access_control_allow_headers", "Content-Type"});
  }
  clio::channel::append_recommended_civetweb_options(opts);
  std::vector<const char*> ptrs;
  for (const auto& s : opts) ptrs.push_back(s.c_str());
  ptrs.push_back(nullptr);
  mg_callbacks callbacks{};
  mg_context* ctx = mg_start(&callbacks, nullptr, ptrs.data());
  if (ctx == nullptr) {
    std::fprintf(stderr, "clio_chat: cannot listen on %s:%ld\n", listen.c_str(), port);
    return 1;
  }
  clio::Status st = chat.channel().mount(ctx, kChannelPath);
  // The client script at the App Engine path too, so pages written for it load it unchanged.
  if (st.ok()) st = chat.channel().serve_client(ctx, "/channel.js");
  if (st.ok()) st = chat.channel().serve_client(ctx, "/_ah/channel/jsapi");
  // After the channel's handlers: CivetWeb tries prefix patterns in the order they were set.
  mg_set_request_handler(ctx, "/", handle, &chat);
  if (!st.ok()) {
    std::fprintf(stderr, "clio_chat: %s\n", st.message().c_str());
    chat.channel().shutdown();
    mg_stop(ctx);
    return 1;
  }
  mg_server_port ports[2];
  const int bound = mg_get_server_ports(ctx, 2, ports) > 0 ? ports[0].port : static_cast<int>(port);
  std::printf("listening on http://%s:%d/ (up to %zu chat sessions on %ld threads)\n", listen.c_str(), bound,
              chat.channel().session_limit(), threads);
  std::fflush(stdout);

  signal(SIGINT, stop_handler);
  signal(SIGTERM, stop_handler);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  chat.channel().shutdown();
  mg_stop(ctx);
  mg_exit_library();
  return 0;
}
