// The console's HTTP side: the auth handler that guards everything under the
// prefix (fails closed), and the routes of the JSON API, the login flow, the
// metrics and the embedded page assets.
#include <civetweb.h>
#include <strings.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "clio/middleware/http_schema.h"
#include "clio/templates/assets.h"
#include "http_util.h"
#include "http_api.h"

namespace clio::console {

using nlohmann::json;

namespace {

constexpr const char* kSessionCookie = "clio_session";
constexpr const char* kCsrfHeader = "X-Clio-CSRF";
constexpr uint64_t kMaxSubscriptionId = (uint64_t{1} << 63) - 1;

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

// The pages' Content-Security-Policy header: scripts and connections to
// this server only, WebSockets included (the ws:/wss: forms of its public
// origins; 'self' alone does not cover them in every browser).
std::string csp_header(const std::vector<std::string>& origins) {
  std::string connect = "'self'";
  for (const std::string& o : origins) {
    if (o.rfind("https://", 0) == 0) connect += " wss://" + o.substr(8);
    else if (o.rfind("http://", 0) == 0) connect += " ws://" + o.substr(7);
  }
  return "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
         "img-src 'self' data:; connect-src " + connect + "; frame-ancestors 'none'; base-uri 'none'; "
         "form-action 'self'\r\n";
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& x : v) out += (out.empty() ? "" : ", ") + x;
  return out;
}

// One Prometheus metric: its HELP and TYPE lines, then one sample per
// (labels, value); labels is "" or `name="value",...` with values escaped.
std::string metric(const char* name, const char* type, const char* help,
                   const std::vector<std::pair<std::string, double>>& samples) {
  std::string s = std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  for (const auto& [labels, value] : samples) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", value);
    s += name;
    if (!labels.empty()) s += "{" + labels + "}";
    s += " ";
    s += buf;
    s += "\n";
  }
  return s;
}

std::string metric(const char* name, const char* type, const char* help, double value) {
  return metric(name, type, help, {{"", value}});
}

json subscription_json(const Subscription& s) {
  return {{"id", s.id},
          {"client_id", s.client_id},
          {"query", s.query},
          {"normalized", s.normalized},
          {"created", s.created},
          {"matches", s.matches.load(std::memory_order_relaxed)}};
}

// The fields, maps and operators of the query language, for completion.
json schema_json() {
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
  return {{"fields", fields},
          {"maps", maps},
          {"operators", {"=", "==", "!=", "<", "<=", ">", ">=", "~", "!~", ":", "in"}},
          {"keywords", {"and", "or", "not", "in"}}};
}

// The matcher's counters, with the subscriptions checked on every record by reason.
json matcher_json(const matcher::MatcherStats& m) {
  json by_reason = json::object();
  for (size_t r = 1; r < matcher::kEveryRecordReasonCount; ++r) {
    by_reason[std::string(matcher::every_record_code(static_cast<matcher::EveryRecordReason>(r)))] =
        m.every_record_by_reason[r];
  }
  return {{"subscriptions", m.subscriptions},
          {"distinct_queries", m.distinct_queries},
          {"every_record", m.every_record},
          {"every_record_by_reason", by_reason}};
}

// A Prometheus label value: backslash, quote and newline escaped.
std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

HttpApi::HttpApi(Hub::Impl& hub) : hub_(hub), csp_(csp_header(hub.public_origins())) {}

int HttpApi::serve_asset(mg_connection* conn, const templates::Asset& a) const {
  const bool html = a.content_type.rfind("text/html", 0) == 0;
  return send_raw(conn, 200, a.content_type, a.data, html ? csp_ : std::string());
}

void HttpApi::mount(mg_context* ctx) {
  mg_set_auth_handler(ctx, hub_.options().prefix.c_str(), &HttpApi::handle_auth, this);
  mg_set_request_handler(ctx, hub_.options().prefix.c_str(), &HttpApi::handle_request, this);
}

int HttpApi::handle_auth(mg_connection* conn, void* self) { return static_cast<HttpApi*>(self)->authorize(conn); }

int HttpApi::handle_request(mg_connection* conn, void* self) { return static_cast<HttpApi*>(self)->route(conn); }

