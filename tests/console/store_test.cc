// Tests of the SQLite store against real SQLite: ":memory:" and temp files.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "clio/console/store.h"

namespace clio::console {
namespace {

namespace fs = std::filesystem;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "clio-store-test-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  // Not copyable.
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// A plain SQLite connection to the same file, playing another process.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    REQUIRE(sqlite3_open(path.c_str(), &db_) == SQLITE_OK);
    sqlite3_busy_timeout(db_, 30000);
  }
  ~RawDb() { sqlite3_close(db_); }
  // Not copyable.
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    INFO(sql << ": " << (err ? err : ""));
    sqlite3_free(err);
    REQUIRE(rc == SQLITE_OK);
  }

 private:
  sqlite3* db_ = nullptr;
};

StoreOptions memory_options() {
  StoreOptions o;
  o.path = ":memory:";
  return o;
}

StoreOptions file_options(const TempDir& dir) {
  StoreOptions o;
  o.path = dir.file("clio.db");
  return o;
}

std::unique_ptr<Store> must_open(const StoreOptions& o) {
  auto store = Store::open(o);
  INFO(store.status().message());
  REQUIRE(store.ok());
  return std::move(*store);
}

Record make_record(uint64_t id, double time) {
  Record r;
  r.id = id;
  r.time = time;
  r.method = id % 2 ? "GET" : "POST";
  r.path = "/item/" + std::to_string(id);
  r.status_code = 200 + static_cast<int>(id % 5);
  r.wall_time = 1.5;
  r.remote_ip = "127.0.0.1";
  r.headers = {{"host", "example.test"}, {"x-n", std::to_string(id)}};
  r.tags = {{"user", "u" + std::to_string(id % 7)}};
  return r;
}

std::vector<uint64_t> ids_of(const std::vector<Record>& rs) {
  std::vector<uint64_t> ids;
  for (const Record& r : rs) ids.push_back(r.id);
  return ids;
}

std::vector<uint64_t> descending(uint64_t from, uint64_t to) {  // from >= to
  std::vector<uint64_t> ids;
  for (uint64_t i = from; i >= to && i > 0; --i) ids.push_back(i);
  return ids;
}

std::string open_error(const StoreOptions& o) {
  auto store = Store::open(o);
  REQUIRE_FALSE(store.ok());
  return store.status().message();
}

TEST_CASE("open creates an empty in-memory store") {
  auto store = must_open(memory_options());
  auto subs = store->load_subscriptions();
  REQUIRE(subs.ok());
  CHECK(subs->empty());
  auto recs = store->recent(10);
  REQUIRE(recs.ok());
  CHECK(recs->empty());
  auto max = store->max_record_id();
  REQUIRE(max.ok());
  CHECK(*max == 0);
  CHECK(store->flush().ok());
  const Store::Stats st = store->stats();
  CHECK(st.written == 0);
  CHECK(st.queued == 0);
  CHECK(store->last_write_error().ok());
}

