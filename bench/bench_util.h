// Small helpers shared by the benchmarks: order statistics, a wrk run and
// numbered names.
//
//   double rps = clio::bench::run_wrk(port, 5, 8, 1);   // Requests/sec, or -1
//   auto run = clio::bench::run_wrk_cpu(port, 5, 8, 1); // and this process's CPU per request
//   double m = clio::bench::median(samples);
//   auto cpu = clio::bench::thread_cpu_by_name();       // {"clio-store": 1.25, ...} seconds
//   std::string id = clio::bench::numbered("c", 7);      // "c7"
#pragma once

#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace clio::bench {

// `prefix` followed by `n` in decimal. Appends rather than writing
// `"c" + std::to_string(n)`, whose insert at the front GCC 12 at -O3
// misreads as an overlapping memcpy (a false -Wrestrict warning).
inline std::string numbered(std::string_view prefix, uint64_t n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

// Nearest-rank percentile (p in [0,1]); 0 for no samples.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// The middle value (the mean of the two middle ones for an even count); 0 for none.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// This process's CPU time so far (user + system, all threads), in seconds.
inline double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU time of this process's live threads so far, in seconds, summed by
// thread name with trailing digits dropped ("civetweb-worker", "clio-store"),
// read from /proc/self/task (schedstat: nanoseconds on a CPU). A thread that
// ended is missing, so compare snapshots across spans where threads last.
inline std::map<std::string, double> thread_cpu_by_name() {
  std::map<std::string, double> by_name;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return by_name;
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const std::string task = std::string("/proc/self/task/") + e->d_name;
    char name[64] = {0};
    unsigned long long ns = 0;
    FILE* f = std::fopen((task + "/comm").c_str(), "r");
    if (f == nullptr) continue;
    const bool named = std::fgets(name, sizeof name, f) != nullptr;
    std::fclose(f);
    f = std::fopen((task + "/schedstat").c_str(), "r");
    if (f == nullptr) continue;
    const bool timed = std::fscanf(f, "%llu", &ns) == 1;
    std::fclose(f);
    if (!named || !timed) continue;
    std::string n(name);
    while (!n.empty() && (n.back() == '\n' || std::isdigit(static_cast<unsigned char>(n.back())) || n.back() == '-')) {
      n.pop_back();
    }
    by_name[n] += static_cast<double>(ns) * 1e-9;
  }
  closedir(dir);
  return by_name;
}

// One wrk run: its Requests/sec (-1 when wrk failed), the requests it
// completed, and the CPU this process (the server under test: wrk runs in
// a child, which is not counted) spent per request, in microseconds.
struct WrkRun {
  double rps = -1;
  double requests = 0;
  double cpu_us_per_request = 0;
};

// Runs `cmd` (a load generator in a child process) to its end, handing each
// line it prints to `parse(line, run)` to fill rps and requests, and adds
// the CPU this process spent meanwhile per request. {} if it failed.
template <typename Parse>
WrkRun run_child_cpu(const std::string& cmd, Parse parse) {
  const double cpu0 = process_cpu_seconds();
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {};
  char line[512];
  WrkRun run;
  while (std::fgets(line, sizeof line, p)) parse(line, run);
  if (pclose(p) != 0) return {};
  if (run.requests > 0) run.cpu_us_per_request = (process_cpu_seconds() - cpu0) * 1e6 / run.requests;
  return run;
}

// Runs wrk against http://127.0.0.1:port/path.
inline WrkRun run_wrk_cpu(int port, int seconds, int connections, int threads, const std::string& path = "/api/hello") {
  const std::string cmd = "wrk -t" + std::to_string(threads) + " -c" + std::to_string(connections) + " -d" +
                          std::to_string(seconds) + "s http://127.0.0.1:" + std::to_string(port) + path + " 2>&1";
  return run_child_cpu(cmd, [](const char* line, WrkRun& run) {
    std::sscanf(line, "Requests/sec: %lf", &run.rps);
    std::sscanf(line, " %lf requests in", &run.requests);
  });
}

// Runs wrk against http://127.0.0.1:port/path and returns its Requests/sec,
// or -1 when wrk failed.
inline double run_wrk(int port, int seconds, int connections, int threads, const std::string& path = "/api/hello") {
  return run_wrk_cpu(port, seconds, connections, threads, path).rps;
}

}  // namespace clio::bench