// Returns 1 to let the request through; otherwise answers it (401, 403 or a
// redirect to the login page) and returns 0. Responses are written raw
// because CivetWeb's response API does not work on upgrade requests.
int HttpApi::authorize(mg_connection* conn) {
  const std::string& prefix = hub_.options().prefix;
  AdminAuth& auth = hub_.auth();
  const std::string route = route_of(conn, prefix);
  if (public_route(route) && !is_upgrade(conn)) return 1;
  const auto now = static_cast<int64_t>(hub_.now_seconds());
  const std::string key = bearer(conn);
  if (!key.empty()) {
    const std::string address = client_address(conn, hub_.options().trust_x_forwarded_for);
    if (hub_.throttle().throttled(address, now)) {
      send_throttled(conn);
      return 0;
    }
    if (auth.key_ok(key)) return 1;
    hub_.throttle().note_failure(address, FailureThrottle::kBearer, now);
    send_error(conn, 401, "unauthorized", "wrong admin key");
    return 0;
  }
  const std::string cookie = get_cookie(conn, kSessionCookie);
  const std::string csrf = cookie.empty() ? "" : auth.check_session(cookie, now);
  if (!csrf.empty()) {
    if (is_upgrade(conn)) {
      if (hub_.origin_ok(header(conn, "Origin"))) return 1;
      send_error(conn, 403, "bad_origin",
                 "WebSocket upgrades with a session cookie must come from the console's public origin (" +
                     join(hub_.public_origins()) + "; set public_origin, or allowed_origins, for others)");
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
    send_redirect(conn, prefix + "login");
    return 0;
  }
  send_error(conn, 401, "unauthorized", "log in at " + prefix + "login or send Authorization: Bearer <admin key>");
  return 0;
}

int HttpApi::send_throttled(mg_connection* conn) {
  return send_error(conn, 429, "throttled", "too many failed attempts from this address; wait a minute");
}

int HttpApi::route(mg_connection* conn) {
  const HubOptions& opts = hub_.options();
  if (path_has_nul(conn)) return send_error(conn, 400, "bad_path", "the path holds an encoded NUL (%00)");
  const std::string r = route_of(conn, opts.prefix);
  const mg_request_info* ri = mg_get_request_info(conn);
  const auto now = static_cast<int64_t>(hub_.now_seconds());
  const bool get = is_method(conn, "GET") || is_method(conn, "HEAD");
  const bool post = is_method(conn, "POST");

  if (r.empty() || r == "index.html") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    const templates::Asset* page = templates::find_asset("console.html");
    if (page == nullptr) return send_error(conn, 404, "not_found", "console page not built");
    return serve_asset(conn, *page);
  }
  if (r == "login") return login(conn, get, post, now);
  const std::string clear_cookie = std::string("Set-Cookie: ") + kSessionCookie + "=; Path=" + opts.prefix +
                                   "; HttpOnly; SameSite=Strict; Max-Age=0\r\n";
  if (r == "logout") {
    if (!post) return send_error(conn, 405, "method_not_allowed", "use POST");
    if (Status s = hub_.log_out(get_cookie(conn, kSessionCookie)); !s.ok()) return send_status(conn, s);
    return send_json(conn, 200, json{{"ok", true}}, clear_cookie);
  }
  if (r == "api/sessions") {
    if (!is_method(conn, "DELETE")) return send_error(conn, 405, "method_not_allowed", "use DELETE");
    if (Status s = hub_.log_out_everywhere(); !s.ok()) return send_status(conn, s);
    return send_json(conn, 200, json{{"ok", true}}, clear_cookie);
  }
  if (r == "api/session") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    const std::string cookie = get_cookie(conn, kSessionCookie);
    const std::string csrf = cookie.empty() ? "" : hub_.auth().check_session(cookie, now);
    const std::string origin = hub_.public_origins().empty() ? "" : hub_.public_origins().front();
    return send_json(conn, 200, json{{"csrf", csrf}, {"prefix", opts.prefix}, {"origin", origin}});
  }
  if (r == "api/token") {
    if (!post) return send_error(conn, 405, "method_not_allowed", "use POST");
    return token(conn);
  }
  if (r == "api/subscriptions") return subscriptions(conn, get, post);
  if (r.rfind("api/subscriptions/", 0) == 0) return subscription(conn, r.substr(std::strlen("api/subscriptions/")), get);
  if (r == "api/check") {
    if (!get && !post) return send_error(conn, 405, "method_not_allowed", "use GET or POST");
    return check(conn, post);
  }
  if (r == "api/schema") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    return send_json(conn, 200, schema_json());
  }
  if (r == "api/records") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    return records(conn);
  }
  if (r == "api/matches") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    return matches(conn);
  }
  if (r == "api/stats") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    return stats(conn);
  }
  if (r == "metrics") {
    if (!get) return send_error(conn, 405, "method_not_allowed", "use GET");
    return metrics(conn);
  }
  if (get) {
    // Assets by their exact (case-sensitive) name.
    std::string_view path = ri->local_uri;
    const std::string name(path.substr(std::min(path.size(), opts.prefix.size())));
    if (const templates::Asset* a = templates::find_asset(name)) return serve_asset(conn, *a);
  }
  return send_error(conn, 404, "not_found", "no such console resource");
}

