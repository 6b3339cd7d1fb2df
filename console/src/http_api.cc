// The console's HTTP side: the auth handler that guards everything under the
// prefix (fails closed), and the routes of the JSON API, the login flow, the
// metrics and the embedded page assets.
#include <civetweb.h>
#include <strings.h>

#include <algorithm>
#include <cstring>

#include "clio/middleware/http_schema.h"
#include "clio/templates/assets.h"
#include "http_util.h"
#include "inspector_impl.h"

namespace clio::console {

using nlohmann::json;

namespace {

constexpr const char* kSessionCookie = "clio_session";
constexpr const char* kCsrfHeader = "X-Clio-CSRF";

// The login form and its script: the only things served before logging in.
bool public_route(std::string_view route) { return route == "login" || route == "login.js"; }

bool is_upgrade(const mg_connection* conn) {
  const char* up = mg_get_header(conn, "Upgrade");
  return up != nullptr && strcasecmp(up, "websocket") == 0;
}

bool is_method(const mg_connection* conn, const char* m) {
  return std::strcmp(mg_get_request_info(conn)->request_method, m) == 0;
}

bool is_safe_method(const mg_connection* conn) {
  return is_method(conn, "GET") || is_method(conn, "HEAD") || is_method(conn, "OPTIONS");
}

// The part of the path after the prefix, lower-cased (routes are matched
// without regard to case, as CivetWeb matches the prefix).
std::string route_of(const mg_connection* conn, const std::string& prefix) {
  std::string_view path = mg_get_request_info(conn)->local_uri;
  std::string r(path.size() >= prefix.size() ? path.substr(prefix.size()) : std::string_view());
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string bearer(const mg_connection* conn) {
  const std::string h = header(conn, "Authorization");
  if (h.size() > 7 && strncasecmp(h.c_str(), "Bearer ", 7) == 0) return h.substr(7);
  return "";
}

const char kLoginFallback[] =
    "<!doctype html><meta charset=utf-8><title>Clio login</title>"
    "<form method=post><label>Admin key <input type=password name=key autofocus></label>"
    "<button>Log in</button></form>";

int serve_asset(mg_connection* conn, const templates::Asset& a) {
  std::string extra;
  if (a.content_type.rfind("text/html", 0) == 0) {
    extra =
        "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'\r\n";
  }
  return send_raw(conn, 200, a.content_type, a.data, extra);
}

std::string metric(const char* name, const char* type, const char* help, double value) {
  std::string s = "# HELP ";
  s += name;
  s += " ";
  s += help;
  s += "\n# TYPE ";
  s += name;
  s += " ";
  s += type;
  s += "\n";
  s += name;
  s += " ";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  s += buf;
  s += "\n";
  return s;
}

}  // namespace

int Inspector::Impl::handle_auth(mg_connection* conn, void* self) {
  return static_cast<Impl*>(self)->authorize(conn);
}

int Inspector::Impl::handle_request(mg_connection* conn, void* self) {
  return static_cast<Impl*>(self)->route(conn);
}

// Returns 1 to let the request through; otherwise answers it (401, 403 or a
// redirect to the login page) and returns 0. Responses are written raw
// because CivetWeb's response API does not work on upgrade requests.
int Inspector::Impl::authorize(mg_connection* conn) {
  const std::string route = route_of(conn, opts.prefix);
  if (public_route(route) && !is_upgrade(conn)) return 1;
  const std::string key = bearer(conn);
  if (!key.empty()) {
    if (auth->key_ok(key)) return 1;
    send_error(conn, 401, "unauthorized", "wrong admin key");
    return 0;
  }
  const std::string cookie = get_cookie(conn, kSessionCookie);
  const auto now = static_cast<int64_t>(now_seconds());
  const std::string csrf = cookie.empty() ? "" : auth->check_session(cookie, now);
  if (!csrf.empty()) {
    if (is_upgrade(conn)) {
      if (auth->origin_ok(header(conn, "Origin"), header(conn, "Host"))) return 1;
      send_error(conn, 403, "bad_origin", "WebSocket upgrades with a session cookie must come from the console's origin");
      return 0;
    }
    if (is_safe_method(conn)) return 1;
    const std::string sent = header(conn, kCsrfHeader);
    if (!sent.empty() && sent == csrf) return 1;
    send_error(conn, 403, "csrf", "state-changing requests need the X-Clio-CSRF header from api/session");
    return 0;
  }
  // No credentials. A browser asking for the page goes to the login form.
  if (!is_upgrade(conn) && is_method(conn, "GET") && (route.empty() || route == "index.html")) {
    send_redirect(conn, opts.prefix + "login");
    return 0;
  }
  send_error(conn, 401, "unauthorized",
             "log in at " + opts.prefix + "login or send Authorization: Bearer <admin key>");
  return 0;
}

int Inspector::Impl::route(mg_connection* conn) {
  const std::string r = route_of(conn, opts.prefix);
  const mg_request_info* ri = mg_get_request_info(conn);
  const auto now = static_cast<int64_t>(now_seconds());
  const bool get = is_method(conn, "GET") || is_method(conn, "HEAD");
  const bool post_m = is_method(conn, "POST");

  if (r.empty() || r == "index.html") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    const templates::Asset* page = templates::find_asset("console.html");
    if (page == nullptr) return send_error(conn, 404, "not_found", "console page not built");
    return serve_asset(conn, *page);
  }

