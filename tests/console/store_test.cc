// Tests of the SQLite store against real SQLite: ":memory:" and temp files.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "clio/console/store.h"
#include "clio/middleware/record_binary.h"

namespace clio::console {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMaxId = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

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

  // Runs `sql` with `blob` bound to ?1.
  void set_blob(const std::string& sql, const std::string& blob) {
    sqlite3_stmt* stmt = nullptr;
    INFO(sql << ": " << sqlite3_errmsg(db_));
    REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    sqlite3_bind_blob(stmt, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
    const int rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    REQUIRE(rc == SQLITE_DONE);
  }

  // The first column of the first row of `sql` as text ("" for no row or NULL).
  std::string text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    INFO(sql << ": " << sqlite3_errmsg(db_));
    REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
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
  r.set_remote_ip("127.0.0.1");
  r.headers = {{"host", "example.test"}, {"x-n", std::to_string(id)}};
  r.tags = {{"user", "u" + std::to_string(id % 7)}};
  return r;
}

// Records first .. first + count - 1, all at `time`, encoded the way the
// dispatcher encodes a batch.
RecordChunk make_chunk(uint64_t first, size_t count, double time) {
  RecordChunk c;
  c.first_id = first;
  c.count = count;
  c.min_time = time;
  c.max_time = time;
  for (uint64_t id = first; id < first + count; ++id) {
    append_binary(make_record(id, time), c.body);
  }
  return c;
}

// Appends records first..last in chunks of `per_chunk` (the last may be
// shorter); every chunk must be accepted.
void append_range(Store& store, uint64_t first, uint64_t last, double time, size_t per_chunk) {
  for (uint64_t id = first; id <= last; id += per_chunk) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(per_chunk, last - id + 1));
    REQUIRE(store.append_chunk(make_chunk(id, n, time)));
  }
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

