#include "demo_app.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string_view>

namespace clio::demo {
namespace {

constexpr long long kMaxEchoBytes = 1 << 20;
constexpr int kMaxSleepMs = 10000;
constexpr int kMaxBurnMs = 5000;

int query_int(const mg_connection* conn, const char* name, int def, int lo, int hi) {
  const mg_request_info* ri = mg_get_request_info(conn);
  if (ri->query_string == nullptr) return def;
  char buf[32];
  if (mg_get_var(ri->query_string, std::strlen(ri->query_string), name, buf, sizeof buf) <= 0) return def;
  char* end = nullptr;
  long v = std::strtol(buf, &end, 10);
  if (end == buf) return def;
  return static_cast<int>(std::min<long>(std::max<long>(v, lo), hi));
}

int send_json(mg_connection* conn, int status, const std::string& body) {
  mg_response_header_start(conn, status);
  mg_response_header_add(conn, "Content-Type", "application/json", -1);
  mg_response_header_add(conn, "Content-Length", std::to_string(body.size()).c_str(), -1);
  mg_response_header_send(conn);
  if (status != 204 && status != 304) mg_write(conn, body.data(), body.size());
  return status;
}

bool is_method(const mg_connection* conn, const char* m) {
  return std::strcmp(mg_get_request_info(conn)->request_method, m) == 0;
}

int method_not_allowed(mg_connection* conn, const char* allow) {
  mg_response_header_start(conn, 405);
  mg_response_header_add(conn, "Allow", allow, -1);
  mg_response_header_add(conn, "Content-Type", "application/json", -1);
  const std::string body = R"({"error":"method not allowed"})";
  mg_response_header_add(conn, "Content-Length", std::to_string(body.size()).c_str(), -1);
  mg_response_header_send(conn);
  mg_write(conn, body.data(), body.size());
  return 405;
}

const char kIndex[] = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Clio demo app</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body><h1>Clio demo app</h1>
<p>A small CivetWeb app wrapped by Clio. Every request below becomes a record.</p>
<ul>
<li><a href="/api/hello">GET /api/hello</a> &mdash; 200 JSON</li>
<li><a href="/api/slow?ms=250">GET /api/slow?ms=250</a> &mdash; sleeps</li>
<li><a href="/api/burn?ms=50">GET /api/burn?ms=50</a> &mdash; burns CPU</li>
<li><a href="/api/status/503">GET /api/status/503</a> &mdash; answers with that status</li>
<li>POST /api/echo &mdash; echoes the body</li>
<li><a href="/static/app.css">/static/app.css</a>, <a href="/static/logo.svg">/static/logo.svg</a>,
    <a href="/static/data.json">/static/data.json</a> &mdash; static files</li>
<li>WebSocket echo at <code>/ws/echo</code></li>
<li><a href="/_clio/">The Clio console</a> (admin login required)</li>
</ul></body></html>
)";

int handle_index(mg_connection* conn, void*) {
  if (!is_method(conn, "GET") && !is_method(conn, "HEAD")) return method_not_allowed(conn, "GET, HEAD");
  mg_send_http_ok(conn, "text/html; charset=utf-8", sizeof(kIndex) - 1);
  if (!is_method(conn, "HEAD")) mg_write(conn, kIndex, sizeof(kIndex) - 1);
  return 200;
}

int handle_hello(mg_connection* conn, void*) {
  if (!is_method(conn, "GET")) return method_not_allowed(conn, "GET");
  return send_json(conn, 200, R"({"hello":"world"})");
}

int handle_slow(mg_connection* conn, void*) {
  const int ms = query_int(conn, "ms", 100, 0, kMaxSleepMs);
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
  return send_json(conn, 200, "{\"slept_ms\":" + std::to_string(ms) + "}");
}

int handle_burn(mg_connection* conn, void*) {
  const int ms = query_int(conn, "ms", 10, 0, kMaxBurnMs);
  timespec start;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
  const double target = start.tv_sec + start.tv_nsec / 1e9 + ms / 1000.0;
  volatile uint64_t x = 1;
  for (;;) {
    for (int i = 0; i < 10000; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
    timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    if (now.tv_sec + now.tv_nsec / 1e9 >= target) break;
  }
  return send_json(conn, 200, "{\"burned_ms\":" + std::to_string(ms) + "}");
}

int handle_status(mg_connection* conn, void*) {
  const char* uri = mg_get_request_info(conn)->local_uri;
  const char* code_text = uri + std::strlen("/api/status/");
  char* end = nullptr;
  const long code = std::strtol(code_text, &end, 10);
  if (end == code_text || *end != '\0' || code < 200 || code > 599) {
    return send_json(conn, 400, R"({"error":"status must be a number from 200 to 599"})");
  }
  if (code >= 300 && code < 400 && code != 304) {
    mg_response_header_start(conn, static_cast<int>(code));
    mg_response_header_add(conn, "Location", "/api/hello", -1);
    mg_response_header_add(conn, "Content-Length", "0", -1);
    mg_response_header_send(conn);
    return static_cast<int>(code);
  }
  return send_json(conn, static_cast<int>(code), "{\"status\":" + std::to_string(code) + "}");
}

int handle_echo(mg_connection* conn, void*) {
  if (!is_method(conn, "POST")) return method_not_allowed(conn, "POST");
  const mg_request_info* ri = mg_get_request_info(conn);
  if (ri->content_length > kMaxEchoBytes) {
    return send_json(conn, 413, R"({"error":"body larger than 1 MiB"})");
  }
  std::string body;
  char buf[8192];
  int n;
  while ((n = mg_read(conn, buf, sizeof buf)) > 0) {
    body.append(buf, static_cast<size_t>(n));
    if (static_cast<long long>(body.size()) > kMaxEchoBytes) {
      return send_json(conn, 413, R"({"error":"body larger than 1 MiB"})");
    }
  }
  const char* type = mg_get_header(conn, "Content-Type");
  mg_response_header_start(conn, 200);
  mg_response_header_add(conn, "Content-Type", type ? type : "application/octet-stream", -1);
  mg_response_header_add(conn, "Content-Length", std::to_string(body.size()).c_str(), -1);
  mg_response_header_send(conn);
  mg_write(conn, body.data(), body.size());
  return 200;
}

int ws_connect(const mg_connection*, void*) { return 0; }
void ws_ready(mg_connection*, void*) {}
int ws_data(mg_connection* conn, int bits, char* data, size_t len, void*) {
  const int opcode = bits & 0x0f;
  if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) {
    mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, data, len);
    return 0;
  }
  if (opcode == MG_WEBSOCKET_OPCODE_TEXT || opcode == MG_WEBSOCKET_OPCODE_BINARY ||
      opcode == MG_WEBSOCKET_OPCODE_CONTINUATION) {
    if (mg_websocket_write(conn, opcode, data, len) <= 0) return 0;
  }
  return 1;
}
void ws_close(const mg_connection*, void*) {}