// GET api/check?q=QUERY, or POST api/check {"query": QUERY} for queries too
// long for a URL.
int HttpApi::check(mg_connection* conn, bool post) {
  std::string q;
  if (post) {
    auto body = read_body(conn, hub_.options().max_body_bytes);
    if (!body.ok()) return send_error(conn, 413, "too_large", body.status().message());
    json j = json::parse(*body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("query") || !j["query"].is_string()) {
      return send_error(conn, 400, "bad_query", "the body must be a JSON object with query (a string)");
    }
    q = j["query"].get<std::string>();
  } else {
    const mg_request_info* ri = mg_get_request_info(conn);
    q = ri->query_string ? get_var(ri->query_string, "q") : "";
  }
  auto parsed = matcher::parse(q, http_schema(), hub_.options().query);
  if (!parsed.ok()) return send_json(conn, 200, json{{"valid", false}, {"error", query_error_json(parsed.error)}});
  const matcher::AccessExplanation plan = hub_.dispatcher().explain(*parsed.query);
  return send_json(conn, 200,
                   json{{"valid", true},
                        {"normalized", parsed.query->canonical()},
                        {"plan",
                         {{"every_record", plan.every_record},
                          {"code", matcher::every_record_code(plan.reason)},
                          {"reason", matcher::every_record_text(plan.reason)},
                          {"text", plan.text}}}});
}

int HttpApi::login(mg_connection* conn, bool get, bool post, int64_t now) {
  const HubOptions& opts = hub_.options();
  AdminAuth& auth = hub_.auth();
  const std::string cookie_attrs = std::string("; Path=") + opts.prefix + "; HttpOnly; SameSite=Strict" +
                                   (opts.secure_cookies ? "; Secure" : "");
  auto start_session = [&]() {
    const AdminAuth::Session s = auth.new_session(now);
    return send_redirect(conn, opts.prefix,
                         std::string("Set-Cookie: ") + kSessionCookie + "=" + s.cookie + cookie_attrs +
                             "; Max-Age=" + std::to_string(opts.session_ttl.count()) + "\r\n");
  };
  FailureThrottle& throttle = hub_.throttle();
  const std::string address = client_address(conn, opts.trust_x_forwarded_for);
  if (get) {
    const mg_request_info* ri = mg_get_request_info(conn);
    const std::string code = ri->query_string ? get_var(ri->query_string, "code") : "";
    if (!code.empty()) {
      if (throttle.throttled(address, now)) return send_throttled(conn);
      if (auth.redeem_login_code(code, now)) return start_session();
      throttle.note_failure(address, FailureThrottle::kLoginCode, now);
      return send_redirect(conn, opts.prefix + "login?error=code");
    }
    const templates::Asset* page = templates::find_asset("login.html");
    if (page != nullptr) return serve_asset(conn, *page);
    return send_raw(conn, 200, "text/html; charset=utf-8", kLoginFallback);
  }
  if (!post) return send_error(conn, 405, "method_not_allowed", "use GET or POST");
  if (throttle.throttled(address, now)) return send_throttled(conn);
  auto body = read_body(conn, 4096);
  if (!body.ok()) return send_error(conn, 413, "too_large", body.status().message());
  if (auth.key_ok(get_var(*body, "key"))) return start_session();
  throttle.note_failure(address, FailureThrottle::kLoginKey, now);
  return send_redirect(conn, opts.prefix + "login?error=1");
}

