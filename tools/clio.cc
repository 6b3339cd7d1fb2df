// clio: the command-line face of the query language and the matcher.
//
//   clio check QUERY                      canonical form, or the error with a caret
//   clio match [--stats] QUERY [FILE...]  prints the records (JSON lines) that match
//   clio match [--stats] --queries QFILE [FILE...]
//                                         one line per record: {"record": I, "matches": [J, ...]}
//   clio serve --redis URL [...]          the console alone, reading a fleet's Redis stream
//
// --stats prints one JSON line on stderr: counts, the matching cost (thread
// CPU time of the matching loop, which matches as matcher_bench does) and how
// many subscriptions are checked on every record, by reason.
//
// FILE "-" or no FILE reads standard input. Exit status: 0 success; 1 an input
// record or file could not be read (reported on stderr, the rest is still
// processed); 2 a bad query or bad usage.
#include <time.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "clio/matcher/matcher.h"
#include "clio/matcher/query.h"
#include "clio/middleware/http_schema.h"
#include "clio/middleware/record.h"
#include "id_buffer.h"
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

// Thread CPU seconds: the clock matcher_bench uses, so figures compare.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Records read from the inputs in batches: all of a batch is parsed first,
// then matched in one tight loop (the benchmark's loop), then printed.
struct Batch {
  static constexpr size_t kSize = 1024;
  std::vector<size_t> index;
  std::vector<std::string> lines;
  std::vector<clio::Record> records;
  size_t size = 0;
};

// Reads records from the files in order, calling flush(batch) for every full
// batch and the last one. Returns false if some line or file could not be
// read (already reported).
template <typename Flush>
bool for_each_batch(const std::vector<std::string>& files, Flush flush) {
  bool ok = true;
  size_t index = 0;
  Batch b;
  b.index.resize(Batch::kSize);
  b.lines.resize(Batch::kSize);
  b.records.resize(Batch::kSize);
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
    size_t line_no = 0;
    while (std::getline(*in, b.lines[b.size])) {
      std::string& l = b.lines[b.size];
      ++line_no;
      if (!l.empty() && l.back() == '\r') l.pop_back();
      if (l.find_first_not_of(" \t") == std::string::npos) continue;
      auto rec = clio::record_from_json(l);
      const size_t i = index++;
      if (!rec.ok()) {
        std::fprintf(stderr, "clio: %s:%zu: record %zu skipped: %s\n", name == "-" ? "<stdin>" : name.c_str(),
                     line_no, i, rec.status().message().c_str());
        ok = false;
        continue;
      }
      b.index[b.size] = i;
      b.records[b.size] = std::move(*rec);
      if (++b.size == Batch::kSize) {
        flush(b);
        b.size = 0;
      }
    }
  }
  if (b.size > 0) flush(b);
  return ok;
}

// "every_record": N, "every_record_by_reason": {"negated_text": n, ...}
std::string every_record_json(const clio::matcher::MatcherStats& st) {
  std::string s = "\"every_record\": " + std::to_string(st.every_record) + ", \"every_record_by_reason\": {";
  bool first = true;
  for (size_t r = 1; r < clio::matcher::kEveryRecordReasonCount; ++r) {
    if (st.every_record_by_reason[r] == 0) continue;
    if (!first) s += ", ";
    first = false;
    s += '"';
    s += clio::matcher::every_record_code(static_cast<clio::matcher::EveryRecordReason>(r));
    s += "\": " + std::to_string(st.every_record_by_reason[r]);
  }
  return s + "}";
}

constexpr size_t kOutChunk = 64 << 10;

void append_number(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
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
  size_t queries = 0;  // --queries: ids are their line numbers, below this
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
    queries = n;
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

  // Each record is matched into one reused vector, as in matcher_bench, and
  // its ids are copied out of the cache's way into the batch's IdBuffer; the
  // loop is timed in thread CPU time. A batch's ids lie one after the other
  // (ends[k]: past record k's).
  double match_seconds = 0;
  size_t records = 0, matches = 0;
  std::vector<uint64_t> hot;
  hot.reserve(1 << 16);
  IdBuffer ids;
  IdSorter sorter(queries);
  std::vector<size_t> ends(Batch::kSize);
  std::string out;
  const bool ok = for_each_batch(pos, [&](Batch& b) {
    ids.clear();
    const double t0 = cpu_seconds();
    for (size_t k = 0; k < b.size; ++k) {
      hot.clear();
      matcher.match(clio::HttpRecordView(b.records[k]), hot);
      ids.append(hot);
      ends[k] = ids.size();
    }
    ids.fence();
    match_seconds += cpu_seconds() - t0;
    records += b.size;
    matches += ids.size();
    // Printed in pieces of about kOutChunk bytes, so the text never grows
    // into a copy of the batch that would push the index out of the cache.
    out.clear();
    for (size_t k = 0; k < b.size; ++k) {
      uint32_t* first = ids.data() + (k == 0 ? 0 : ends[k - 1]);
      uint32_t* last = ids.data() + ends[k];
      if (multi) {
        last = sorter.sort(first, last);
        out += "{\"record\": ";
        append_number(out, b.index[k]);
        out += ", \"matches\": [";
        for (const uint32_t* it = first; it != last; ++it) {
          if (it != first) out += ", ";
          append_number(out, *it);
        }
        out += "]}\n";
      } else if (first != last) {
        out += b.lines[k];
        out += '\n';
      }
      if (out.size() >= kOutChunk) {
        std::fwrite(out.data(), 1, out.size(), stdout);
        out.clear();
      }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
  });
  std::fflush(stdout);
  if (stats) {
    const auto st = matcher.stats();
    std::fprintf(stderr,
                 "{\"subscriptions\": %zu, \"distinct_queries\": %zu, \"records\": %zu, \"match_seconds\": %.9f, "
                 "\"records_per_second\": %.1f, \"us_per_record\": %.4f, \"matches\": %zu, %s}\n",
                 st.subscriptions, st.distinct_queries, records, match_seconds,
                 match_seconds > 0 ? static_cast<double>(records) / match_seconds : 0.0,
                 records > 0 ? match_seconds * 1e6 / static_cast<double>(records) : 0.0, matches,
                 every_record_json(st).c_str());
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