TEST_CASE("bad options are refused") {
  StoreOptions o = memory_options();
  SUBCASE("empty path") { o.path = ""; }
  SUBCASE("zero queue") { o.writer_queue_records = 0; }
  SUBCASE("zero batch") { o.max_batch_records = 0; }
  SUBCASE("negative interval") { o.flush_interval = std::chrono::milliseconds(-1); }
  auto store = Store::open(o);
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("subscriptions: insert, lease, delete, expire") {
  auto store = must_open(memory_options());
  auto a = store->next_subscription_id();
  auto b = store->next_subscription_id();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a == 1);
  CHECK(*b == 2);
  REQUIRE(store->insert_subscription({*a, "client-a", "status >= 500", 100.5, 0}).ok());
  REQUIRE(store->insert_subscription({*b, "client-b", "path ~ \"^/api\"", 101, 0}).ok());

  auto dup = store->insert_subscription({*a, "client-c", "x", 1, 0});
  CHECK(dup.code() == StatusCode::kAlreadyExists);
  CHECK(dup.message().find("already exists") != std::string::npos);
  CHECK(store->insert_subscription({0, "c", "x", 1, 0}).code() == StatusCode::kInvalidArgument);
  CHECK(store->insert_subscription({9, "c", "x", NAN, 0}).code() == StatusCode::kInvalidArgument);

  REQUIRE(store->set_lease("client-a", 5000).ok());
  CHECK(store->set_lease("nobody", 1).ok());
  CHECK(store->set_lease("client-a", INFINITY).code() == StatusCode::kInvalidArgument);
  auto subs = store->load_subscriptions();
  REQUIRE(subs.ok());
  REQUIRE(subs->size() == 2);
  CHECK((*subs)[0].id == *a);
  CHECK((*subs)[0].client_id == "client-a");
  CHECK((*subs)[0].query == "status >= 500");
  CHECK((*subs)[0].created == 100.5);
  CHECK((*subs)[0].lease_expires == 5000);
  CHECK((*subs)[1].query == "path ~ \"^/api\"");
  CHECK((*subs)[1].lease_expires == 0);

  auto none = store->delete_expired_subscriptions(4999);
  REQUIRE(none.ok());
  CHECK(none->empty());
  auto expired = store->delete_expired_subscriptions(5000);
  REQUIRE(expired.ok());
  CHECK(*expired == std::vector<uint64_t>{*a});

  CHECK(store->delete_subscription(*a).code() == StatusCode::kNotFound);
  CHECK(store->delete_subscription(*b).ok());
  subs = store->load_subscriptions();
  REQUIRE(subs.ok());
  CHECK(subs->empty());
}

TEST_CASE("secrets are created once, kept, and replaceable") {
  auto store = must_open(memory_options());
  auto s1 = store->get_or_create_secret("channel_hmac", 32);
  REQUIRE(s1.ok());
  CHECK(s1->size() == 32);
  auto again = store->get_or_create_secret("channel_hmac", 32);
  REQUIRE(again.ok());
  CHECK(*again == *s1);
  auto other = store->get_or_create_secret("admin_key", 32);
  REQUIRE(other.ok());
  CHECK(*other != *s1);

  const std::string binary("a\0b\xff", 4);
  REQUIRE(store->put_secret("admin_key", binary).ok());
  auto replaced = store->get_or_create_secret("admin_key", 32);
  REQUIRE(replaced.ok());
  CHECK(*replaced == binary);

  CHECK(store->get_or_create_secret("x", 0).status().code() == StatusCode::kInvalidArgument);
  CHECK(store->get_or_create_secret("x", 100000).status().code() == StatusCode::kInvalidArgument);
  CHECK(store->get_or_create_secret("", 8).status().code() == StatusCode::kInvalidArgument);
  CHECK(store->put_secret("", "v").code() == StatusCode::kInvalidArgument);
}

TEST_CASE("reopening a file keeps subscriptions, secrets and records") {
  TempDir dir;
  const StoreOptions o = file_options(dir);
  const double t = now_seconds();
  std::string secret;
  uint64_t sub_id = 0;
  {
    auto store = must_open(o);
    auto id = store->next_subscription_id();
    REQUIRE(id.ok());
    sub_id = *id;
    REQUIRE(store->insert_subscription({sub_id, "client-1", "method = POST", t, t + 300}).ok());
    auto s = store->get_or_create_secret("channel_hmac", 32);
    REQUIRE(s.ok());
    secret = *s;
    for (uint64_t i = 1; i <= 20; ++i) REQUIRE(store->append(make_record(i, t)));
    // No flush: the destructor must write what was appended.
  }
  auto store = must_open(o);
  auto subs = store->load_subscriptions();
  REQUIRE(subs.ok());
  REQUIRE(subs->size() == 1);
  CHECK((*subs)[0].id == sub_id);
  CHECK((*subs)[0].client_id == "client-1");
  CHECK((*subs)[0].query == "method = POST");
  CHECK((*subs)[0].lease_expires == doctest::Approx(t + 300));
  auto s = store->get_or_create_secret("channel_hmac", 32);
  REQUIRE(s.ok());
  CHECK(*s == secret);
  auto recs = store->recent(100);
  REQUIRE(recs.ok());
  CHECK(ids_of(*recs) == descending(20, 1));
  const Record expected = make_record(7, t);
  const Record& got = (*recs)[20 - 7];
  CHECK(got.path == expected.path);
  CHECK(got.method == expected.method);
  CHECK(got.status_code == expected.status_code);
  CHECK(got.headers == expected.headers);
  CHECK(got.tags == expected.tags);
  auto max = store->max_record_id();
  REQUIRE(max.ok());
  CHECK(*max == 20);
}

