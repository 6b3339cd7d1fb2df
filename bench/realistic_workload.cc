#include "realistic_workload.h"

#include <cmath>
#include <random>

namespace clio::bench {
namespace {

// "text"s + x: GCC 12 warns (-Wrestrict, a false positive) on const char* + std::string&&.
using namespace std::string_literals;

constexpr int kTenants = 1000;
constexpr int kUsers = 20000;

class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  uint64_t below(uint64_t n) { return g_() % n; }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(g_) < p; }
  double uniform() { return std::uniform_real_distribution<double>(0, 1)(g_); }
  double lognormal(double median, double sigma) {
    return median * std::exp(std::normal_distribution<double>(0, sigma)(g_));
  }
  // Half the traffic (and the attention) goes to the 50 busiest tenants.
  int tenant() { return chance(0.5) ? static_cast<int>(below(50)) : static_cast<int>(below(kTenants)); }
  int user() { return chance(0.3) ? static_cast<int>(below(500)) : static_cast<int>(below(kUsers)); }
  // Picks an index by integer weights.
  template <size_t N>
  size_t weighted(const int (&w)[N]) {
    int total = 0;
    for (int x : w) total += x;
    int r = static_cast<int>(below(static_cast<uint64_t>(total)));
    for (size_t i = 0; i < N; ++i) {
      if (r < w[i]) return i;
      r -= w[i];
    }
    return N - 1;
  }
  template <typename T, size_t N>
  const T& one(const T (&a)[N]) { return a[below(N)]; }

 private:
  std::mt19937_64 g_;
};

std::string S(int64_t v) { return std::to_string(v); }
std::string prefixed(char c, int64_t v) {
  std::string s(1, c);
  s += S(v);
  return s;
}
std::string T(int t) { return prefixed('t', t); }
std::string U(int u) { return prefixed('u', u); }

std::string hex(Rng& r, int digits) {
  static const char* h = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < digits; ++i) s.push_back(h[r.below(16)]);
  return s;
}

const char* kMethods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"};
const int kMethodWeights[] = {680, 180, 50, 30, 20, 30, 10};
const int kStatuses[] = {200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504};
const int kStatusWeights[] = {7800, 400, 300, 100, 100, 300, 200, 150, 100, 300, 50, 50, 60, 20, 40, 30};

std::string user_agent(Rng& r, const std::string& path) {
  if (path == "/health" && r.chance(0.9)) return "kube-probe/1."s + S(25 + r.below(5));
  switch (r.weighted({350, 150, 100, 80, 80, 50, 50, 30, 20, 30})) {
    case 0: return "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/12"s +
                   S(r.below(6)) + ".0.0.0 Safari/537.36";
    case 1: return "Mozilla/5.0 (X11; Linux x86_64; rv:12"s + S(r.below(6)) + ".0) Gecko/20100101 Firefox/12"s +
                   S(r.below(6)) + ".0";
    case 2: return "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_"s + S(r.below(6)) +
                   ") AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17."s + S(r.below(5)) + " Safari/605.1.15";
    case 3: return "curl/8."s + S(r.below(6)) + ".0";
    case 4: return "python-requests/2."s + S(20 + r.below(12)) + ".0";
    case 5: return "Go-http-client/1.1";
    case 6: return "okhttp/4."s + S(r.below(12)) + ".0";
    case 7: return "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    case 8: return "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)";
    default: return "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)";
  }
}

std::string ip(Rng& r) {
  switch (r.weighted({450, 150, 350, 50})) {
    case 0: return "10."s + S(r.below(256)) + "."s + S(r.below(256)) + "."s + S(r.below(256));
    case 1: return "192.168."s + S(r.below(16)) + "."s + S(r.below(256));
    case 2: {
      static const int firsts[] = {23, 34, 52, 66, 81, 93, 104, 151, 172, 185, 203, 212};
      return S(r.one(firsts)) + "."s + S(r.below(256)) + "."s + S(r.below(256)) + "."s + S(1 + r.below(254));
    }
    default: return "2001:db8:"s + hex(r, 2) + "::"s + hex(r, 3);
  }
}

}  // namespace

