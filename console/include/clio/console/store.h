// The inspector's SQLite store: subscriptions, server secrets and a bounded
// set of recent records kept as chunks of binary-encoded records
// (record_binary.h), in one database file.
//
//   clio::console::StoreOptions opts;  // opts.path = "clio.db" by default
//   auto store = clio::console::Store::open(opts);
//   if (!store.ok()) { std::cerr << store.status().message() << "\n"; return 1; }
//   (*store)->append_chunk(std::move(chunk));          // async; never blocks
//   auto page = (*store)->recent(50);                  // newest first
//
// Decisions:
// - Connections. A file database gets three connections: one owned by the
//   writer thread (records), one for subscriptions and secrets, one for
//   reading records; WAL lets readers run while the writer commits. Each
//   non-writer connection is guarded by its own mutex. ":memory:" gets ONE
//   connection shared by all three roles under one mutex (a second
//   connection would see a different, empty database, and a shared-cache
//   URI trades that for table-level SQLITE_LOCKED errors that busy_timeout
//   does not retry).
// - Durability: journal_mode=WAL, synchronous=NORMAL (a committed batch
//   survives an app crash; the last batches may be lost on power loss).
// - Cost: 64 KiB pages (set on a new file; a migrated version-1 file is
//   rebuilt with them when no other process has it open) and a checkpoint
//   every 256 WAL pages (the WAL stays near 16 MiB). Both cut the writer's
//   system calls per record: measured with bench/store_bench, 4 KiB pages
//   cost the writer about three times the CPU per record.
// - Files: the database and its -wal and -shm files hold the server's
//   secrets, so they are owner-only (0600) whatever the umask: a new file
//   is created 0600 before SQLite opens it, and once SQLite has opened the
//   database, any of the three that group or others could read is repaired
//   (repaired_permissions()); a file Clio cannot repair (another owner)
//   fails open().
// - Schema: versioned with PRAGMA user_version (currently 4; version 4
//   added revoked_sessions). A database
//   written by a newer schema is refused at open(), never modified. An
//   older one is migrated at open() by dropping its records: version 1's
//   records table (one row per record), version 2's chunks (JSON lines).
//   Records are a cache; subscriptions, secrets and the highest record id
//   are kept.
// - Encoding: binary (record_binary.h), not JSON: about a third of the
//   JSON's size and cheaper for the dispatcher to produce. Measured in the
//   demo under load (README, "End to end"): the writer's CPU per record fell
//   from 0.94 to 0.30 us and the dispatcher's from 1.30 to 0.84 us.
// - open() proves the database is writable with a write transaction on the
//   `meta` table; any failure names the path and SQLite's message.
// - Records are stored as chunks: one row per RecordChunk (first_id is the
//   primary key; last_id, count, min_time, max_time; body = the records'
//   encodings, one after another), one INSERT per chunk. A record's id is
//   its position in its chunk (the encoding has none). Reads decode only the
//   records they return.
// - Ids are expected to increase from chunk to chunk. A chunk whose ids
//   overlap stored records replaces every stored chunk it overlaps, whole
//   (so a reused id never appears twice; the overlapped chunks' other
//   records go too).
// - Pruning, in each write transaction, drops whole chunks: by count, the
//   oldest chunks while the records left would still number at least
//   max_records (so up to max_records + one chunk's count - 1 are kept); by
//   age, every chunk whose newest `time` (max_time) is older than
//   max_record_age (so a chunk keeps an old record while it holds a young
//   one; a chunk with a non-finite max_time is pruned by count only).
// - The highest record id ever written is kept in `meta`, so
//   max_record_id() survives pruning of every record (ids are never reused).
// - Subscription ids come from a persisted counter in `meta`;
//   insert_subscription() raises the counter above any id it stores.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clio/base/status.h"
#include "clio/middleware/record.h"

