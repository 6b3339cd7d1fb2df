// Capture hooks. CivetWeb callbacks carry no user data, so each installed
// Capture takes one of kSlots slots, and the slot's trampolines (one set of
// three functions per slot, made by a template) find the Capture and the
// app's saved callbacks there. Per-request state lives in a thread_local:
// begin_request, the handler, end_request and log_access all run on the
// worker thread that owns the connection (docs/ARCHITECTURE.md, "CivetWeb
// facts"), and CivetWeb's own
// conn_data slot belongs to the app.
#include "clio/middleware/capture.h"

#include <civetweb.h>
#include <strings.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "clio/base/mutex.h"
#include "clio/middleware/redact.h"

namespace clio {
namespace {

constexpr int kSlots = 16;
constexpr size_t kMaxTags = 32;
constexpr size_t kMaxTagName = 256;
constexpr size_t kMaxTagValue = 4096;
// The shortest "101 Switching Protocols" answer CivetWeb writes.
constexpr int64_t kMinHandshakeBytes = 129;

struct Slot {
  std::atomic<Capture*> capture{nullptr};
  mg_callbacks app{};  // the app's callbacks, saved at install
};
std::array<Slot, kSlots> g_slots;
Mutex g_install_mu;

// The request in flight on this worker thread.
struct RequestContext {
  Capture* capture = nullptr;  // non-null while a captured request runs
  std::unique_ptr<Record> record;
  // The thread's CPU clock at the end of its previous request (or at the
  // begin_request of its first), -1 when unknown; see CaptureOptions::measure_cpu_time.
  int64_t cpu_last_ns = -1;
  bool cpu_pending = false;  // the request in flight advances cpu_last_ns in log_access
  std::chrono::steady_clock::time_point wall_begin;
  int raw_status = 0;
  int status_override = 0;
  uint64_t self_ns = 0;
};
thread_local RequestContext t_request;

int64_t thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Uniform in [0,1) from a per-thread splitmix64 stream.
double next_random() {
  thread_local uint64_t state = [] {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_nsec) ^ (reinterpret_cast<uintptr_t>(&ts) << 16);
  }();
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && strncasecmp(s.data(), prefix.data(), prefix.size()) == 0;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool excluded(std::string_view path, const std::vector<std::string>& prefixes) {
  for (const std::string& p : prefixes) {
    if (istarts_with(path, p)) return true;
    if (!p.empty() && p.back() == '/' && iequals(path, std::string_view(p).substr(0, p.size() - 1))) {
      return true;
    }
  }
  return false;
}

// Reads the response byte count from CivetWeb's access-log line, whose tail
// is `HTTP/<v>" <status> <bytes> <referer> <user-agent>` with referer and UA
// unquoted (they may hold spaces). The known tail is stripped first, so
// spaces or digits inside the referer or UA cannot mislead the parse.
bool parse_bytes_sent(std::string_view line, const char* referer, const char* ua, int64_t& bytes) {
  std::string tail = " ";
  tail += referer ? referer : "-";
  tail += ' ';
  tail += ua ? ua : "-";
  if (line.size() < tail.size() || line.substr(line.size() - tail.size()) != tail) return false;
  line.remove_suffix(tail.size());
  size_t end = line.size();
  size_t begin = end;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(line[begin - 1]))) --begin;
  if (begin == end || begin == 0 || line[begin - 1] != ' ') return false;
  bytes = std::strtoll(std::string(line.substr(begin, end - begin)).c_str(), nullptr, 10);
  return true;
}

int recorded_status(int raw, int override_status, bool upgrade, int64_t bytes) {
  if (override_status > 0) return override_status;
  if (raw >= 100 && raw <= 999) return raw;
  // CivetWeb reports -1 for every upgrade request; an accepted one has sent
  // the 101 handshake, a refused one (connect handler returned non-zero) has
  // sent nothing of that size.
  if (raw == -1 && upgrade && bytes >= kMinHandshakeBytes) return 101;
  return 0;
}

std::string_view first_hop(std::string_view xff) {
  const size_t comma = xff.find(',');
  std::string_view hop = xff.substr(0, comma);
  while (!hop.empty() && hop.front() == ' ') hop.remove_prefix(1);
  while (!hop.empty() && hop.back() == ' ') hop.remove_suffix(1);
  return hop;
}

// Heap bytes held by a string (0 while it fits in the string itself).
size_t heap_bytes(const std::string& s) {
  return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0;
}

