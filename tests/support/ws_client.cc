#include "support/ws_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <utility>

namespace clio::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string base64(const unsigned char* data, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

std::string accept_key(const std::string& key) {
  const std::string s = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  return base64(digest, sizeof digest);
}

}  // namespace

int WsFrame::close_code() const {
  if (opcode != 8 || payload.size() < 2) return 0;
  return (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]);
}

std::string WsFrame::close_reason() const { return payload.size() > 2 ? payload.substr(2) : ""; }

WsClient::~WsClient() { drop(); }

WsClient::WsClient(WsClient&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), timed_out_(o.timed_out_), handshake_(std::move(o.handshake_)),
      buf_(std::move(o.buf_)), pos_(std::exchange(o.pos_, 0)) {}

WsClient& WsClient::operator=(WsClient&& o) noexcept {
  if (this != &o) {
    drop();
    fd_ = std::exchange(o.fd_, -1);
    timed_out_ = o.timed_out_;
    handshake_ = std::move(o.handshake_);
    buf_ = std::move(o.buf_);
    pos_ = std::exchange(o.pos_, 0);
  }
  return *this;
}

void WsClient::drop(bool reset) {
  if (fd_ < 0) return;
  if (reset) {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  ::close(fd_);
  fd_ = -1;
  buf_.clear();
  pos_ = 0;
}

Status WsClient::connect(int port, std::string_view path, const std::vector<std::string>& subprotocols,
                         const Headers& headers, double timeout_seconds, int recv_buffer) {
  drop();
  handshake_ = HttpResponse{};
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Status::Unavailable(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (recv_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &recv_buffer, sizeof recv_buffer);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    drop();
    return Status::Unavailable(std::string("connect: ") + std::strerror(e));
  }
  unsigned char nonce[16];
  RAND_bytes(nonce, sizeof nonce);
  const std::string key = base64(nonce, sizeof nonce);
  std::string req;
  req.append("GET ").append(path).append(" HTTP/1.1\r\n");
  req.append("Host: 127.0.0.1:").append(std::to_string(port)).append("\r\n");
  req.append("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
  req.append("Sec-WebSocket-Key: ").append(key).append("\r\n");
  if (!subprotocols.empty()) {
    req.append("Sec-WebSocket-Protocol: ");
    for (size_t i = 0; i < subprotocols.size(); ++i) req.append(i ? ", " : "").append(subprotocols[i]);
    req.append("\r\n");
  }
  for (const auto& [k, v] : headers) req.append(k).append(": ").append(v).append("\r\n");
  req.append("\r\n");
  if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    drop();
    return Status::Unavailable("send of the upgrade request failed");
  }
  // Read the reply head (and, for a refusal, its body).
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_seconds));
  bool eof = false;
  auto fill = [&]() { return recv_some(fd_, buf_, deadline, eof); };
  size_t end;
  while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) {
      drop();
      return Status::Unavailable(eof ? "connection closed before the upgrade reply" : "timed out waiting for the upgrade reply");
    }
  }
  const std::string head = buf_.substr(0, end);
  buf_.erase(0, end + 4);
  if (Status st = parse_response_head(head, handshake_); !st.ok()) {
    drop();
    return Status::Internal("no status line in the upgrade reply: " + head.substr(0, 80));
  }
  if (handshake_.status != 101) {
    const std::string cl = handshake_.header("Content-Length");
    const size_t n = cl.empty() ? 0 : std::strtoul(cl.c_str(), nullptr, 10);
    while (buf_.size() < n && fill()) {}
    handshake_.body = buf_.substr(0, std::min(n, buf_.size()));
    drop();
    return Status::Ok();
  }
  if (handshake_.header("Sec-WebSocket-Accept") != accept_key(key)) {
    drop();
    return Status::Internal("wrong Sec-WebSocket-Accept in the upgrade reply");
  }
  return Status::Ok();
}

