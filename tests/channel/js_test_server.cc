// channel_js_test_server: a test-only server for the browser tests of
// templates/channel.js. A CivetWeb server with the channel at /channel, and
// in front of it a TCP proxy that can sever every connection on command (a
// real network drop: the browser sees the socket die without a close frame).
//
// Prints "listening on http://127.0.0.1:PROXY/ control http://127.0.0.1:BACKEND/".
// The page is loaded through the proxy; the test drives the server through
// the control (backend) port:
//   GET  /                 a blank page loading /channel.js (served by the channel,
//                          so it finds /channel on the origin it came from)
//   POST /token?client_id=X&seconds=N   -> {"token", "expires_at"}
//   POST /send?client_id=X&count=N      sends {"n":k} for the next N values of k
//                                       (as text; with &as=json through send_json)
//   POST /drop             severs every proxied connection -> {"dropped": n}
//   POST /block, /unblock  while blocked the proxy closes new connections at once
//   POST /disconnect?client_id=X&reason=revoke|reconnect
//   GET  /stats            channel counters and token/refresh counts
#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "clio/channel/channel.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// Proxy is safe for concurrent use by multiple threads. It forwards
// 127.0.0.1:port() to the backend; sever() cuts every connection.
class Proxy {
 public:
  explicit Proxy(int backend) : backend_(backend) {
    lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd_, 64) != 0) {
      std::perror("proxy bind/listen");
      std::exit(1);
    }
    socklen_t len = sizeof a;
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~Proxy() {
    stop_ = true;
    ::shutdown(lfd_, SHUT_RDWR);
    acceptor_.join();
    sever();
    std::vector<std::thread> ts;
    {
      std::lock_guard<std::mutex> lk(mu_);
      ts.swap(threads_);
    }
    for (auto& t : ts) t.join();
    ::close(lfd_);
  }
  int port() const { return port_; }

  void set_blocked(bool b) { blocked_ = b; }

  int sever() {
    std::lock_guard<std::mutex> lk(mu_);
    for (int fd : live_) ::shutdown(fd, SHUT_RDWR);
    return static_cast<int>(live_.size() / 2);
  }

 private:
  void accept_loop() {
    while (!stop_) {
      const int c = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stop_) return;
        continue;
      }
      if (blocked_) {  // an unreachable server: the connection dies at once
        ::close(c);
        continue;
      }
      const int u = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(backend_));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(c);
        ::close(u);
        continue;
      }
      int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::lock_guard<std::mutex> lk(mu_);
      live_.insert(c);
      live_.insert(u);
      threads_.emplace_back([this, c, u] { pump(c, u); });
    }
  }

  void pump(int a, int b) {
    char buf[65536];
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    bool done = false;
    while (!done && !stop_) {
      if (::poll(p, 2, 500) <= 0) continue;
      for (int i = 0; i < 2 && !done; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t n = ::recv(p[i].fd, buf, sizeof buf, 0);
        if (n <= 0) {
          done = true;
          break;
        }
        ssize_t off = 0;
        while (off < n) {
          const ssize_t w = ::send(p[1 - i].fd, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
          if (w <= 0) {
            done = true;
            break;
          }
          off += w;
        }
      }
    }
    std::lock_guard<std::mutex> lk(mu_);
    live_.erase(a);
    live_.erase(b);
    ::close(a);
    ::close(b);
  }

  const int backend_;
  int lfd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> blocked_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::set<int> live_;                // guarded by mu_
  std::vector<std::thread> threads_;  // guarded by mu_
};

struct App {
  clio::channel::ChannelService* channel = nullptr;
  Proxy* proxy = nullptr;
  std::mutex mu;
  std::map<std::string, int> next_n;  // guarded by mu
  std::atomic<int> tokens_issued{0};
};

int reply(mg_connection* c, int status, const char* type, const std::string& body) {
  mg_printf(c,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
            "Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
            status, status == 200 ? "OK" : "Error", type, body.size());
  mg_write(c, body.data(), body.size());
  return status;
}

