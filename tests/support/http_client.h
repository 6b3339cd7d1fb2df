// A small blocking HTTP/1.1 client over raw sockets, for tests that talk to a
// real server on 127.0.0.1. Keeps its connection alive between requests.
//
//   clio::test::HttpClient c(port);
//   auto r = c.request("GET", "/api/hello");
//   REQUIRE(r.ok());
//   CHECK(r->status == 200);
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clio/base/status.h"

namespace clio::test {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;
  std::string reason;
  Headers headers;  // names as sent by the server
  std::string body;

  // The first header named `name` (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

// One connection; not copyable. Owned by one thread (external synchronization).
class HttpClient {
 public:
  explicit HttpClient(int port, double timeout_seconds = 10);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request (Host and Content-Length are added) and reads the whole
  // response. Reconnects if the server closed the previous connection.
  Result<HttpResponse> request(std::string_view method, std::string_view target,
                               const Headers& headers = {}, std::string_view body = {});
  // Sends `raw` bytes as they are and reads one response.
  Result<HttpResponse> raw(std::string_view raw);
  // Closes the connection (the next request opens a new one).
  void close();
  // The number of TCP connections opened so far.
  int connections_opened() const { return opened_; }
  // Connects from this local loopback address (e.g. "127.0.0.2") from the
  // next connection on, so that the server sees another client address.
  void set_source(std::string ipv4) { source_ = std::move(ipv4); }

 private:
  Status ensure_connected();
  Result<HttpResponse> read_response(bool head);

  int port_;
  double timeout_;
  int fd_ = -1;
  int opened_ = 0;
  std::string source_;
  std::string buf_;
};

// Receives what is available on `fd` into `buf`, waiting until `deadline`.
// False on timeout, or on EOF/error (then `eof` is set).
bool recv_some(int fd, std::string& buf, std::chrono::steady_clock::time_point deadline, bool& eof);

// Parses a response head (status line and header lines, without the blank
// line) into r.status, r.reason and r.headers.
Status parse_response_head(std::string_view head, HttpResponse& r);

// One request on a fresh connection.
Result<HttpResponse> http(int port, std::string_view method, std::string_view target,
                          const Headers& headers = {}, std::string_view body = {});

}  // namespace clio::test
