// Store benchmark: the writer thread's CPU per record and the throughput of
// append_chunk() into a real SQLite file (WAL) under a temp directory, with
// the default pruning (100,000 records) active.
//
//   store_bench [--runs N] [--records N] [--chunk N] [--rate R] [--flush-ms M]
//
// Each run appends pre-encoded chunks (encoding is the dispatcher's cost, not
// the store's), flushes, and reports records/s, the writer thread's CPU per
// record (Stats::writer_cpu_ns) and the caller's CPU per record inside
// append_chunk(). --rate paces the appends at R records/s (0 = as fast as
// possible). Prints every run and the medians.
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "clio/console/store.h"
#include "clio/middleware/record_binary.h"

namespace {

using Clock = std::chrono::steady_clock;

uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// A record shaped like the demo app's traffic.
clio::Record sample_record(uint64_t id, double time) {
  clio::Record r;
  r.id = id;
  r.time = time;
  r.method = id % 3 ? "GET" : "POST";
  r.path = "/api/items/" + std::to_string(id % 1000);
  r.query = id % 4 ? "" : "page=" + std::to_string(id % 10);
  r.status_code = id % 50 ? 200 : 500;
  r.wall_time = 0.25 + static_cast<double>(id % 100) / 10;
  r.cpu_time = 0.1;
  r.set_remote_ip("127.0.0.1");
  r.host = "127.0.0.1:8080";
  r.user_agent = "wrk/4.2";
  r.http_version = "1.1";
  r.response_bytes = 512;
  r.random = static_cast<double>(id % 997) / 997;
  r.headers = {{"host", "127.0.0.1:8080"}, {"user-agent", "wrk/4.2"}, {"accept", "*/*"}};
  r.tags = {{"user", clio::bench::numbered("u", id % 37)}};
  return r;
}

std::vector<clio::console::RecordChunk> make_chunks(uint64_t records, uint64_t per_chunk) {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<clio::console::RecordChunk> chunks;
  for (uint64_t first = 1; first <= records; first += per_chunk) {
    clio::console::RecordChunk c;
    c.first_id = first;
    c.count = static_cast<size_t>(std::min(per_chunk, records - first + 1));
    c.min_time = c.max_time = now;
    for (uint64_t id = first; id < first + c.count; ++id) {
      clio::append_binary(sample_record(id, now), c.body);
    }
    chunks.push_back(std::move(c));
  }
  return chunks;
}

struct RunResult {
  double records_per_s = 0;
  double writer_us_per_record = 0;
  double caller_us_per_record = 0;
  uint64_t dropped = 0;
};

bool run_once(uint64_t records, uint64_t per_chunk, double rate, int flush_ms, RunResult& out) {
  std::string dir = (std::filesystem::temp_directory_path() / "clio-store-bench-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) {
    std::perror("mkdtemp");
    return false;
  }
  std::vector<clio::console::RecordChunk> chunks = make_chunks(records, per_chunk);
  bool ok = true;
  {
    clio::console::StoreOptions opts;
    opts.path = dir + "/clio.db";
    // Room for every record, so an unpaced run measures writing, not drops.
    opts.writer_queue_records = std::max<size_t>(opts.writer_queue_records, records);
    opts.writer_queue_bytes = size_t{4} << 30;
    if (flush_ms >= 0) opts.flush_interval = std::chrono::milliseconds(flush_ms);
    auto store = clio::console::Store::open(opts);
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().message().c_str());
      ok = false;
    } else {
      const uint64_t cpu_before = (*store)->stats().writer_cpu_ns;
      const auto start = Clock::now();
      uint64_t caller_ns = 0, appended = 0;
      for (auto& c : chunks) {
        if (rate > 0) {  // paced: chunk k is due at start + appended / rate
          std::this_thread::sleep_until(
              start + std::chrono::duration_cast<Clock::duration>(
                          std::chrono::duration<double>(static_cast<double>(appended) / rate)));
        }
        appended += c.count;
        const uint64_t t0 = thread_cpu_ns();
        (*store)->append_chunk(std::move(c));
        caller_ns += thread_cpu_ns() - t0;
      }
      const clio::Status flushed = (*store)->flush();
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      const auto st = (*store)->stats();
      if (!flushed.ok()) {
        std::fprintf(stderr, "flush: %s\n", flushed.message().c_str());
        ok = false;
      }
      out.records_per_s = static_cast<double>(st.written) / seconds;
      out.writer_us_per_record =
          static_cast<double>(st.writer_cpu_ns - cpu_before) / 1000 /
          static_cast<double>(std::max<uint64_t>(1, st.written));
      out.caller_us_per_record = static_cast<double>(caller_ns) / 1000 / static_cast<double>(records);
      out.dropped = st.dropped;
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  uint64_t records = 200000, per_chunk = 500;
  double rate = 0;
  int flush_ms = -1;  // the default StoreOptions::flush_interval
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--runs") == 0) {
      runs = std::max(1, std::atoi(argv[i + 1]));
    } else if (std::strcmp(argv[i], "--records") == 0) {
      records = std::max<uint64_t>(1, std::strtoull(argv[i + 1], nullptr, 10));
    } else if (std::strcmp(argv[i], "--chunk") == 0) {
      per_chunk = std::max<uint64_t>(1, std::strtoull(argv[i + 1], nullptr, 10));
    } else if (std::strcmp(argv[i], "--flush-ms") == 0) {
      flush_ms = std::max(0, std::atoi(argv[i + 1]));
    } else if (std::strcmp(argv[i], "--rate") == 0) {
      rate = std::max(0.0, std::atof(argv[i + 1]));
    } else {
      std::fprintf(stderr, "usage: store_bench [--runs N] [--records N] [--chunk N] [--rate R] [--flush-ms M]\n");
      return 2;
    }
  }
  std::printf("store_bench: %llu records in chunks of %llu, rate %s, %d runs\n",
              static_cast<unsigned long long>(records), static_cast<unsigned long long>(per_chunk),
              rate > 0 ? (std::to_string(static_cast<long long>(rate)) + "/s").c_str() : "unpaced",
              runs);
  std::vector<double> rps, writer_us, caller_us;
  for (int r = 0; r < runs; ++r) {
    RunResult res;
    if (!run_once(records, per_chunk, rate, flush_ms, res)) return 1;
    std::printf("  run %d: %10.0f records/s  writer %.3f us/record  caller %.3f us/record  dropped %llu\n",
                r + 1, res.records_per_s, res.writer_us_per_record, res.caller_us_per_record,
                static_cast<unsigned long long>(res.dropped));
    rps.push_back(res.records_per_s);
    writer_us.push_back(res.writer_us_per_record);
    caller_us.push_back(res.caller_us_per_record);
  }
  std::printf("median: %10.0f records/s  writer %.3f us/record  caller %.3f us/record\n",
              clio::bench::median(rps), clio::bench::median(writer_us), clio::bench::median(caller_us));
  return 0;
}
