// Test fixture for the channel: a real CivetWeb server on 127.0.0.1:0 with a
// ChannelService mounted at /channel, and a channel client built on the raw
// WebSocket test client that tracks epoch/seq like the JS client does.
#pragma once

#include <civetweb.h>

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "clio/channel/channel.h"
#include "support/eventually.h"
#include "support/ws_client.h"

namespace clio::channel::testing {

// Const methods are thread-safe, non-const methods need external
// synchronization (svc itself is safe for concurrent use). A CivetWeb server
// with the channel mounted. Not copyable.
class Server {
 public:
  // `civet` options follow the defaults here, so they win (CivetWeb keeps the
  // last value of an option given twice).
  explicit Server(ChannelOptions o, std::vector<std::string> civet = {}) : svc(std::move(o)) {
    std::vector<std::string> opts = {"listening_ports", "127.0.0.1:0", "num_threads", "24",
                                     "websocket_timeout_ms", "300", "request_timeout_ms", "3000"};
    for (auto& s : civet) opts.push_back(std::move(s));
    append_recommended_civetweb_options(opts);
    std::vector<const char*> ptrs;
    for (auto& s : opts) ptrs.push_back(s.c_str());
    ptrs.push_back(nullptr);
    mg_callbacks cb{};
    ctx = mg_start(&cb, nullptr, ptrs.data());
    if (ctx != nullptr) {
      mg_server_port ports[2];
      if (mg_get_server_ports(ctx, 2, ports) > 0) port = ports[0].port;
      mounted = svc.mount(ctx, "/channel");
    }
  }
  ~Server() { stop(); }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void stop() {
    if (ctx == nullptr) return;
    svc.shutdown();
    mg_stop(ctx);
    ctx = nullptr;
  }

  ChannelService svc;
  mg_context* ctx = nullptr;
  int port = 0;
  Status mounted = Status::Internal("not started");
};

// A token for `id` (the test fails if there is none).
inline std::string token_for(Server& s, const std::string& id, std::chrono::seconds d = std::chrono::hours(1)) {
  auto t = s.svc.create_channel(id, d);
  REQUIRE(t.ok());
  return t->token;
}

// The HTTP status of an upgrade offering `offer`.
inline int upgrade_status(int port, const std::vector<std::string>& offer) {
  test::WsClient ws;
  REQUIRE(ws.connect(port, "/channel", offer).ok());
  return ws.status();
}

using test::eventually;

// Options with short timings so the suite runs fast.
inline ChannelOptions fast_options() {
  ChannelOptions o;
  o.secret = "test-secret-0123456789";
  o.heartbeat_interval = std::chrono::milliseconds(300);
  o.heartbeat_timeout = std::chrono::seconds(5);
  o.write_stall_timeout = std::chrono::seconds(2);
  o.websocket_timeout = std::chrono::milliseconds(300);
  return o;
}

// Const methods are thread-safe, non-const methods need external
// synchronization. A channel client: connects with a token (and resume
// point), reads envelopes, keeps the last epoch/seq.
class Client {
 public:
  Status connect(int port, const std::string& token, bool resume = true) {
    std::vector<std::string> offer = {"clio.v1", "clio-token." + token};
    if (resume && !epoch.empty()) offer.push_back("clio-resume." + epoch + "." + std::to_string(last_seq));
    Status s = ws.connect(port, "/channel", offer);
    if (!s.ok()) return s;
    if (ws.status() != 101) return Status::PermissionDenied("upgrade refused: " + std::to_string(ws.status()));
    auto w = next(5);
    if (!w.ok()) return w.status();
    if ((*w)["t"] != "welcome") return Status::Internal("first frame is not a welcome: " + w->dump());
    welcome = *w;
    epoch = (*w)["epoch"];
    last_seq = (*w)["seq"];
    return Status::Ok();
  }

  // The next JSON frame (heartbeats included); a close frame becomes
  // {"t":"close","code":N}.
  Result<nlohmann::json> next(double timeout) {
    auto f = ws.read_message(timeout);
    if (!f.ok()) return f.status();
    if (f->opcode == 8) {
      close_code = f->close_code();
      return nlohmann::json{{"t", "close"}, {"code", f->close_code()}, {"reason", f->close_reason()}};
    }
    auto j = nlohmann::json::parse(f->payload, nullptr, false);
    if (j.is_discarded()) return Status::Internal("not JSON: " + f->payload);
    if (j["t"] == "msg") {
      const uint64_t seq = j["seq"];
      if (seq != last_seq + 1) out_of_order = true;
      last_seq = seq;
    } else if (j["t"] == "gap" && j["to"].is_number()) {
      last_seq = j["to"];
    }
    return j;
  }

  // The next frame that is not a heartbeat.
  Result<nlohmann::json> next_non_heartbeat(double timeout) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    for (;;) {
      const double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return Status::Unavailable("timeout");
      auto j = next(left);
      if (!j.ok() || (*j)["t"] != "hb") return j;
    }
  }

  // Fence: sends a WebSocket ping and reads until its pong, so every frame
  // sent before has been read by the server. Heartbeats read meanwhile are
  // skipped; any other frame is an error.
  Status sync(double timeout) {
    const std::string token = "sync-" + std::to_string(++syncs_);
    if (Status st = ws.send(9, token); !st.ok()) return st;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    for (;;) {
      const double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return Status::Unavailable("timeout");
      auto f = ws.read_frame(left);
      if (!f.ok()) return f.status();
      if (f->opcode == 9) {
        if (Status st = ws.send(10, f->payload); !st.ok()) return st;
      } else if (f->opcode == 10) {
        if (f->payload == token) return Status::Ok();
      } else if (f->opcode != 1 || f->payload != R"({"t":"hb"})") {
        return Status::Internal("unexpected frame while syncing: " + f->payload);
      }
    }
  }

  // Reads frames until a close frame arrives; its code, or the read error.
  Result<int> wait_close(double timeout) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    for (;;) {
      const double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return Status::Unavailable("timeout");
      auto j = next(left);
      if (!j.ok()) return j.status();
      if ((*j)["t"] == "close") return (*j)["code"].get<int>();
    }
  }

  // The next app message (skipping heartbeats and other control frames);
  // gaps are recorded in `gaps`.
  Result<nlohmann::json> next_msg(double timeout) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    for (;;) {
      const double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return Status::Unavailable("timeout");
      auto j = next(left);
      if (!j.ok()) return j;
      const std::string t = (*j)["t"];
      if (t == "msg" || t == "close") return j;
      if (t == "gap") gaps.push_back(*j);
    }
  }

  test::WsClient ws;
  nlohmann::json welcome;
  std::string epoch;
  uint64_t last_seq = 0;
  int close_code = 0;
  bool out_of_order = false;
  std::vector<nlohmann::json> gaps;

 private:
  int syncs_ = 0;
};

}  // namespace clio::channel::testing
