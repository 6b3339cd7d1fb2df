// clio_chat: the chat room of the App Engine Channel API era, rebuilt on the
// Clio channel alone. `clio_chat --port 0` prints the URL it listens on.
//
//   GET  /            the page (uses goog.appengine.Channel, shows text only)
//   GET  /channel.js  the channel client
//   GET|POST /login   -> {"client_id", "token", "expires_at", "refresh_key", "users"}
//   POST /token       form client_id, refresh_key -> {"token", "expires_at"}
//   POST /post        form client_id, value; everyone connected receives
//                     {"message": {"value", "client_id", "datetime"}}
//   WebSocket /channel  the channel; on every connect and disconnect everyone
//                     connected receives {"users": [{"client_id": ...}, ...]}
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
#include "clio/templates/assets.h"
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

int reply(mg_connection* c, int status, const char* type, const std::string& body) {
  mg_response_header_start(c, status);
  mg_response_header_add(c, "Content-Type", type, -1);
  mg_response_header_add(c, "Cache-Control", "no-store", -1);
  mg_response_header_add(c, "X-Content-Type-Options", "nosniff", -1);
  mg_response_header_add(c, "Content-Length", std::to_string(body.size()).c_str(), -1);
  mg_response_header_send(c);
  mg_write(c, body.data(), body.size());
  return status;
}

int reply_json(mg_connection* c, int status, const nlohmann::json& j) {
  return reply(c, status, "application/json", j.dump());
}

int reply_error(mg_connection* c, int status, const std::string& message) {
  return reply_json(c, status, {{"error", message}});
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
  explicit Chat(std::chrono::seconds token_duration)
      : token_duration_(token_duration),
        channel_(make_options()) {}

  clio::channel::ChannelService& channel() { return channel_; }

  int login(mg_connection* c) {
    const std::string id = random_id(16);
    const std::string key = random_id(16);
    auto tok = channel_.create_channel(id, token_duration_);
    if (!tok.ok()) return reply_error(c, 503, tok.status().message());
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (users_.size() >= kMaxUsers) evict_locked();
      users_[id] = key;
    }
    return reply_json(c, 200, {{"client_id", id}, {"token", tok->token}, {"expires_at", tok->expires_at},
                               {"refresh_key", key}, {"users", users_json()["users"]}});
  }

  int token(mg_connection* c) {
    const std::string form = form_data(c);
    std::string id, key;
    if (!form_field(form, "client_id", &id) || !form_field(form, "refresh_key", &key)) {
      return reply_error(c, 400, "form fields client_id and refresh_key are required");
    }
    if (!known(id, &key)) return reply_error(c, 403, "unknown client_id or refresh_key");
    auto tok = channel_.create_channel(id, token_duration_);
    if (!tok.ok()) return reply_error(c, 503, tok.status().message());
    return reply_json(c, 200, {{"token", tok->token}, {"expires_at", tok->expires_at}});
  }

  int post(mg_connection* c) {
    const std::string form = form_data(c);
    std::string id, value;
    if (!form_field(form, "client_id", &id) || !form_field(form, "value", &value)) {
      return reply_error(c, 400, "form fields client_id and value are required");
    }
    if (value.size() > kMaxValueBytes) return reply_error(c, 413, "value is longer than 4000 bytes");
    if (!known(id, nullptr)) return reply_error(c, 403, "unknown client_id: log in first");
    const nlohmann::json msg = {{"message", {{"value", value}, {"client_id", id}, {"datetime", utc_now_iso()}}}};
    const std::string text = msg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    broadcast(text);
    return reply(c, 200, "application/json", text);
  }

  void broadcast(const std::string& text) {
    for (const std::string& id : channel_.connected_clients()) channel_.send_message(id, text);
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
  if (uri == "/channel.js" && method == "GET") {
    const auto* a = clio::templates::find_asset("channel.js");
    if (!a) return reply_error(c, 500, "channel.js is not embedded");
    return reply(c, 200, std::string(a->content_type).c_str(), std::string(a->data));
  }
  if (uri == "/login" && (method == "GET" || method == "POST")) return chat->login(c);
  if (uri == "/token" && method == "POST") return chat->token(c);
  if (uri == "/post" && method == "POST") return chat->post(c);
  if (uri == "/" || uri == "/channel.js" || uri == "/login" || uri == "/token" || uri == "/post") {
    return reply_error(c, 405, "method not allowed");
  }
  return reply_error(c, 404, "not found");
}

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: clio_chat [--port N] [--listen ADDR] [--token-seconds S]\n"
               "  --port N           port (default 8080; 0 picks a free one)\n"
               "  --listen ADDR      IPv4 address to bind (default 127.0.0.1)\n"
               "  --token-seconds S  channel token lifetime (default 7200)\n");
}

}  // namespace

int main(int argc, char** argv) {
  long port = 8080;
  long token_seconds = 7200;
  std::string listen = "127.0.0.1";
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc || (k != "--port" && k != "--listen" && k != "--token-seconds")) {
      usage(stderr);
      return 2;
    }
    const char* v = argv[++i];
    if (k == "--listen") {
      listen = v;
      continue;
    }
    char* end;
    const long n = std::strtol(v, &end, 10);
    if (*end || n < 0 || (k == "--port" && n > 65535) || (k == "--token-seconds" && n < 1)) {
      std::fprintf(stderr, "clio_chat: bad value for %s: '%s'\n", k.c_str(), v);
      return 2;
    }
    (k == "--port" ? port : token_seconds) = n;
  }

  mg_init_library(0);
  Chat chat{std::chrono::seconds(token_seconds)};
  std::vector<std::string> opts = {"listening_ports", listen + ":" + std::to_string(port),
                                   "num_threads", "64"};
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
  if (auto st = chat.channel().mount(ctx, kChannelPath); !st.ok()) {
    std::fprintf(stderr, "clio_chat: %s\n", st.message().c_str());
    mg_stop(ctx);
    return 1;
  }
  // After the channel's handlers: CivetWeb tries prefix patterns in the order they were set.
  mg_set_request_handler(ctx, "/", handle, &chat);
  mg_server_port ports[2];
  const int bound = mg_get_server_ports(ctx, 2, ports) > 0 ? ports[0].port : static_cast<int>(port);
  std::printf("listening on http://%s:%d/\n", listen.c_str(), bound);
  std::fflush(stdout);

  signal(SIGINT, stop_handler);
  signal(SIGTERM, stop_handler);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  chat.channel().shutdown();
  mg_stop(ctx);
  mg_exit_library();
  return 0;
}