Status WsClient::send(int opcode, std::string_view payload, bool fin) {
  if (fd_ < 0) return Status::Unavailable("not connected");
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | (opcode & 0x0F)));
  const uint64_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xFFFF) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xFF));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int s = 56; s >= 0; s -= 8) f.push_back(static_cast<char>((n >> s) & 0xFF));
  }
  unsigned char mask[4];
  RAND_bytes(mask, sizeof mask);
  f.append(reinterpret_cast<char*>(mask), 4);
  const size_t off = f.size();
  f.append(payload);
  for (size_t i = 0; i < payload.size(); ++i) f[off + i] = static_cast<char>(f[off + i] ^ mask[i % 4]);
  size_t sent = 0;
  while (sent < f.size()) {
    const ssize_t k = ::send(fd_, f.data() + sent, f.size() - sent, MSG_NOSIGNAL);
    if (k <= 0) return Status::Unavailable(std::string("send: ") + std::strerror(errno));
    sent += static_cast<size_t>(k);
  }
  return Status::Ok();
}

Status WsClient::send_close(int code, std::string_view reason) {
  std::string p;
  p.push_back(static_cast<char>((code >> 8) & 0xFF));
  p.push_back(static_cast<char>(code & 0xFF));
  p.append(reason);
  return send(8, p);
}

Result<WsFrame> WsClient::read_frame(double timeout_seconds) {
  timed_out_ = false;
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
  for (;;) {
    // Try to decode one frame from what is buffered (from pos_ on).
    const size_t avail = buf_.size() - pos_;
    const char* b = buf_.data() + pos_;
    if (avail >= 2) {
      const auto b0 = static_cast<unsigned char>(b[0]);
      const auto b1 = static_cast<unsigned char>(b[1]);
      uint64_t len = b1 & 0x7F;
      size_t hdr = 2;
      if (len == 126) {
        hdr = 4;
      } else if (len == 127) {
        hdr = 10;
      }
      const bool masked = (b1 & 0x80) != 0;
      if (masked) hdr += 4;
      if (avail >= hdr) {
        if (len == 126) {
          len = (static_cast<unsigned char>(b[2]) << 8) | static_cast<unsigned char>(b[3]);
        } else if (len == 127) {
          len = 0;
          for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<unsigned char>(b[2 + i]);
        }
        if (avail >= hdr + len) {
          WsFrame f;
          f.opcode = b0 & 0x0F;
          f.fin = (b0 & 0x80) != 0;
          f.payload.assign(b + hdr, len);
          if (masked) {
            const char* m = b + hdr - 4;
            for (size_t i = 0; i < f.payload.size(); ++i) f.payload[i] = static_cast<char>(f.payload[i] ^ m[i % 4]);
          }
          pos_ += hdr + len;
          if (pos_ == buf_.size()) {
            buf_.clear();
            pos_ = 0;
          }
          return f;
        }
      }
    }
    if (pos_ > 0) {  // keep only the unread tail before reading more
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    if (fd_ < 0) return Status::Unavailable("closed");
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out_ = true;
      return Status::Unavailable("timeout");
    }
    pollfd p{fd_, POLLIN, 0};
    const int pr = ::poll(&p, 1, static_cast<int>(left.count()));
    if (pr == 0) continue;
    if (pr < 0) return Status::Unavailable(std::string("poll: ") + std::strerror(errno));
    char tmp[65536];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) {
      drop();
      return Status::Unavailable("closed");
    }
    buf_.append(tmp, static_cast<size_t>(n));
  }
}

Result<WsFrame> WsClient::read_message(double timeout_seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
  for (;;) {
    const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
    auto f = read_frame(left > 0 ? left : 0);
    if (!f.ok()) return f;
    if (f->opcode == 9) {
      Status s = send(10, f->payload);
      if (!s.ok()) return s;
      continue;
    }
    if (f->opcode == 10) continue;
    return f;
  }
}

}  // namespace clio::test