TEST_CASE("subscription ids are never reused, also after reopen") {
  TempDir dir;
  const StoreOptions o = file_options(dir);
  uint64_t last = 0;
  {
    auto store = must_open(o);
    for (int i = 0; i < 3; ++i) {
      auto id = store->next_subscription_id();
      REQUIRE(id.ok());
      CHECK(*id > last);
      last = *id;
      REQUIRE(store->insert_subscription({*id, "c", "q", 1, 0}).ok());
    }
    REQUIRE(store->delete_subscription(last).ok());  // freeing the highest id frees nothing
    // An id inserted directly raises the sequence above it.
    REQUIRE(store->insert_subscription({50, "c", "q", 1, 0}).ok());
    last = 50;
  }
  auto store = must_open(o);
  auto id = store->next_subscription_id();
  REQUIRE(id.ok());
  CHECK(*id == 51);
}

TEST_CASE("append, flush and page through recent records") {
  auto store = must_open(memory_options());
  const double t = now_seconds();
  for (uint64_t i = 1; i <= 1000; ++i) REQUIRE(store->append(make_record(i, t)));
  REQUIRE(store->flush().ok());
  CHECK(store->stats().written == 1000);
  CHECK(store->stats().queued == 0);

  auto top = store->recent(10);
  REQUIRE(top.ok());
  CHECK(ids_of(*top) == descending(1000, 991));
  auto page = store->recent(5, 500);
  REQUIRE(page.ok());
  CHECK(ids_of(*page) == descending(499, 495));
  auto tail = store->recent(10, 3);
  REQUIRE(tail.ok());
  CHECK(ids_of(*tail) == descending(2, 1));
  auto all = store->recent(5000);
  REQUIRE(all.ok());
  CHECK(ids_of(*all) == descending(1000, 1));
  auto none = store->recent(0);
  REQUIRE(none.ok());
  CHECK(none->empty());
  auto max = store->max_record_id();
  REQUIRE(max.ok());
  CHECK(*max == 1000);

  // Appending an id again replaces the stored record.
  Record changed = make_record(1000, t);
  changed.path = "/changed";
  REQUIRE(store->append(changed));
  REQUIRE(store->flush().ok());
  auto one = store->recent(1);
  REQUIRE(one.ok());
  REQUIRE(one->size() == 1);
  CHECK((*one)[0].path == "/changed");

  // Ids outside [1, 2^63-1] are refused and counted.
  CHECK_FALSE(store->append(make_record(0, t)));
  CHECK_FALSE(store->append(make_record(~uint64_t{0}, t)));
  CHECK(store->stats().dropped == 2);
}

TEST_CASE("pruning by count keeps the highest ids") {
  StoreOptions o = memory_options();
  o.max_records = 100;
  o.max_batch_records = 64;  // several batches, each pruning
  auto store = must_open(o);
  const double t = now_seconds();
  for (uint64_t i = 1; i <= 250; ++i) REQUIRE(store->append(make_record(i, t)));
  REQUIRE(store->flush().ok());
  auto all = store->recent(1000);
  REQUIRE(all.ok());
  CHECK(ids_of(*all) == descending(250, 151));
  auto max = store->max_record_id();
  REQUIRE(max.ok());
  CHECK(*max == 250);
}