// ---- traffic generator ----

struct Pick {
  std::string method;
  std::string target;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

const char* const kAgents[] = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/8.8.0",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
    "k6/0.52.0 (https://k6.io/)",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
};
const int kStatuses[] = {200, 200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504};
const char* const kStatic[] = {"/static/app.css", "/static/logo.svg", "/static/data.json", "/static/missing.png"};
const char* const kMissing[] = {"/wp-login.php", "/.env", "/api/v2/users", "/favicon.ico", "/admin"};

Pick pick_request(std::mt19937& rng, double rate) {
  std::uniform_real_distribution<double> u(0, 1);
  auto pick_int = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  // Keep slow and CPU-heavy requests short at high rates so concurrency stays bounded.
  const int slow_max = rate <= 50 ? 400 : std::max(2, static_cast<int>(15000 / rate));
  const int burn_max = rate <= 50 ? 40 : std::max(1, static_cast<int>(1500 / rate));
  Pick p;
  p.method = "GET";
  const double x = u(rng);
  if (x < 0.34) {
    p.target = "/api/hello";
  } else if (x < 0.44) {
    p.target = "/api/slow?ms=" + std::to_string(pick_int(1, slow_max));
  } else if (x < 0.51) {
    p.target = "/api/burn?ms=" + std::to_string(pick_int(1, burn_max));
  } else if (x < 0.66) {
    p.target = "/api/status/" + std::to_string(kStatuses[pick_int(0, std::size(kStatuses) - 1)]);
  } else if (x < 0.75) {
    p.method = "POST";
    p.target = "/api/echo";
    p.body = R"({"order":)" + std::to_string(pick_int(1000, 9999)) + R"(,"items":["tea","cake"]})";
    p.headers.emplace_back("Content-Type", "application/json");
  } else if (x < 0.85) {
    p.target = kStatic[pick_int(0, std::size(kStatic) - 1)];
  } else if (x < 0.92) {
    // Query strings with secrets, which Clio redacts.
    const char* const secrets[] = {"/api/hello?user=42&token=tok_live_8f2a9c",
                                   "/api/hello?api_key=AKIA3EXAMPLE&page=2",
                                   "/api/status/401?session=9d8e7f&next=/home",
                                   "/api/hello?q=shoes&password=hunter2"};
    p.target = secrets[pick_int(0, std::size(secrets) - 1)];
  } else if (x < 0.97) {
    p.target = kMissing[pick_int(0, std::size(kMissing) - 1)];
  } else {
    p.method = u(rng) < 0.5 ? "DELETE" : "PUT";
    p.target = "/api/hello";
  }
  p.headers.emplace_back("User-Agent", kAgents[pick_int(0, std::size(kAgents) - 1)]);
  if (u(rng) < 0.3) p.headers.emplace_back("Referer", "http://shop.example/cart?step=2");
  if (u(rng) < 0.2) p.headers.emplace_back("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.demo.secret");
  if (u(rng) < 0.2) p.headers.emplace_back("Cookie", "sid=31d4d96e407aad42; theme=dark");
  if (u(rng) < 0.5) p.headers.emplace_back("X-Request-Id", std::to_string(rng()));
  p.headers.emplace_back("Accept", "application/json, text/html;q=0.9");
  return p;
}

