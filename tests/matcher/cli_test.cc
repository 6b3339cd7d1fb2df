// The `clio` tool, run as a separate process on temp files.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#ifndef CLIO_BIN
#error "CLIO_BIN must name the clio executable"
#endif

namespace {

namespace fs = std::filesystem;

struct Run {
  int status;
  std::string out;
  std::string err;
};

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "clio-cli-XXXXXX").string();
    if (mkdtemp(t.data()) == nullptr) std::abort();
    path_ = t;
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name, const std::string& content) const {
    const fs::path p = path_ / name;
    std::ofstream(p) << content;
    return p.string();
  }
  fs::path path() const { return path_; }

 private:
  fs::path path_;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

Run run(const TempDir& d, const std::string& args, const std::string& stdin_file = "/dev/null") {
  const std::string out = (d.path() / "out.txt").string(), err = (d.path() / "err.txt").string();
  const std::string cmd = quote(CLIO_BIN) + " " + args + " <" + quote(stdin_file) + " >" + quote(out) + " 2>" + quote(err);
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, slurp(out), slurp(err)};
}

// `clio match [FLAGS] --queries q.txt r.jsonl` with these queries and records.
Run match_queries(const TempDir& d, const std::string& queries, const std::string& records,
                  const std::string& flags = "") {
  const std::string q = d.file("q.txt", queries), f = d.file("r.jsonl", records);
  return run(d, "match " + flags + "--queries " + quote(q) + " " + quote(f));
}

// `out` is `count` lines, line i {"record": i, "matches": [matches_of(i)]}.
void check_match_lines(const std::string& out, int count, const std::function<std::string(int)>& matches_of) {
  std::istringstream lines(out);
  std::string line;
  int i = 0;
  while (std::getline(lines, line)) {
    const std::string want = "{\"record\": " + std::to_string(i) + ", \"matches\": [" + matches_of(i) + "]}";
    if (line != want) {
      FAIL_CHECK("record " << i << ": " << line.substr(0, 200) << " != " << want.substr(0, 200));
      break;
    }
    ++i;
  }
  CHECK(i == count);
}

const char* kRecords =
    R"({"id":1,"method":"GET","path":"/api/a","status_code":200,"wall_time":12,"remote_ip":"10.0.0.1","headers":{"User-Agent":"curl/8"}})"
    "\n"
    R"({"id":2,"method":"POST","path":"/api/b","status_code":503,"wall_time":2500,"remote_ip":"10.0.0.2","headers":{}})"
    "\n\n"
    R"({"id":3,"method":"GET","path":"/static/x.js","status_code":404,"wall_time":1,"remote_ip":"192.168.1.1"})"
    "\n";

}  // namespace

TEST_CASE("clio check prints the canonical form") {
  TempDir d;
  Run r = run(d, "check " + quote("c:5xx wall > 2s -m:OPTIONS"));
  CHECK(r.status == 0);
  CHECK(r.out == "status_code:5xx and wall_time > 2000 and not method:\"options\"\n");
}

TEST_CASE("clio check shows the error with a caret under the span") {
  TempDir d;
  Run r = run(d, "check " + quote("status >= 500 and stauts = 1"));
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  CHECK(r.err.find("unknown field 'stauts'") != std::string::npos);
  CHECK(r.err.find("  status >= 500 and stauts = 1\n                    ^^^^^^\n") != std::string::npos);
  CHECK(r.err.find("did you mean 'status'?") != std::string::npos);
  // Carets count characters, not bytes.
  Run u = run(d, "check " + quote("héllo wörld = 1"));
  CHECK(u.status == 2);
  CHECK(u.err.find("\n        ^^^^^\n") != std::string::npos);  // "wörld": 6 columns in, 5 wide
}

TEST_CASE("clio match prints matching records unchanged, from files and stdin") {
  TempDir d;
  const std::string f = d.file("r.jsonl", kRecords);
  Run r = run(d, "match " + quote("status >= 400") + " " + quote(f));
  CHECK(r.status == 0);
  std::istringstream lines(kRecords);
  std::string l1, l2, blank, l3;
  std::getline(lines, l1);
  std::getline(lines, l2);
  std::getline(lines, blank);
  std::getline(lines, l3);
  CHECK(r.out == l2 + "\n" + l3 + "\n");
  Run s = run(d, "match " + quote("h.user-agent:curl"), f);
  CHECK(s.status == 0);
  CHECK(s.out == l1 + "\n");
  Run t = run(d, "match " + quote("ip:10.0.0.0/8") + " - " + quote(f), f);
  CHECK(t.out == l1 + "\n" + l2 + "\n" + l1 + "\n" + l2 + "\n");
}

TEST_CASE("clio match --queries prints one line per record with sorted query line numbers") {
  TempDir d;
  Run r = match_queries(d, "status = 200\nmethod = GET\nwall > 1s\npath:api\nnot ip:10.0.0.0/8\n", kRecords);
  CHECK(r.status == 0);
  CHECK(r.out ==
        "{\"record\": 0, \"matches\": [0, 1, 3]}\n"
        "{\"record\": 1, \"matches\": [2, 3]}\n"
        "{\"record\": 2, \"matches\": [1, 4]}\n");
}