TEST_CASE("pruning by age drops records older than max_record_age") {
  StoreOptions o = memory_options();
  o.max_record_age = std::chrono::seconds(3600);
  auto store = must_open(o);
  const double t = now_seconds();
  for (uint64_t i = 1; i <= 10; ++i) REQUIRE(store->append(make_record(i, t - 7200)));
  for (uint64_t i = 11; i <= 20; ++i) REQUIRE(store->append(make_record(i, t)));
  REQUIRE(store->flush().ok());
  auto all = store->recent(1000);
  REQUIRE(all.ok());
  CHECK(ids_of(*all) == descending(20, 11));

  // When every record has aged out, the highest id is still known.
  for (uint64_t i = 21; i <= 30; ++i) REQUIRE(store->append(make_record(i, t - 7200)));
  REQUIRE(store->flush().ok());
  auto max = store->max_record_id();
  REQUIRE(max.ok());
  CHECK(*max == 30);
}

TEST_CASE("a full writer queue drops and counts without blocking") {
  TempDir dir;
  StoreOptions o = file_options(dir);
  o.writer_queue_records = 8;
  o.max_batch_records = 8;
  o.flush_interval = std::chrono::milliseconds(1);
  o.busy_timeout = std::chrono::milliseconds(60000);
  auto store = must_open(o);
  RawDb other(o.path);
  other.exec("BEGIN IMMEDIATE");  // the writer's next batch waits for this lock

  const double t = now_seconds();
  constexpr uint64_t kTotal = 1000;
  uint64_t accepted = 0;
  for (uint64_t i = 1; i <= kTotal; ++i) accepted += store->append(make_record(i, t)) ? 1 : 0;
  // Every append returned while the writer could not write anything.
  Store::Stats st = store->stats();
  CHECK(st.written == 0);
  CHECK(st.write_errors == 0);
  CHECK(st.dropped == kTotal - accepted);
  CHECK(accepted <= o.writer_queue_records + o.max_batch_records);
  CHECK(st.dropped >= kTotal - 16);

  other.exec("COMMIT");
  REQUIRE(store->flush().ok());
  st = store->stats();
  CHECK(st.written == accepted);
  CHECK(st.written + st.dropped == kTotal);
  CHECK(st.queued == 0);
  auto all = store->recent(kTotal);
  REQUIRE(all.ok());
  CHECK(all->size() == accepted);
}

TEST_CASE("writer failures are counted and visible, then writing resumes") {
  TempDir dir;
  const StoreOptions o = file_options(dir);
  auto store = must_open(o);
  RawDb other(o.path);
  other.exec(
      "CREATE TRIGGER fail_insert BEFORE INSERT ON records "
      "BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END");
  const double t = now_seconds();
  for (uint64_t i = 1; i <= 5; ++i) REQUIRE(store->append(make_record(i, t)));
  Status flushed = store->flush();
  CHECK_FALSE(flushed.ok());
  CHECK(flushed.message().find("simulated disk failure") != std::string::npos);
  CHECK(flushed.message().find(o.path) != std::string::npos);
  Store::Stats st = store->stats();
  CHECK(st.write_errors >= 1);
  CHECK(st.lost == 5);
  CHECK(st.written == 0);
  CHECK(store->last_write_error().message().find("simulated disk failure") != std::string::npos);

  other.exec("DROP TRIGGER fail_insert");
  for (uint64_t i = 6; i <= 10; ++i) REQUIRE(store->append(make_record(i, t)));
  CHECK(store->flush().ok());
  st = store->stats();
  CHECK(st.written == 5);
  CHECK(st.lost == 5);
  auto all = store->recent(100);
  REQUIRE(all.ok());
  CHECK(ids_of(*all) == descending(10, 6));
  // The error stays visible until the next failure replaces it.
  CHECK_FALSE(store->last_write_error().ok());
}

