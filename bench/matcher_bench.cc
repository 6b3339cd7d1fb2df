// matcher_bench: figures for the prospective-search engine.
//
//   matcher_bench WORKLOAD_DIR [--quick] [--only N] [--rounds R] [--realistic-only] [--no-baseline]
//
// WORKLOAD_DIR holds http-100k.queries and http-20k.jsonl (see its README).
// Two workloads, each at several subscription counts, one thread:
//  - the shared workload (five conjunctive shapes) at 1K, 10K, 100K and 1M;
//    checks that its first 10,000 queries and first 2,000 records give exactly
//    677,238 matches (exit status 1 otherwise);
//  - the realistic admin mix of realistic_workload.h at 1K, 10K and 100K, with
//    the every-query baseline (the reference evaluator) in the same run; the
//    engine's and the baseline's sets of matching ids are compared on the
//    baseline's records (exit status 1 if they differ).
// Times are thread CPU time; each figure is the median of R alternating
// rounds (range in brackets). Also printed: matches per record, CPU per
// match, heap bytes per subscription, subscribe p50/p99 over the last 10% of
// subscriptions, and how many subscriptions are checked on every record, why.
#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "clio/matcher/matcher.h"
#include "clio/matcher/query.h"
#include "clio/middleware/http_schema.h"
#include "clio/middleware/record.h"
#include "realistic_workload.h"

namespace {

using clio::matcher::Matcher;

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
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

struct Run {
  double us_per_record = 0;
  double matches_per_record = 0;
};

Run run_engine(const Matcher& m, const std::vector<clio::Record>& records, size_t count) {
  std::vector<uint64_t> ids;
  ids.reserve(1 << 16);
  size_t matches = 0;
  const double t0 = cpu_seconds();
  for (size_t i = 0; i < count; ++i) {
    ids.clear();
    clio::HttpRecordView view(records[i % records.size()]);
    m.match(view, ids);
    matches += ids.size();
  }
  const double s = cpu_seconds() - t0;
  return {s * 1e6 / static_cast<double>(count), static_cast<double>(matches) / static_cast<double>(count)};
}

// The baseline: every query for every record.
Run run_reference(const std::vector<clio::matcher::Query>& qs, const std::vector<clio::Record>& records,
                  size_t first, size_t count) {
  size_t matches = 0;
  const double t0 = cpu_seconds();
  for (size_t i = first; i < first + count; ++i) {
    clio::HttpRecordView view(records[i % records.size()]);
    for (const auto& q : qs) matches += q.matches(view) ? 1 : 0;
  }
  const double s = cpu_seconds() - t0;
  return {s * 1e6 / static_cast<double>(count), static_cast<double>(matches) / static_cast<double>(count)};
}

struct Built {
  std::unique_ptr<Matcher> m;
  double bytes_per_sub = 0;
  std::vector<double> subscribe_us;
};

// Subscribes queries[0, n) as ids 0..n-1, after the matcher has seen `warm`
// records (as a live console has before admins type).
Built build(const std::vector<std::string>& queries, size_t n, const std::vector<clio::Record>* warm = nullptr) {
  Built b;
  const size_t before = heap_in_use();
  b.m = std::make_unique<Matcher>(clio::http_schema());
  if (warm != nullptr) run_engine(*b.m, *warm, std::min<size_t>(warm->size(), 4096));
  b.subscribe_us.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const double t0 = cpu_seconds();
    auto e = b.m->subscribe(i, queries[i]);
    b.subscribe_us.push_back((cpu_seconds() - t0) * 1e6);
    if (!e.ok()) {
      std::fprintf(stderr, "query %zu: %s\n  %s\n", i, e.to_string().c_str(), queries[i].c_str());
      std::exit(1);
    }
  }
  b.bytes_per_sub = static_cast<double>(heap_in_use() - before) / static_cast<double>(n);
  return b;
}

