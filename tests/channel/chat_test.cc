// The chat example (examples/chat) as its users meet it: the real clio_chat
// binary on 127.0.0.1:0, driven over real sockets. Reconnecting users lose
// nothing; the session limit answers 503 while HTTP keeps answering; the
// App Engine client path and the CORS option work.
#include <doctest/doctest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <regex>
#include <thread>

#include "fixture.h"
#include "support/http_client.h"

namespace ch = clio::channel;
using ch::testing::Client;
using ch::testing::eventually;
using clio::test::WsClient;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

// Const methods are thread-safe, non-const methods need external
// synchronization. A running clio_chat; killed (SIGTERM) when destroyed.
class Chat {
 public:
  explicit Chat(std::vector<std::string> args) {
    args.insert(args.begin(), {CLIO_CHAT_BIN, "--port", "0"});
    int out[2];
    REQUIRE(::pipe(out) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    // "listening on http://127.0.0.1:PORT/ ..." within 10 s.
    std::string text;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    const std::regex re("listening on http://127\\.0\\.0\\.1:([0-9]+)/");
    std::smatch m;
    while (!std::regex_search(text, m, re) && Clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<size_t>(n));
    }
    ::close(out[0]);
    REQUIRE_MESSAGE(std::regex_search(text, m, re), "clio_chat did not start: " << text);
    port = std::stoi(m[1]);
    banner = text;
  }
  ~Chat() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  Chat(const Chat&) = delete;
  Chat& operator=(const Chat&) = delete;

  // A logged-in user: {client_id, token, ...}.
  json login() const {
    auto r = clio::test::http(port, "GET", "/login");
    REQUIRE(r.ok());
    REQUIRE(r->status == 200);
    return json::parse(r->body);
  }

  int port = 0;
  std::string banner;