  if (r == "login") {
    const std::string cookie_attrs = std::string("; Path=") + opts.prefix + "; HttpOnly; SameSite=Strict" +
                                     (opts.secure_cookies ? "; Secure" : "");
    auto start_session = [&]() {
      const AdminAuth::Session s = auth->new_session(now);
      return send_redirect(conn, opts.prefix,
                           std::string("Set-Cookie: ") + kSessionCookie + "=" + s.cookie + cookie_attrs +
                               "; Max-Age=" + std::to_string(opts.session_ttl.count()) + "\r\n");
    };
    if (get) {
      const std::string code = ri->query_string ? get_var(ri->query_string, "code") : "";
      if (!code.empty()) {
        if (auth->redeem_login_code(code, now)) return start_session();
        return send_redirect(conn, opts.prefix + "login?error=code");
      }
      const templates::Asset* page = templates::find_asset("login.html");
      if (page != nullptr) return serve_asset(conn, *page);
      return send_raw(conn, 200, "text/html; charset=utf-8", kLoginFallback);
    }
    if (!post_m) return send_error(conn, 405, "method_not_allowed", "use GET or POST");
    if (auth->login_throttled(now)) {
      return send_error(conn, 429, "throttled", "too many failed logins; wait a minute");
    }
    auto body = read_body(conn, 4096);
    if (!body.ok()) return send_error(conn, 413, "too_large", body.status().message());
    if (auth->key_ok(get_var(*body, "key"))) return start_session();
    auth->note_login_failure(now);
    return send_redirect(conn, opts.prefix + "login?error=1");
  }

  if (r == "logout") {
    if (!post_m) return send_error(conn, 405, "method_not_allowed", "use POST");
    auth->revoke(get_cookie(conn, kSessionCookie));
    return send_json(conn, 200, json{{"ok", true}},
                     std::string("Set-Cookie: ") + kSessionCookie + "=; Path=" + opts.prefix +
                         "; HttpOnly; SameSite=Strict; Max-Age=0\r\n");
  }

  if (r == "api/session") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    const std::string cookie = get_cookie(conn, kSessionCookie);
    const std::string csrf = cookie.empty() ? "" : auth->check_session(cookie, now);
    return send_json(conn, 200, json{{"csrf", csrf}, {"prefix", opts.prefix}});
  }