namespace clio::console {

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value). Defaults suit a production inspector.
struct StoreOptions {
  // Database file. ":memory:" for tests; a "file:" URI is accepted too.
  std::string path = "clio.db";
  // The store keeps at most about this many records (the highest ids; see
  // the pruning decision above); 0 = no bound by count.
  size_t max_records = 100000;
  // ... and drops chunks whose newest `time` is older than this; 0 = no bound.
  std::chrono::seconds max_record_age{24 * 3600};
  // Bounds of the writer's queue, in records and in bytes of chunk bodies.
  // append_chunk() refuses a chunk that would exceed either (so a chunk
  // larger than a bound is always refused) and counts its records in
  // Stats::dropped. Must be >= 1.
  size_t writer_queue_records = 65536;
  size_t writer_queue_bytes = size_t{256} << 20;
  // The writer commits a batch at most this long after its first chunk was
  // appended (sooner when max_batch_records are waiting or flush() is called).
  // Longer batches cost less per record (measured at 20,000 records/s in
  // chunks of 20: 50 ms -> ~0.95 us of writer CPU per record, 200 ms -> ~0.7).
  std::chrono::milliseconds flush_interval{200};
  // The writer takes queued chunks into one transaction until they hold at
  // least this many records (one chunk is never split). Must be >= 1.
  size_t max_batch_records = 4096;
  // How long a statement waits for another connection's lock (SQLite
  // busy_timeout) before failing with "database is locked".
  std::chrono::milliseconds busy_timeout{5000};
};

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value). One dispatcher batch of consecutive
// records, already encoded.
struct RecordChunk {
  uint64_t first_id = 0;  // ids are consecutive: first_id .. first_id + count - 1
  size_t count = 0;
  double min_time = 0, max_time = 0;  // of the records' `time`
  std::string body;  // `count` records, each clio::append_binary(record), in id order
  // When not empty: the record log's position after these records, saved in
  // the same transaction (log_position()), so a restarted hub resumes
  // exactly after what it stored.
  std::string log_position;
};

// Const methods are thread-safe, non-const methods need external
// synchronization (a plain value). A subscription as stored; the store does
// not interpret `query`.
struct StoredSubscription {
  uint64_t id = 0;            // from next_subscription_id(); in [1, 2^63-1]
  std::string client_id;      // the channel client that owns it
  std::string query;          // the query text as the admin typed it
  double created = 0;         // unix time (seconds)
  double lease_expires = 0;   // 0 = client connected; else unix time the grace ends
};

// Safe for concurrent use by multiple threads. Owns a writer thread that
// writes appended chunks in batched transactions; everything else runs
// synchronously on the calling thread (small statements; scan() calls its
// callback with no lock held).
class Store {
 public:
  // Opens or creates the database at options.path, switches it to WAL,
  // creates, migrates or checks the schema, proves it can write, and starts
  // the writer thread. An unopenable, unwritable, corrupt or newer-schema
  // database is an error (kUnavailable) naming the path and SQLite's
  // message; bad options are kInvalidArgument.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options);

  // Flushes everything appended, stops the writer thread, closes the
  // database. No other call may run concurrently with the destructor.
  ~Store();

  // Not copyable.
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // --- Secrets (channel HMAC secret, generated admin key). Values are raw bytes.

  // The stored value of `name`; if there is none, stores `bytes` random bytes
  // (OpenSSL RAND_bytes) and returns them. An existing value is returned as
  // stored, whatever its length. `bytes` must be in [1, 4096].
  Result<std::string> get_or_create_secret(std::string_view name, size_t bytes);
  // Stores (or replaces) the value of `name`.
  Status put_secret(std::string_view name, std::string_view value);
  // Whether open() found the database file, or its -wal or -shm, readable
  // by group or others and made it owner-only (its secrets may have been
  // read: rotate them).
  bool repaired_permissions() const;

  // --- Admin sessions revoked by logging out, kept until they expire.

  Status revoke_session(std::string_view nonce, int64_t expires_at);
  // Deletes the revocations that expired before `now`; returns the others
  // as (nonce, expires_at).
  Result<std::vector<std::pair<std::string, int64_t>>> revoked_sessions(int64_t now);