std::string every_record_line(const Matcher& m) {
  const auto st = m.stats();
  std::string s = std::to_string(st.every_record);
  if (st.every_record == 0) return s + "; " + std::to_string(st.key_specs) + " key specs";
  s += " (";
  bool first = true;
  for (size_t r = 1; r < clio::matcher::kEveryRecordReasonCount; ++r) {
    if (st.every_record_by_reason[r] == 0) continue;
    if (!first) s += ", ";
    first = false;
    s += std::string(clio::matcher::every_record_code(static_cast<clio::matcher::EveryRecordReason>(r))) + " " +
         std::to_string(st.every_record_by_reason[r]);
  }
  return s + "); " + std::to_string(st.key_specs) + " key specs, " + std::to_string(st.regex_sets) + " RE2::Sets";
}

struct Spread {
  double median = 0, lo = 0, hi = 0;
};
Spread spread(const std::vector<double>& v) {
  return {clio::bench::median(v), *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end())};
}

int shared_workload(const std::string& dir, bool quick, size_t only, int rounds) {
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
  std::printf("== shared workload: %zu queries, %zu records\n", queries.size(), records.size());
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
  std::printf("%9s %20s %12s %10s %8s %11s %11s %s\n", "subs", "us/record [range]", "matches/rec", "ns/match",
              "B/sub", "sub p50 us", "sub p99 us", "every-record");
  for (size_t n : sizes) {
    if (n > all.size() || (only != 0 && n != only)) continue;
    Built b = build(all, n);
    const size_t count = n >= 1000000 ? 2000 : (n >= 100000 ? 5000 : 20000);
    run_engine(*b.m, records, std::min<size_t>(count, 500));  // warm up
    std::vector<double> us;
    double mpr = 0;
    for (int k = 0; k < rounds; ++k) {
      Run f = run_engine(*b.m, records, quick ? std::min<size_t>(count, 2000) : count);
      us.push_back(f.us_per_record);
      mpr = f.matches_per_record;
    }
    std::vector<double> tail(b.subscribe_us.end() - static_cast<long>(n / 10), b.subscribe_us.end());
    const Spread s = spread(us);
    std::printf("%9zu %8.3f [%.2f-%.2f] %12.1f %10.2f %8.0f %11.2f %11.2f %s\n", n, s.median, s.lo, s.hi, mpr,
                s.median * 1000 / std::max(mpr, 1e-9), b.bytes_per_sub, clio::bench::percentile(tail, 0.5),
                clio::bench::percentile(tail, 0.99), every_record_line(*b.m).c_str());
  }
  if (only != 0) return 0;
  for (size_t n : {size_t{1000}, size_t{10000}}) {
    Built b = build(all, n);
    std::vector<clio::matcher::Query> qs;
    for (size_t i = 0; i < n; ++i) qs.push_back(*clio::matcher::parse(all[i], clio::http_schema()).query);
    const size_t ref_count = n == 1000 ? 2000 : 200;
    std::vector<double> ratio;
    for (int k = 0; k < rounds; ++k) {
      const Run ref = run_reference(qs, records, 0, ref_count);
      run_engine(*b.m, records, 200);  // caches back after the baseline's round
      const Run eng = run_engine(*b.m, records, 20000);
      ratio.push_back(ref.us_per_record / eng.us_per_record);
    }
    const Spread s = spread(ratio);
    std::printf("every-query baseline at %zu: the engine is %.0fx faster [%.0f-%.0f]\n", n, s.median, s.lo, s.hi);
  }
  return 0;
}

// The engine's ids on records [first, first+count) equal the baseline's.
bool same_ids(const Matcher& m, const std::vector<clio::matcher::Query>& qs, const std::vector<clio::Record>& records,
              size_t first, size_t count) {
  std::vector<uint64_t> got, want;
  for (size_t i = first; i < first + count; ++i) {
    clio::HttpRecordView view(records[i % records.size()]);
    got.clear();
    want.clear();
    m.match(view, got);
    for (size_t k = 0; k < qs.size(); ++k) {
      if (qs[k].matches(view)) want.push_back(k);
    }
    std::sort(got.begin(), got.end());
    if (got != want) {
      std::fprintf(stderr, "record %zu: engine %zu ids, baseline %zu\n", i, got.size(), want.size());
      return false;
    }
  }
  return true;
}