size_t heap_text_bytes(const Record& r) {
  size_t n = heap_bytes(r.method) + heap_bytes(r.path) + heap_bytes(r.query) + heap_bytes(r.remote_ip) +
             heap_bytes(r.host) + heap_bytes(r.user_agent) + heap_bytes(r.referer) +
             heap_bytes(r.http_version);
  n += r.headers.capacity() * sizeof(r.headers[0]) + r.tags.capacity() * sizeof(r.tags[0]);
  for (const auto& [k, v] : r.headers) n += heap_bytes(k) + heap_bytes(v);
  for (const auto& [k, v] : r.tags) n += heap_bytes(k) + heap_bytes(v);
  return n;
}

// Back to a new record's values, keeping the strings' capacity. The header
// entries stay for fill() to overwrite in place: it assigns each one and then
// trims the vector to the request's count.
void reset_for_reuse(Record& r) {
  r.id = 0;
  r.time = 0;
  r.method.clear();
  r.path.clear();
  r.query.clear();
  r.status_code = 0;
  r.wall_time = 0;
  r.cpu_time = 0;
  r.remote_ip.clear();
  r.remote_addr.reset();
  r.host.clear();
  r.user_agent.clear();
  r.referer.clear();
  r.http_version.clear();
  r.request_bytes = 0;
  r.response_bytes = 0;
  r.random = 0;
  r.instance.clear();
  r.tags.clear();
}

}  // namespace

std::unique_ptr<Record> Capture::take_record() {
  if (spare_count_.load(std::memory_order_relaxed) > 0 && spare_mu_.TryLock()) {
    std::unique_ptr<Record> r;
    if (!spares_.empty()) {
      r = std::move(spares_.back());
      spares_.pop_back();
      spare_count_.store(spares_.size(), std::memory_order_relaxed);
    }
    spare_mu_.Unlock();
    if (r) {
      reused_.fetch_add(1, std::memory_order_relaxed);
      return r;
    }
  }
  return std::make_unique<Record>();
}

void Capture::recycle(std::vector<std::unique_ptr<Record>>& records) {
  // Reset outside the lock: the request threads only try_lock it.
  size_t keep = 0;
  const size_t room = kSpareRecords - std::min(kSpareRecords, spare_count_.load(std::memory_order_relaxed));
  for (auto& r : records) {
    if (!r || keep >= room || heap_text_bytes(*r) > kSpareRecordBytes) continue;
    reset_for_reuse(*r);
    records[keep++] = std::move(r);
  }
  records.resize(keep);  // frees the rest
  {
    MutexLock lock(&spare_mu_);
    for (auto& r : records) {
      if (spares_.size() >= kSpareRecords) break;
      spares_.push_back(std::move(r));
    }
    spare_count_.store(spares_.size(), std::memory_order_relaxed);
  }
  records.clear();  // frees what did not fit (the pool filled meanwhile)
}

struct Capture::Hooks {
  static int begin(int slot, mg_connection* conn) {
    Slot& s = g_slots[slot];
    Capture* c = s.capture.load(std::memory_order_acquire);
    RequestContext& t = t_request;
    t.capture = nullptr;
    t.cpu_pending = false;
    if (c != nullptr && c->enabled_.load(std::memory_order_relaxed)) {
      const int64_t self0 = c->options_.measure_self_time ? mono_ns() : 0;
      if (c->options_.measure_cpu_time) {
        // One clock read per request, in log_access; a thread's first
        // request also reads it here.
        if (t.cpu_last_ns < 0) t.cpu_last_ns = thread_cpu_ns();
        t.cpu_pending = true;
      }
      const mg_request_info* ri = mg_get_request_info(conn);
      const char* path = ri && ri->local_uri ? ri->local_uri : "";
      if (excluded(path, c->options_.exclude_prefixes)) {
        c->excluded_.fetch_add(1, std::memory_order_relaxed);
      } else {
        t.capture = c;
        c->begun_.fetch_add(1, std::memory_order_relaxed);
        if (t.record) {
          reset_for_reuse(*t.record);  // left by a request that never reached log_access
        } else {
          t.record = c->take_record();
        }
        t.record->time = std::chrono::duration<double>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
        t.status_override = 0;
        t.raw_status = 0;
        t.self_ns = 0;
        t.wall_begin = std::chrono::steady_clock::now();
        if (c->options_.measure_self_time) t.self_ns = static_cast<uint64_t>(mono_ns() - self0);
      }
    } else {
      t.cpu_last_ns = -1;  // capture is off: the next captured request starts a new reading
    }
    return s.app.begin_request ? s.app.begin_request(conn) : 0;
  }