TEST_CASE("a database that cannot be opened or written fails open() clearly") {
  TempDir dir;
  StoreOptions o;

  SUBCASE("path under a regular file") {
    std::ofstream(dir.file("plain")) << "not a directory";
    o.path = dir.file("plain") + "/clio.db";
    const std::string msg = open_error(o);
    CHECK(msg.find(o.path) != std::string::npos);
    CHECK(msg.find("unable to open database file") != std::string::npos);
  }
  SUBCASE("a directory") {
    o.path = dir.file("");
    const std::string msg = open_error(o);
    CHECK(msg.find(o.path) != std::string::npos);
    CHECK(msg.find("SQLite code") != std::string::npos);
  }
  SUBCASE("read-only database") {
    const std::string file = dir.file("ro.db");
    { must_open(StoreOptions{.path = file}); }
    o.path = "file:" + file + "?mode=ro";
    const std::string msg = open_error(o);
    CHECK(msg.find(o.path) != std::string::npos);
    CHECK(msg.find("readonly") != std::string::npos);
  }
  SUBCASE("not a database, left untouched") {
    const std::string garbage(8192, 'x');
    std::ofstream(dir.file("junk.db"), std::ios::binary) << garbage;
    o.path = dir.file("junk.db");
    const std::string msg = open_error(o);
    CHECK(msg.find(o.path) != std::string::npos);
    CHECK(msg.find("not a database") != std::string::npos);
    std::ifstream in(o.path, std::ios::binary);
    const std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(after == garbage);
  }
  SUBCASE("schema from a newer version") {
    o.path = dir.file("newer.db");
    {
      RawDb raw(o.path);
      raw.exec("PRAGMA user_version = 99");
    }
    const std::string msg = open_error(o);
    CHECK(msg.find("newer") != std::string::npos);
  }
}

TEST_CASE("concurrent appends from several threads while reading") {
  TempDir dir;
  StoreOptions o;
  SUBCASE("file") { o = file_options(dir); }
  SUBCASE("memory") { o = memory_options(); }
  o.flush_interval = std::chrono::milliseconds(5);
  auto store = must_open(o);
  constexpr int kThreads = 4;
  constexpr uint64_t kPerThread = 2000;
  const double t = now_seconds();
  std::atomic<int> running{kThreads};
  std::atomic<bool> read_failed{false};
  std::atomic<int> reads{0};
  std::atomic<int> refused{0};

  std::thread reader([&] {
    // Bounded: stops when the writers are done or after 20,000 reads.
    for (int n = 0; n < 20000 && running.load() > 0; ++n) {
      auto page = store->recent(50);
      if (!page.ok()) { read_failed = true; return; }
      for (size_t i = 1; i < page->size(); ++i) {
        if ((*page)[i - 1].id <= (*page)[i].id) { read_failed = true; return; }
      }
      if (!store->max_record_id().ok()) { read_failed = true; return; }
      ++reads;
    }
  });
  std::vector<std::thread> writers;
  for (int w = 0; w < kThreads; ++w) {
    writers.emplace_back([&, w] {
      for (uint64_t i = 0; i < kPerThread; ++i) {
        const uint64_t id = static_cast<uint64_t>(w) * kPerThread + i + 1;
        if (!store->append(make_record(id, t))) ++refused;  // queue bound is 65536
      }
      --running;
    });
  }
  for (auto& th : writers) th.join();
  reader.join();
  CHECK_FALSE(read_failed.load());
  CHECK(reads.load() > 0);
  CHECK(refused.load() == 0);
  REQUIRE(store->flush().ok());
  const Store::Stats st = store->stats();
  CHECK(st.written == kThreads * kPerThread);
  CHECK(st.write_errors == 0);
  auto all = store->recent(kThreads * kPerThread + 10);
  REQUIRE(all.ok());
  CHECK(ids_of(*all) == descending(kThreads * kPerThread, 1));
}

}  // namespace
}  // namespace clio::console
