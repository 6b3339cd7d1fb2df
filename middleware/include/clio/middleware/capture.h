// Capture: turns every finished request of a CivetWeb server into a
// clio::Record and pushes it onto a bounded RecordQueue, at almost no cost to
// the request thread.
//
//   clio::Capture capture;                 // must outlive the server
//   mg_callbacks cb{};                     // the app's own callbacks, if any
//   cb.begin_request = my_begin;           // still called, in order
//   capture.install(&cb);                  // before mg_start / CivetServer
//   mg_context* ctx = mg_start(&cb, app_data, options);
//   ... records arrive in capture.queue() (drain it: JsonlSink, Inspector)
//
// A CivetServer app does the same with its CivetCallbacks (they derive from
// mg_callbacks). Handlers should return their real HTTP status: CivetWeb
// reports the handler's return value, so `return 1` is recorded as status 0
// ("unknown").
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "clio/base/mutex.h"
#include "clio/base/status.h"
#include "clio/middleware/record_queue.h"
#include "clio/middleware/redact.h"

struct mg_callbacks;
struct mg_connection;

namespace clio {

struct CaptureOptions {
  // Bound of the record queue; when full, records are dropped and counted.
  size_t queue_capacity = 65536;
  // Requests whose decoded path starts with one of these (compared without
  // regard to letter case, as CivetWeb routes) are not captured. A prefix
  // "/_clio/" also excludes the bare "/_clio".
  std::vector<std::string> exclude_prefixes = {"/_clio/"};
  // What is hidden from records, on the request thread: credentials by
  // name (headers, query parameters, also in the Referer) and by shape
  // (JWTs, Bearer/Basic credentials, long random tokens). See redact.h for
  // the exact rules.
  RedactOptions redact;
  // Measure cpu_time: the worker thread's CPU clock (CLOCK_THREAD_CPUTIME_ID)
  // is read once per request, in its last callback (log_access), and
  // cpu_time is that reading minus the same thread's previous one: the end
  // of its previous request, or for a thread's first request a reading at
  // begin_request. So it counts everything the thread did for the request,
  // reading and parsing it and CivetWeb's own work included, plus whatever
  // the thread did in between that belongs to no request (a malformed
  // request CivetWeb refused without callbacks). Requests Clio does not
  // record (excluded prefixes) still move the reading on, so their CPU is
  // not charged to the next request; while capture is off nothing is read.
  // One read because each is a system call: about 0.1-0.2 us on bare metal,
  // about 1.3 us in some virtual machines. Off: cpu_time is 0.
  bool measure_cpu_time = true;
  // Once log_access is hooked, CivetWeb formats an access-log line for every
  // request (Clio reads the response size from it), and the line's local time
  // comes from localtime(). Unless TZ is set, glibc's localtime() stats
  // /etc/localtime on every call, under a lock all threads share: about 4% of
  // the app's throughput in our benchmark. So install() sets
  // TZ=":/etc/localtime" (the same zone) when TZ is unset, before the server
  // starts; a change of the system time zone is then seen after a restart.
  // False: leave TZ alone.
  bool pin_timezone = true;
  // Take remote_ip from the first X-Forwarded-For hop (only behind a proxy you run).
  bool trust_x_forwarded_for = false;
  // Accumulate the time spent in Clio's own hooks (for the overhead benchmark;
  // costs two extra clock reads per hook).
  bool measure_self_time = false;
};

// Installs Clio's hooks into an app's callbacks and owns the record queue.
// Safe for concurrent use by multiple threads once installed: the hooks run
// on CivetWeb's worker threads, stats() and queue() from any thread.
// install() must be called before the server starts, and the Capture must
// outlive the server (stop the server first). At most 16 Captures may be
// installed in one process at a time.
class Capture {
 public:
  explicit Capture(CaptureOptions options = {});
  ~Capture();
  // Not copyable or movable: the installed hooks point at this object.
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  // Saves the app's begin_request, end_request and log_access callbacks and
  // replaces them with Clio's, which call the app's in turn (the app's
  // begin_request still decides whether it handled the request; the app's
  // log_access result is returned, so access_log_file keeps working).
  // Fails if this Capture is already installed or all slots are taken.
  // May set TZ (see CaptureOptions::pin_timezone): call it while no other
  // thread changes the environment.
  Status install(mg_callbacks* callbacks);