  if (r == "api/token") {
    if (!post_m) return send_error(conn, 405, "method_not_allowed", "use POST");
    auto body = read_body(conn, opts.max_body_bytes);
    if (!body.ok()) return send_error(conn, 413, "too_large", body.status().message());
    std::string client_id;
    if (!body->empty()) {
      json j = json::parse(*body, nullptr, false);
      if (j.is_discarded() || !j.is_object()) return send_error(conn, 400, "bad_json", "the body must be a JSON object");
      if (j.contains("client_id") && !j["client_id"].is_null()) {
        if (!j["client_id"].is_string()) return send_error(conn, 400, "bad_client_id", "client_id must be a string");
        client_id = j["client_id"].get<std::string>();
      }
    }
    if (client_id.empty()) client_id = "c-" + random_token(12);
    auto token = channel->create_channel(client_id, opts.token_duration);
    if (!token.ok()) {
      const int status = token.status().code() == StatusCode::kResourceExhausted ? 429 : 400;
      return send_error(conn, status, "bad_client_id", token.status().message());
    }
    return send_json(conn, 200, json{{"client_id", client_id}, {"token", token->token}, {"expires_at", token->expires_at}});
  }

  if (r == "api/subscriptions") {
    if (get) {
      const std::string client = ri->query_string ? get_var(ri->query_string, "client_id") : "";
      return send_json(conn, 200, list_subscriptions(client));
    }
    if (!post_m) return send_error(conn, 405, "method_not_allowed", "use GET or POST");
    auto body = read_body(conn, opts.max_body_bytes);
    if (!body.ok()) return send_error(conn, 413, "too_large", body.status().message());
    json j = json::parse(*body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return send_error(conn, 400, "bad_json", "the body must be a JSON object");
    if (!j.contains("client_id") || !j["client_id"].is_string()) {
      return send_error(conn, 400, "bad_client_id", "client_id (a string) is required");
    }
    if (!j.contains("query") || !j["query"].is_string()) {
      return send_error(conn, 400, "bad_query", "query (a string) is required");
    }
    size_t backfill = 0;
    if (j.contains("backfill") && !j["backfill"].is_null()) {
      if (!j["backfill"].is_number_unsigned()) {
        return send_error(conn, 400, "bad_backfill", "backfill must be a non-negative integer");
      }
      backfill = j["backfill"].get<size_t>();
    }
    auto outcome = subscribe(j["client_id"].get<std::string>(), j["query"].get<std::string>(), backfill);
    return send_json(conn, outcome.http_status, outcome.body);
  }

  if (r.rfind("api/subscriptions/", 0) == 0) {
    const std::string tail = r.substr(std::strlen("api/subscriptions/"));
    char* end = nullptr;
    const unsigned long long id = std::strtoull(tail.c_str(), &end, 10);
    if (tail.empty() || *end != '\0') return send_error(conn, 404, "not_found", "no such subscription");
    if (is_method(conn, "DELETE")) {
      json body;
      const int status = unsubscribe(id, body);
      return send_json(conn, status, body);
    }
    if (get) {
      json one = subscription(id);
      if (one.is_null()) return send_error(conn, 404, "not_found", "no subscription " + tail);
      return send_json(conn, 200, one);
    }
    return send_error(conn, 405, "method_not_allowed", "use GET or DELETE");
  }

  if (r == "api/check") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    const std::string q = ri->query_string ? get_var(ri->query_string, "q") : "";
    auto parsed = matcher::parse(q, http_schema(), opts.query);
    if (!parsed.ok()) return send_json(conn, 200, json{{"valid", false}, {"error", query_error_json(parsed.error)}});
    return send_json(conn, 200, json{{"valid", true}, {"normalized", parsed.query->canonical()}});
  }