  static void end(int slot, const mg_connection* conn, int status) {
    RequestContext& t = t_request;
    if (t.capture != nullptr && t.record) {
      const int64_t self0 = t.capture->options_.measure_self_time ? mono_ns() : 0;
      const auto wall_end = std::chrono::steady_clock::now();
      t.record->wall_time = std::chrono::duration<double, std::milli>(wall_end - t.wall_begin).count();
      t.raw_status = status;
      if (t.capture->options_.measure_self_time) t.self_ns += static_cast<uint64_t>(mono_ns() - self0);
    }
    const Slot& s = g_slots[slot];
    if (s.app.end_request) s.app.end_request(conn, status);
  }

  static int log(int slot, const mg_connection* conn, const char* message) {
    RequestContext& t = t_request;
    if (t.cpu_pending) {  // captured or excluded: either way the reading moves on
      const int64_t now = thread_cpu_ns();
      if (t.capture != nullptr && t.record) t.record->cpu_time = static_cast<double>(now - t.cpu_last_ns) / 1e6;
      t.cpu_last_ns = now;
      t.cpu_pending = false;
    }
    if (t.capture != nullptr && t.record) {
      Capture* c = t.capture;
      const int64_t self0 = c->options_.measure_self_time ? mono_ns() : 0;
      fill(c, conn, message, *t.record);
      c->queue_.try_push(std::move(t.record));
      if (c->options_.measure_self_time) {
        t.self_ns += static_cast<uint64_t>(mono_ns() - self0);
        c->self_ns_.fetch_add(t.self_ns, std::memory_order_relaxed);
        const size_t bucket = std::min<size_t>(t.self_ns / 50, Capture::kHistBuckets - 1);
        c->self_hist_[bucket].fetch_add(1, std::memory_order_relaxed);
      }
      t.capture = nullptr;
    }
    const Slot& s = g_slots[slot];
    return s.app.log_access ? s.app.log_access(conn, message) : 0;
  }

  static void fill(Capture* c, const mg_connection* conn, const char* message, Record& r) {
    const CaptureOptions& o = c->options_;
    const mg_request_info* ri = mg_get_request_info(conn);
    if (ri == nullptr) {
      r.headers.clear();
      return;
    }
    r.method = ri->request_method ? ri->request_method : "";
    const Redactor& redact = c->redactor_;
    r.path = ri->local_uri ? ri->local_uri : "";
    redact.path(r.path);
    if (ri->query_string) redact.query(ri->query_string, r.query);
    r.http_version = ri->http_version ? ri->http_version : "";
    r.request_bytes = ri->content_length > 0 ? ri->content_length : 0;
    r.random = next_random();
    const char* referer = nullptr;
    const char* ua = nullptr;
    std::string_view forwarded;  // the trusted X-Forwarded-For hop
    bool upgrade = false;
    // A reused record's header entries are overwritten in place (keeping
    // their strings' capacity), then the vector is trimmed to `n`.
    r.headers.reserve(static_cast<size_t>(std::max(ri->num_headers, 0)));
    size_t n = 0;
    for (int i = 0; i < ri->num_headers; ++i) {
      const mg_header& h = ri->http_headers[i];
      if (h.name == nullptr) continue;
      if (n == r.headers.size()) r.headers.emplace_back();
      auto& [name, stored] = r.headers[n++];
      name.assign(h.name);
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      const char* value = h.value ? h.value : "";
      redact.header(name, value, stored);
      if (name == "host") {
        r.host = stored;
      } else if (name == "user-agent") {
        r.user_agent = stored;
        ua = value;
      } else if (name == "referer") {
        referer = value;
        r.referer = stored;
      } else if (name == "upgrade") {
        upgrade = iequals(value, "websocket");
      } else if (name == "x-forwarded-for" && o.trust_x_forwarded_for) {
        if (std::string_view hop = first_hop(value); !hop.empty()) forwarded = hop;
      }
    }
    r.headers.resize(n);
    r.set_remote_ip(forwarded.empty() ? std::string_view(ri->remote_addr) : forwarded);
    for (auto& tag : r.tags) redact.value(tag.second);
    int64_t bytes = 0;
    if (message == nullptr || !parse_bytes_sent(message, referer, ua, bytes)) {
      c->bytes_unparsed_.fetch_add(1, std::memory_order_relaxed);
      bytes = 0;
    }
    r.response_bytes = bytes;
    RequestContext& t = t_request;
    r.status_code = recorded_status(t.raw_status, t.status_override, upgrade, bytes);
  }
};

