// The SQLite store. See store.h for the decisions; this file keeps SQLite
// (result codes, statements, transactions) behind clio::Status.
#include "clio/console/store.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "clio/base/mutex.h"
#include "clio/middleware/private_file.h"
#include "clio/middleware/record_binary.h"

namespace clio::console {
namespace {

#define CLIO_RETURN_IF_ERROR(expr)      \
  do {                                  \
    ::clio::Status status_ = (expr);    \
    if (!status_.ok()) return status_;  \
  } while (0)

constexpr int kSchemaVersion = 4;
constexpr uint64_t kMaxId = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
constexpr size_t kMaxSecretBytes = 4096;
// Chunk buffers kept for reuse (Store::take_buffer).
constexpr size_t kSpareBuffers = 8;
constexpr size_t kMaxSpareBuffer = size_t{4} << 20;
// scan() and recent() read chunks in groups of about this many bytes per
// lock of the reader connection.
constexpr size_t kReadGroupBytes = size_t{1} << 20;

// Every statement the store runs. Statements are cached per connection by
// the address of these constants.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS secrets(name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscriptions(
  id INTEGER PRIMARY KEY,
  client_id TEXT NOT NULL,
  query TEXT NOT NULL,
  created REAL NOT NULL,
  lease_expires REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS subscriptions_by_client ON subscriptions(client_id);
CREATE TABLE IF NOT EXISTS chunks(
  first_id INTEGER PRIMARY KEY,
  last_id INTEGER NOT NULL,
  count INTEGER NOT NULL,
  min_time REAL,
  max_time REAL,
  body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_max_time ON chunks(max_time);
CREATE TABLE IF NOT EXISTS revoked_sessions(nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;
)sql";
// Version 1 kept one row per record in `records`; its highest id survives
// in meta, then the table goes.
constexpr const char* kHasV1Records =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'records'";
constexpr const char* kMigrateV1 = R"sql(
INSERT INTO meta(key, value) SELECT 'max_record_id', coalesce(max(id), 0) FROM records WHERE true
  ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value);
DROP TABLE records;
)sql";
// Version 2 kept chunks of JSON lines; version 3 keeps the binary encoding.
// Records are a cache: the old chunks go, their highest id survives in meta.
constexpr const char* kCountChunks = "SELECT count(*) FROM chunks";
constexpr const char* kMigrateV2 = R"sql(
INSERT INTO meta(key, value) SELECT 'max_record_id', coalesce(max(last_id), 0) FROM chunks WHERE true
  ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value);
DELETE FROM chunks;
)sql";
// 64 KiB pages: a chunk spans few pages, so the writer makes few system
// calls (measured: 4 KiB pages cost the writer over twice the CPU).
constexpr const char* kPageSize = "PRAGMA page_size=65536";
constexpr const char* kWal = "PRAGMA journal_mode=WAL";
constexpr const char* kBegin = "BEGIN IMMEDIATE";
constexpr const char* kCommit = "COMMIT";
constexpr const char* kUserVersion = "PRAGMA user_version";
constexpr const char* kSetUserVersion = "PRAGMA user_version = 4";
constexpr const char* kSetMeta = "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)";
constexpr const char* kRaiseMeta =
    "INSERT INTO meta(key, value) VALUES(?1, ?2) "
    "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)";
constexpr const char* kGetMeta = "SELECT value FROM meta WHERE key = ?1";
constexpr const char* kGetSecret = "SELECT value FROM secrets WHERE name = ?1";
constexpr const char* kPutSecret = "INSERT OR REPLACE INTO secrets(name, value) VALUES(?1, ?2)";
constexpr const char* kInsertSub =
    "INSERT INTO subscriptions(id, client_id, query, created, lease_expires) "
    "VALUES(?1, ?2, ?3, ?4, ?5)";
constexpr const char* kDeleteSub = "DELETE FROM subscriptions WHERE id = ?1";
constexpr const char* kSetLease = "UPDATE subscriptions SET lease_expires = ?2 WHERE client_id = ?1";
constexpr const char* kSelectExpired =
    "SELECT id FROM subscriptions WHERE lease_expires > 0 AND lease_expires <= ?1 ORDER BY id";
constexpr const char* kDeleteExpired =
    "DELETE FROM subscriptions WHERE lease_expires > 0 AND lease_expires <= ?1";
constexpr const char* kLoadSubs =
    "SELECT id, client_id, query, created, lease_expires FROM subscriptions ORDER BY id";
constexpr const char* kInsertChunk =
    "INSERT INTO chunks(first_id, last_id, count, min_time, max_time, body) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
// The chunks holding any id in [?1, ?2]: chunks never overlap, so only the
// last one starting below ?1 can reach into the range.
constexpr const char* kDeleteOverlapping =
    "DELETE FROM chunks WHERE first_id BETWEEN "
    "coalesce((SELECT first_id FROM chunks WHERE first_id < ?1 ORDER BY first_id DESC LIMIT 1), ?1) "
    "AND ?2 AND last_id >= ?1 RETURNING count";
constexpr const char* kPruneByAge = "DELETE FROM chunks WHERE max_time < ?1 RETURNING count";
constexpr const char* kOldestChunks = "SELECT first_id, count FROM chunks ORDER BY first_id";
constexpr const char* kPruneThrough = "DELETE FROM chunks WHERE first_id <= ?1";
constexpr const char* kStoredRecords = "SELECT coalesce(sum(count), 0) FROM chunks";
constexpr const char* kReadChunks =
    "SELECT first_id, count, body FROM chunks WHERE first_id <= ?1 ORDER BY first_id DESC";
constexpr const char* kMaxRecordId =
    "SELECT max(coalesce((SELECT value FROM meta WHERE key = 'max_record_id'), 0), "
    "coalesce((SELECT last_id FROM chunks ORDER BY first_id DESC LIMIT 1), 0))";