std::string query_var(mg_connection* c, const char* name) {
  const mg_request_info* ri = mg_get_request_info(c);
  if (!ri->query_string) return {};
  char buf[256];
  const int n = mg_get_var(ri->query_string, std::strlen(ri->query_string), name, buf, sizeof buf);
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

int handle(mg_connection* c, void* cbdata) {
  App& app = *static_cast<App*>(cbdata);
  const mg_request_info* ri = mg_get_request_info(c);
  const std::string uri = ri->local_uri;
  if (uri == "/") {
    return reply(c, 200, "text/html; charset=utf-8",
                 "<!doctype html><meta charset=utf-8><title>channel test</title>"
                 "<script src=\"/channel.js\"></script>");
  }
  if (uri == "/token") {
    const std::string seconds = query_var(c, "seconds");
    auto t = app.channel->create_channel(query_var(c, "client_id"),
                                         std::chrono::seconds(seconds.empty() ? 7200 : std::stol(seconds)));
    if (!t.ok()) return reply(c, 400, "application/json", nlohmann::json{{"error", t.status().message()}}.dump());
    ++app.tokens_issued;
    return reply(c, 200, "application/json", nlohmann::json{{"token", t->token}, {"expires_at", t->expires_at}}.dump());
  }
  if (uri == "/send") {
    const std::string id = query_var(c, "client_id");
    const int count = std::stoi(query_var(c, "count").empty() ? "1" : query_var(c, "count"));
    const bool as_json = query_var(c, "as") == "json";
    nlohmann::json results = nlohmann::json::object();
    int last = 0;
    std::lock_guard<std::mutex> lk(app.mu);
    for (int i = 0; i < count; ++i) {
      last = ++app.next_n[id];
      std::string body = nlohmann::json{{"n", last}}.dump();
      const auto r = as_json ? app.channel->send_json(id, std::move(body)) : app.channel->send_message(id, std::move(body));
      results[clio::channel::to_string(r)] = results.value(clio::channel::to_string(r), 0) + 1;
    }
    return reply(c, 200, "application/json", nlohmann::json{{"results", results}, {"last", last}}.dump());
  }
  if (uri == "/drop") {
    return reply(c, 200, "application/json", nlohmann::json{{"dropped", app.proxy->sever()}}.dump());
  }
  if (uri == "/block" || uri == "/unblock") {
    app.proxy->set_blocked(uri == "/block");
    return reply(c, 200, "application/json", "{}");
  }
  if (uri == "/disconnect") {
    app.channel->disconnect(query_var(c, "client_id"), query_var(c, "reason") == "reconnect"
                                                           ? clio::channel::DisconnectReason::kReconnect
                                                           : clio::channel::DisconnectReason::kRevoked);
    return reply(c, 200, "application/json", "{}");
  }
  if (uri == "/stats") {
    const auto s = app.channel->stats();
    return reply(c, 200, "application/json",
                 nlohmann::json{{"sessions", s.sessions}, {"superseded", s.superseded}, {"replayed", s.replayed},
                                {"gaps_reported", s.gaps_reported}, {"messages_lost", s.messages_lost},
                                {"tokens_issued", app.tokens_issued.load()}}.dump());
  }
  return reply(c, 404, "text/plain", "not found");
}

}  // namespace

int main() {
  clio::channel::ChannelOptions o;
  o.heartbeat_interval = std::chrono::seconds(1);
  o.heartbeat_timeout = std::chrono::seconds(5);
  o.websocket_timeout = std::chrono::milliseconds(500);
  clio::channel::ChannelService channel(o);
  std::vector<std::string> opts = {"listening_ports", "127.0.0.1:0", "num_threads", "32"};
  clio::channel::append_recommended_civetweb_options(opts, o);
  std::vector<const char*> ptrs;
  for (auto& s : opts) ptrs.push_back(s.c_str());
  ptrs.push_back(nullptr);
  mg_callbacks cb{};
  mg_context* ctx = mg_start(&cb, nullptr, ptrs.data());
  if (!ctx) return 1;
  mg_server_port ports[2];
  if (mg_get_server_ports(ctx, 2, ports) < 1) return 1;
  App app;
  app.channel = &channel;
  Proxy proxy(ports[0].port);
  app.proxy = &proxy;
  if (!channel.mount(ctx, "/channel").ok() || !channel.serve_client(ctx, "/channel.js").ok()) return 1;
  mg_set_request_handler(ctx, "/", handle, &app);  // after the channel's: the first matching prefix wins
  std::printf("listening on http://127.0.0.1:%d/ control http://127.0.0.1:%d/\n", proxy.port(), ports[0].port);
  std::fflush(stdout);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  channel.shutdown();
  mg_stop(ctx);
  return 0;
}
