// `clio serve`: the console alone, for a fleet. It reads the records every
// app instance publishes to a Redis stream, and serves the console page, its
// API and the channel on its own CivetWeb server.
#include "serve.h"

#include <civetweb.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "clio/channel/channel.h"
#include "clio/console/hub.h"
#include "clio/log/redis_log.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

constexpr const char* kServeUsage =
    "usage: clio serve --redis URL [--stream NAME] [--port N] [--bind ADDR] [--db PATH]\n"
    "                  [--prefix PATH] [--threads N] [--jsonl PATH|-] [--public-origin URL]\n"
    "  --redis URL      redis://[[user]:password@]host[:port][/db] (required)\n"
    "  --stream NAME    the stream the app instances publish to (default clio:records)\n"
    "  --port N         port to listen on (default 8090; 0 picks a free one)\n"
    "  --bind ADDR      IPv4 address to listen on (default 127.0.0.1; put a TLS proxy in front)\n"
    "  --db PATH        SQLite database: subscriptions, recent records, log position (default clio-console.db)\n"
    "  --prefix PATH    where the console lives (default /_clio/)\n"
    "  --threads N      CivetWeb worker threads: one per open console tab, plus 8 kept for HTTP (default 64)\n"
    "  --jsonl PATH     also write every record as a JSON line ('-' = stdout)\n"
    "  --public-origin URL  the origin browsers reach the console at, e.g. https://clio.example.com\n"
    "                   (default: the listening address); the WebSocket Origin check and copy-as-curl use it\n"
    "environment: CLIO_ADMIN_KEY fixes the admin key (else one is generated and kept in the db)\n";

int serve_usage(const std::string& why) {
  std::fprintf(stderr, "clio serve: %s\n%s", why.c_str(), kServeUsage);
  return 2;
}

bool parse_int(const std::string& s, long lo, long hi, long& out) {
  char* end = nullptr;
  out = std::strtol(s.c_str(), &end, 10);
  return !s.empty() && *end == '\0' && out >= lo && out <= hi;
}

}  // namespace

int cmd_serve(const std::vector<std::string>& args) {
  clio::log::RedisLogOptions log;
  clio::console::HubOptions hub;
  hub.db_path = "clio-console.db";
  std::string bind = "127.0.0.1";
  long port = 8090, threads = 64;
  bool have_redis = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& k = args[i];
    if (k == "--help" || k == "-h") {
      std::fputs(kServeUsage, stdout);
      return 0;
    }
    if (i + 1 >= args.size()) return serve_usage(k + " needs a value");
    const std::string& v = args[++i];
    if (k == "--redis") {
      log.url = v;
      have_redis = true;
    } else if (k == "--stream") {
      log.stream = v;
    } else if (k == "--port") {
      if (!parse_int(v, 0, 65535, port)) return serve_usage("bad port '" + v + "'");
    } else if (k == "--bind") {
      bind = v;
    } else if (k == "--db") {
      hub.db_path = v;
    } else if (k == "--prefix") {
      hub.prefix = v;
    } else if (k == "--threads") {
      if (!parse_int(v, 16, 1024, threads)) return serve_usage("bad thread count '" + v + "' (16..1024)");
    } else if (k == "--jsonl") {
      hub.jsonl_path = v;
    } else if (k == "--public-origin") {
      hub.public_origin = v;
    } else {
      return serve_usage("unknown option '" + k + "'");
    }
  }
  if (!have_redis) return serve_usage("--redis URL is required");

  auto reader = clio::log::make_redis_reader(log);
  if (!reader.ok()) return serve_usage(reader.status().message());
  auto created = clio::console::Hub::create(hub, std::move(*reader));
  if (!created.ok()) {
    std::fprintf(stderr, "clio serve: %s\n", created.status().message().c_str());
    return 1;
  }
  std::unique_ptr<clio::console::Hub> console = std::move(*created);

  std::vector<std::string> opts = {"listening_ports", bind + ":" + std::to_string(port),
                                   "num_threads", std::to_string(threads),
                                   "access_control_allow_methods", "",
                                   // Room for a query at its 4 KiB limit in a URL, percent-encoded.
                                   "max_request_size", "65536"};
  clio::channel::append_recommended_civetweb_options(opts, hub.channel);
  std::vector<const char*> ptrs;
  for (const auto& o : opts) ptrs.push_back(o.c_str());
  ptrs.push_back(nullptr);
  mg_init_library(0);
  mg_callbacks callbacks{};
  mg_context* ctx = mg_start(&callbacks, nullptr, ptrs.data());
  if (ctx == nullptr) {
    std::fprintf(stderr, "clio serve: cannot listen on %s:%ld (port in use?)\n", bind.c_str(), port);
    return 1;
  }
  if (auto s = console->attach(ctx); !s.ok()) {
    std::fprintf(stderr, "clio serve: %s\n", s.message().c_str());
    mg_stop(ctx);
    return 1;
  }
  mg_server_port ports[4];
  const int bound = mg_get_server_ports(ctx, 4, ports) > 0 ? ports[0].port : static_cast<int>(port);
  const std::string base = "http://" + bind + ":" + std::to_string(bound);
  std::fprintf(stderr, "clio serve: reading %s\n", console->reader().describe().c_str());
  std::fprintf(stderr, "console: %s%s\n", base.c_str(), console->prefix().c_str());
  std::fprintf(stderr, "login (one-time link, valid 15 minutes): %s%slogin?code=%s\n", base.c_str(),
               console->prefix().c_str(), console->new_login_code().c_str());
  std::fflush(stderr);

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::fprintf(stderr, "clio serve: shutting down\n");
  console->shutdown();
  mg_stop(ctx);
  console.reset();
  mg_exit_library();
  return 0;
}