constexpr const char* kRevokeSession =
    "INSERT OR REPLACE INTO revoked_sessions(nonce, expires_at) VALUES(?1, ?2)";
constexpr const char* kDeleteExpiredRevocations = "DELETE FROM revoked_sessions WHERE expires_at < ?1";
constexpr const char* kLoadRevocations = "SELECT nonce, expires_at FROM revoked_sessions ORDER BY nonce";

constexpr const char* kMetaNextSubscription = "next_subscription_id";
constexpr const char* kMetaReservedRecordIds = "reserved_record_ids";
constexpr const char* kMetaMaxRecord = "max_record_id";
constexpr const char* kMetaLogPosition = "log_position";

double unix_now() {
  using std::chrono::duration;
  return duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

StatusCode code_for(int rc) {
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
    return StatusCode::kAlreadyExists;
  }
  switch (rc & 0xFF) {
    case SQLITE_BUSY: case SQLITE_LOCKED: case SQLITE_FULL: case SQLITE_READONLY:
    case SQLITE_IOERR: case SQLITE_CANTOPEN: case SQLITE_CORRUPT: case SQLITE_NOTADB:
    case SQLITE_PERM: case SQLITE_AUTH: case SQLITE_NOLFS: case SQLITE_PROTOCOL:
      return StatusCode::kUnavailable;
    default:
      return StatusCode::kInternal;
  }
}