  if (r == "api/schema") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    const matcher::Schema& s = http_schema();
    static const char* const kTypes[] = {"string", "int", "float", "ip"};
    static const char* const kUnits[] = {"", "time", "bytes"};
    json fields = json::array();
    for (matcher::FieldId i = 0; i < s.field_count(); ++i) {
      const auto& f = s.field(i);
      fields.push_back({{"name", f.name},
                        {"type", kTypes[static_cast<int>(f.type)]},
                        {"unit", kUnits[static_cast<int>(f.unit)]},
                        {"aliases", f.aliases}});
    }
    json maps = json::array();
    for (matcher::MapId i = 0; i < s.map_count(); ++i) maps.push_back({{"name", s.map(i).name}, {"aliases", s.map(i).aliases}});
    return send_json(conn, 200,
                     json{{"fields", fields},
                          {"maps", maps},
                          {"operators", {"=", "==", "!=", "<", "<=", ">", ">=", "~", "!~", ":", "in"}},
                          {"keywords", {"and", "or", "not", "in"}}});
  }

  if (r == "api/records") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    const std::string q = ri->query_string ? get_var(ri->query_string, "q") : "";
    const std::string lim = ri->query_string ? get_var(ri->query_string, "limit") : "";
    size_t limit = 100;
    if (!lim.empty()) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(lim.c_str(), &end, 10);
      if (*end != '\0' || v == 0 || v > 1000) return send_error(conn, 400, "bad_limit", "limit must be 1 to 1000");
      limit = v;
    }
    std::optional<matcher::Query> query;
    if (!q.empty()) {
      auto parsed = matcher::parse(q, http_schema(), opts.query);
      if (!parsed.ok()) return send_json(conn, 400, json{{"error", query_error_json(parsed.error)}});
      query = *parsed.query;
    }
    auto found = search(query ? &*query : nullptr, limit);
    if (!found.ok()) return send_error(conn, 503, "store_unavailable", found.status().message());
    std::string body = "{\"records\":[";
    for (size_t i = 0; i < found->size(); ++i) {
      if (i) body.push_back(',');
      append_json(*(*found)[i], body);
    }
    body += "]}";
    return send_raw(conn, 200, "application/json", body);
  }

  if (r == "api/stats") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    const InspectorStats s = stats();
    return send_json(conn, 200,
                     json{{"captured", s.captured},
                          {"dispatched", s.dispatched},
                          {"matched", s.matched},
                          {"delivered", s.delivered},
                          {"dropped_queue", s.dropped_queue},
                          {"dropped_channel", s.dropped_channel},
                          {"stored", s.stored},
                          {"store_dropped", s.store_dropped},
                          {"store_errors", s.store_errors},
                          {"queue_depth", s.queue_depth},
                          {"subscriptions", s.subscriptions},
                          {"sessions", s.sessions},
                          {"last_id", s.last_id}});
  }

  if (r == "metrics") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    const InspectorStats s = stats();
    auto d = [](uint64_t v) { return static_cast<double>(v); };
    std::string text;
    text += metric("clio_records_captured_total", "counter", "Records captured from requests.", d(s.captured));
    text += metric("clio_records_dispatched_total", "counter", "Records stamped and matched by the dispatcher.", d(s.dispatched));
    text += metric("clio_matches_total", "counter", "Record-subscription matches.", d(s.matched));
    text += metric("clio_matches_delivered_total", "counter", "Matches handed to the channel.", d(s.delivered));
    text += metric("clio_records_dropped_queue_total", "counter", "Records lost to a full capture queue.", d(s.dropped_queue));
    text += metric("clio_matches_dropped_channel_total", "counter", "Matches the channel refused.", d(s.dropped_channel));
    text += metric("clio_records_stored_total", "counter", "Records written to SQLite.", d(s.stored));
    text += metric("clio_store_errors_total", "counter", "Failed SQLite write batches.", d(s.store_errors));
    text += metric("clio_queue_depth", "gauge", "Records waiting in the capture queue.", d(s.queue_depth));
    text += metric("clio_subscriptions", "gauge", "Live subscriptions.", d(s.subscriptions));
    text += metric("clio_channel_sessions", "gauge", "Open channel sessions.", d(s.sessions));
    return send_raw(conn, 200, "text/plain; version=0.0.4; charset=utf-8", text);
  }

  if (r == "channel") {
    return send_error(conn, 400, "websocket_only", "the channel endpoint accepts WebSocket upgrades only");
  }

  if (get) {
    // Assets by their exact (case-sensitive) name.
    std::string_view path = ri->local_uri;
    const std::string name(path.substr(std::min(path.size(), opts.prefix.size())));
    if (const templates::Asset* a = templates::find_asset(name)) return serve_asset(conn, *a);
  }
  return send_error(conn, 404, "not_found", "no such console resource");
}

}  // namespace clio::console
