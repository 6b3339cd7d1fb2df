#include "clio/middleware/instance.h"

#include <civetweb.h>
#include <unistd.h>

#include <cstdio>

namespace clio {

std::string default_instance_name(const mg_context* ctx) {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "localhost");
  std::string name = host;
  mg_server_port ports[4];
  const int n = ctx == nullptr ? 0 : mg_get_server_ports(ctx, 4, ports);
  if (n > 0) {
    name.push_back(':');
    name += std::to_string(ports[0].port);
  }
  return name;
}

}  // namespace clio
