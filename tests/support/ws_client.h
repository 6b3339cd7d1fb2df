// A small blocking WebSocket client over raw sockets, for tests that talk to
// a real server on 127.0.0.1: handshake (with subprotocols and extra
// headers), masked frames, reading frames with a timeout, close, and the
// HTTP status of a refused upgrade.
//
//   clio::test::WsClient ws;
//   REQUIRE(ws.connect(port, "/channel", {"clio.v1", "clio-token." + tok}).ok());
//   REQUIRE(ws.status() == 101);
//   auto f = ws.read_message(5);   // skips (and answers) pings
//   CHECK(f->payload == "...");
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "clio/base/status.h"
#include "support/http_client.h"

namespace clio::test {

struct WsFrame {
  int opcode = 0;  // 1 text, 2 binary, 8 close, 9 ping, 10 pong, 0 continuation
  bool fin = true;
  std::string payload;
  // For close frames: the status code (0 if none) and the reason.
  int close_code() const;
  std::string close_reason() const;
};

// Const methods are thread-safe, non-const methods need external
// synchronization. One connection; not copyable, movable.
class WsClient {
 public:
  WsClient() = default;
  ~WsClient();
  WsClient(WsClient&& o) noexcept;
  WsClient& operator=(WsClient&& o) noexcept;
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // Connects and sends the upgrade request for `path`, offering
  // `subprotocols` (joined into one Sec-WebSocket-Protocol header) plus any
  // extra headers. Ok when the server answered at all: check status() (101
  // on success; otherwise the reply is in handshake() and the socket is
  // closed). An error means the TCP connection or the reply failed.
  // `recv_buffer` > 0 shrinks SO_RCVBUF (to make a slow reader).
  Status connect(int port, std::string_view path, const std::vector<std::string>& subprotocols = {},
                 const Headers& headers = {}, double timeout_seconds = 10, int recv_buffer = 0);
  int status() const { return handshake_.status; }
  const HttpResponse& handshake() const { return handshake_; }
  bool is_open() const { return fd_ >= 0; }

  Status send(int opcode, std::string_view payload, bool fin = true);
  Status send_text(std::string_view text) { return send(1, text); }
  Status send_close(int code, std::string_view reason = {});

  // The next frame, whatever its type. Errors: kUnavailable with message
  // "timeout" when nothing complete arrived in time (see timed_out()), or
  // "closed" when the peer closed the TCP connection.
  Result<WsFrame> read_frame(double timeout_seconds);
  // The next text, binary or close frame; pings are answered with pongs and
  // pongs are skipped.
  Result<WsFrame> read_message(double timeout_seconds);
  bool timed_out() const { return timed_out_; }

  // Closes the TCP connection without a close frame (abrupt disconnect).
  // With `reset`, the peer gets an RST instead of a FIN.
  void drop(bool reset = false);

 private:
  int fd_ = -1;
  bool timed_out_ = false;
  HttpResponse handshake_;
  std::string buf_;
  size_t pos_ = 0;  // start of unread bytes in buf_
};

}  // namespace clio::test