  // Turns capture on or off at run time (on by default). Off costs one
  // relaxed atomic load per request.
  void set_enabled(bool on) { enabled_.store(on, std::memory_order_relaxed); }

  RecordQueue& queue() { return queue_; }

  // Hands records the consumer is done with back to the request threads,
  // which reuse them, and their strings' capacity, instead of allocating and
  // freeing two or more blocks per request across threads. Optional; takes
  // every record out of `records` (which is left empty). At most
  // kSpareRecords spares are kept; records beyond that, and any holding more
  // than kSpareRecordBytes of text, are freed. Must not be called after this
  // Capture is destroyed.
  void recycle(std::vector<std::unique_ptr<Record>>& records) CLIO_EXCLUDES(spare_mu_);
  static constexpr size_t kSpareRecords = 1024;
  static constexpr size_t kSpareRecordBytes = 4096;
  const CaptureOptions& options() const { return options_; }

  struct Stats {
    uint64_t captured = 0;        // records pushed onto the queue
    uint64_t dropped_queue = 0;   // records lost because the queue was full
    uint64_t excluded = 0;        // requests under an excluded prefix
    // Requests whose record capture began (in begin_request). Each ends as
    // captured or dropped_queue in its log_access, which CivetWeb runs after
    // the response is sent: begun - captured - dropped_queue are in flight.
    uint64_t begun = 0;
    uint64_t bytes_unparsed = 0;  // access-log lines whose byte count could not be read
    uint64_t reused = 0;          // records taken from the spares (see recycle())
    // Time in Clio's hooks per captured request (measure_self_time only):
    // total, and percentiles from a histogram of 50 ns buckets up to 25.6 us.
    uint64_t self_ns = 0;
    uint64_t self_p50_ns = 0, self_p90_ns = 0, self_p99_ns = 0;
  };
  Stats stats() const;

  // Implementation detail of the hooks (public for the trampolines only).
  struct Hooks;

 private:
  friend struct Hooks;

  // Constant after construction.
  const CaptureOptions options_;
  const Redactor redactor_;
  // Constant after install().
  int slot_ = -1;
  // Safe for concurrent use.
  RecordQueue queue_;
  std::atomic<bool> enabled_{true};
  std::atomic<uint64_t> excluded_{0};
  std::atomic<uint64_t> begun_{0};
  std::atomic<uint64_t> bytes_unparsed_{0};
  std::atomic<uint64_t> self_ns_{0};
  std::atomic<uint64_t> reused_{0};
  // Spare records, guarded by spare_mu_; request threads only try_lock it.
  // spare_count_ mirrors spares_.size() for a lock-free emptiness check.
  Mutex spare_mu_;
  std::vector<std::unique_ptr<Record>> spares_ CLIO_GUARDED_BY(spare_mu_);
  std::atomic<size_t> spare_count_{0};
  std::unique_ptr<Record> take_record() CLIO_EXCLUDES(spare_mu_);
  static constexpr size_t kHistBuckets = 513;  // 50 ns each; the last is overflow
  std::array<std::atomic<uint64_t>, kHistBuckets> self_hist_{};
};

// Attaches an annotation to the request being handled on this thread; it
// becomes the record's `tag.NAME`. Call it from the request handler (the
// thread CivetWeb runs it on). A second call with the same name replaces the
// value. Names and values are truncated to 256 and 4096 bytes; at most 32
// tags per request. Does nothing when the request is not captured.
void tag(const mg_connection* conn, std::string_view name, std::string_view value);

// Overrides the status recorded for the request being handled on this
// thread. For responses CivetWeb cannot report, e.g. a WebSocket connect
// handler that refuses an upgrade by writing its own "401" (CivetWeb reports
// -1 for every upgrade request).
void set_status(const mg_connection* conn, int status_code);

}  // namespace clio