int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads one response (headers + Content-Length body) and discards it.
// Returns false when the connection must be reopened.
bool read_response(int fd, std::string& buf, bool& keep_alive) {
  auto fill = [&]() {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 15000) <= 0) return false;
    char tmp[16384];
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
    return true;
  };
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return false;
  }
  std::string head = buf.substr(0, end);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t length = 0;
  const size_t cl = head.find("\r\ncontent-length:");
  if (cl != std::string::npos) length = std::strtoul(head.c_str() + cl + 17, nullptr, 10);
  keep_alive = head.find("\r\nconnection: close") == std::string::npos;
  while (buf.size() < end + 4 + length) {
    if (!fill()) return false;
  }
  buf.erase(0, end + 4 + length);
  return true;
}

}  // namespace

void ServerOptions::set(std::string name, std::string value) {
  items_.push_back(std::move(name));
  items_.push_back(std::move(value));
}

const char** ServerOptions::pointers() {
  ptrs_.clear();
  for (const auto& s : items_) ptrs_.push_back(s.c_str());
  ptrs_.push_back(nullptr);
  return ptrs_.data();
}

ServerOptions server_options(const std::string& listening_ports, const std::string& www_dir,
                             int num_threads) {
  ServerOptions o;
  o.set("listening_ports", listening_ports);
  o.set("document_root", www_dir);
  o.set("num_threads", std::to_string(num_threads));
  o.set("enable_websocket_ping_pong", "yes");
  o.set("websocket_timeout_ms", "15000");
  o.set("tcp_nodelay", "1");
  o.set("enable_keep_alive", "yes");
  o.set("keep_alive_timeout_ms", "5000");
  o.set("allow_sendfile_call", "no");
  o.set("enable_directory_listing", "no");
  o.set("access_control_allow_methods", "");
  // Room for a console query at its 4 KiB limit in a URL, percent-encoded.
  o.set("max_request_size", "65536");
  return o;
}

void register_handlers(mg_context* ctx) {
  mg_set_request_handler(ctx, "/$", handle_index, nullptr);
  mg_set_request_handler(ctx, "/api/hello$", handle_hello, nullptr);
  mg_set_request_handler(ctx, "/api/slow$", handle_slow, nullptr);
  mg_set_request_handler(ctx, "/api/burn$", handle_burn, nullptr);
  mg_set_request_handler(ctx, "/api/status/", handle_status, nullptr);
  mg_set_request_handler(ctx, "/api/echo$", handle_echo, nullptr);
  mg_set_websocket_handler(ctx, "/ws/echo$", ws_connect, ws_ready, ws_data, ws_close, nullptr);
}

int bound_port(mg_context* ctx) {
  mg_server_port ports[4];
  const int n = mg_get_server_ports(ctx, 4, ports);
  return n > 0 ? ports[0].port : -1;
}

TrafficGenerator::TrafficGenerator(int port, double rate) : port_(port) {
  if (rate <= 0) return;
  const int threads = std::clamp(static_cast<int>(rate / 200) + 2, 2, 16);
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this, i, rate, threads] { run(1234u + static_cast<unsigned>(i), rate / threads, rate); });
  }
}

TrafficGenerator::~TrafficGenerator() { stop(); }

void TrafficGenerator::stop() {
  stop_.store(true);
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void TrafficGenerator::run(unsigned seed, double rate, double total_rate) {
  std::mt19937 rng(seed);
  std::exponential_distribution<double> gap(rate);
  using Clock = std::chrono::steady_clock;
  auto next = Clock::now();
  int fd = -1;
  std::string buf;
  while (!stop_.load(std::memory_order_relaxed)) {
    next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
    // Sleep in short steps so stop() is prompt.
    for (auto now = Clock::now(); next > now && !stop_.load(std::memory_order_relaxed); now = Clock::now()) {
      std::this_thread::sleep_until(std::min(next, now + std::chrono::milliseconds(100)));
    }
    if (stop_.load(std::memory_order_relaxed)) break;
    if (Clock::now() - next > std::chrono::seconds(1)) next = Clock::now();  // behind: no burst
    if (fd < 0) {
      fd = connect_loopback(port_);
      buf.clear();
      if (fd < 0) {
        failed_.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
    }
    const Pick p = pick_request(rng, total_rate);
    std::string req = p.method + " " + p.target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) + "\r\n";
    for (const auto& [k, v] : p.headers) req += k + ": " + v + "\r\n";
    if (!p.body.empty() || p.method == "POST") req += "Content-Length: " + std::to_string(p.body.size()) + "\r\n";
    req += "\r\n" + p.body;
    bool keep_alive = true;
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()) ||
        !read_response(fd, buf, keep_alive)) {
      failed_.fetch_add(1, std::memory_order_relaxed);
      ::close(fd);
      fd = -1;
      continue;
    }
    sent_.fetch_add(1, std::memory_order_relaxed);
    if (!keep_alive) {
      ::close(fd);
      fd = -1;
    }
  }
  if (fd >= 0) ::close(fd);
}

}  // namespace clio::demo