 private:
  pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("chat: users who keep reconnecting lose no message") {
  Chat chat({});
  constexpr int kUsers = 4;
  constexpr int kPosts = 300;
  std::vector<json> users;
  std::vector<Client> clients(kUsers);
  std::vector<std::vector<std::string>> seen(kUsers);
  for (int i = 0; i < kUsers; ++i) {
    users.push_back(chat.login());
    REQUIRE(clients[i].connect(chat.port, users[i]["token"]).ok());
  }
  constexpr int kDrops = 40;
  std::atomic<int> posted{0};
  std::atomic<int> drops{0};
  std::atomic<bool> failed{false};
  std::thread poster([&] {
    for (int i = 0; i < kPosts; ++i) {
      // Keeps pace with the drops so they spread over the whole posting.
      const auto wait_until = Clock::now() + std::chrono::seconds(5);
      while (drops < i * kDrops / kPosts - 1 && Clock::now() < wait_until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      const std::string body = "client_id=" + users[0]["client_id"].get<std::string>() + "&value=m" + std::to_string(i);
      auto r = clio::test::http(chat.port, "POST", "/post",
                                {{"Content-Type", "application/x-www-form-urlencoded"}}, body);
      if (!r.ok() || r->status != 200) failed = true;
      posted = i + 1;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::mt19937 rng(7);
  std::vector<std::string> unexpected;  // gap or close frames: none may come
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  auto done = [&] {
    for (const auto& s : seen) {
      if (s.size() < static_cast<size_t>(kPosts)) return false;
    }
    return true;
  };
  while ((!done() || drops < kDrops) && Clock::now() < deadline) {
    // Drops are spread over the posting, taking the users in turn.
    if (drops < kDrops && posted >= (drops + 1) * kPosts / (kDrops + 1)) {
      Client& c = clients[drops % kUsers];
      c.ws.drop(/*reset=*/drops % 2 == 1);
      if (rng() % 4 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 200));
      const clio::Status st = c.connect(chat.port, users[drops % kUsers]["token"]);
      ++drops;
      if (!st.ok()) {
        FAIL_CHECK("reconnect failed: " << st.message());
        break;
      }
    }
    for (int i = 0; i < kUsers; ++i) {
      Client& c = clients[i];
      for (int k = 0; k < 20; ++k) {
        auto j = c.next(0.01);
        if (!j.ok()) break;
        if ((*j)["t"] == "gap" || (*j)["t"] == "close") unexpected.push_back(j->dump());
        if ((*j)["t"] != "msg") continue;
        const json m = json::parse((*j)["data"].get<std::string>());
        if (m.contains("message")) seen[i].push_back(m["message"]["value"]);
      }
    }
  }
  const int dropped = drops;
  drops = kDrops;  // releases the poster if the loop ended early
  poster.join();
  CHECK_FALSE(failed);
  CHECK_MESSAGE(unexpected.empty(), unexpected.size() << " unexpected frames, first: " << unexpected.front());
  CHECK(dropped == kDrops);
  std::vector<std::string> want;
  for (int i = 0; i < kPosts; ++i) want.push_back("m" + std::to_string(i));
  for (int i = 0; i < kUsers; ++i) {
    CAPTURE(i);
    CHECK(seen[i] == want);
    CHECK_FALSE(clients[i].out_of_order);
    CHECK(clients[i].gaps.empty());
  }
  MESSAGE(kUsers << " users, " << kPosts << " posts, " << dropped << " drops: every user saw every post once, in order");
}

TEST_CASE("chat: the 65th session gets 503 at once while GET / and /login still answer") {
  Chat chat({"--threads", "72"});  // 72 - 8 reserved for HTTP = 64 sessions
  CHECK(chat.banner.find("up to 64 chat sessions") != std::string::npos);
  std::vector<Client> clients(64);
  for (auto& c : clients) REQUIRE(c.connect(chat.port, chat.login()["token"]).ok());
  const auto t0 = Clock::now();
  WsClient extra;
  REQUIRE(extra.connect(chat.port, "/channel", {"clio.v1", "clio-token." + chat.login()["token"].get<std::string>()})
              .ok());
  CHECK(extra.status() == 503);
  CHECK(extra.handshake().body.find("admits 64") != std::string::npos);
  for (const char* path : {"/", "/login", "/channel.js"}) {
    CAPTURE(path);
    auto r = clio::test::http(chat.port, "GET", path);
    REQUIRE(r.ok());
    CHECK(r->status == 200);
  }
  CHECK(std::chrono::duration<double>(Clock::now() - t0).count() < 3);
  // A session that leaves makes room.
  clients.back().ws.drop();
  Client late;
  const std::string tok = chat.login()["token"];
  CHECK(eventually([&] { return late.connect(chat.port, tok).ok(); }, 10));
}

TEST_CASE("chat: the App Engine client path, and CORS only when asked") {
  {
    Chat chat({"--cors", "*"});
    auto js = clio::test::http(chat.port, "GET", "/_ah/channel/jsapi");
    REQUIRE(js.ok());
    CHECK(js->status == 200);
    CHECK(js->body.find(R"(const SERVED_PATH = "/channel";)") != std::string::npos);
    auto login = clio::test::http(chat.port, "GET", "/login", {{"Origin", "http://elsewhere.example"}});
    REQUIRE(login.ok());
    CHECK(login->header("Access-Control-Allow-Origin") == "*");
    const std::string id = json::parse(login->body)["client_id"];
    auto post = clio::test::http(chat.port, "POST", "/post?time=1", {{"Content-Type", "application/x-www-form-urlencoded"}},
                                 "value=hi&client_id=" + id);
    REQUIRE(post.ok());
    CHECK(post->status == 200);
    CHECK(post->header("Access-Control-Allow-Origin") == "*");
    auto preflight = clio::test::http(chat.port, "OPTIONS", "/post",
                                      {{"Origin", "http://elsewhere.example"}, {"Access-Control-Request-Method", "POST"}});
    REQUIRE(preflight.ok());
    CHECK(preflight->status == 200);
    CHECK(preflight->header("Access-Control-Allow-Origin") == "*");
  }
  Chat plain({});
  auto login = clio::test::http(plain.port, "GET", "/login", {{"Origin", "http://elsewhere.example"}});
  REQUIRE(login.ok());
  CHECK(login->header("Access-Control-Allow-Origin").empty());
}
