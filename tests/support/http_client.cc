#include "support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <strings.h>

namespace clio::test {

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  }
  return "";
}

HttpClient::HttpClient(int port, double timeout_seconds) : port_(port), timeout_(timeout_seconds) {}
HttpClient::~HttpClient() { close(); }

void HttpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buf_.clear();
}

Status HttpClient::ensure_connected() {
  if (fd_ >= 0) {
    // A server that closed the idle connection shows as readable with EOF.
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) == 1) {
      char c;
      if (::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) close();
    }
  }
  if (fd_ >= 0) return Status::Ok();
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Status::Unavailable(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!source_.empty()) {
    sockaddr_in src{};
    src.sin_family = AF_INET;
    if (::inet_pton(AF_INET, source_.c_str(), &src.sin_addr) != 1 ||
        ::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
      const int e = errno;
      close();
      return Status::Unavailable("bind " + source_ + ": " + std::strerror(e));
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port_));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    close();
    return Status::Unavailable(std::string("connect: ") + std::strerror(e));
  }
  ++opened_;
  return Status::Ok();
}

Result<HttpResponse> HttpClient::request(std::string_view method, std::string_view target,
                                         const Headers& headers, std::string_view body) {
  std::string req;
  req.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  bool has_host = false;
  for (const auto& [k, v] : headers) {
    if (strcasecmp(k.c_str(), "host") == 0) has_host = true;
    req.append(k).append(": ").append(v).append("\r\n");
  }
  if (!has_host) req.append("Host: 127.0.0.1:").append(std::to_string(port_)).append("\r\n");
  if (!body.empty() || method == "POST" || method == "PUT") {
    req.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  req.append("\r\n").append(body);
  Status s = ensure_connected();
  if (!s.ok()) return s;
  size_t off = 0;
  while (off < req.size()) {
    ssize_t n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      close();
      return Status::Unavailable("send failed");
    }
    off += static_cast<size_t>(n);
  }
  return read_response(method == "HEAD");
}

Result<HttpResponse> HttpClient::raw(std::string_view raw) {
  Status s = ensure_connected();
  if (!s.ok()) return s;
  if (::send(fd_, raw.data(), raw.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(raw.size())) {
    close();
    return Status::Unavailable("send failed");
  }
  return read_response(false);
}

bool recv_some(int fd, std::string& buf, std::chrono::steady_clock::time_point deadline, bool& eof) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
  char tmp[65536];
  const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
  if (n <= 0) {
    eof = true;
    return false;
  }
  buf.append(tmp, static_cast<size_t>(n));
  return true;
}

Status parse_response_head(std::string_view head_text, HttpResponse& r) {
  const size_t line_end = head_text.find("\r\n");
  const std::string_view status_line = head_text.substr(0, line_end);
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") {
    return Status::Internal("bad status line: " + std::string(status_line.substr(0, 80)));
  }
  r.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
  r.reason = std::string(status_line.size() > 13 ? status_line.substr(13) : "");
  size_t pos = line_end == std::string_view::npos ? head_text.size() : line_end + 2;
  while (pos < head_text.size()) {
    size_t e = head_text.find("\r\n", pos);
    if (e == std::string_view::npos) e = head_text.size();
    const std::string_view line = head_text.substr(pos, e - pos);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(v));
    }
    pos = e + 2;
  }
  return Status::Ok();
}

Result<HttpResponse> HttpClient::read_response(bool head) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                               std::chrono::duration<double>(timeout_));
  bool eof = false;
  auto fill = [&]() { return recv_some(fd_, buf_, deadline, eof); };
  size_t hdr_end;
  while ((hdr_end = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) {
      close();
      return Status::Unavailable(eof ? "connection closed before a response" : "timed out waiting for a response");
    }
  }
  HttpResponse r;
  if (Status s = parse_response_head(std::string_view(buf_.data(), hdr_end), r); !s.ok()) {
    close();
    return s;
  }
  buf_.erase(0, hdr_end + 4);
  const bool no_body = head || r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
  const std::string te = r.header("Transfer-Encoding");
  const std::string cl = r.header("Content-Length");
  const bool must_close = strcasecmp(r.header("Connection").c_str(), "close") == 0;
  if (no_body) {
  } else if (strcasecmp(te.c_str(), "chunked") == 0) {
    for (;;) {
      size_t e;
      while ((e = buf_.find("\r\n")) == std::string::npos) {
        if (!fill()) { close(); return Status::Unavailable("truncated chunked body"); }
      }
      const size_t n = std::strtoul(buf_.substr(0, e).c_str(), nullptr, 16);
      while (buf_.size() < e + 2 + n + 2) {
        if (!fill()) { close(); return Status::Unavailable("truncated chunk"); }
      }
      r.body.append(buf_, e + 2, n);
      buf_.erase(0, e + 2 + n + 2);
      if (n == 0) break;
    }
  } else if (!cl.empty()) {
    const size_t n = std::strtoul(cl.c_str(), nullptr, 10);
    while (buf_.size() < n) {
      if (!fill()) { close(); return Status::Unavailable("truncated body"); }
    }
    r.body = buf_.substr(0, n);
    buf_.erase(0, n);
  } else {
    while (fill()) {}
    r.body = std::move(buf_);
    buf_.clear();
    close();
  }
  if (must_close) close();
  return r;
}

Result<HttpResponse> http(int port, std::string_view method, std::string_view target,
                          const Headers& headers, std::string_view body) {
  HttpClient c(port);
  return c.request(method, target, headers, body);
}

}  // namespace clio::test