int HttpApi::token(mg_connection* conn) {
  auto body = read_body(conn, hub_.options().max_body_bytes);
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
  auto token = hub_.channel().create_channel(client_id, hub_.options().token_duration);
  if (!token.ok()) return send_status(conn, token.status(), "bad_client_id");
  return send_json(conn, 200, json{{"client_id", client_id}, {"token", token->token}, {"expires_at", token->expires_at}});
}

int HttpApi::subscriptions(mg_connection* conn, bool get, bool post) {
  if (get) {
    const mg_request_info* ri = mg_get_request_info(conn);
    const std::string client = ri->query_string ? get_var(ri->query_string, "client_id") : "";
    json arr = json::array();
    for (const auto& s : hub_.registry().list(client)) arr.push_back(subscription_json(*s));
    return send_json(conn, 200, json{{"subscriptions", arr}});
  }
  if (!post) return send_error(conn, 405, "method_not_allowed", "use GET or POST");
  auto body = read_body(conn, hub_.options().max_body_bytes);
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
  const std::string text = j["query"].get<std::string>();
  auto parsed = matcher::parse(text, http_schema(), hub_.options().query);
  if (!parsed.ok()) return send_json(conn, 400, json{{"error", query_error_json(parsed.error)}});
  auto sub = hub_.subscribe(j["client_id"].get<std::string>(), text, *parsed.query, backfill);
  if (!sub.ok()) {
    const StatusCode code = sub.status().code();
    return send_status(conn, sub.status(), code == StatusCode::kResourceExhausted ? "too_many_subscriptions"
                                           : code == StatusCode::kNotFound        ? "unknown_client"
                                                                                   : "");
  }
  return send_json(conn, 201, subscription_json(**sub));
}

int HttpApi::subscription(mg_connection* conn, const std::string& tail, bool get) {
  const std::optional<uint64_t> parsed = parse_decimal(tail, kMaxSubscriptionId);
  if (!parsed || *parsed == 0) {
    return send_error(conn, 400, "bad_id", "a subscription id is a number from 1 to 2^63-1, digits only");
  }
  const uint64_t id = *parsed;
  if (is_method(conn, "DELETE")) {
    if (Status s = hub_.unsubscribe(id); !s.ok()) return send_status(conn, s);
    return send_json(conn, 200, json{{"id", id}});
  }
  if (get) {
    auto s = hub_.registry().find(id);
    if (!s) return send_error(conn, 404, "not_found", "no subscription " + tail);
    return send_json(conn, 200, subscription_json(*s));
  }
  return send_error(conn, 405, "method_not_allowed", "use GET or DELETE");
}

int HttpApi::records(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  const std::string q = ri->query_string ? get_var(ri->query_string, "q") : "";
  const std::string lim = ri->query_string ? get_var(ri->query_string, "limit") : "";
  size_t limit = 100;
  if (!lim.empty()) {
    const std::optional<uint64_t> v = parse_decimal(lim, 1000);
    if (!v || *v == 0) return send_error(conn, 400, "bad_limit", "limit must be 1 to 1000, digits only");
    limit = static_cast<size_t>(*v);
  }
  std::optional<matcher::Query> query;
  if (!q.empty()) {
    auto parsed = matcher::parse(q, http_schema(), hub_.options().query);
    if (!parsed.ok()) return send_json(conn, 400, json{{"error", query_error_json(parsed.error)}});
    query = *parsed.query;
  }
  auto found = hub_.search(query ? &*query : nullptr, limit);
  if (!found.ok()) return send_error(conn, 503, "store_unavailable", found.status().message());
  std::string body = "{\"records\":[";
  for (size_t i = 0; i < found->size(); ++i) {
    if (i) body.push_back(',');
    append_json(*(*found)[i], body);
  }
  body += "]}";
  return send_raw(conn, 200, "application/json", body);
}

