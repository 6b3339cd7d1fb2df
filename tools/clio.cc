// clio: the command-line face of the query language and the matcher.
//
//   clio check QUERY                      canonical form, or the error with a caret
//   clio match [--stats] QUERY [FILE...]  prints the records (JSON lines) that match
//   clio match [--stats] --queries QFILE [FILE...]
//                                         one line per record: {"record": I, "matches": [J, ...]}
//   clio serve --redis URL [...]          the console alone, reading a fleet's Redis stream
//
// FILE "-" or no FILE reads standard input. Exit status: 0 success; 1 an input
// record or file could not be read (reported on stderr, the rest is still
// processed); 2 a bad query or bad usage.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "clio/matcher/matcher.h"
#include "clio/matcher/query.h"
#include "clio/middleware/http_schema.h"
#include "clio/middleware/record.h"
#include "serve.h"

namespace {

constexpr const char* kUsage =
    "usage: clio check QUERY\n"
    "       clio match [--stats] QUERY [FILE...]\n"
    "       clio match [--stats] --queries QFILE [FILE...]\n"
    "       clio serve --redis URL [--port N] [--db PATH] ...  (clio serve --help)\n"
    "Records are JSON lines in Clio's record encoding; FILE '-' or none is stdin.\n";

int usage_error(const std::string& why) {
  std::fprintf(stderr, "clio: %s\n%s", why.c_str(), kUsage);
  return 2;
}

// Display column of byte `offset` in `text` (UTF-8 code points, tabs kept).
std::string caret_line(std::string_view text, size_t offset, size_t length) {
  std::string pad;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    pad.push_back(c == '\t' ? '\t' : ' ');
  }
  size_t width = 0;
  for (size_t i = offset; i < offset + length && i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++width;
  }
  return pad + std::string(width == 0 ? 1 : width, '^');
}

void print_error(const std::string& prefix, std::string_view query, const clio::matcher::QueryError& e) {
  std::fprintf(stderr, "%serror [%s] at byte %zu: %s\n", prefix.c_str(), e.code.c_str(), e.offset,
               e.message.c_str());
  std::string q(query);
  for (char& c : q) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fprintf(stderr, "  %s\n  %s\n", q.c_str(), caret_line(q, e.offset, e.length).c_str());
  if (!e.hint.empty()) std::fprintf(stderr, "  hint: %s\n", e.hint.c_str());
}

int cmd_check(const std::vector<std::string>& args) {
  if (args.size() != 1) return usage_error("check takes exactly one QUERY");
  auto r = clio::matcher::parse(args[0], clio::http_schema());
  if (!r.ok()) {
    print_error("", args[0], r.error);
    return 2;
  }
  std::printf("%s\n", r.query->canonical().c_str());
  return 0;
}

// Reads records from the files in order, calling fn(index, line, record).
// Returns false if some line or file could not be read (already reported).
template <typename Fn>
bool for_each_record(const std::vector<std::string>& files, Fn fn) {
  bool ok = true;
  size_t index = 0;
  std::vector<std::string> names = files;
  if (names.empty()) names.push_back("-");
  for (const auto& name : names) {
    std::ifstream file;
    std::istream* in = &std::cin;
    if (name != "-") {
      file.open(name);
      if (!file) {
        std::fprintf(stderr, "clio: cannot open %s\n", name.c_str());
        ok = false;
        continue;
      }
      in = &file;
    }
    std::string line;
    size_t line_no = 0;
    while (std::getline(*in, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      auto rec = clio::record_from_json(line);
      const size_t i = index++;
      if (!rec.ok()) {
        std::fprintf(stderr, "clio: %s:%zu: record %zu skipped: %s\n", name == "-" ? "<stdin>" : name.c_str(),
                     line_no, i, rec.status().message().c_str());
        ok = false;
        continue;
      }
      fn(i, line, *rec);
    }
  }
  return ok;
}

int cmd_match(std::vector<std::string> args) {
  bool stats = false;
  std::string qfile;
  std::vector<std::string> pos;
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!options_done && a == "--") { options_done = true; continue; }
    if (!options_done && a == "--stats") { stats = true; continue; }
    if (!options_done && a == "--queries") {
      if (i + 1 >= args.size()) return usage_error("--queries needs a file");
      qfile = args[++i];
      continue;
    }
    if (!options_done && a.size() > 2 && a.rfind("--", 0) == 0) return usage_error("unknown option " + a);
    pos.push_back(a);
  }
  const auto& schema = clio::http_schema();
  clio::matcher::Matcher matcher(schema);
  const bool multi = !qfile.empty();
  if (multi) {
    std::ifstream in(qfile);
    if (!in) {
      std::fprintf(stderr, "clio: cannot open %s\n", qfile.c_str());
      return 2;
    }
    std::string line;
    size_t n = 0;
    bool bad = false;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto e = matcher.subscribe(n, line);
      if (!e.ok()) {
        print_error(qfile + ":" + std::to_string(n + 1) + " (query " + std::to_string(n) + "): ", line, e);
        bad = true;
      }
      ++n;
    }
    if (bad) return 2;
  } else {
    if (pos.empty()) return usage_error("match needs a QUERY or --queries QFILE");
    const std::string query = pos.front();
    pos.erase(pos.begin());
    auto e = matcher.subscribe(0, query);
    if (!e.ok()) {
      print_error("", query, e);
      return 2;
    }
  }

  using Clock = std::chrono::steady_clock;
  Clock::duration match_time{};
  size_t records = 0, matches = 0;
  std::vector<uint64_t> ids;
  std::string out;
  const bool ok = for_each_record(pos, [&](size_t index, const std::string& line, const clio::Record& rec) {
    ids.clear();
    clio::HttpRecordView view(rec);
    const auto t0 = Clock::now();
    matcher.match(view, ids);
    match_time += Clock::now() - t0;
    ++records;
    matches += ids.size();
    if (multi) {
      std::sort(ids.begin(), ids.end());
      out = "{\"record\": " + std::to_string(index) + ", \"matches\": [";
      for (size_t k = 0; k < ids.size(); ++k) {
        if (k > 0) out += ", ";
        out += std::to_string(ids[k]);
      }
      out += "]}\n";
      std::fwrite(out.data(), 1, out.size(), stdout);
    } else if (!ids.empty()) {
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
    }
  });
  std::fflush(stdout);
  if (stats) {
    const double secs = std::chrono::duration<double>(match_time).count();
    std::fprintf(stderr,
                 "{\"subscriptions\": %zu, \"records\": %zu, \"match_seconds\": %.9f, "
                 "\"records_per_second\": %.1f, \"us_per_record\": %.4f, \"matches\": %zu}\n",
                 matcher.size(), records, secs, secs > 0 ? static_cast<double>(records) / secs : 0.0,
                 records > 0 ? secs * 1e6 / static_cast<double>(records) : 0.0, matches);
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  if (argc < 2) return usage_error("missing command");
  const std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "check") return cmd_check(args);
  if (cmd == "match") return cmd_match(std::move(args));
  if (cmd == "serve") return cmd_serve(args);
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  return usage_error("unknown command '" + cmd + "'");
}