TEST_CASE("clio match --queries reports a bad query line and exits 2") {
  TempDir d;
  Run r = match_queries(d, "status = 200\nstatus = = 1\nmethod = GET\n", kRecords);
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  CHECK(r.err.find("q.txt:2 (query 1)") != std::string::npos);
}

TEST_CASE("--stats prints one JSON line on stderr") {
  TempDir d;
  const std::string f = d.file("r.jsonl", kRecords);
  Run r = run(d, "match --stats " + quote("method = GET") + " " + quote(f));
  CHECK(r.status == 0);
  for (const char* key : {"\"subscriptions\": 1", "\"records\": 3", "\"match_seconds\": ", "\"records_per_second\": ",
                          "\"us_per_record\": ", "\"matches\": 2"}) {
    CHECK_MESSAGE(r.err.find(key) != std::string::npos, key);
  }
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

TEST_CASE("--stats counts the subscriptions checked on every record, by reason") {
  TempDir d;
  Run r = match_queries(d, "-method:OPTIONS\nstatus:5xx\n-method:OPTIONS\npath ~ \"[0-9]{4}\"\n", kRecords, "--stats ");
  CHECK(r.status == 0);
  for (const char* key : {"\"subscriptions\": 4", "\"distinct_queries\": 3", "\"every_record\": 3",
                          "\"negated_text\": 2", "\"regex_without_literal\": 1"}) {
    CHECK_MESSAGE(r.err.find(key) != std::string::npos, key << " in " << r.err);
  }
}

TEST_CASE("clio match --queries over more records than one batch keeps every record in order") {
  TempDir d;
  std::string records;
  for (int i = 0; i < 2500; ++i) {
    records += R"({"id":)" + std::to_string(i) + R"(,"method":"GET","path":"/p)" + std::to_string(i % 7) +
               R"(","status_code":)" + (i % 5 == 0 ? "500" : "200") + "}\n";
  }
  Run r = match_queries(d, "path:p3\nstatus:5xx\n", records);
  CHECK(r.status == 0);
  check_match_lines(r.out, 2500, [](int i) -> std::string {
    if (i % 7 == 3) return i % 5 == 0 ? "0, 1" : "0";
    return i % 5 == 0 ? "1" : "";
  });
}

TEST_CASE("clio match --queries lists hundreds of ids per record, exactly, across batches and output pieces") {
  // Query q < 700 is `wall_time > q`: a record with wall time w matches
  // 0..w-1. Queries 700..999 are one identical query, matched through one
  // shared entry. 1,100 records: two batches, several 64 KiB output pieces,
  // and runs of ids at every alignment of the 16-byte stores.
  TempDir d;
  std::string queries, records;
  for (int q = 0; q < 700; ++q) queries += "wall_time > " + std::to_string(q) + "\n";
  for (int q = 700; q < 1000; ++q) queries += "method = GET\n";
  for (int i = 0; i < 1100; ++i) {
    records += R"({"id":)" + std::to_string(i) + R"(,"method":")" + (i % 3 == 0 ? "GET" : "PUT") +
               R"(","wall_time":)" + std::to_string(i % 701) + "}\n";
  }
  Run r = match_queries(d, queries, records);
  CHECK(r.status == 0);
  check_match_lines(r.out, 1100, [](int i) {
    std::string ids;
    auto add = [&](int id) { ids += (ids.empty() ? "" : ", ") + std::to_string(id); };
    for (int q = 0; q < i % 701; ++q) add(q);
    if (i % 3 == 0) {
      for (int q = 700; q < 1000; ++q) add(q);
    }
    return ids;
  });
}

TEST_CASE("bad records are reported, skipped, and make the exit status 1") {
  TempDir d;
  const std::string f = d.file("r.jsonl", std::string("{not json\n") + kRecords + "[1,2]\n");
  Run r = run(d, "match --queries " + quote(d.file("q.txt", "method = GET\n")) + " " + quote(f));
  CHECK(r.status == 1);
  CHECK(r.out ==
        "{\"record\": 1, \"matches\": [0]}\n"
        "{\"record\": 2, \"matches\": []}\n"
        "{\"record\": 3, \"matches\": [0]}\n");
  CHECK(r.err.find("r.jsonl:1: record 0 skipped") != std::string::npos);
  CHECK(r.err.find("record 4 skipped") != std::string::npos);
  Run missing = run(d, "match " + quote("a") + " /nonexistent/file");
  CHECK(missing.status == 1);
  CHECK(missing.err.find("cannot open") != std::string::npos);
}

TEST_CASE("usage errors exit 2") {
  TempDir d;
  CHECK(run(d, "").status == 2);
  CHECK(run(d, "frobnicate").status == 2);
  CHECK(run(d, "match").status == 2);
  CHECK(run(d, "match --bogus x").status == 2);
  CHECK(run(d, "check").status == 2);
}