std::vector<Record> realistic_records(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<Record> out(n);
  for (size_t i = 0; i < n; ++i) {
    Record& x = out[i];
    x.id = i + 1;
    x.time = 1795000000.0 + static_cast<double>(i) * 0.001;
    x.method = kMethods[r.weighted(kMethodWeights)];
    const int t = r.tenant(), u = r.user();
    bool tenant_path = false;
    switch (r.weighted({400, 150, 100, 100, 50, 30, 70, 100})) {
      case 0: x.path = "/api/v1/tenants/"s + T(t) + "/orders/"s + S(r.below(100000)); tenant_path = true; break;
      case 1: x.path = "/api/v1/users/"s + U(u) + (r.chance(0.3) ? "/settings" : ""); break;
      case 2: x.path = "/api/v2/search"; break;
      case 3: {
        static const char* assets[] = {"/static/app.", "/static/vendor.", "/static/styles."};
        x.path = r.chance(0.3) ? "/images/"s + S(r.below(5000)) + ".png"
                               : std::string(r.one(assets)) + hex(r, 8) + (r.chance(0.7) ? ".js" : ".css");
        break;
      }
      case 4: x.path = "/health"; break;
      case 5: x.path = "/metrics"; break;
      case 6: {
        static const char* pages[] = {"/login", "/logout", "/admin/audit"};
        x.path = r.chance(0.4) ? "/admin/users/"s + U(u) : r.one(pages);
        break;
      }
      default:
        x.path = "/api/v1/tenants/"s + T(t) + "/reports/"s + S(r.below(2000)) + "/export";
        tenant_path = true;
        break;
    }
    x.query = r.chance(0.3) ? "page="s + S(r.below(50)) + "&q="s + hex(r, 4) : "";
    x.status_code = kStatuses[r.weighted(kStatusWeights)];
    x.wall_time = std::min(60000.0, std::round(r.lognormal(40, 1.3) * 10) / 10);
    x.cpu_time = std::round(x.wall_time * (0.05 + 0.55 * r.uniform()) * 10) / 10;
    x.set_remote_ip(ip(r));
    switch (r.weighted({500, 200, 50, 250})) {
      case 0: x.host = "api.example.com"; break;
      case 1: x.host = "www.example.com"; break;
      case 2: x.host = "admin.example.com"; break;
      default: x.host = T(t) + ".example.com"; break;
    }
    x.user_agent = user_agent(r, x.path);
    x.referer = r.chance(0.3) ? "https://www.example.com/"s + hex(r, 3) : "";
    x.http_version = r.chance(0.95) ? "1.1" : "1.0";
    const bool body = x.method == "POST" || x.method == "PUT" || x.method == "PATCH";
    x.request_bytes = body ? static_cast<int64_t>(100 + r.below(50000)) : 0;
    x.response_bytes = static_cast<int64_t>(x.path.find("/export") != std::string::npos ? r.lognormal(2e6, 1.5)
                                                                                       : r.lognormal(2000, 1.2));
    x.random = r.uniform();
    x.headers.emplace_back("host", x.host);
    x.headers.emplace_back("user-agent", x.user_agent);
    x.headers.emplace_back("accept", r.chance(0.6) ? "application/json" : "*/*");
    if (r.chance(0.8)) x.headers.emplace_back("accept-encoding", "gzip, deflate, br");
    if (body) x.headers.emplace_back("content-type", r.chance(0.85) ? "application/json" : "multipart/form-data; boundary=x");
    if (r.chance(0.6)) x.headers.emplace_back("authorization", "[redacted]");
    x.headers.emplace_back("x-request-id", hex(r, 16));
    if (tenant_path || r.chance(0.2)) x.headers.emplace_back("x-tenant", T(t));
    if (r.chance(0.3)) x.headers.emplace_back("traceparent", "00-"s + hex(r, 32) + "-"s + hex(r, 16) + "-01");
    if (r.chance(0.2)) x.headers.emplace_back("x-forwarded-for", ip(r));
    if (r.chance(0.005)) x.headers.emplace_back("x-debug", "1");
    if (r.chance(0.3)) x.headers.emplace_back("cookie", "[redacted]");
    x.tags.emplace_back("env", r.chance(0.95) ? "prod" : "staging");
    static const char* regions[] = {"eu-west", "us-east", "ap-south"};
    x.tags.emplace_back("region", r.one(regions));
    if (r.chance(0.5)) x.tags.emplace_back("user", U(u));
  }
  return out;
}