namespace {

template <int N>
int begin_hook(mg_connection* conn) { return Capture::Hooks::begin(N, conn); }
template <int N>
void end_hook(const mg_connection* conn, int status) { Capture::Hooks::end(N, conn, status); }
template <int N>
int log_hook(const mg_connection* conn, const char* message) {
  return Capture::Hooks::log(N, conn, message);
}

struct HookSet {
  int (*begin)(mg_connection*);
  void (*end)(const mg_connection*, int);
  int (*log)(const mg_connection*, const char*);
};

template <int... N>
constexpr std::array<HookSet, sizeof...(N)> make_hooks(std::integer_sequence<int, N...>) {
  return {HookSet{&begin_hook<N>, &end_hook<N>, &log_hook<N>}...};
}
constexpr auto kHooks = make_hooks(std::make_integer_sequence<int, kSlots>());

}  // namespace

Capture::Capture(CaptureOptions options)
    : options_(std::move(options)), redactor_(options_.redact), queue_(options_.queue_capacity) {}

Capture::~Capture() {
  if (slot_ >= 0) {
    MutexLock lock(&g_install_mu);
    g_slots[slot_].capture.store(nullptr, std::memory_order_release);
    g_slots[slot_].app = mg_callbacks{};
  }
}

Status Capture::install(mg_callbacks* callbacks) {
  if (callbacks == nullptr) return Status::InvalidArgument("callbacks is null");
  MutexLock lock(&g_install_mu);
  if (slot_ >= 0) return Status::AlreadyExists("this Capture is already installed");
  for (int i = 0; i < kSlots; ++i) {
    if (g_slots[i].capture.load(std::memory_order_relaxed) != nullptr) continue;
    g_slots[i].app = *callbacks;
    callbacks->begin_request = kHooks[i].begin;
    callbacks->end_request = kHooks[i].end;
    callbacks->log_access = kHooks[i].log;
    slot_ = i;
    g_slots[i].capture.store(this, std::memory_order_release);
    if (options_.pin_timezone && std::getenv("TZ") == nullptr) setenv("TZ", ":/etc/localtime", 0);
    return Status::Ok();
  }
  return Status::ResourceExhausted("too many Captures installed (at most 16 per process)");
}

Capture::Stats Capture::stats() const {
  Stats s;
  s.captured = queue_.pushed();
  s.dropped_queue = queue_.dropped();
  s.excluded = excluded_.load(std::memory_order_relaxed);
  s.begun = begun_.load(std::memory_order_relaxed);
  s.bytes_unparsed = bytes_unparsed_.load(std::memory_order_relaxed);
  s.reused = reused_.load(std::memory_order_relaxed);
  s.self_ns = self_ns_.load(std::memory_order_relaxed);
  uint64_t total = 0;
  for (const auto& b : self_hist_) total += b.load(std::memory_order_relaxed);
  uint64_t seen = 0;
  for (size_t i = 0; i < kHistBuckets && total > 0; ++i) {
    seen += self_hist_[i].load(std::memory_order_relaxed);
    const uint64_t upper = (i + 1) * 50;
    if (s.self_p50_ns == 0 && seen * 2 >= total) s.self_p50_ns = upper;
    if (s.self_p90_ns == 0 && seen * 10 >= total * 9) s.self_p90_ns = upper;
    if (s.self_p99_ns == 0 && seen * 100 >= total * 99) s.self_p99_ns = upper;
  }
  return s;
}

void tag(const mg_connection* conn, std::string_view name, std::string_view value) {
  RequestContext& t = t_request;
  if (conn == nullptr || t.capture == nullptr || !t.record || name.empty()) return;
  name = name.substr(0, kMaxTagName);
  value = value.substr(0, kMaxTagValue);
  for (auto& [k, v] : t.record->tags) {
    if (k == name) {
      v.assign(value);
      return;
    }
  }
  if (t.record->tags.size() < kMaxTags) t.record->tags.emplace_back(std::string(name), std::string(value));
}

void set_status(const mg_connection* conn, int status_code) {
  RequestContext& t = t_request;
  if (conn == nullptr || t.capture == nullptr) return;
  t.status_override = status_code;
}

}  // namespace clio