// Const methods are thread-safe, non-const methods need external
// synchronization: callers hold `mu` (or are the only thread using the
// connection). One SQLite connection and its cached prepared statements.
class Conn {
 public:
  static Result<std::unique_ptr<Conn>> Open(const std::string& path,
                                            std::chrono::milliseconds busy_timeout) {
    sqlite3* db = nullptr;
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI |
                      SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    std::unique_ptr<Conn> conn(new Conn(db, path));
    if (rc != SQLITE_OK) return conn->Error(rc, "cannot open database");
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, static_cast<int>(std::clamp<int64_t>(
                                 busy_timeout.count(), 0, std::numeric_limits<int>::max())));
    return conn;
  }

  ~Conn() {
    for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  // Not copyable.
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  sqlite3* db() const { return db_; }

  // `what` failed with SQLite result `rc`: a Status naming the path and
  // SQLite's message.
  Status Error(int rc, std::string_view what) const {
    const char* msg = db_ != nullptr && sqlite3_errcode(db_) == rc ? sqlite3_errmsg(db_)
                                                                  : sqlite3_errstr(rc);
    std::string m = "clio store \"" + path_ + "\": ";
    m.append(what);
    m += ": ";
    m += msg;
    m += " (SQLite code " + std::to_string(rc) + ")";
    return Status(code_for(rc), std::move(m));
  }

  // Runs one or more statements without results.
  Status Exec(const char* sql, std::string_view what) {
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? Status::Ok() : Error(rc, what);
  }

  // The cached prepared statement for `sql` (one of the constants above).
  Result<sqlite3_stmt*> Prepare(const char* sql,
                                std::string_view what = "cannot prepare statement") {
    auto it = stmts_.find(sql);
    if (it != stmts_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, what);
    stmts_.emplace(sql, stmt);
    return stmt;
  }

  // Guards every use of this connection except by the writer thread of a
  // file database (which owns its connection alone).
  Mutex mu;

 private:
  Conn(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  // Constant after construction.
  sqlite3* const db_;
  const std::string path_;
  // Guarded by mu (or owned by the writer thread).
  std::unordered_map<const char*, sqlite3_stmt*> stmts_;
};

// Owned by the thread holding the connection. A prepared statement in use:
// resets it and clears its bindings when done.
class Stmt {
 public:
  Stmt(Conn& conn, sqlite3_stmt* stmt) : conn_(conn), stmt_(stmt) {}
  ~Stmt() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  // Not copyable.
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Bind(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  void BindText(int i, std::string_view v) {
    sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8);
  }
  void BindBlob(int i, std::string_view v) {
    // A zero-length blob must not bind as NULL.
    sqlite3_bind_blob64(stmt_, i, v.empty() ? "" : v.data(), v.size(), SQLITE_STATIC);
  }

  // Steps once: true on a row, false when done; an error otherwise.
  Result<bool> Step(std::string_view what) {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return conn_.Error(rc, what);
  }
  // Steps a statement that returns no rows.
  Status Run(std::string_view what) {
    auto r = Step(what);
    return r.ok() ? Status::Ok() : r.status();
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string Bytes(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
  }

 private:
  Conn& conn_;
  sqlite3_stmt* const stmt_;
};

// Owned by the thread holding the connection. A BEGIN IMMEDIATE ... COMMIT
// transaction; rolls back unless committed.
class Txn {
 public:
  explicit Txn(Conn& conn) : conn_(conn) {}
  ~Txn() {
    if (!sqlite3_get_autocommit(conn_.db())) sqlite3_exec(conn_.db(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  // Not copyable.
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  Status Begin(std::string_view what) { return RunCached(kBegin, what); }
  Status Commit(std::string_view what) { return RunCached(kCommit, what); }

 private:
  Status RunCached(const char* sql, std::string_view what) {
    auto stmt = conn_.Prepare(sql);
    if (!stmt.ok()) return stmt.status();
    return Stmt(conn_, *stmt).Run(what);
  }
  Conn& conn_;
};

// Runs a cached statement with bindings applied by `bind`, expecting no rows.
template <typename Bind>
Status run(Conn& conn, const char* sql, std::string_view what, Bind bind) {
  auto prepared = conn.Prepare(sql);
  if (!prepared.ok()) return prepared.status();
  Stmt stmt(conn, *prepared);
  bind(stmt);
  return stmt.Run(what);
}

Status raise_meta(Conn& conn, const char* key, int64_t value) {
  return run(conn, kRaiseMeta, "cannot update meta", [&](Stmt& s) {
    s.BindText(1, key);
    s.Bind(2, value);
  });
}

// Reads the meta row `key`: calls `read` with the statement on its row.
// Returns whether there was one.
template <typename Read>
Result<bool> read_meta(Conn& conn, const char* key, std::string_view what, Read read) {
  auto prepared = conn.Prepare(kGetMeta);
  if (!prepared.ok()) return prepared.status();
  Stmt s(conn, *prepared);
  s.BindText(1, key);
  auto row = s.Step(what);
  if (!row.ok()) return row.status();
  if (*row) read(s);
  return *row;
}

Status check_id(uint64_t id) {
  if (id == 0 || id > kMaxId) {
    return Status::InvalidArgument("subscription id " + std::to_string(id) +
                                   " is outside [1, 2^63-1]");
  }
  return Status::Ok();
}

bool is_memory_path(const std::string& path) {
  return path == ":memory:" || path.rfind("file::memory:", 0) == 0 ||
         (path.rfind("file:", 0) == 0 && path.find("mode=memory") != std::string::npos);
}

// Makes the database and its -wal and -shm files owner-only (they hold the
// server's secrets); whether any had been readable by others.
Result<bool> secure_files(Conn& conn) {
  const char* name = sqlite3_db_filename(conn.db(), "main");
  if (name == nullptr || *name == '\0') return false;
  bool repaired = false;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    auto r = make_private(std::string(name) + suffix);
    if (!r.ok()) return Status(r.status().code(), "clio store: " + r.status().message());
    repaired = repaired || *r;
  }
  return repaired;
}

Status validate(const StoreOptions& o) {
  if (o.path.empty()) return Status::InvalidArgument("clio store: options.path is empty");
  if (o.writer_queue_records == 0 || o.writer_queue_bytes == 0) {
    return Status::InvalidArgument(
        "clio store: options.writer_queue_records and writer_queue_bytes must be >= 1");
  }
  if (o.max_batch_records == 0) {
    return Status::InvalidArgument("clio store: options.max_batch_records must be >= 1");
  }
  if (o.flush_interval.count() < 0 || o.busy_timeout.count() < 0 || o.max_record_age.count() < 0) {
    return Status::InvalidArgument("clio store: options durations must not be negative");
  }
  return Status::Ok();
}

// Sets per-connection pragmas.
Status configure(Conn& conn) {
  return conn.Exec("PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=256",
                   "cannot set synchronous mode");
}

// The first column of the one row `sql` returns (0 if it returns none).
Result<int64_t> scalar(Conn& conn, const char* sql, std::string_view what) {
  auto prepared = conn.Prepare(sql);
  if (!prepared.ok()) return prepared.status();
  Stmt s(conn, *prepared);
  auto row = s.Step(what);
  if (!row.ok()) return row.status();
  return *row ? s.Int(0) : int64_t{0};
}

// Switches to WAL, creates, migrates or checks the schema, and proves the
// database can be written with a write transaction on `meta`.
Status prepare_database(Conn& conn, bool memory) {
  // Takes effect on a new database, and on the VACUUM after a migration.
  CLIO_RETURN_IF_ERROR(conn.Exec(kPageSize, "cannot set the page size"));
  if (!memory) {
    auto mode = scalar(conn, kWal, "cannot switch to WAL mode");
    if (!mode.ok()) return mode.status();
  }
  CLIO_RETURN_IF_ERROR(configure(conn));
  Txn txn(conn);
  CLIO_RETURN_IF_ERROR(txn.Begin("cannot start a write transaction"));
  auto version = scalar(conn, kUserVersion, "cannot read the schema version");
  if (!version.ok()) return version.status();
  if (*version > kSchemaVersion) {
    return Status::Unavailable("clio store: database schema version " + std::to_string(*version) +
                               " is newer than this build supports (" +
                               std::to_string(kSchemaVersion) + ")");
  }
  bool migrated = false;
  if (*version < kSchemaVersion) {
    CLIO_RETURN_IF_ERROR(conn.Exec(kSchema, "cannot create the schema"));
    auto v1 = scalar(conn, kHasV1Records, "cannot read the schema");
    if (!v1.ok()) return v1.status();
    if (*v1 > 0) {
      CLIO_RETURN_IF_ERROR(conn.Exec(kMigrateV1, "cannot migrate the version 1 records table"));
      migrated = true;
    }
    if (*version == 2) {
      auto chunks = scalar(conn, kCountChunks, "cannot read the schema");
      if (!chunks.ok()) return chunks.status();
      if (*chunks > 0) {
        CLIO_RETURN_IF_ERROR(conn.Exec(kMigrateV2, "cannot migrate the version 2 chunks"));
        migrated = true;
      }
    }
    CLIO_RETURN_IF_ERROR(conn.Exec(kSetUserVersion, "cannot set the schema version"));
  }
  CLIO_RETURN_IF_ERROR(run(conn, kSetMeta, "cannot write to the database", [](Stmt& s) {
    s.BindText(1, "opened_at");
    s.Bind(2, unix_now());
  }));
  CLIO_RETURN_IF_ERROR(txn.Commit("cannot commit to the database"));
  if (migrated && !memory) {
    // Rebuilds the (now small) file with the new page size. WAL forbids
    // changing it, and VACUUM fails while another process has the file
    // open; the store works with any page size, so that failure is ignored.
    (void)conn.Exec("PRAGMA journal_mode=DELETE; VACUUM", "cannot rebuild the database");
    auto mode = scalar(conn, kWal, "cannot switch to WAL mode");
    if (!mode.ok()) return mode.status();
  }
  return Status::Ok();
}

// Whether `body` is exactly `count` encoded records.
bool holds_records(std::string_view body, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (!skip_binary(body)) return false;
  }
  return body.empty();
}

// A chunk append_chunk() accepts: see store.h.
bool well_formed(const RecordChunk& c) {
  return c.count > 0 && c.first_id >= 1 && c.first_id <= kMaxId &&
         c.count - 1 <= kMaxId - c.first_id && !(c.min_time > c.max_time) &&
         holds_records(c.body, c.count);
}

uint64_t thread_cpu_ns() {
  timespec ts{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Runs a cached DELETE ... RETURNING count and returns the sum of the counts.
template <typename Bind>
Result<uint64_t> delete_counting(Conn& conn, const char* sql, std::string_view what, Bind bind) {
  auto prepared = conn.Prepare(sql);
  if (!prepared.ok()) return prepared.status();
  Stmt s(conn, *prepared);
  bind(s);
  uint64_t n = 0;
  for (;;) {
    auto row = s.Step(what);
    if (!row.ok()) return row.status();
    if (!*row) return n;
    n += static_cast<uint64_t>(s.Int(0));
  }
}

// A chunk as read back: its ids and its encoded records.
struct StoredChunk {
  uint64_t first_id = 0;
  uint64_t count = 0;
  std::string body;
};

}  // namespace

// Safe for concurrent use by multiple threads, as Store. The state behind a
// Store: connections, the writer thread and its queue.
struct [[gnu::visibility("hidden")]] Store::Impl {
  // Constant after construction.
  StoreOptions options;
  std::vector<std::unique_ptr<Conn>> conns;  // one for :memory:, three for a file
  bool shared_conn = false;                  // all roles use conns[0]
  bool repaired_permissions = false;         // open() made the files owner-only
  Conn* writer = nullptr;  // chunks; used only by the writer thread (locks mu when shared)
  Conn* api = nullptr;     // secrets and subscriptions; guarded by api->mu
  Conn* reader = nullptr;  // recent(), scan(), max_record_id(); guarded by reader->mu
  std::thread thread;      // the writer thread

  // Owned by the writer thread (set by open() before it starts): what the
  // committed chunks table holds.
  uint64_t stored_records = 0;  // sum of `count` over stored chunks
  uint64_t max_written = 0;     // the highest id ever written

  mutable Mutex mu;
  CondVar work_cv;  // wakes the writer
  CondVar done_cv;  // wakes flush()
  // Guarded by mu.
  std::deque<RecordChunk> queue CLIO_GUARDED_BY(mu);
  std::vector<std::string> spare_buffers CLIO_GUARDED_BY(mu);  // cleared body buffers of written chunks
  size_t queued_records CLIO_GUARDED_BY(mu) = 0;  // sum of `count` over `queue`
  size_t queued_bytes CLIO_GUARDED_BY(mu) = 0;  // sum of body sizes over `queue`
  std::chrono::steady_clock::time_point first_queued CLIO_GUARDED_BY(mu);  // when queue became non-empty
  uint64_t appended_seq CLIO_GUARDED_BY(mu) = 0;  // records accepted by append_chunk()
  uint64_t done_seq CLIO_GUARDED_BY(mu) = 0;  // records committed or lost, in append order
  uint64_t flush_target CLIO_GUARDED_BY(mu) = 0;  // a flush() waits for done_seq to reach this
  uint64_t last_failure_end CLIO_GUARDED_BY(mu) = 0;  // done_seq after the latest failed batch
  uint64_t written CLIO_GUARDED_BY(mu) = 0;
  uint64_t dropped CLIO_GUARDED_BY(mu) = 0;
  uint64_t write_errors CLIO_GUARDED_BY(mu) = 0;
  uint64_t lost CLIO_GUARDED_BY(mu) = 0;
  uint64_t writer_cpu_ns CLIO_GUARDED_BY(mu) = 0;
  Status last_error CLIO_GUARDED_BY(mu);
  bool stop CLIO_GUARDED_BY(mu) = false;

  bool Append(RecordChunk&& chunk) CLIO_EXCLUDES(mu);
  void WriterLoop() CLIO_EXCLUDES(mu);
  // Writes `batch` in one transaction; on failure nothing is written and the
  // writer's view of the table is restored.
  Status WriteBatch(const std::vector<RecordChunk>& batch);
  Status WriteBatchTxn(Conn& conn, const std::vector<RecordChunk>& batch);
  Status PruneByCount(Conn& conn);
  // Reads stored chunks with first_id <= max_id, newest first, into `out`
  // (replacing its contents), until they hold at least `want` ids <= max_id
  // or about kReadGroupBytes of chunk bodies. Locks the reader connection.
  Status ReadChunks(uint64_t max_id, uint64_t want, std::vector<StoredChunk>& out);
  // scan() without the std::function: `fn` returns false to stop.
  template <typename Fn>
  Status Walk(uint64_t before_id, uint64_t max_records, Fn&& fn);
};

bool Store::Impl::Append(RecordChunk&& chunk) {
  const bool ok = well_formed(chunk);
  MutexLock lock(&mu);
  if (!ok || chunk.count > options.writer_queue_records - queued_records ||
      chunk.body.size() > options.writer_queue_bytes - queued_bytes) {
    dropped += chunk.count;
    return false;
  }
  if (queue.empty()) first_queued = std::chrono::steady_clock::now();
  queued_records += chunk.count;
  queued_bytes += chunk.body.size();
  appended_seq += chunk.count;
  queue.push_back(std::move(chunk));
  if (queue.size() == 1 || queued_records >= options.max_batch_records) work_cv.Signal();
  return true;
}

void Store::Impl::WriterLoop() {
  std::vector<RecordChunk> batch;
  MutexLock lock(&mu);
  for (;;) {
    while (!stop && queue.empty()) work_cv.Wait(&mu);
    if (queue.empty()) return;  // stopping, nothing left
    const auto due = first_queued + options.flush_interval;
    while (!stop && flush_target <= done_seq && queued_records < options.max_batch_records &&
           work_cv.WaitUntil(&mu, due)) {
    }
    size_t n = 0, bytes = 0;
    while (!queue.empty() && (batch.empty() || n < options.max_batch_records)) {
      n += queue.front().count;
      bytes += queue.front().body.size();
      batch.push_back(std::move(queue.front()));
      queue.pop_front();
    }
    queued_records -= n;
    queued_bytes -= bytes;
    if (!queue.empty()) first_queued = std::chrono::steady_clock::now();
    mu.Unlock();
    Status s = WriteBatch(batch);
    const uint64_t cpu = thread_cpu_ns();
    mu.Lock();
    for (RecordChunk& c : batch) {
      if (spare_buffers.size() >= kSpareBuffers) break;
      if (c.body.capacity() > kMaxSpareBuffer) continue;
      c.body.clear();
      spare_buffers.push_back(std::move(c.body));
    }
    batch.clear();
    done_seq += n;
    writer_cpu_ns = cpu;
    if (s.ok()) {
      written += n;
    } else {
      ++write_errors;
      lost += n;
      last_error = std::move(s);
      last_failure_end = done_seq;
    }
    done_cv.SignalAll();
  }
}

Status Store::Impl::WriteBatch(const std::vector<RecordChunk>& batch) {
  auto write = [&] {
    const uint64_t stored_before = stored_records;
    const uint64_t max_before = max_written;
    Status s = WriteBatchTxn(*writer, batch);
    if (!s.ok()) {  // rolled back
      stored_records = stored_before;
      max_written = max_before;
    }
    return s;
  };
  if (!shared_conn) return write();
  MutexLock lock(&writer->mu);  // the connection is shared with the other roles
  return write();
}

Status Store::Impl::WriteBatchTxn(Conn& conn, const std::vector<RecordChunk>& batch) {
  Txn txn(conn);
  CLIO_RETURN_IF_ERROR(txn.Begin("cannot start a record batch"));
  auto insert = conn.Prepare(kInsertChunk);
  if (!insert.ok()) return insert.status();
  for (const RecordChunk& c : batch) {
    const uint64_t last = c.first_id + (c.count - 1);
    if (c.first_id <= max_written) {  // may overlap stored chunks: replace them
      auto removed = delete_counting(conn, kDeleteOverlapping, "cannot replace records",
                                     [&](Stmt& s) {
                                       s.Bind(1, static_cast<int64_t>(c.first_id));
                                       s.Bind(2, static_cast<int64_t>(last));
                                     });
      if (!removed.ok()) return removed.status();
      stored_records -= std::min(stored_records, *removed);
    }
    Stmt s(conn, *insert);
    s.Bind(1, static_cast<int64_t>(c.first_id));
    s.Bind(2, static_cast<int64_t>(last));
    s.Bind(3, static_cast<int64_t>(c.count));
    s.Bind(4, c.min_time);  // a non-finite time binds as NULL
    s.Bind(5, c.max_time);
    s.BindBlob(6, c.body);
    CLIO_RETURN_IF_ERROR(s.Run("cannot insert records"));
    stored_records += c.count;
    max_written = std::max(max_written, last);
  }
  CLIO_RETURN_IF_ERROR(raise_meta(conn, kMetaMaxRecord, static_cast<int64_t>(max_written)));
  for (auto c = batch.rbegin(); c != batch.rend(); ++c) {
    if (c->log_position.empty()) continue;
    CLIO_RETURN_IF_ERROR(run(conn, kSetMeta, "cannot save the log position", [&](Stmt& s) {
      s.BindText(1, kMetaLogPosition);
      s.BindText(2, c->log_position);
    }));
    break;
  }
  if (options.max_record_age.count() > 0) {
    const double cutoff = unix_now() - static_cast<double>(options.max_record_age.count());
    auto removed = delete_counting(conn, kPruneByAge, "cannot prune records by age",
                                   [&](Stmt& s) { s.Bind(1, cutoff); });
    if (!removed.ok()) return removed.status();
    stored_records -= std::min(stored_records, *removed);
  }
  if (options.max_records > 0 && stored_records > options.max_records) {
    CLIO_RETURN_IF_ERROR(PruneByCount(conn));
  }
  return txn.Commit("cannot commit a record batch");
}

Status Store::Impl::PruneByCount(Conn& conn) {
  // Walk the oldest chunks, dropping each while the rest still hold at
  // least max_records; then delete them with one range statement.
  uint64_t drop = 0;
  int64_t through = 0;
  {
    auto prepared = conn.Prepare(kOldestChunks);
    if (!prepared.ok()) return prepared.status();
    Stmt s(conn, *prepared);
    for (;;) {
      auto row = s.Step("cannot read the oldest records");
      if (!row.ok()) return row.status();
      if (!*row) break;
      const auto count = static_cast<uint64_t>(s.Int(1));
      if (stored_records - drop < count || stored_records - drop - count < options.max_records) {
        break;
      }
      drop += count;
      through = s.Int(0);
    }
  }
  if (drop == 0) return Status::Ok();
  CLIO_RETURN_IF_ERROR(run(conn, kPruneThrough, "cannot prune records by count",
                           [&](Stmt& s) { s.Bind(1, through); }));
  stored_records -= drop;
  return Status::Ok();
}

Status Store::Impl::ReadChunks(uint64_t max_id, uint64_t want, std::vector<StoredChunk>& out) {
  out.clear();
  Conn& conn = *reader;
  MutexLock lock(&conn.mu);
  auto prepared = conn.Prepare(kReadChunks);
  if (!prepared.ok()) return prepared.status();
  Stmt s(conn, *prepared);
  s.Bind(1, static_cast<int64_t>(max_id));
  uint64_t ids = 0;
  size_t bytes = 0;
  while (ids < want && bytes < kReadGroupBytes) {
    auto row = s.Step("cannot read records");
    if (!row.ok()) return row.status();
    if (!*row) break;
    StoredChunk& c = out.emplace_back();
    c.first_id = static_cast<uint64_t>(s.Int(0));
    c.count = static_cast<uint64_t>(std::max<int64_t>(0, s.Int(1)));
    c.body = s.Bytes(2);
    bytes += c.body.size();
    const uint64_t last = c.count == 0 ? c.first_id : c.first_id + (c.count - 1);
    ids += std::min(last, max_id) - c.first_id + 1;
  }
  return Status::Ok();
}

template <typename Fn>
Status Store::Impl::Walk(uint64_t before_id, uint64_t max_records, Fn&& fn) {
  if (before_id == 1) return Status::Ok();
  uint64_t max_id = before_id == 0 || before_id > kMaxId ? kMaxId : before_id - 1;
  uint64_t left = max_records;
  std::vector<StoredChunk> group;
  std::vector<size_t> starts;  // offsets of the records of one chunk
  while (left > 0 && max_id >= 1) {
    CLIO_RETURN_IF_ERROR(ReadChunks(max_id, left, group));
    if (group.empty()) break;
    for (const StoredChunk& c : group) {
      const std::string_view body = c.body;
      // Where each record starts: a record is found by skipping the ones
      // before it, so a damaged record hides the rest of its chunk.
      starts.clear();
      std::string_view rest = body;
      bool damaged = false;
      while (!rest.empty() && starts.size() < c.count) {
        starts.push_back(body.size() - rest.size());
        if (!skip_binary(rest)) {
          damaged = true;
          break;
        }
      }
      if (c.count == 0 || (!damaged && (starts.size() != c.count || !rest.empty()))) {
        return Status::Internal("clio store: stored chunk " + std::to_string(c.first_id) +
                                " does not hold exactly its " + std::to_string(c.count) + " records");
      }
      // Records k = newest wanted index .. 0; the id of record k is first_id + k.
      for (uint64_t k = std::min<uint64_t>(c.count - 1, max_id - c.first_id) + 1; k-- > 0;) {
        // Past a damaged record (the last start), report the damaged one.
        const uint64_t at = std::min<uint64_t>(k, starts.size() - 1);
        const uint64_t id = c.first_id + k;
        Record record;
        std::string_view in = body.substr(starts[at]);
        Status st = decode_binary(in, record);
        if (!st.ok() || at != k) {
          return Status::Internal("clio store: stored record " + std::to_string(c.first_id + at) +
                                  " does not decode: " + (st.ok() ? "" : st.message()));
        }
        record.id = id;
        --left;
        if (!fn(std::move(record)) || left == 0) return Status::Ok();
      }
      max_id = c.first_id - 1;
      if (max_id == 0) break;
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  CLIO_RETURN_IF_ERROR(validate(options));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->shared_conn = is_memory_path(options.path);
  if (!impl->shared_conn && options.path.rfind("file:", 0) != 0 && access(options.path.c_str(), F_OK) != 0) {
    // A new file is created owner-only before SQLite opens it, so no other
    // user can open it while it is readable; SQLite gives -wal and -shm
    // the same mode. Where that fails, SQLite's open says why.
    (void)make_private(options.path, /*create=*/true);
  }
  auto first = Conn::Open(options.path, options.busy_timeout);
  if (!first.ok()) return first.status();
  CLIO_RETURN_IF_ERROR(prepare_database(**first, impl->shared_conn));
  if (!impl->shared_conn) {
    auto secured = secure_files(**first);
    if (!secured.ok()) return secured.status();
    impl->repaired_permissions = *secured;
  }
  auto stored = scalar(**first, kStoredRecords, "cannot count the stored records");
  if (!stored.ok()) return stored.status();
  auto max_id = scalar(**first, kMaxRecordId, "cannot read the highest record id");
  if (!max_id.ok()) return max_id.status();
  impl->stored_records = static_cast<uint64_t>(std::max<int64_t>(0, *stored));
  impl->max_written = static_cast<uint64_t>(std::max<int64_t>(0, *max_id));
  impl->conns.push_back(std::move(*first));
  if (!impl->shared_conn) {
    for (int i = 0; i < 2; ++i) {
      auto conn = Conn::Open(options.path, options.busy_timeout);
      if (!conn.ok()) return conn.status();
      CLIO_RETURN_IF_ERROR(configure(**conn));
      impl->conns.push_back(std::move(*conn));
    }
  }
  impl->writer = impl->conns[0].get();
  impl->api = impl->conns[impl->shared_conn ? 0 : 1].get();
  impl->reader = impl->conns[impl->shared_conn ? 0 : 2].get();
  try {
    impl->thread = std::thread([p = impl.get()] {
      pthread_setname_np(pthread_self(), "clio-store");
      p->WriterLoop();
    });
  } catch (const std::system_error& e) {
    return Status::Internal(std::string("clio store: cannot start the writer thread: ") + e.what());
  }
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Store::~Store() {
  {
    MutexLock lock(&impl_->mu);
    impl_->stop = true;
  }
  impl_->work_cv.Signal();
  impl_->thread.join();
}

// --- Secrets

Result<std::string> Store::get_or_create_secret(std::string_view name, size_t bytes) {
  if (name.empty()) return Status::InvalidArgument("clio store: secret name is empty");
  if (bytes == 0 || bytes > kMaxSecretBytes) {
    return Status::InvalidArgument("clio store: secret size " + std::to_string(bytes) +
                                   " is outside [1, " + std::to_string(kMaxSecretBytes) + "]");
  }
  Conn& conn = *impl_->api;
  MutexLock lock(&conn.mu);
  Txn txn(conn);
  CLIO_RETURN_IF_ERROR(txn.Begin("cannot start a transaction"));
  {
    auto prepared = conn.Prepare(kGetSecret);
    if (!prepared.ok()) return prepared.status();
    Stmt s(conn, *prepared);
    s.BindText(1, name);
    auto row = s.Step("cannot read secret");
    if (!row.ok()) return row.status();
    if (*row) return s.Bytes(0);  // the transaction rolls back: nothing written
  }
  std::string value(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(value.data()), static_cast<int>(bytes)) != 1) {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    return Status::Internal(std::string("clio store: RAND_bytes failed: ") + buf);
  }
  CLIO_RETURN_IF_ERROR(run(conn, kPutSecret, "cannot store secret", [&](Stmt& s) {
    s.BindText(1, name);
    s.BindBlob(2, value);
  }));
  CLIO_RETURN_IF_ERROR(txn.Commit("cannot commit secret"));
  return value;
}

Status Store::put_secret(std::string_view name, std::string_view value) {
  if (name.empty()) return Status::InvalidArgument("clio store: secret name is empty");
  Conn& conn = *impl_->api;
  MutexLock lock(&conn.mu);
  return run(conn, kPutSecret, "cannot store secret", [&](Stmt& s) {
    s.BindText(1, name);
    s.BindBlob(2, value);
  });
}

bool Store::repaired_permissions() const { return impl_->repaired_permissions; }

// --- Revoked admin sessions

Status Store::revoke_session(std::string_view nonce, int64_t expires_at) {
  if (nonce.empty()) return Status::InvalidArgument("clio store: session nonce is empty");
  Conn& conn = *impl_->api;
  MutexLock lock(&conn.mu);
  return run(conn, kRevokeSession, "cannot store a revoked session", [&](Stmt& s) {
    s.BindText(1, nonce);
    s.Bind(2, expires_at);
  });
}

Result<std::vector<std::pair<std::string, int64_t>>> Store::revoked_sessions(int64_t now) {
  Conn& conn = *impl_->api;
  MutexLock lock(&conn.mu);
  CLIO_RETURN_IF_ERROR(run(conn, kDeleteExpiredRevocations, "cannot delete expired revocations",
                           [&](Stmt& s) { s.Bind(1, now); }));
  auto prepared = conn.Prepare(kLoadRevocations);
  if (!prepared.ok()) return prepared.status();
  Stmt s(conn, *prepared);
  std::vector<std::pair<std::string, int64_t>> out;
  for (;;) {
    auto row = s.Step("cannot load revoked sessions");
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.emplace_back(s.Bytes(0), s.Int(1));
  }
  return out;
}

// --- Reserved record ids

Result<uint64_t> Store::reserved_record_ids() {
  Conn& conn = *impl_->api;
  MutexLock lock(&conn.mu);
  uint64_t reserved = 0;
  auto read = read_meta(conn, kMetaReservedRecordIds, "cannot read the reserved record ids",
                        [&](Stmt& s) { reserved = static_cast<uint64_t>(std::max<int64_t>(0, s.Int(0))); });
  if (!read.ok()) return read.status();
  return reserved;
}

Status Store::reserve_record_ids(uint64_t through) {
  if (through > kMaxId) return Status::InvalidArgument("clio store: record ids are exhausted");
  Conn& conn = *impl_->api;
  MutexLock lock(&conn.mu);
  return raise_meta(conn, kMetaReservedRecordIds, static_cast<int64_t>(through));
}

// --- Subscriptions

Result<uint64_t> Store::next_subscription_id() {
  Conn& conn = *impl_->api;
  MutexLock lock(&conn.mu);
  Txn txn(conn);
  CLIO_RETURN_IF_ERROR(txn.Begin("cannot start a transaction"));
  int64_t next = 1;
  auto read = read_meta(conn, kMetaNextSubscription, "cannot read the subscription id counter",
                        [&](Stmt& s) { next = std::max<int64_t>(1, s.Int(0)); });
  if (!read.ok()) return read.status();
  if (static_cast<uint64_t>(next) >= kMaxId) {
    return Status::ResourceExhausted("clio store: subscription ids are exhausted");
  }
  CLIO_RETURN_IF_ERROR(raise_meta(conn, kMetaNextSubscription, next + 1));
  CLIO_RETURN_IF_ERROR(txn.Commit("cannot commit the subscription id counter"));
  return static_cast<uint64_t>(next);
}

Status Store::insert_subscription(const StoredSubscription& sub) {
  CLIO_RETURN_IF_ERROR(check_id(sub.id));
  if (!std::isfinite(sub.created) || !std::isfinite(sub.lease_expires)) {
    return Status::InvalidArgument("clio store: subscription times must be finite");
  }
  Conn& conn = *impl_->api;
  MutexLock lock(&conn.mu);
  Txn txn(conn);
  CLIO_RETURN_IF_ERROR(txn.Begin("cannot start a transaction"));
  Status inserted = run(conn, kInsertSub, "cannot insert subscription", [&](Stmt& s) {
    s.Bind(1, static_cast<int64_t>(sub.id));
    s.BindText(2, sub.client_id);
    s.BindText(3, sub.query);
    s.Bind(4, sub.created);
    s.Bind(5, sub.lease_expires);
  });
  if (inserted.code() == StatusCode::kAlreadyExists) {
    return Status::AlreadyExists("clio store: subscription id " + std::to_string(sub.id) +
                                 " already exists");
  }
  CLIO_RETURN_IF_ERROR(inserted);
  if (sub.id < kMaxId) {
    CLIO_RETURN_IF_ERROR(
        raise_meta(conn, kMetaNextSubscription, static_cast<int64_t>(sub.id) + 1));
  }
  return txn.Commit("cannot commit subscription");
}

Status Store::delete_subscription(uint64_t id) {
  CLIO_RETURN_IF_ERROR(check_id(id));
  Conn& conn = *impl_->api;
  MutexLock lock(&conn.mu);
  CLIO_RETURN_IF_ERROR(run(conn, kDeleteSub, "cannot delete subscription",
                           [&](Stmt& s) { s.Bind(1, static_cast<int64_t>(id)); }));
  if (sqlite3_changes64(conn.db()) == 0) {
    return Status::NotFound("clio store: no subscription with id " + std::to_string(id));
  }
  return Status::Ok();
}

Status Store::set_lease(std::string_view client_id, double lease_expires) {
  if (!std::isfinite(lease_expires)) {
    return Status::InvalidArgument("clio store: lease_expires must be finite");
  }
  Conn& conn = *impl_->api;
  MutexLock lock(&conn.mu);
  return run(conn, kSetLease, "cannot set lease", [&](Stmt& s) {
    s.BindText(1, client_id);
    s.Bind(2, lease_expires);
  });
}

Result<std::vector<uint64_t>> Store::delete_expired_subscriptions(double now) {
  Conn& conn = *impl_->api;
  MutexLock lock(&conn.mu);
  Txn txn(conn);
  CLIO_RETURN_IF_ERROR(txn.Begin("cannot start a transaction"));
  std::vector<uint64_t> ids;
  {
    auto prepared = conn.Prepare(kSelectExpired);
    if (!prepared.ok()) return prepared.status();
    Stmt s(conn, *prepared);
    s.Bind(1, now);
    for (;;) {
      auto row = s.Step("cannot read expired subscriptions");
      if (!row.ok()) return row.status();
      if (!*row) break;
      ids.push_back(static_cast<uint64_t>(s.Int(0)));
    }
  }
  if (ids.empty()) return ids;
  CLIO_RETURN_IF_ERROR(run(conn, kDeleteExpired, "cannot delete expired subscriptions",
                           [&](Stmt& s) { s.Bind(1, now); }));
  CLIO_RETURN_IF_ERROR(txn.Commit("cannot commit expired subscriptions"));
  return ids;
}

Result<std::vector<StoredSubscription>> Store::load_subscriptions() {
  Conn& conn = *impl_->api;
  MutexLock lock(&conn.mu);
  auto prepared = conn.Prepare(kLoadSubs);
  if (!prepared.ok()) return prepared.status();
  Stmt s(conn, *prepared);
  std::vector<StoredSubscription> subs;
  for (;;) {
    auto row = s.Step("cannot load subscriptions");
    if (!row.ok()) return row.status();
    if (!*row) break;
    StoredSubscription& sub = subs.emplace_back();
    sub.id = static_cast<uint64_t>(s.Int(0));
    sub.client_id = s.Bytes(1);
    sub.query = s.Bytes(2);
    sub.created = s.Double(3);
    sub.lease_expires = s.Double(4);
  }
  return subs;
}

// --- Records

bool Store::append_chunk(RecordChunk chunk) { return impl_->Append(std::move(chunk)); }

std::string Store::take_buffer() {
  MutexLock lock(&impl_->mu);
  if (impl_->spare_buffers.empty()) return {};
  std::string b = std::move(impl_->spare_buffers.back());
  impl_->spare_buffers.pop_back();
  return b;
}

Status Store::flush() {
  Impl& m = *impl_;
  MutexLock lock(&m.mu);
  const uint64_t target = m.appended_seq;
  const uint64_t start = m.done_seq;
  if (m.done_seq >= target) return Status::Ok();
  m.flush_target = std::max(m.flush_target, target);
  m.work_cv.Signal();
  while (m.done_seq < target) m.done_cv.Wait(&m.mu);
  if (m.last_failure_end > start) return m.last_error;
  return Status::Ok();
}

Result<std::vector<Record>> Store::recent(size_t limit, uint64_t before_id) {
  std::vector<Record> out;
  out.reserve(std::min<size_t>(limit, 1024));
  CLIO_RETURN_IF_ERROR(impl_->Walk(before_id, limit, [&](Record&& r) {
    out.push_back(std::move(r));
    return true;
  }));
  return out;
}

Status Store::scan(uint64_t before_id, size_t max_records,
                   const std::function<bool(Record&&)>& fn) {
  return impl_->Walk(before_id, max_records, [&](Record&& r) { return fn(std::move(r)); });
}

Result<uint64_t> Store::max_record_id() {
  Conn& conn = *impl_->reader;
  MutexLock lock(&conn.mu);
  auto id = scalar(conn, kMaxRecordId, "cannot read the highest record id");
  if (!id.ok()) return id.status();
  return static_cast<uint64_t>(std::max<int64_t>(0, *id));
}

Result<std::string> Store::log_position() {
  Conn& conn = *impl_->reader;
  MutexLock lock(&conn.mu);
  std::string position;
  auto read = read_meta(conn, kMetaLogPosition, "cannot read the log position",
                        [&](Stmt& s) { position = s.Bytes(0); });
  if (!read.ok()) return read.status();
  return position;
}

Store::Stats Store::stats() const {
  MutexLock lock(&impl_->mu);
  Stats st;
  st.written = impl_->written;
  st.dropped = impl_->dropped;
  st.write_errors = impl_->write_errors;
  st.lost = impl_->lost;
  st.queued = static_cast<size_t>(impl_->appended_seq - impl_->done_seq);
  st.writer_cpu_ns = impl_->writer_cpu_ns;
  return st;
}

Status Store::last_write_error() const {
  MutexLock lock(&impl_->mu);
  return impl_->last_error;
}

}  // namespace clio::console