  // --- Record ids reserved by a log that numbers records itself (the
  // in-process log reserves them in blocks, so a crash never reuses one).

  // The highest id reserved (0 if none).
  Result<uint64_t> reserved_record_ids();
  // Raises the reservation to `through` (never lowers it). Committed when
  // it returns: it survives a crash of the process (not a power loss:
  // synchronous=NORMAL).
  Status reserve_record_ids(uint64_t through);

  // --- Subscriptions (synchronous; each call is one small transaction).

  // A new id, strictly greater than every id returned or inserted before,
  // also across reopening the database (never reused).
  Result<uint64_t> next_subscription_id();
  // kAlreadyExists if the id is taken; kInvalidArgument for id 0 or >= 2^63.
  Status insert_subscription(const StoredSubscription& subscription);
  // kNotFound if no subscription has that id.
  Status delete_subscription(uint64_t id);
  // Sets lease_expires of every subscription of `client_id` (0 = connected).
  // A client without subscriptions is not an error.
  Status set_lease(std::string_view client_id, double lease_expires);
  // Deletes the subscriptions whose lease ended (0 < lease_expires <= now)
  // and returns their ids in increasing order.
  Result<std::vector<uint64_t>> delete_expired_subscriptions(double now);
  // Every stored subscription, by increasing id.
  Result<std::vector<StoredSubscription>> load_subscriptions();

  // --- Records.

  // Queues the chunk for the writer thread (takes it by value; never waits
  // for SQLite). Returns false, and counts `count` records in
  // Stats::dropped, when the writer queue is full (see
  // writer_queue_records/bytes) or the chunk is malformed: count 0, ids
  // outside [1, 2^63-1], min_time > max_time, or body not exactly `count`
  // encoded records (their lengths are checked; their strings are not read).
  bool append_chunk(RecordChunk chunk);
  // An empty string to fill as the next chunk's body: the buffer of a chunk
  // the writer has finished with when one is spare (up to 8 are kept, each
  // at most 4 MiB), else a new one. Chunk buffers then circulate between the
  // two threads instead of being freed on one and allocated on the other.
  std::string take_buffer();
  // Waits until every chunk appended before the call has been written (or
  // its batch failed). Returns the writer's error if a batch that finished
  // during this call failed, Ok otherwise.
  Status flush();
  // Stored records, newest (highest id) first: those with id < before_id
  // (0 = no bound), at most `limit`. Sees committed batches only; call
  // flush() first to include chunks still queued. A stored record that does
  // not decode is an error (kInternal) naming its id.
  Result<std::vector<Record>> recent(size_t limit, uint64_t before_id = 0);
  // Visits stored records newest first with id < before_id (0 = no bound),
  // at most max_records, until `fn` returns false. `fn` runs on the calling
  // thread with no lock held and may call other Store methods. Reads chunks
  // in small groups, so records written during the scan may be missed and
  // records pruned during it may still be visited; ids strictly decrease.
  // Errors as recent(); records visited before an error stay visited.
  Status scan(uint64_t before_id, size_t max_records,
              const std::function<bool(Record&&)>& fn);
  // The highest record id ever written (0 if none), also after pruning, for
  // resuming the id sequence after a restart. Committed batches only.
  Result<uint64_t> max_record_id();
  // The log position saved with the newest committed chunk that had one
  // ("" if none).
  Result<std::string> log_position();

  struct Stats {
    uint64_t written = 0;        // records committed
    uint64_t dropped = 0;        // records refused by append_chunk() (queue full, malformed)
    uint64_t write_errors = 0;   // failed batch transactions
    uint64_t lost = 0;           // records in failed batches (not stored)
    size_t queued = 0;           // records appended, not yet committed or failed
    uint64_t writer_cpu_ns = 0;  // CPU time of the writer thread so far (after its last batch)
  };
  Stats stats() const;
  // The most recent failure of the writer thread (Ok if there was none).
  Status last_write_error() const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);

  // Constant after construction.
  std::unique_ptr<Impl> impl_;
};

}  // namespace clio::console