std::vector<uint64_t> recent_ids(Store& store, size_t limit, uint64_t before_id = 0) {
  auto page = store.recent(limit, before_id);
  INFO(page.status().message());
  REQUIRE(page.ok());
  return ids_of(*page);
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
  int visited = 0;
  CHECK(store->scan(0, 100, [&](Record&&) { return ++visited > 0; }).ok());
  CHECK(visited == 0);
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
  SUBCASE("zero queue bytes") { o.writer_queue_bytes = 0; }
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
    append_range(*store, 1, 20, t, 6);
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
  // Every field survives the round trip.
  for (const Record& got : *recs) CHECK(to_json(got) == to_json(make_record(got.id, t)));
  auto max = store->max_record_id();
  REQUIRE(max.ok());
  CHECK(*max == 20);
  {
    RawDb raw(o.path);
    CHECK(raw.text("PRAGMA page_size") == "65536");
    CHECK(raw.text("PRAGMA journal_mode") == "wal");
  }
  // The id sequence continues after the reopen.
  append_range(*store, 21, 25, t, 5);
  REQUIRE(store->flush().ok());
  CHECK(recent_ids(*store, 100) == descending(25, 1));
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

TEST_CASE("revoked sessions and reserved record ids survive a reopen") {
  TempDir dir;
  const StoreOptions o = file_options(dir);
  {
    auto store = must_open(o);
    REQUIRE(store->revoke_session("gone-soon", 100).ok());
    REQUIRE(store->revoke_session("still-revoked", 5000).ok());
    CHECK_FALSE(store->revoke_session("", 5000).ok());
    auto none = store->reserved_record_ids();
    REQUIRE(none.ok());
    CHECK(*none == 0);
    REQUIRE(store->reserve_record_ids(65536).ok());
    REQUIRE(store->reserve_record_ids(1000).ok());  // never lowers it
  }
  auto store = must_open(o);
  auto revoked = store->revoked_sessions(1000);  // the first one expired at 100
  REQUIRE(revoked.ok());
  REQUIRE(revoked->size() == 1);
  CHECK((*revoked)[0].first == "still-revoked");
  CHECK((*revoked)[0].second == 5000);
  auto reserved = store->reserved_record_ids();
  REQUIRE(reserved.ok());
  CHECK(*reserved == 65536);
}

TEST_CASE("the database files are owner-only whatever the umask; readable ones are repaired") {
  TempDir dir;
  const StoreOptions o = file_options(dir);
  const mode_t old = ::umask(0);  // the loosest: files would be created 0666
  auto mode = [](const std::string& f) {
    struct stat st {};
    REQUIRE(::stat(f.c_str(), &st) == 0);
    return st.st_mode & 0777;
  };
  {
    auto store = must_open(o);
    CHECK_FALSE(store->repaired_permissions());
    REQUIRE(store->get_or_create_secret("k", 32).ok());
    for (const char* suffix : {"", "-wal", "-shm"}) CHECK_MESSAGE(mode(o.path + suffix) == 0600, suffix);
  }
  REQUIRE(::chmod(o.path.c_str(), 0644) == 0);
  {
    auto store = must_open(o);
    CHECK(store->repaired_permissions());
    for (const char* suffix : {"", "-wal", "-shm"}) CHECK_MESSAGE(mode(o.path + suffix) == 0600, suffix);
  }
  ::umask(old);
}

TEST_CASE("append chunks, flush and page through recent records") {
  auto store = must_open(memory_options());
  const double t = now_seconds();
  append_range(*store, 1, 1000, t, 37);  // chunk boundaries fall mid-page
  REQUIRE(store->flush().ok());
  CHECK(store->stats().written == 1000);
  CHECK(store->stats().queued == 0);

  CHECK(recent_ids(*store, 10) == descending(1000, 991));
  CHECK(recent_ids(*store, 5, 500) == descending(499, 495));
  CHECK(recent_ids(*store, 10, 3) == descending(2, 1));
  CHECK(recent_ids(*store, 10, 1).empty());
  CHECK(recent_ids(*store, 5000) == descending(1000, 1));
  CHECK(recent_ids(*store, 0).empty());
  CHECK(recent_ids(*store, 3, ~uint64_t{0}) == descending(1000, 998));

  // Every before_id, across every chunk boundary, with pages that span chunks.
  for (uint64_t before = 2; before <= 1001; ++before) {
    const uint64_t newest = before - 1;
    const uint64_t oldest = newest >= 40 ? newest - 39 : 1;
    INFO("before_id " << before);
    REQUIRE(recent_ids(*store, 40, before) == descending(newest, oldest));
  }
  // Paging with the last id of each page visits every record once.
  std::vector<uint64_t> paged;
  uint64_t before = 0;
  for (int pages = 0; pages < 100; ++pages) {
    auto page = recent_ids(*store, 64, before);
    if (page.empty()) break;
    paged.insert(paged.end(), page.begin(), page.end());
    before = page.back();
  }
  CHECK(paged == descending(1000, 1));

  auto records = store->recent(3, 101);
  REQUIRE(records.ok());
  REQUIRE(records->size() == 3);
  for (const Record& got : *records) CHECK(to_json(got) == to_json(make_record(got.id, t)));
  auto max = store->max_record_id();
  REQUIRE(max.ok());
  CHECK(*max == 1000);
}

TEST_CASE("written chunks' buffers come back, empty, for reuse; at most 8") {
  auto store = must_open(memory_options());
  CHECK(store->take_buffer().capacity() < 64);  // nothing written yet: a new string
  const double t = now_seconds();
  for (uint64_t i = 0; i < 10; ++i) {
    RecordChunk c = make_chunk(i * 20 + 1, 20, t);
    c.body.reserve(100000);
    REQUIRE(store->append_chunk(std::move(c)));
  }
  REQUIRE(store->flush().ok());
  int reused = 0;
  for (int i = 0; i < 10; ++i) {
    std::string b = store->take_buffer();
    CHECK(b.empty());
    if (b.capacity() >= 100000) ++reused;
  }
  CHECK(reused == 8);
  CHECK(recent_ids(*store, 200) == descending(200, 1));  // reuse touched no stored record
}

TEST_CASE("a chunk overlapping stored ids replaces the chunks it overlaps") {
  auto store = must_open(memory_options());
  const double t = now_seconds();
  append_range(*store, 1, 30, t, 10);  // chunks 1-10, 11-20, 21-30
  REQUIRE(store->flush().ok());

  RecordChunk again = make_chunk(15, 3, t);  // ids 15..17, inside 11-20
  Record changed = make_record(16, t);
  changed.path = "/changed";
  again.body.clear();
  for (uint64_t id = 15; id <= 17; ++id) append_binary(id == 16 ? changed : make_record(id, t), again.body);
  REQUIRE(store->append_chunk(std::move(again)));
  REQUIRE(store->flush().ok());
  // 11-20 went whole; 15-17 took its place.
  std::vector<uint64_t> expected = descending(30, 21);
  for (uint64_t id : descending(17, 15)) expected.push_back(id);
  for (uint64_t id : descending(10, 1)) expected.push_back(id);
  auto all = store->recent(100);
  REQUIRE(all.ok());
  CHECK(ids_of(*all) == expected);
  CHECK((*all)[11].path == "/changed");

  // A chunk spanning two stored chunks replaces both.
  REQUIRE(store->append_chunk(make_chunk(8, 20, t)));  // 8..27
  REQUIRE(store->flush().ok());
  CHECK(recent_ids(*store, 100) == descending(27, 8));
  auto max = store->max_record_id();
  REQUIRE(max.ok());
  CHECK(*max == 30);  // the highest id ever written
  CHECK(store->stats().written == 30 + 3 + 20);
}

TEST_CASE("malformed chunks are refused and counted") {
  auto store = must_open(memory_options());
  const double t = now_seconds();
  RecordChunk c = make_chunk(10, 3, t);
  uint64_t counted = 3;
  SUBCASE("count 0") {
    c.count = 0;
    counted = 0;
  }
  SUBCASE("id 0") { c.first_id = 0; }
  SUBCASE("first id above 2^63-1") { c.first_id = kMaxId + 1; }
  SUBCASE("last id above 2^63-1") { c.first_id = kMaxId - 1; }
  SUBCASE("last id wraps around") { c.first_id = ~uint64_t{0} - 1; }
  SUBCASE("fewer records than count") { c.count = 4; counted = 4; }
  SUBCASE("more records than count") { c.count = 2; counted = 2; }
  SUBCASE("last record truncated") { c.body.pop_back(); }
  SUBCASE("a byte after the last record") { c.body.push_back('\0'); }
  SUBCASE("empty body") { c.body.clear(); }
  SUBCASE("min_time after max_time") { c.min_time = t + 1; }
  CHECK_FALSE(store->append_chunk(std::move(c)));
  CHECK(store->stats().dropped == counted);
  REQUIRE(store->flush().ok());
  CHECK(store->stats().written == 0);
  CHECK(recent_ids(*store, 10).empty());

  // The highest possible ids are accepted.
  REQUIRE(store->append_chunk(make_chunk(kMaxId - 2, 3, t)));
  REQUIRE(store->flush().ok());
  CHECK(recent_ids(*store, 10) == std::vector<uint64_t>{kMaxId, kMaxId - 1, kMaxId - 2});
  CHECK(recent_ids(*store, 10, kMaxId) == std::vector<uint64_t>{kMaxId - 1, kMaxId - 2});
  auto max = store->max_record_id();
  REQUIRE(max.ok());
  CHECK(*max == kMaxId);
}

TEST_CASE("scan visits records newest first and stops when asked") {
  auto store = must_open(memory_options());
  const double t = now_seconds();
  append_range(*store, 1, 500, t, 23);
  REQUIRE(store->flush().ok());

  std::vector<uint64_t> seen;
  REQUIRE(store->scan(0, 1000, [&](Record&& r) {
    seen.push_back(r.id);
    CHECK(r.path == "/item/" + std::to_string(r.id));
    return true;
  }).ok());
  CHECK(seen == descending(500, 1));

  seen.clear();
  REQUIRE(store->scan(300, 50, [&](Record&& r) {
    seen.push_back(r.id);
    return true;
  }).ok());
  CHECK(seen == descending(299, 250));

  // fn returning false stops at once.
  seen.clear();
  REQUIRE(store->scan(0, 1000, [&](Record&& r) {
    seen.push_back(r.id);
    return seen.size() < 7;
  }).ok());
  CHECK(seen == descending(500, 494));

  // fn may call the store (no lock is held while it runs, also on the one
  // shared connection of :memory:).
  seen.clear();
  REQUIRE(store->scan(0, 3, [&](Record&& r) {
    seen.push_back(r.id);
    auto inner = store->recent(1, r.id);
    CHECK(inner.ok());
    CHECK(store->max_record_id().ok());
    return true;
  }).ok());
  CHECK(seen == descending(500, 498));

  int none = 0;
  REQUIRE(store->scan(0, 0, [&](Record&&) { return ++none > 0; }).ok());
  REQUIRE(store->scan(1, 10, [&](Record&&) { return ++none > 0; }).ok());
  CHECK(none == 0);
}

TEST_CASE("a stored chunk that does not decode is a clear error") {
  TempDir dir;
  const StoreOptions o = file_options(dir);
  auto store = must_open(o);
  const double t = now_seconds();
  append_range(*store, 1, 20, t, 10);
  REQUIRE(store->flush().ok());
  RawDb other(o.path);
  SUBCASE("a damaged record") {
    // Chunk 11-20 as stored, with record 15's format byte overwritten.
    std::string body = make_chunk(11, 10, t).body;
    std::string_view rest = body;
    for (int i = 0; i < 4; ++i) REQUIRE(skip_binary(rest));
    body[body.size() - rest.size()] = '\x07';
    other.set_blob("UPDATE chunks SET body = ?1 WHERE first_id = 11", body);
    auto page = store->recent(100);
    REQUIRE_FALSE(page.ok());
    CHECK(page.status().code() == StatusCode::kInternal);
    CHECK(page.status().message().find("stored record 15 does not decode") != std::string::npos);
    // Records before the damage are still found; those after it in its
    // chunk cannot be (a record is found by skipping the ones before it).
    CHECK(recent_ids(*store, 10, 15) == descending(14, 5));
    std::vector<uint64_t> seen;
    Status s = store->scan(17, 100, [&](Record&& r) {
      seen.push_back(r.id);
      return true;
    });
    CHECK_FALSE(s.ok());
    CHECK(s.message().find("stored record 15") != std::string::npos);
    CHECK(seen.empty());
  }
  SUBCASE("a record count that does not match") {
    other.exec("UPDATE chunks SET count = 9 WHERE first_id = 11");
    auto page = store->recent(100);
    REQUIRE_FALSE(page.ok());
    CHECK(page.status().message().find("stored chunk 11") != std::string::npos);
  }
}

TEST_CASE("pruning by count drops whole oldest chunks") {
  StoreOptions o = memory_options();
  o.max_records = 100;
  o.max_batch_records = 64;  // several batches, each pruning
  auto store = must_open(o);
  const double t = now_seconds();
  SUBCASE("the newest chunks hold exactly max_records") {
    append_range(*store, 1, 250, t, 30);  // ..., 211-240, 241-250
    REQUIRE(store->flush().ok());
    CHECK(recent_ids(*store, 1000) == descending(250, 151));
  }
  SUBCASE("the bound is exceeded by less than one chunk") {
    append_range(*store, 1, 240, t, 30);  // 8 chunks of 30
    REQUIRE(store->flush().ok());
    CHECK(recent_ids(*store, 1000) == descending(240, 121));
  }
  SUBCASE("one chunk larger than the bound is kept whole") {
    append_range(*store, 1, 50, t, 50);
    REQUIRE(store->append_chunk(make_chunk(51, 150, t)));
    REQUIRE(store->flush().ok());
    CHECK(recent_ids(*store, 1000) == descending(200, 51));
  }
  auto max = store->max_record_id();
  REQUIRE(max.ok());
  CHECK(*max == recent_ids(*store, 1).at(0));
}

TEST_CASE("pruning by count survives reopening") {
  TempDir dir;
  StoreOptions o = file_options(dir);
  o.max_records = 100;
  const double t = now_seconds();
  {
    auto store = must_open(o);
    append_range(*store, 1, 90, t, 10);
  }
  auto store = must_open(o);  // counts what the file holds
  append_range(*store, 91, 150, t, 10);
  REQUIRE(store->flush().ok());
  CHECK(recent_ids(*store, 1000) == descending(150, 51));
}

TEST_CASE("pruning by age drops chunks whose newest record is older than max_record_age") {
  StoreOptions o = memory_options();
  o.max_record_age = std::chrono::seconds(3600);
  auto store = must_open(o);
  const double t = now_seconds();
  append_range(*store, 1, 10, t - 7200, 5);
  append_range(*store, 11, 20, t, 5);
  RecordChunk mixed = make_chunk(21, 4, t - 7200);  // one young record keeps the chunk
  mixed.max_time = t;
  REQUIRE(store->append_chunk(std::move(mixed)));
  REQUIRE(store->flush().ok());
  CHECK(recent_ids(*store, 1000) == descending(24, 11));

  // When every chunk has aged out, the highest id is still known.
  append_range(*store, 25, 30, t - 7200, 3);
  REQUIRE(store->flush().ok());
  CHECK(recent_ids(*store, 1000) == descending(24, 11));
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
  constexpr uint64_t kChunks = 250, kPerChunk = 4, kTotal = kChunks * kPerChunk;
  uint64_t accepted = 0;
  for (uint64_t i = 0; i < kChunks; ++i) {
    accepted += store->append_chunk(make_chunk(i * kPerChunk + 1, kPerChunk, t)) ? kPerChunk : 0;
  }
  // A chunk larger than the whole queue is always refused.
  CHECK_FALSE(store->append_chunk(make_chunk(kTotal + 1, 9, t)));
  // Every append returned while the writer could not write anything.
  Store::Stats st = store->stats();
  CHECK(st.written == 0);
  CHECK(st.write_errors == 0);
  CHECK(st.dropped == kTotal - accepted + 9);
  CHECK(accepted <= o.writer_queue_records + o.max_batch_records);
  CHECK(accepted >= o.writer_queue_records);

  other.exec("COMMIT");
  REQUIRE(store->flush().ok());
  st = store->stats();
  CHECK(st.written == accepted);
  CHECK(st.written + st.dropped == kTotal + 9);
  CHECK(st.queued == 0);
  auto all = store->recent(kTotal);
  REQUIRE(all.ok());
  CHECK(all->size() == accepted);
}

TEST_CASE("the writer queue is bounded in bytes too") {
  StoreOptions o = memory_options();
  const RecordChunk probe = make_chunk(1, 10, now_seconds());
  o.writer_queue_bytes = probe.body.size() - 1;
  auto store = must_open(o);
  CHECK_FALSE(store->append_chunk(probe));
  CHECK(store->append_chunk(make_chunk(1, 2, now_seconds())));
  REQUIRE(store->flush().ok());
  const Store::Stats st = store->stats();
  CHECK(st.dropped == 10);
  CHECK(st.written == 2);
}

TEST_CASE("writer failures are counted and visible, then writing resumes") {
  TempDir dir;
  const StoreOptions o = file_options(dir);
  auto store = must_open(o);
  RawDb other(o.path);
  other.exec(
      "CREATE TRIGGER fail_insert BEFORE INSERT ON chunks "
      "BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END");
  const double t = now_seconds();
  append_range(*store, 1, 5, t, 2);
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
  append_range(*store, 6, 10, t, 2);
  CHECK(store->flush().ok());
  st = store->stats();
  CHECK(st.written == 5);
  CHECK(st.lost == 5);
  CHECK(recent_ids(*store, 100) == descending(10, 6));
  auto max = store->max_record_id();
  REQUIRE(max.ok());
  CHECK(*max == 10);
  // The error stays visible until the next failure replaces it.
  CHECK_FALSE(store->last_write_error().ok());
}

TEST_CASE("a failed batch leaves the count used for pruning unchanged") {
  TempDir dir;
  StoreOptions o = file_options(dir);
  o.max_records = 20;
  auto store = must_open(o);
  RawDb other(o.path);
  const double t = now_seconds();
  append_range(*store, 1, 20, t, 10);
  REQUIRE(store->flush().ok());
  other.exec(
      "CREATE TRIGGER fail_insert BEFORE INSERT ON chunks "
      "BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END");
  append_range(*store, 21, 40, t, 10);
  CHECK_FALSE(store->flush().ok());
  other.exec("DROP TRIGGER fail_insert");
  // Had the lost batch been counted, this one would prune too much.
  append_range(*store, 41, 50, t, 10);
  REQUIRE(store->flush().ok());
  std::vector<uint64_t> expected = descending(50, 41);
  for (uint64_t id : descending(20, 11)) expected.push_back(id);
  CHECK(recent_ids(*store, 100) == expected);
}

TEST_CASE("a version 1 database is migrated and keeps subscriptions and secrets") {
  TempDir dir;
  const StoreOptions o = file_options(dir);
  {
    RawDb v1(o.path);
    v1.exec(R"sql(
      CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
      CREATE TABLE secrets(name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
      CREATE TABLE subscriptions(id INTEGER PRIMARY KEY, client_id TEXT NOT NULL,
        query TEXT NOT NULL, created REAL NOT NULL, lease_expires REAL NOT NULL DEFAULT 0);
      CREATE INDEX subscriptions_by_client ON subscriptions(client_id);
      CREATE TABLE records(id INTEGER PRIMARY KEY, time REAL, json TEXT NOT NULL);
      CREATE INDEX records_by_time ON records(time);
      INSERT INTO meta VALUES('next_subscription_id', 8), ('max_record_id', 40);
      INSERT INTO secrets VALUES('channel_hmac_key', x'00ff10');
      INSERT INTO subscriptions VALUES(7, 'client-7', 'status >= 500', 12.5, 0);
      INSERT INTO records VALUES(41, 1, '{"id":41}'), (42, 1, '{"id":42}');
      PRAGMA user_version = 1;
    )sql");
  }
  {
    auto store = must_open(o);
    auto subs = store->load_subscriptions();
    REQUIRE(subs.ok());
    REQUIRE(subs->size() == 1);
    CHECK((*subs)[0].id == 7);
    CHECK((*subs)[0].client_id == "client-7");
    CHECK((*subs)[0].query == "status >= 500");
    auto secret = store->get_or_create_secret("channel_hmac_key", 32);
    REQUIRE(secret.ok());
    CHECK(*secret == std::string("\x00\xff\x10", 3));
    auto next = store->next_subscription_id();
    REQUIRE(next.ok());
    CHECK(*next == 8);
    // The records were a cache and are gone; their highest id is not.
    CHECK(recent_ids(*store, 10).empty());
    auto max = store->max_record_id();
    REQUIRE(max.ok());
    CHECK(*max == 42);
    append_range(*store, 43, 45, now_seconds(), 3);
    REQUIRE(store->flush().ok());
    CHECK(recent_ids(*store, 10) == descending(45, 43));
  }
  RawDb after(o.path);
  CHECK(after.text("PRAGMA user_version") == "4");
  CHECK(after.text("PRAGMA page_size") == "65536");  // rebuilt with the new page size
  CHECK(after.text("PRAGMA journal_mode") == "wal");
  CHECK(after.text("SELECT count(*) FROM sqlite_master WHERE name = 'records'") == "0");
  CHECK(after.text("SELECT count(*) FROM chunks") == "1");
}

TEST_CASE("a version 2 database (chunks of JSON lines) is migrated: records go, the rest stays") {
  TempDir dir;
  const StoreOptions o = file_options(dir);
  {
    RawDb v2(o.path);
    v2.exec(R"sql(
      PRAGMA page_size = 65536;
      PRAGMA journal_mode = WAL;
      CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
      CREATE TABLE secrets(name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
      CREATE TABLE subscriptions(id INTEGER PRIMARY KEY, client_id TEXT NOT NULL,
        query TEXT NOT NULL, created REAL NOT NULL, lease_expires REAL NOT NULL DEFAULT 0);
      CREATE INDEX subscriptions_by_client ON subscriptions(client_id);
      CREATE TABLE chunks(first_id INTEGER PRIMARY KEY, last_id INTEGER NOT NULL,
        count INTEGER NOT NULL, min_time REAL, max_time REAL, body BLOB NOT NULL);
      CREATE INDEX chunks_by_max_time ON chunks(max_time);
      INSERT INTO meta VALUES('next_subscription_id', 4), ('max_record_id', 10);
      INSERT INTO secrets VALUES('channel_hmac_key', x'0102');
      INSERT INTO subscriptions VALUES(3, 'client-3', 'path ~ "/api"', 1.5, 0);
      INSERT INTO chunks VALUES(11, 12, 2, 1, 1, CAST('{"id":11}' || char(10) || '{"id":12}' || char(10) AS BLOB));
      PRAGMA user_version = 2;
    )sql");
  }
  {
    auto store = must_open(o);
    auto subs = store->load_subscriptions();
    REQUIRE(subs.ok());
    REQUIRE(subs->size() == 1);
    CHECK((*subs)[0].query == "path ~ \"/api\"");
    auto secret = store->get_or_create_secret("channel_hmac_key", 32);
    REQUIRE(secret.ok());
    CHECK(*secret == "\x01\x02");
    CHECK(recent_ids(*store, 10).empty());  // no JSON chunk is read as binary
    auto max = store->max_record_id();
    REQUIRE(max.ok());
    CHECK(*max == 12);
    append_range(*store, 13, 15, now_seconds(), 3);
    REQUIRE(store->flush().ok());
    CHECK(recent_ids(*store, 10) == descending(15, 13));
  }
  RawDb after(o.path);
  CHECK(after.text("PRAGMA user_version") == "4");
  CHECK(after.text("SELECT count(*) FROM chunks") == "1");
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
  constexpr uint64_t kPerThread = 2000, kPerChunk = 25;
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
      uint64_t prev = ~uint64_t{0};
      Status s = store->scan(0, 200, [&](Record&& r) {
        if (r.id >= prev) read_failed = true;
        prev = r.id;
        return true;
      });
      if (!s.ok() || !store->max_record_id().ok()) { read_failed = true; return; }
      ++reads;
    }
  });
  std::vector<std::thread> writers;
  for (int w = 0; w < kThreads; ++w) {
    writers.emplace_back([&, w] {
      // Chunks of different threads interleave, so ids do not arrive in order.
      for (uint64_t i = 0; i < kPerThread; i += kPerChunk) {
        const uint64_t first = static_cast<uint64_t>(w) * kPerThread + i + 1;
        if (!store->append_chunk(make_chunk(first, kPerChunk, t))) ++refused;  // bound is 65536
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
  CHECK(st.writer_cpu_ns > 0);
  CHECK(recent_ids(*store, kThreads * kPerThread + 10) == descending(kThreads * kPerThread, 1));
}

}  // namespace
}  // namespace clio::console
