// Redaction that holds: a table of requests carrying credentials the way
// real apps and clients send them, each checked everywhere a record goes:
// the channel message a console receives, the records API, the record as
// stored (read back from SQLite), the JSON-lines log, and the bytes of the
// database files. Secrets must be in none of them; what is not a secret
// must still be there.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "clio/console/store.h"
#include "fixture.h"

namespace clio::console {
namespace {

struct Case {
  std::string what;
  std::string target;  // path and query, as sent
  Headers headers;
  std::vector<std::string> hidden;  // must appear nowhere
  std::vector<std::string> kept;    // must appear in the case's record
};

// A short secret with no credential shape: only a name rule can hide it.
std::string sec(int n) { return "Sekr1t" + std::to_string(n) + "Qz"; }

// A 40-character base64url token, as random as a real one (fixed seed).
std::string tok(int n) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint64_t state = 0x2545F4914F6CDD1Dull * static_cast<uint64_t>(n + 1);  // streams that do not overlap
  for (;;) {
    std::string t;
    for (int i = 0; i < 40; ++i) {
      uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      t.push_back(kAlphabet[(z ^ (z >> 31)) & 63]);
    }
    bool digit = false, letter = false;
    for (char c : t) (std::isdigit(static_cast<unsigned char>(c)) ? digit : letter) = true;
    if (digit && letter) return t;
  }
}

std::string jwt(int n) { return "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjYXNlIn0." + tok(n); }

std::string path_of(int n) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "/redact/c%02d", n);
  return buf;
}