// GET api/matches?client_id=C&after=ID[&limit=N]: what a console missed
// across a server restart (see Hub::Impl::matches_after).
int HttpApi::matches(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  const std::string qs = ri->query_string ? ri->query_string : "";
  const std::string client = get_var(qs, "client_id");
  if (!valid_client_id(client)) return send_error(conn, 400, "bad_client_id", "client_id is required");
  auto number = [&](const char* name, uint64_t def, uint64_t max, uint64_t& out) {
    const std::string v = get_var(qs, name);
    if (v.empty()) {
      out = def;
      return true;
    }
    if (v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos) return false;
    out = std::stoull(v);
    return out <= max;
  };
  uint64_t after = 0, limit = 0;
  if (!number("after", 0, (uint64_t{1} << 53), after)) {
    return send_error(conn, 400, "bad_after", "after must be a record id (digits)");
  }
  if (!number("limit", 1000, 5000, limit) || limit == 0) {
    return send_error(conn, 400, "bad_limit", "limit must be 1 to 5000");
  }
  auto found = hub_.matches_after(client, after, limit);
  if (!found.ok()) return send_status(conn, found.status());
  std::string body = "{\"items\":[";
  std::string record;
  for (size_t i = 0; i < found->items.size(); ++i) {
    if (i) body.push_back(',');
    record.clear();
    append_json(*found->items[i].second, record);
    body += match_item(found->items[i].first, record);
  }
  body += "],\"truncated\":" + std::to_string(found->truncated) + ",\"lost\":" + std::to_string(found->lost) + "}";
  return send_raw(conn, 200, "application/json", body);
}

int HttpApi::stats(mg_connection* conn) {
  const HubStats s = hub_.stats();
  json instances = json::array();
  for (const InstanceStats& i : s.instances) {
    instances.push_back({{"instance", i.instance},
                         {"records", i.records},
                         {"published", i.published},
                         {"dropped", i.dropped},
                         {"last_seen", i.last_seen}});
  }
  json consoles = json::array();
  for (const ConsoleDelivery& c : s.consoles) {
    consoles.push_back({{"client_id", c.client_id},
                        {"connected", c.connected},
                        {"delivered", c.delivered},
                        {"dropped", c.dropped},
                        {"pending", c.pending},
                        {"messages_delivered", c.messages_delivered},
                        {"messages_lost", c.messages_lost},
                        {"messages_unweighed", c.messages_unweighed}});
  }
  return send_json(conn, 200,
                   json{{"captured", s.published() + s.dropped_at_source()},
                        {"dispatched", s.dispatched},
                        {"matched", s.matched},
                        {"delivered", s.delivered},
                        {"dropped_queue", s.dropped_at_source()},
                        {"dropped_channel", s.dropped_channel},
                        {"pending_channel", s.pending_channel},
                        {"stored", s.stored},
                        {"store_dropped", s.store_dropped},
                        {"store_errors", s.store_errors},
                        {"store_lost", s.store_lost},
                        {"store_queued", s.store_queued},
                        {"consoles", consoles},
                        {"queue_depth", s.log.backlog},
                        {"subscriptions", s.subscriptions},
                        {"sessions", s.sessions},
                        {"last_id", s.last_id},
                        {"auth",
                         {{"failures",
                           {{"login_key", s.auth_failures_login_key},
                            {"bearer", s.auth_failures_bearer},
                            {"login_code", s.auth_failures_login_code}}},
                          {"refused", s.auth_refused}}},
                        {"instances", instances},
                        {"matcher", matcher_json(s.matcher)},
                        {"log",
                         {{"engine", s.log_engine},
                          {"connected", s.log.connected},
                          {"last_error", s.log.last_error},
                          {"entries", s.log.entries},
                          {"malformed", s.log.malformed},
                          {"stale", s.log.stale},
                          {"gaps", s.log_gaps},
                          {"records_lost", s.log_records_lost},
                          {"resets", s.log.resets}}}});
}