int realistic_workload(bool quick, size_t only, int rounds, bool baseline) {
  const auto records = clio::bench::realistic_records(20000);
  const auto queries = clio::bench::realistic_queries(100000);
  std::printf("== realistic admin mix (bench/realistic_workload.h): %zu queries, %zu records\n", queries.size(),
              records.size());
  std::printf("%9s %20s %12s %9s %22s %9s %7s %11s %11s %s\n", "subs", "us/record [range]", "matches/rec",
              "us/match", "baseline us/rec [x]", "agree", "B/sub", "sub p50 us", "sub p99 us", "every-record");
  int status = 0;
  for (size_t n : {size_t{1000}, size_t{10000}, size_t{100000}}) {
    if (only != 0 && n != only) continue;
    Built b = build(queries, n, &records);
    std::vector<clio::matcher::Query> qs;
    for (size_t i = 0; i < n; ++i) qs.push_back(*clio::matcher::parse(queries[i], clio::http_schema()).query);
    const size_t count = quick ? 2000 : (n >= 100000 ? 5000 : 20000);
    const size_t ref_count = std::max<size_t>(10, (quick ? 2000000 : 20000000) / n / 10);
    run_engine(*b.m, records, 500);  // warm up
    std::vector<double> eng, ref;
    double mpr = 0;
    for (int k = 0; k < rounds; ++k) {
      run_engine(*b.m, records, 200);  // caches back after the baseline's round
      const Run e = run_engine(*b.m, records, count);
      eng.push_back(e.us_per_record);
      mpr = e.matches_per_record;
      if (!baseline) continue;  // (for profiling the engine alone)
      const Run r = run_reference(qs, records, static_cast<size_t>(k) * ref_count, ref_count);
      ref.push_back(r.us_per_record);
    }
    if (!baseline) ref.push_back(0);
    const bool agree = !baseline || same_ids(*b.m, qs, records, 7000, std::max<size_t>(20, ref_count));
    if (!agree) status = 1;
    std::vector<double> tail(b.subscribe_us.end() - static_cast<long>(n / 10), b.subscribe_us.end());
    const Spread e = spread(eng), r = spread(ref);
    char base[64];
    std::snprintf(base, sizeof base, "%.0f [%.0fx]", r.median, r.median / e.median);
    std::printf("%9zu %8.2f [%.2f-%.2f] %12.2f %9.3f %22s %9s %7.0f %11.2f %11.2f %s\n", n, e.median, e.lo, e.hi,
                mpr, e.median / std::max(mpr, 1e-9), base, agree ? "yes" : "NO", b.bytes_per_sub,
                clio::bench::percentile(tail, 0.5), clio::bench::percentile(tail, 0.99),
                every_record_line(*b.m).c_str());
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: matcher_bench WORKLOAD_DIR [--quick] [--only N] [--rounds R] [--realistic-only] [--no-baseline]\n");
    return 2;
  }
  bool quick = false, realistic_only = false, baseline = true;
  size_t only = 0;  // run just this subscription count (for profiling)
  int rounds = 3;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    if (a == "--realistic-only") realistic_only = true;
    if (a == "--no-baseline") baseline = false;
    if (a == "--only" && i + 1 < argc) only = std::stoul(argv[++i]);
    if (a == "--rounds" && i + 1 < argc) rounds = std::max(1, std::stoi(argv[++i]));
  }
  if (!realistic_only) {
    const int s = shared_workload(argv[1], quick, only, rounds);
    if (s != 0) return s;
  }
  return realistic_workload(quick, only, rounds, baseline);
}