std::vector<Case> cases() {
  std::vector<Case> c;
  auto q = [&](int n, const std::string& what, const std::string& query, std::vector<std::string> hidden,
               std::vector<std::string> kept = {}) {
    c.push_back({what, path_of(n) + "?" + query, {}, std::move(hidden), std::move(kept)});
  };
  auto h = [&](int n, const std::string& what, const std::string& name, const std::string& value,
               std::vector<std::string> hidden, std::vector<std::string> kept = {}) {
    c.push_back({what, path_of(n), {{name, value}}, std::move(hidden), std::move(kept)});
  };
  // Query parameters, by name.
  q(1, "token", "token=" + sec(1) + "&page=2", {sec(1)}, {"page=2"});
  q(2, "access_token", "access_token=" + sec(2), {sec(2)});
  q(3, "refresh_token", "refresh_token=" + sec(3), {sec(3)});
  q(4, "id_token", "id_token=" + sec(4), {sec(4)});
  q(5, "apikey", "apikey=" + sec(5), {sec(5)});
  q(6, "api_key", "api_key=" + sec(6), {sec(6)});
  q(7, "apiKey (camel case)", "apiKey=" + sec(7), {sec(7)});
  q(8, "jwt", "jwt=" + sec(8), {sec(8)});
  q(9, "sessionid", "sessionid=" + sec(9), {sec(9)});
  q(10, "sid", "sid=" + sec(10), {sec(10)});
  q(11, "pwd", "user=ann&pwd=" + sec(11), {sec(11)}, {"user=ann"});
  q(12, "pass", "pass=" + sec(12), {sec(12)});
  q(13, "password", "password=" + sec(13), {sec(13)});
  q(14, "X-Amz-Signature (presigned URL)", "X-Amz-Date=20240101T000000Z&X-Amz-Signature=" + sec(14), {sec(14)},
    {"X-Amz-Date=20240101T000000Z"});
  q(15, "X-Amz-Security-Token", "X-Amz-Security-Token=" + sec(15), {sec(15)});
  q(16, "X-Goog-Signature", "X-Goog-Signature=" + sec(16), {sec(16)});
  q(17, "percent-encoded name access%5Ftoken", "access%5Ftoken=" + sec(17), {sec(17)});
  q(18, "percent-encoded name tok%65n", "tok%65n=" + sec(18), {sec(18)});
  q(19, "upper-case name", "TOKEN=" + sec(19), {sec(19)});
  q(20, "encoded brackets user%5Bpassword%5D", "user%5Bpassword%5D=" + sec(20), {sec(20)});
  c.push_back({"path parameter ;jsessionid=", path_of(21) + ";jsessionid=" + sec(21), {}, {sec(21)}, {}});
  q(22, "OAuth code", "code=" + sec(22) + "&state=xyz", {sec(22)}, {"state=xyz"});
  q(23, "csrf", "csrf=" + sec(23), {sec(23)});
  q(24, "parameter after ';'", "a=1;secret=" + sec(24), {sec(24)}, {"a=1"});
  // Headers, by name.
  h(25, "Authorization", "Authorization", "Bearer " + sec(25), {sec(25)});
  h(26, "Cookie", "Cookie", "theme=dark; sid=" + sec(26), {sec(26)});
  h(27, "X-Api-Key", "X-Api-Key", sec(27), {sec(27)});
  h(28, "X-Auth-Token", "X-Auth-Token", sec(28), {sec(28)});
  h(29, "X-CSRF-Token", "X-CSRF-Token", sec(29), {sec(29)});
  h(30, "X-Amz-Security-Token", "X-Amz-Security-Token", sec(30), {sec(30)});
  h(31, "Sec-WebSocket-Protocol of the app's upgrades", "Sec-WebSocket-Protocol", "chat, token." + sec(31), {sec(31)});
  h(32, "Proxy-Authorization", "Proxy-Authorization", "Basic " + sec(32), {sec(32)});
  h(33, "a custom header named like a credential", "X-Shop-Session", sec(33), {sec(33)});
  // The Referer: its query, its fragment, its path.
  h(34, "Referer query", "Referer", "https://app.example/cb?access_token=" + sec(34) + "&state=ok", {sec(34)},
    {"https://app.example/cb?", "state=ok"});
  h(35, "Referer fragment (OAuth implicit flow)", "Referer", "https://app.example/cb#id_token=" + sec(35) + "&state=ok",
    {sec(35)}, {"state=ok"});
  h(36, "Referer path holding a JWT", "Referer", "https://app.example/verify/" + jwt(36) + "/done", {jwt(36), tok(36)},
    {"https://app.example/verify/", "/done"});
  // By shape, wherever they are.
  h(37, "JWT inside a free header", "X-Debug", "got " + jwt(37) + " from upstream", {jwt(37), tok(37)},
    {"got [redacted] from upstream"});
  q(38, "JWT as the value of an innocent parameter", "state=" + jwt(38), {jwt(38), tok(38)});
  c.push_back({"JWT as a path segment", path_of(39) + "/" + jwt(39) + "/view", {}, {jwt(39), tok(39)}, {"/view"}});
  h(40, "Bearer credential in a custom header", "X-Forwarded-Authorization", "Bearer " + tok(40),
    {tok(40)}, {"Bearer [redacted]"});
  h(41, "Basic credential in a custom header", "X-Upstream", "Basic YWxpY2U6cHctNDA=", {"YWxpY2U6cHctNDA="},
    {"Basic [redacted]"});
  q(42, "long random token as a parameter value", "next=" + tok(42), {tok(42)});
  c.push_back({"long random token as a path segment", path_of(43) + "/" + tok(43) + "/view", {}, {tok(43)}, {"/view"}});
  h(44, "long random token as a header value", "X-Trace-Blob", tok(44), {tok(44)});
  q(45, "Bearer credential in a decoded parameter value", "h=Bearer%20" + tok(45), {tok(45)});
  q(46, "JWT with a percent-encoded dot in a value", "state=" + jwt(46).substr(0, 36) + "%2E" + jwt(46).substr(37),
    {tok(46)});
  // Not secrets: kept as they are.
  q(47, "zipcode and keyboard are not credential words", "zipcode=12345&keyboard=qwerty", {},
    {"zipcode=12345&keyboard=qwerty"});
  c.push_back({"UUID path segment", path_of(48) + "/550e8400-e29b-41d4-a716-446655440000", {}, {},
               {"550e8400-e29b-41d4-a716-446655440000"}});
  c.push_back({"hex digest path segment", path_of(49) + "/3f786850e387550fdab836ed7e6dc881de23001b", {}, {},
               {"3f786850e387550fdab836ed7e6dc881de23001b"}});
  q(50, "the word basic in a search", "q=basic+usage", {}, {"q=basic+usage"});
  h(51, "an ordinary User-Agent", "User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", {},
    {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"});
  q(52, "short values of other parameters", "page=2&sort=name&lang=en", {}, {"page=2&sort=name&lang=en"});
  return c;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The case a record belongs to, from its path ("/redact/cNN..."), or -1.
int case_of(const std::string& path) {
  if (path.rfind("/redact/c", 0) != 0 || path.size() < 11) return -1;
  return std::atoi(path.substr(9, 2).c_str());
}

// Checks one sink: `all` is everything it holds as text or bytes, `records`
// its records (JSON text) by case; db sinks pass no records.
void check_sink(const std::string& sink, const std::vector<Case>& table, const std::string& all,
                const std::map<int, std::string>* records) {
  for (size_t i = 0; i < table.size(); ++i) {
    const Case& c = table[i];
    const int n = static_cast<int>(i) + 1;
    CAPTURE(sink);
    CAPTURE(c.what);
    for (const std::string& h : c.hidden) CHECK_MESSAGE(all.find(h) == std::string::npos, "leaked: " << h);
    CHECK_MESSAGE(all.find(path_of(n)) != std::string::npos, "the record of case " << n << " is missing");
    if (records == nullptr) continue;
    auto it = records->find(n);
    REQUIRE_MESSAGE(it != records->end(), "no record for case " << n);
    for (const std::string& k : c.kept) CHECK_MESSAGE(it->second.find(k) != std::string::npos, "lost: " << k);
  }
}

}  // namespace

TEST_CASE("credentials are redacted in the channel message, the records API, the store, the JSON-lines log and the database file") {
  const std::vector<Case> table = cases();
  REQUIRE(table.size() >= 40);
  for (size_t i = 0; i < table.size(); ++i) REQUIRE(case_of(table[i].target) == static_cast<int>(i) + 1);
  const std::string db = temp_db();
  const std::string dir = std::filesystem::path(db).parent_path();
  InspectorOptions o;
  o.db_path = db;
  o.jsonl_path = dir + "/records.jsonl";
  std::map<int, std::string> from_channel, from_api, from_store;
  std::string channel_text, api_text;
  {
    App app(o);
    auto [client, token] = app.token();
    Console console(app.port, token);
    app.subscribe(client, "path:/redact/");
    HttpClient h(app.port);
    for (const Case& c : table) REQUIRE(h.request("GET", c.target, c.headers).ok());
    REQUIRE(app.inspector->drain_for_test(10s));
    // The channel: every frame as received, and the records in it.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (from_channel.size() < table.size() && std::chrono::steady_clock::now() < deadline) {
      auto f = console.ws.read_message(2);
      if (!f.ok()) break;
      channel_text += f->payload;
      json env = json::parse(f->payload, nullptr, false);
      if (env.is_discarded() || env.value("t", "") != "msg") continue;
      json m = env["data"];
      if (m["kind"] != "matches") continue;
      for (const json& it : m["items"]) from_channel[case_of(it["record"]["path"])] = it["record"].dump();
    }
    auto recs = app.api("GET", "api/records?limit=1000");
    api_text = recs.body;
    const json listed = json::parse(recs.body);
    for (const json& r : listed["records"]) from_api[case_of(r["path"])] = r.dump();
  }
  // The store, read back from the file once the inspector has stopped.
  {
    StoreOptions so;
    so.path = db;
    auto store = Store::open(so);
    REQUIRE(store.ok());
    auto recent = (*store)->recent(1000);
    REQUIRE(recent.ok());
    for (const Record& r : *recent) from_store[case_of(r.path)] = to_json(r);
  }
  std::string store_text;
  for (const auto& [n, text] : from_store) store_text += text + "\n";
  std::string db_bytes = read_file(db);
  if (std::filesystem::exists(db + "-wal")) db_bytes += read_file(db + "-wal");
  check_sink("channel", table, channel_text, &from_channel);
  check_sink("records API", table, api_text, &from_api);
  check_sink("store", table, store_text, &from_store);
  const std::string jsonl = read_file(o.jsonl_path);
  std::map<int, std::string> from_jsonl;
  std::istringstream lines(jsonl);
  for (std::string line; std::getline(lines, line);) from_jsonl[case_of(json::parse(line)["path"])] = line;
  check_sink("JSON-lines log", table, jsonl, &from_jsonl);
  check_sink("database file", table, db_bytes, nullptr);
  std::filesystem::remove_all(dir);
}

}  // namespace clio::console