int HttpApi::metrics(mg_connection* conn) {
  const HubStats s = hub_.stats();
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  std::vector<std::pair<std::string, double>> published, dropped, records, seen, console_delivered, console_dropped;
  for (const ConsoleDelivery& c : s.consoles) {
    const std::string label = "client_id=\"" + label_value(c.client_id) + "\"";
    console_delivered.emplace_back(label, d(c.delivered));
    console_dropped.emplace_back(label, d(c.dropped));
  }
  for (const InstanceStats& i : s.instances) {
    const std::string label = "instance=\"" + label_value(i.instance) + "\"";
    published.emplace_back(label, d(i.published));
    dropped.emplace_back(label, d(i.dropped));
    records.emplace_back(label, d(i.records));
    seen.emplace_back(label, i.last_seen);
  }
  std::string text;
  text += metric("clio_records_captured_total", "counter",
                 "Records the app instances captured: published, or dropped at the source.",
                 d(s.published() + s.dropped_at_source()));
  text += metric("clio_records_dispatched_total", "counter", "Records read from the log and matched.", d(s.dispatched));
  text += metric("clio_matches_total", "counter", "Record-subscription matches.", d(s.matched));
  text += metric("clio_matches_delivered_total", "counter", "Matches handed to a console's socket.", d(s.delivered));
  text += metric("clio_records_dropped_queue_total", "counter", "Records the app instances dropped at the source.",
                 d(s.dropped_at_source()));
  text += metric("clio_matches_dropped_channel_total", "counter",
                 "Matches lost on the way to a console: refused by the channel, or lost by it (gaps, discards).",
                 d(s.dropped_channel));
  text += metric("clio_matches_pending_channel", "gauge", "Matches the channel holds, not yet delivered or lost.",
                 d(s.pending_channel));
  text += metric("clio_console_matches_delivered_total", "counter", "Matches handed to this console's socket.",
                 console_delivered);
  text += metric("clio_console_matches_dropped_total", "counter",
                 "Matches this console lost: announced to it as gaps, or discarded.", console_dropped);
  text += metric("clio_records_stored_total", "counter", "Records written to SQLite.", d(s.stored));
  text += metric("clio_store_errors_total", "counter", "Failed SQLite write batches.", d(s.store_errors));
  text += metric("clio_queue_depth", "gauge", "Records read from the log, waiting for the dispatcher.", d(s.log.backlog));
  text += metric("clio_subscriptions", "gauge", "Live subscriptions.", d(s.subscriptions));
  text += metric("clio_channel_sessions", "gauge", "Open channel sessions.", d(s.sessions));
  text += metric("clio_log_connected", "gauge", "1 while the record log can be reached.", s.log.connected ? 1 : 0);
  text += metric("clio_log_gaps_total", "counter", "Gaps in the record log (trimmed, reset, malformed).", d(s.log_gaps));
  text += metric("clio_log_records_lost_total", "counter", "Records the log's gaps counted.", d(s.log_records_lost));
  text += metric("clio_log_malformed_total", "counter", "Log entries skipped because they did not decode.",
                 d(s.log.malformed));
  std::vector<std::pair<std::string, double>> every_record;
  for (size_t r = 1; r < matcher::kEveryRecordReasonCount; ++r) {
    every_record.emplace_back(
        "reason=\"" + std::string(matcher::every_record_code(static_cast<matcher::EveryRecordReason>(r))) + "\"",
        d(s.matcher.every_record_by_reason[r]));
  }
  text += metric("clio_subscriptions_every_record", "gauge",
                 "Subscriptions the matcher checks on every record, by why they cannot be indexed.", every_record);
  text += metric("clio_auth_failures_total", "counter", "Failed credential attempts, by kind.",
                 {{"kind=\"login_key\"", d(s.auth_failures_login_key)},
                  {"kind=\"bearer\"", d(s.auth_failures_bearer)},
                  {"kind=\"login_code\"", d(s.auth_failures_login_code)}});
  text += metric("clio_auth_throttled_total", "counter",
                 "Credential attempts refused unchecked: their address had used up its failures.", d(s.auth_refused));
  text += metric("clio_instance_published_total", "counter", "Records an instance published.", published);
  text += metric("clio_instance_dropped_total", "counter", "Records an instance dropped at the source.", dropped);
  text += metric("clio_instance_records_total", "counter", "Records of an instance this console dispatched.", records);
  text += metric("clio_instance_last_seen_seconds", "gauge", "Unix time the console last heard from an instance.", seen);
  return send_raw(conn, 200, "text/plain; version=0.0.4; charset=utf-8", text);
}

}  // namespace clio::console
