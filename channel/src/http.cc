// ChannelService over plain HTTP: the probe that tells a client why its
// upgrade failed (POST to the channel path, PROTOCOL.md §2) and the JS client
// script, set up to find this service.
#include <cstring>

#include "clio/base/json_text.h"
#include "clio/templates/assets.h"
#include "impl.h"

namespace clio::channel {

namespace proto = protocol;

namespace {

// templates/channel.js holds this exact text; the served copy names the path.
constexpr std::string_view kServedPathMarker = "'' /* clio:served-path */";
constexpr size_t kMaxProbeBytes = 4096;

bool is_method(const mg_connection* c, const char* m) {
  const char* rm = mg_get_request_info(c)->request_method;
  return rm != nullptr && std::strcmp(rm, m) == 0;
}

std::string probe_json(bool ok, const std::string& error) {
  std::string j = R"({"t":"probe","ok":)";
  j += ok ? "true" : "false";
  if (!error.empty()) {
    j += R"(,"error":)";
    append_json_string(j, error);
  }
  return j + "}";
}

}  // namespace

std::string make_client_script(const std::string& path) {
  const templates::Asset* a = templates::find_asset("channel.js");
  if (a == nullptr) return {};
  std::string script(a->data);
  const size_t at = script.find(kServedPathMarker);
  if (at == std::string::npos) return {};
  std::string quoted;
  append_json_string(quoted, path);
  script.replace(at, kServedPathMarker.size(), quoted);
  return script;
}

std::string ChannelService::Impl::client_script() const {
  MutexLock lk(&mu_);
  return script_;
}

Status ChannelService::Impl::serve_client(mg_context* ctx, const std::string& uri) {
  if (ctx == nullptr) return Status::InvalidArgument("serve_client: no CivetWeb context");
  if (uri.empty() || uri[0] != '/' || uri.find_first_of("$*?|") != std::string::npos) {
    return Status::InvalidArgument("serve_client: uri must start with '/' and hold no pattern characters: " + uri);
  }
  {
    MutexLock lk(&mu_);
    if (!mounted_) return Status::InvalidArgument("serve_client: mount the channel first");
    if (script_.empty()) return Status::Internal("serve_client: channel.js is not embedded or lacks its path marker");
  }
  mg_set_request_handler(
      ctx, (uri + "$").c_str(), [](mg_connection* c, void* d) { return static_cast<Impl*>(d)->on_client_script(c); },
      this);
  return Status::Ok();
}

int ChannelService::Impl::on_client_script(mg_connection* c) {
  if (!is_method(c, "GET") && !is_method(c, "HEAD")) {
    respond(c, 405, "Method Not Allowed", "text/plain; charset=utf-8", "GET only\n");
    return 405;
  }
  const std::string body = client_script();
  mg_printf(c,
            "HTTP/1.1 200 OK\r\nContent-Type: text/javascript; charset=utf-8\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-cache\r\nAccess-Control-Allow-Origin: *\r\nX-Content-Type-Options: nosniff\r\n\r\n",
            body.size());
  if (!is_method(c, "HEAD")) mg_write(c, body.data(), body.size());
  return 200;
}

int ChannelService::Impl::on_probe(mg_connection* c) {
  if (!is_method(c, "POST")) {
    respond(c, 405, "Method Not Allowed", "application/json",
            probe_json(false, "the channel endpoint takes WebSocket upgrades, and POST probes with a token"));
    return 405;
  }
  std::string token;
  char buf[1024];
  int n;
  while (token.size() <= kMaxProbeBytes && (n = mg_read(c, buf, sizeof buf)) > 0) token.append(buf, static_cast<size_t>(n));
  if (token.size() > kMaxProbeBytes) {
    respond(c, 413, "Payload Too Large", "application/json", probe_json(false, "a probe carries a token only"));
    return 413;
  }
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
  auto claims = signer_.verify(token, unix_seconds());
  std::string why;
  int status;
  {
    MutexLock lk(&mu_);
    status = refusal_locked(claims, &why);
  }
  switch (status) {
    case 0:
      respond(c, 200, "OK", "application/json", probe_json(true, ""));
      return 200;
    case 401:
      respond(c, 401, "Unauthorized", "application/json", probe_json(false, why));
      return 401;
    default:
      respond(c, 503, "Service Unavailable", "application/json", probe_json(false, why));
      return 503;
  }
}

}  // namespace clio::channel
