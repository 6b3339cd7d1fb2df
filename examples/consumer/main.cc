// consumer: a small CivetWeb app that adds the Clio inspector, built against
// Clio the way users build it (CMakeLists.txt: find_package or
// add_subdirectory; Makefile: pkg-config).
//
//   consumer [PORT [DB]]   PORT 0 picks a free port (default 8080); DB is the
//                          inspector's SQLite file (default clio.db, ":memory:"
//                          keeps nothing)
//
// It serves GET /hello, and the console under /_clio/. The admin key is
// CLIO_ADMIN_KEY, else one generated and kept in DB; a one-time login link
// is printed. SIGINT or SIGTERM stops it cleanly (exit status 0).
#include <civetweb.h>
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>

#include "clio/console/inspector.h"

namespace {

// Return the status you sent: CivetWeb records the handler's return value.
int hello(mg_connection* conn, void*) {
  static const char kBody[] = "{\"hello\":\"world\"}";
  mg_send_http_ok(conn, "application/json", sizeof(kBody) - 1);
  mg_write(conn, kBody, sizeof(kBody) - 1);
  return 200;
}

int fail(const std::string& what) {
  std::fprintf(stderr, "consumer: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string listen = std::string("127.0.0.1:") + (argc > 1 ? argv[1] : "8080");
  const std::string db = argc > 2 ? argv[2] : "clio.db";
  // The stop signals are taken by sigwait() below: block them before any
  // thread starts, so every thread inherits the mask.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  // 1. Create the inspector and install its capture hooks before mg_start.
  clio::console::InspectorOptions options;
  options.db_path = db;
  auto inspector = clio::console::Inspector::create(options);
  if (!inspector.ok()) return fail(inspector.status().message());
  mg_callbacks callbacks{};
  if (clio::Status s = (*inspector)->install(&callbacks); !s.ok()) return fail(s.message());

  const char* civetweb_options[] = {"listening_ports", listen.c_str(), "num_threads", "16",
                                    "enable_websocket_ping_pong", "yes", "websocket_timeout_ms", "15000",
                                    "allow_sendfile_call", "no", "access_control_allow_methods", "",
                                    nullptr};
  mg_context* ctx = mg_start(&callbacks, nullptr, civetweb_options);
  if (ctx == nullptr) return fail("cannot listen on " + listen);
  mg_set_request_handler(ctx, "/hello$", hello, nullptr);
  // 2. Mount the console on the app's server and start dispatching.
  if (clio::Status s = (*inspector)->attach(ctx); !s.ok()) {
    (*inspector)->shutdown();
    mg_stop(ctx);
    return fail(s.message());
  }

  mg_server_port port{};
  mg_get_server_ports(ctx, 1, &port);
  std::printf("listening on http://127.0.0.1:%d/\n", port.port);
  std::printf("console: http://127.0.0.1:%d%slogin?code=%s\n", port.port, (*inspector)->prefix().c_str(),
              (*inspector)->new_login_code().c_str());
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop, &signal_number);
  // 3. Shut the inspector down before mg_stop; 4. it is destroyed after.
  (*inspector)->shutdown();
  mg_stop(ctx);
  return 0;
}
