// clio_demo: a CivetWeb app wrapped by Clio. See `clio_demo --help`.
#include <civetweb.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "clio/console/inspector.h"
#include "clio/log/fleet.h"
#include "clio/middleware/capture.h"
#include "clio/middleware/jsonl_sink.h"
#include "demo_app.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Args {
  int port = 8080;
  std::string listen = "127.0.0.1";
  std::string log_jsonl;
  double traffic = 20;
  std::string www = CLIO_DEMO_WWW;
  std::string db = "clio.db";
  bool inspector = true;
  std::string redis;   // a fleet instance: publish to this Redis instead of running a console
  std::string stream = "clio:records";
  std::string instance;
};

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: clio_demo [--port N] [--listen ADDR] [--db PATH] [--log-jsonl PATH|-]\n"
               "                 [--traffic RATE] [--no-inspector] [--www DIR]\n"
               "                 [--redis URL [--stream NAME] [--instance NAME]]\n"
               "  --port N          port to listen on (default 8080; 0 picks a free one)\n"
               "  --listen ADDR     IPv4 address to bind (default 127.0.0.1)\n"
               "  --db PATH         the inspector's SQLite database (default clio.db)\n"
               "  --log-jsonl PATH  also write every record as a JSON line to PATH ('-' = stdout)\n"
               "  --traffic RATE    send about RATE requests/s of varied traffic to the app itself\n"
               "                    (default 20; 0 turns the generator off)\n"
               "  --no-inspector    capture only (no console, no database); use with --log-jsonl\n"
               "  --www DIR         document root holding static/ (default: the source tree's)\n"
               "  --redis URL       a fleet instance: publish records to this Redis stream (no console here;\n"
               "                    run `clio serve --redis URL` for the fleet's console)\n"
               "  --stream NAME     the stream (default clio:records)\n"
               "  --instance NAME   this instance's name in its records (default hostname:port)\n"
               "environment: CLIO_ADMIN_KEY fixes the admin key (else one is generated and kept in the db)\n");
}