std::vector<std::string> realistic_queries(size_t n, uint64_t seed) {
  Rng r(seed);
  // Per mille; the order matches the table in the header.
  const int shares[] = {162, 80, 40, 80, 60, 60, 80, 120, 90, 90, 30, 50, 3, 5, 50};
  std::vector<std::string> popular;
  std::vector<std::string> out;
  out.reserve(n);
  auto tenant_host = [&](int t) { return T(t) + ".example.com"; };
  auto net24 = [&] { return "10."s + S(r.below(256)) + "."s + S(r.below(256)) + ".0/24"; };
  while (out.size() < n) {
    const int t = r.tenant(), u = r.user();
    std::string q;
    switch (r.weighted(shares)) {
      case 0:  // path substrings
        switch (r.below(5)) {
          case 0: q = "path:\"/tenants/"s + T(t) + "/\""; break;
          case 1: q = T(t) + "/orders"; break;
          case 2: q = "path:\"/tenants/"s + T(t) + "/\" and status:5xx"; break;
          case 3: q = "path:\"/users/"s + U(u) + "\""; break;
          default: q = "path:\"/reports/"s + S(r.below(2000)) + "/export\" "s + T(t); break;
        }
        break;
      case 1:  // path regexes
        switch (r.below(3)) {
          case 0: q = "path ~ \"^/api/v1/tenants/"s + T(t) + "/orders/[0-9]+$\""; break;
          case 1: q = "~u \"/users/"s + U(u) + "(/settings)?$\""; break;
          default: q = "path ~ \"^/api/v1/tenants/"s + T(t) + "/reports/[0-9]{3}/export\" and wall > 2s"; break;
        }
        break;
      case 2:  // user-agent regexes
        switch (r.below(3)) {
          case 0: q = "ua ~ \"python-requests/2\\\\."s + S(20 + r.below(12)) + "\" and status >= 400"; break;
          case 1: q = "ua ~ \"(?i)googlebot\" and path:\"/users/"s + U(u) + "\""; break;
          default: q = "ua ~ \"^curl/8\\\\.[0-9]\" and host = "s + tenant_host(t); break;
        }
        break;
      case 3:  // status classes
        switch (r.below(3)) {
          case 0: q = "status:5xx and host = "s + tenant_host(t); break;
          case 1: q = "not status:2xx and path:\"/"s + T(t) + "/\""; break;
          default: q = "status:4xx and ip:"s + net24(); break;
        }
        break;
      case 4:  // negations with a selective part
        switch (r.below(3)) {
          case 0: q = "-method:OPTIONS and wall > "s + S(2000 + 1000 * static_cast<int>(r.below(20))) + "ms and path:\"/tenants/"s + T(t) + "/\""; break;
          case 1: q = "not status < 500 and h.x-tenant = "s + T(t); break;
          default: q = "not method = GET and tag.user = "s + U(u); break;
        }
        break;
      case 5:  // in lists with ranges
        switch (r.below(3)) {
          case 0: q = "status in (429, 500..599) and host = "s + tenant_host(t); break;
          case 1: q = "status in (401, 403) and path:\"/admin/users/"s + U(u) + "\""; break;
          default: q = "wall in (1000..2000, 5000..10000) and tag.user = "s + U(u); break;
        }
        break;
      case 6:  // CIDR blocks
        switch (r.below(5)) {
          case 0: q = "ip:"s + net24(); break;
          case 1: q = "ip:10."s + S(r.below(256)) + ".0.0/16 and status:5xx"; break;
          case 2: {
            static const int firsts[] = {23, 34, 52, 66, 81, 93, 104, 151, 172, 185, 203, 212};
            const int len = 20 + static_cast<int>(r.below(13));
            q = "ip:"s + S(r.one(firsts)) + "."s + S(r.below(256)) + "."s + S(r.below(256)) + ".0/"s + S(len);
            break;
          }
          case 3: q = "ip in (192.168."s + S(r.below(16)) + ".0/24, 10."s + S(r.below(256)) + "."s + S(r.below(256)) + ".0/28)"; break;
          default: q = "ip = 10."s + S(r.below(256)) + "."s + S(r.below(256)) + "."s + S(r.below(256)); break;
        }
        break;
      case 7:  // headers and tags
        switch (r.below(6)) {
          case 0: q = "h.x-request-id = \""s + hex(r, 16) + "\""; break;
          case 1: q = "h.x-tenant = "s + T(t) + " and status >= 400"; break;
          case 2: q = "h.x-debug:* and host = "s + tenant_host(t); break;
          case 3: q = "tag.user = "s + U(u); break;
          case 4: q = "tag.env = staging and wall > "s + S(2 + r.below(10)) + "s"; break;
          default: q = "h.content-type:multipart and path:\"/"s + T(t) + "/\""; break;
        }
        break;
      case 8:  // shorthands
        switch (r.below(5)) {
          case 0: q = "~c 503 ~d "s + tenant_host(t); break;
          case 1: q = "~m DELETE ~u ^/api/v1/users/"s + U(u); break;
          case 2: q = "status-code:404 domain:"s + tenant_host(t); break;
          case 3: q = "larger-than:1M path:\"/"s + T(t) + "/\""; break;
          default: q = "-method:OPTIONS domain:"s + tenant_host(t); break;
        }
        break;
      case 9:  // ORs of 2-4 branches
        switch (r.below(4)) {
          case 0: q = "path:\"/"s + T(t) + "/\" or path:\"/"s + T(r.tenant()) + "/\" or h.x-tenant = "s + T(r.tenant()); break;
          case 1: q = "(status = 502 or status = 504) and host = "s + tenant_host(t); break;
          case 2: q = "ua ~ \"(?i)bingbot\" and path:\"/users/"s + U(u) + "\" or ip:66."s + S(r.below(256)) + "."s + S(r.below(256)) + ".0/24"; break;
          default: q = "tag.user = "s + U(u) + " or tag.user = "s + U(r.user()) + " or tag.user = "s + U(r.user()) + " or tag.user = "s + U(r.user()); break;
        }
        break;
      case 10:  // sampling
        switch (r.below(3)) {
          case 0: q = "random < 0.001 and host = api.example.com"; break;
          case 1: q = "random < 0.0005 and path:\"/api/v1/\""; break;
          default: q = "random < 0.0001"; break;
        }
        break;
      case 11:  // a low-cardinality equality next to a selective substring
        switch (r.below(2)) {
          case 0: q = "method = POST and path:\"/api/v1/tenants/"s + T(t) + "/\""; break;
          default: q = "method = DELETE and status = 404 and tag.user = "s + U(u); break;
        }
        break;
      case 12:  // a regex with no literal text
        q = "path ~ \"/[0-9]{"s + S(5 + r.below(3)) + "}$\"";
        break;
      case 13: {  // broad
        static const char* broad[] = {"status:5xx", "wall > 1s", "-method:OPTIONS", "not status:2xx",
                                      "ua ~ \"(?i)bot\"", "path:\"/api/\"", "method = POST", "h.authorization:*"};
        q = r.one(broad);
        break;
      }
      default:  // a popular query again
        if (popular.size() < 40 || r.chance(0.05)) {
          static const char* seeds[] = {"status:5xx and host = api.example.com", "path:\"/admin\" and not status:2xx",
                                        "wall > 10s", "~c 429", "status in (502, 503, 504)",
                                        "h.x-debug:*", "-method:OPTIONS and wall > 5s"};
          q = r.chance(0.5) ? r.one(seeds) : "path:\"/tenants/"s + T(static_cast<int>(r.below(50))) + "/\" and status:5xx";
          popular.push_back(q);
        } else {
          q = popular[r.below(popular.size())];
        }
        break;
    }
    out.push_back(std::move(q));
  }
  return out;
}

}  // namespace clio::bench
