// The demo app: a small but realistic CivetWeb app whose handlers return
// their real status codes, and a traffic generator that sends a varied mix of
// requests to it. Used by examples/demo/main.cc and bench/capture_overhead.
//
//   auto opts = clio::demo::server_options("127.0.0.1:0", "/path/to/www");
//   mg_context* ctx = mg_start(&callbacks, nullptr, opts.pointers());
//   clio::demo::register_handlers(ctx);
//   clio::demo::TrafficGenerator gen(port, 20.0);   // 20 requests/s
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

struct mg_context;

namespace clio::demo {

// CivetWeb options as a null-terminated array of C strings. A value type.
class ServerOptions {
 public:
  void set(std::string name, std::string value);
  const char** pointers();  // valid until the next set()
 private:
  std::vector<std::string> items_;
  std::vector<const char*> ptrs_;
};

// The demo's CivetWeb options: listening ports, document root for /static/,
// WebSocket ping/pong, TCP_NODELAY, no sendfile (so byte counts are exact).
ServerOptions server_options(const std::string& listening_ports, const std::string& www_dir,
                             int num_threads = 64);

// Registers: GET / (index), GET /api/hello, GET /api/slow?ms=N, GET /api/burn?ms=N,
// GET /api/status/{code}, POST /api/echo, WebSocket /ws/echo.
void register_handlers(mg_context* ctx);

// The port CivetWeb bound for the first listening socket, or -1.
int bound_port(mg_context* ctx);

// Sends a realistic mix of requests to 127.0.0.1:port at about `rate`
// requests per second from a few threads, until stop() or destruction.
// Owned by the thread that created it; stop() and sent() may be called from any thread.
class TrafficGenerator {
 public:
  TrafficGenerator(int port, double rate);
  ~TrafficGenerator();
  TrafficGenerator(const TrafficGenerator&) = delete;
  TrafficGenerator& operator=(const TrafficGenerator&) = delete;
  void stop();
  uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }

 private:
  void run(unsigned seed, double rate, double total_rate);

  const int port_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> failed_{0};
  std::vector<std::thread> threads_;
};

}  // namespace clio::demo