bool parse_args(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "clio_demo: %s needs a value\n", name);
        return nullptr;
      }
      return argv[++i];
    };
    const char* v = nullptr;
    if (k == "--help" || k == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (k == "--port") {
      if (!(v = value("--port"))) return false;
      char* end;
      long p = std::strtol(v, &end, 10);
      if (*end || p < 0 || p > 65535) {
        std::fprintf(stderr, "clio_demo: bad port '%s'\n", v);
        return false;
      }
      a.port = static_cast<int>(p);
    } else if (k == "--listen") {
      if (!(v = value("--listen"))) return false;
      a.listen = v;
    } else if (k == "--log-jsonl") {
      if (!(v = value("--log-jsonl"))) return false;
      a.log_jsonl = v;
    } else if (k == "--traffic") {
      if (!(v = value("--traffic"))) return false;
      char* end;
      a.traffic = std::strtod(v, &end);
      if (*end || a.traffic < 0 || a.traffic > 100000) {
        std::fprintf(stderr, "clio_demo: bad traffic rate '%s' (0..100000 requests/s)\n", v);
        return false;
      }
    } else if (k == "--db") {
      if (!(v = value("--db"))) return false;
      a.db = v;
    } else if (k == "--no-inspector") {
      a.inspector = false;
    } else if (k == "--redis") {
      if (!(v = value("--redis"))) return false;
      a.redis = v;
    } else if (k == "--stream") {
      if (!(v = value("--stream"))) return false;
      a.stream = v;
    } else if (k == "--instance") {
      if (!(v = value("--instance"))) return false;
      a.instance = v;
    } else if (k == "--www") {
      if (!(v = value("--www"))) return false;
      a.www = v;
    } else {
      std::fprintf(stderr, "clio_demo: unknown option '%s'\n", k.c_str());
      usage(stderr);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!parse_args(argc, argv, args)) return 2;

  mg_callbacks callbacks{};
  // The whole inspector (console, channel, store), a fleet instance
  // (capture and a Redis publisher), or capture alone.
  std::unique_ptr<clio::console::Inspector> inspector;
  std::unique_ptr<clio::log::FleetPublisher> fleet;
  std::unique_ptr<clio::Capture> capture;
  std::unique_ptr<clio::JsonlSink> sink;
  if (!args.redis.empty()) {
    clio::log::FleetOptions o;
    o.log.url = args.redis;
    o.log.stream = args.stream;
    o.instance = args.instance;
    auto created = clio::log::FleetPublisher::create(o);
    if (!created.ok()) {
      std::fprintf(stderr, "clio_demo: %s\n", created.status().message().c_str());
      return 1;
    }
    fleet = std::move(*created);
    if (auto s = fleet->install(&callbacks); !s.ok()) {
      std::fprintf(stderr, "clio_demo: %s\n", s.message().c_str());
      return 1;
    }
  } else if (args.inspector) {
    clio::console::InspectorOptions o;
    o.db_path = args.db;
    o.jsonl_path = args.log_jsonl;
    o.instance = args.instance;
    auto created = clio::console::Inspector::create(o);
    if (!created.ok()) {
      std::fprintf(stderr, "clio_demo: %s\n", created.status().message().c_str());
      return 1;
    }
    inspector = std::move(*created);
    if (auto s = inspector->install(&callbacks); !s.ok()) {
      std::fprintf(stderr, "clio_demo: %s\n", s.message().c_str());
      return 1;
    }
  } else {
    capture = std::make_unique<clio::Capture>();
    if (auto s = capture->install(&callbacks); !s.ok()) {
      std::fprintf(stderr, "clio_demo: %s\n", s.message().c_str());
      return 1;
    }
    if (!args.log_jsonl.empty()) {
      auto opened = clio::JsonlSink::open(capture->queue(), args.log_jsonl);
      if (!opened.ok()) {
        std::fprintf(stderr, "clio_demo: %s\n", opened.status().message().c_str());
        return 1;
      }
      sink = std::move(*opened);
    }
  }

  auto options = clio::demo::server_options(args.listen + ":" + std::to_string(args.port), args.www);
  mg_init_library(0);
  mg_context* ctx = mg_start(&callbacks, nullptr, options.pointers());
  if (ctx == nullptr) {
    std::fprintf(stderr, "clio_demo: cannot listen on %s:%d (port in use?)\n", args.listen.c_str(), args.port);
    return 1;
  }
  clio::demo::register_handlers(ctx);
  const int port = clio::demo::bound_port(ctx);
  const std::string base = "http://" + args.listen + ":" + std::to_string(port);
  std::fprintf(stderr, "clio demo listening on %s/\n", base.c_str());
  if (fleet) {
    if (auto s = fleet->attach(ctx); !s.ok()) {
      std::fprintf(stderr, "clio_demo: %s\n", s.message().c_str());
      mg_stop(ctx);
      return 1;
    }
    std::fprintf(stderr, "instance %s publishing to %s\n", fleet->instance().c_str(), fleet->describe().c_str());
  }
  if (inspector) {
    if (auto s = inspector->attach(ctx); !s.ok()) {
      std::fprintf(stderr, "clio_demo: %s\n", s.message().c_str());
      mg_stop(ctx);
      return 1;
    }
    std::fprintf(stderr, "console: %s%s\n", base.c_str(), inspector->prefix().c_str());
    std::fprintf(stderr, "login (one-time link, valid 15 minutes): %s%slogin?code=%s\n", base.c_str(),
                 inspector->prefix().c_str(), inspector->new_login_code().c_str());
    std::fprintf(stderr, "admin key: %s\n",
                 std::getenv("CLIO_ADMIN_KEY") ? "from CLIO_ADMIN_KEY"
                 : inspector->admin_key_generated() ? "generated and kept in the database (set CLIO_ADMIN_KEY to choose one)"
                                                    : "configured");
  }
  std::fflush(stderr);

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  auto traffic = std::make_unique<clio::demo::TrafficGenerator>(port, args.traffic);
  if (args.traffic > 0) std::fprintf(stderr, "traffic generator: about %.0f requests/s\n", args.traffic);

  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));

  // Shutdown order: traffic, inspector (dispatcher, channel), server, then the
  // fleet publisher (it publishes what the last requests left).
  std::fprintf(stderr, "clio_demo: shutting down\n");
  traffic.reset();
  if (inspector) inspector->shutdown();
  mg_stop(ctx);
  if (fleet) fleet->shutdown();
  if (sink) sink->stop();
  clio::Capture& used = inspector ? inspector->capture() : fleet ? fleet->capture() : *capture;
  const auto captured = used.stats().captured;
  const auto dropped = fleet ? fleet->stats().dropped() : used.stats().dropped_queue;
  std::fprintf(stderr, "clio_demo: captured %llu records, dropped %llu\n", static_cast<unsigned long long>(captured),
               static_cast<unsigned long long>(dropped));
  mg_exit_library();
  return 0;
}
