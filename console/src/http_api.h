// HttpApi: the hub's HTTP side. The auth handler that guards everything
// under the prefix (fails closed), and the routes of the JSON API, the login
// flow, the metrics and the embedded page assets. It maps the hub's Status
// results to HTTP statuses; nothing below it knows HTTP.
//
//   HttpApi api(hub_impl);
//   api.mount(ctx);          // registers the auth and request handlers on the prefix
#pragma once

#include "hub_impl.h"

struct mg_connection;
struct mg_context;

namespace clio::templates {
struct Asset;
}

namespace clio::console {

// Safe for concurrent use by multiple threads (CivetWeb workers). Borrows
// `hub`, which must outlive it; mount() is called once.
class [[gnu::visibility("hidden")]] HttpApi {
 public:
  // Call after the hub knows its public origins (attach).
  explicit HttpApi(Hub::Impl& hub);
  // Not copyable.
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  void mount(mg_context* ctx);

 private:
  static int handle_request(mg_connection* conn, void* self);
  static int handle_auth(mg_connection* conn, void* self);
  int authorize(mg_connection* conn);
  int route(mg_connection* conn);
  int login(mg_connection* conn, bool get, bool post, int64_t now);
  int check(mg_connection* conn, bool post);
  int serve_asset(mg_connection* conn, const templates::Asset& a) const;
  // Answers 429 to an address that used up its failed attempts.
  static int send_throttled(mg_connection* conn);
  int token(mg_connection* conn);
  int subscriptions(mg_connection* conn, bool get, bool post);
  int subscription(mg_connection* conn, const std::string& tail, bool get);
  int records(mg_connection* conn);
  int matches(mg_connection* conn);
  int stats(mg_connection* conn);
  int metrics(mg_connection* conn);

  // Constant after construction.
  Hub::Impl& hub_;
  const std::string csp_;  // the pages' Content-Security-Policy header line
};

}  // namespace clio::console
