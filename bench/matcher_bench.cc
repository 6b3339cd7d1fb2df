// matcher_bench: figures for the prospective-search engine.
//
//   matcher_bench WORKLOAD_DIR [--quick] [--only N]
//
// WORKLOAD_DIR holds http-100k.queries and http-20k.jsonl (see its README).
// Prints, per subscription count (1K, 10K, 100K, 1M), the matching cost in
// µs/record and records/s on one thread, matches per record, memory per
// subscription and subscribe latency; the reference evaluator (every query,
// every record) at 1K and 10K with its ratio to the engine; and a generated
// selective 1K workload. Checks that the first 10,000 queries and the first
// 2,000 records give exactly 677,238 matches (exit status 1 otherwise).
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "clio/matcher/matcher.h"
#include "clio/matcher/query.h"
#include "clio/middleware/http_schema.h"
#include "bench_util.h"
#include "clio/middleware/record.h"

namespace {

using Clock = std::chrono::steady_clock;
using clio::matcher::Matcher;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

size_t heap_in_use() { return mallinfo2().uordblks; }

bool read_lines(const std::string& path, std::vector<std::string>& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(line);
  }
  return true;
}

// Same shapes as the shared workload: numbers after '<' or '>' are jittered
// by up to ±10%, equality values are kept.
std::vector<std::string> more_queries(const std::vector<std::string>& base, size_t n) {
  std::vector<std::string> out;
  out.reserve(n);
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> jitter(0.9, 1.1);
  for (size_t i = 0; out.size() < n; ++i) {
    const std::string& q = base[i % base.size()];
    if (i < base.size()) {
      out.push_back(q);
      continue;
    }
    std::string r;
    size_t p = 0;
    while (p < q.size()) {
      const char c = q[p];
      r.push_back(c);
      ++p;
      if ((c == '>' || c == '<') && p + 1 < q.size() && q[p] == ' ' && std::isdigit(static_cast<unsigned char>(q[p + 1]))) {
        r.push_back(' ');
        ++p;
        size_t e = p;
        while (e < q.size() && std::isdigit(static_cast<unsigned char>(q[e]))) ++e;
        const long v = std::stol(q.substr(p, e - p));
        r += std::to_string(static_cast<long>(static_cast<double>(v) * jitter(rng)));
        p = e;
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

struct RunFigures {
  double us_per_record = 0;
  double records_per_second = 0;
  double matches_per_record = 0;
};

RunFigures run_matcher(const Matcher& m, const std::vector<clio::Record>& records, size_t count) {
  std::vector<uint64_t> ids;
  ids.reserve(1 << 16);
  size_t matches = 0;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < count; ++i) {
    ids.clear();
    clio::HttpRecordView view(records[i % records.size()]);
    m.match(view, ids);
    matches += ids.size();
  }
  const double s = seconds_since(t0);
  return {s * 1e6 / static_cast<double>(count), static_cast<double>(count) / s,
          static_cast<double>(matches) / static_cast<double>(count)};
}

struct Built {
  std::unique_ptr<Matcher> m;
  double bytes_per_sub = 0;
  std::vector<double> subscribe_us;
};

Built build(const std::vector<std::string>& queries, size_t n) {
  Built b;
  const size_t before = heap_in_use();
  b.m = std::make_unique<Matcher>(clio::http_schema());
  b.subscribe_us.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    auto e = b.m->subscribe(i, queries[i]);
    b.subscribe_us.push_back(seconds_since(t0) * 1e6);
    if (!e.ok()) {
      std::fprintf(stderr, "query %zu: %s\n", i, e.to_string().c_str());
      std::exit(1);
    }
  }
  b.bytes_per_sub = static_cast<double>(heap_in_use() - before) / static_cast<double>(n);
  return b;
}

// Reference evaluator: every query for every record.
double reference_us_per_record(const std::vector<clio::matcher::Query>& qs,
                               const std::vector<clio::Record>& records, size_t count, size_t& matches) {
  matches = 0;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < count; ++i) {
    clio::HttpRecordView view(records[i]);
    for (const auto& q : qs) matches += q.matches(view) ? 1 : 0;
  }
  return seconds_since(t0) * 1e6 / static_cast<double>(count);
}

// A selective workload: conjunctions of equalities that match few records.
void selective_workload(size_t quick) {
  std::mt19937_64 rng(7);
  const char* methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD"};
  const int statuses[] = {200, 201, 204, 301, 304, 400, 401, 403, 404, 500, 502, 503};
  std::vector<clio::Record> records(20000);
  for (auto& r : records) {
    r.method = methods[rng() % 5];
    r.path = "/svc/" + std::to_string(rng() % 5000);
    r.host = "host" + std::to_string(rng() % 50);
    r.status_code = statuses[rng() % 12];
    r.wall_time = static_cast<double>(rng() % 5000);
    r.response_bytes = static_cast<int64_t>(rng() % 100000);
    r.remote_ip = "192.168." + std::to_string(rng() % 256) + "." + std::to_string(rng() % 256);
    r.headers = {{"host", r.host}, {"user-agent", "gen/" + std::to_string(rng() % 20)}};
  }
  std::vector<std::string> qs;
  for (int i = 0; i < 1000; ++i) {
    switch (i % 4) {
      case 0: qs.push_back("path = \"/svc/" + std::to_string(rng() % 5000) + "\" and method = " + methods[rng() % 5]); break;
      case 1: qs.push_back("host = host" + std::to_string(rng() % 50) + " and status = " + std::to_string(statuses[rng() % 12]) + " and wall > 4.9s"); break;
      case 2: qs.push_back("ip = 192.168." + std::to_string(rng() % 256) + "." + std::to_string(rng() % 256)); break;
      default: qs.push_back("path = \"/svc/" + std::to_string(rng() % 5000) + "\" or h.user-agent = \"gen/" + std::to_string(100 + i) + "\""); break;
    }
  }
  Matcher m(clio::http_schema());
  for (size_t i = 0; i < qs.size(); ++i) {
    if (!m.subscribe(i, qs[i]).ok()) std::exit(1);
  }
  const size_t count = quick ? 20000 : 200000;
  auto f = run_matcher(m, records, count);
  std::printf("selective 1K (generated): %.3f us/record, %.0f records/s, %.3f matches/record, unindexable %zu\n",
              f.us_per_record, f.records_per_second, f.matches_per_record, m.stats().unindexable);
}

// A mixed workload of the other index terms: substrings, regexes (RE2::Sets),
// header keys, `in` lists, and pure negations (checked on every record).
void mixed_workload(const std::vector<clio::Record>& records, bool quick) {
  std::mt19937_64 rng(11);
  std::vector<std::string> qs;
  const size_t n = 10000;
  for (size_t i = 0; i < n; ++i) {
    const std::string r = std::to_string(rng() % 1000);
    switch (i % 5) {
      case 0: qs.push_back("path:\"/r" + r + "\" and status >= 400"); break;
      case 1: qs.push_back("path ~ \"^/api/v1/r" + r + "$\""); break;
      case 2: qs.push_back("h.host = h" + std::to_string(rng() % 100) + " and bytes > " + std::to_string(rng() % 2000000)); break;
      case 3: qs.push_back("status in (" + std::to_string(400 + rng() % 4) + ", 500..599) and path:\"r" + r + "\""); break;
      default: qs.push_back(i % 500 == 4 ? "not method = GET and wall > 5900" : "ua:bench and path:\"/r" + r + "\""); break;
    }
  }
  const size_t before = heap_in_use();
  Matcher m(clio::http_schema());
  for (size_t i = 0; i < qs.size(); ++i) {
    auto e = m.subscribe(i, qs[i]);
    if (!e.ok()) {
      std::fprintf(stderr, "mixed query %zu: %s\n", i, e.to_string().c_str());
      std::exit(1);
    }
  }
  const double bytes = static_cast<double>(heap_in_use() - before) / static_cast<double>(n);
  auto f = run_matcher(m, records, quick ? 2000 : 20000);
  std::printf("mixed 10K (substring, regex, header, in, negation): %.3f us/record, %.0f records/s, "
              "%.1f matches/record, %.0f B/sub, %zu RE2::Sets, unindexable %zu\n",
              f.us_per_record, f.records_per_second, f.matches_per_record, bytes, m.stats().regex_sets,
              m.stats().unindexable);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: matcher_bench WORKLOAD_DIR [--quick]\n");
    return 2;
  }
  const std::string dir = argv[1];
  bool quick = false;
  size_t only = 0;  // run just this subscription count (for profiling)
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    if (a == "--only" && i + 1 < argc) only = std::stoul(argv[++i]);
  }
  std::vector<std::string> queries, lines;
  if (!read_lines(dir + "/http-100k.queries", queries) || !read_lines(dir + "/http-20k.jsonl", lines)) {
    std::fprintf(stderr, "cannot read %s/http-100k.queries or http-20k.jsonl\n", dir.c_str());
    return 2;
  }
  std::vector<clio::Record> records;
  for (size_t i = 0; i < lines.size(); ++i) {
    auto r = clio::record_from_json(lines[i]);
    if (!r.ok()) {
      std::fprintf(stderr, "record line %zu: %s\n", i + 1, r.status().message().c_str());
      return 2;
    }
    records.push_back(std::move(*r));
  }
  std::printf("workload: %zu queries, %zu records\n", queries.size(), records.size());

  // Correctness gate.
  {
    Built b = build(queries, 10000);
    std::vector<uint64_t> ids;
    size_t total = 0;
    for (size_t i = 0; i < 2000; ++i) {
      ids.clear();
      clio::HttpRecordView view(records[i]);
      b.m->match(view, ids);
      total += ids.size();
    }
    std::printf("check: 10K queries x 2K records = %zu matches (expected 677238) %s\n", total,
                total == 677238 ? "OK" : "MISMATCH");
    if (total != 677238) return 1;
  }

  const std::vector<size_t> sizes = {1000, 10000, 100000, 1000000};
  std::vector<std::string> all = more_queries(queries, quick ? 100000 : 1000000);
  std::printf("%10s %12s %14s %12s %10s %12s %12s %12s\n", "subs", "us/record", "records/s", "matches/rec",
              "B/sub", "sub p50 us", "sub p99 us", "unindexable");
  double engine_us[2] = {0, 0};
  for (size_t n : sizes) {
    if (n > all.size()) break;
    if (only != 0 && n != only) continue;
    Built b = build(all, n);
    const size_t count = n >= 1000000 ? 2000 : (n >= 100000 ? 5000 : 20000);
    run_matcher(*b.m, records, std::min<size_t>(count, 500));  // warm up
    RunFigures f = run_matcher(*b.m, records, only != 0 ? 20000 : (quick ? std::min<size_t>(count, 2000) : count));
    // Subscribe latency near the full size: the last 10% of subscriptions.
    std::vector<double> tail(b.subscribe_us.end() - static_cast<long>(n / 10), b.subscribe_us.end());
    std::printf("%10zu %12.3f %14.0f %12.1f %10.0f %12.2f %12.2f %12zu\n", n, f.us_per_record,
                f.records_per_second, f.matches_per_record, b.bytes_per_sub, clio::bench::percentile(tail, 0.5),
                clio::bench::percentile(tail, 0.99), b.m->stats().unindexable);
    if (n == 1000) engine_us[0] = f.us_per_record;
    if (n == 10000) engine_us[1] = f.us_per_record;
  }

  if (only != 0) return 0;
  // Reference evaluator at 1K and 10K.
  for (int k = 0; k < 2; ++k) {
    const size_t n = k == 0 ? 1000 : 10000;
    std::vector<clio::matcher::Query> qs;
    for (size_t i = 0; i < n; ++i) qs.push_back(*clio::matcher::parse(all[i], clio::http_schema()).query);
    const size_t count = k == 0 ? 2000 : 200;
    size_t matches = 0;
    const double us = reference_us_per_record(qs, records, count, matches);
    std::printf("reference %zu: %.1f us/record (%.1f matches/record); engine is %.0fx faster\n", n, us,
                static_cast<double>(matches) / static_cast<double>(count), us / engine_us[k]);
  }
  selective_workload(quick);
  mixed_workload(records, quick);
  return 0;
}
