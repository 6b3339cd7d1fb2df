// The name of an app instance: what the `instance` field of its records
// says. Configured by the app, or by default "<hostname>:<port>".
//
//   mg_context* ctx = mg_start(&callbacks, nullptr, options);
//   std::string name = clio::default_instance_name(ctx);   // "web-3:8080"
#pragma once

#include <string>

struct mg_context;

namespace clio {

// "<hostname>:<port>" with the port of `ctx`'s first listening socket
// ("<hostname>" alone when it has none). Thread-safe.
std::string default_instance_name(const mg_context* ctx);

}  // namespace clio
