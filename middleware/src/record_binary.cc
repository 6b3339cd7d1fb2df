// The record's binary encoding; see record_binary.h for the layout.
#include "clio/middleware/record_binary.h"

#include <bit>
#include <cstdint>
#include <cstring>

namespace clio {
namespace {

// Format 1 lacks `instance`; format 2 (written since) ends the strings with it.
constexpr unsigned char kFormatV1 = 1;
constexpr unsigned char kFormat = 2;
constexpr size_t kMaxVarintBytes = 10;

uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }

// The write side's one description of the layout, over a sink that either
// counts bytes (Measure) or writes them (Write): append_binary() measures
// the record, grows `out` once, then writes into it.
template <typename Sink>
void write_record(const Record& r, Sink& out) {
  out.byte(kFormat);
  for (double d : {r.time, r.wall_time, r.cpu_time, r.random}) out.dbl(d);
  for (int64_t v : {int64_t{r.status_code}, r.request_bytes, r.response_bytes}) out.varint(zigzag(v));
  for (const std::string* s : {&r.method, &r.path, &r.query, &r.remote_ip, &r.host, &r.user_agent, &r.referer,
                               &r.http_version, &r.instance}) {
    out.bytes(*s);
  }
  for (const auto* pairs : {&r.headers, &r.tags}) {
    out.varint(pairs->size());
    for (const auto& [k, v] : *pairs) {
      out.bytes(k);
      out.bytes(v);
    }
  }
}

struct Measure {
  size_t n = 0;
  void byte(unsigned char) { ++n; }
  void dbl(double) { n += 8; }
  void varint(uint64_t v) {
    do {
      ++n;
      v >>= 7;
    } while (v != 0);
  }
  void bytes(std::string_view s) {
    varint(s.size());
    n += s.size();
  }
};

struct Write {
  char* p;
  void byte(unsigned char b) { *p++ = static_cast<char>(b); }
  void dbl(double d) {
    auto bits = std::bit_cast<uint64_t>(d);
    if constexpr (std::endian::native == std::endian::big) bits = __builtin_bswap64(bits);
    std::memcpy(p, &bits, 8);
    p += 8;
  }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      *p++ = static_cast<char>((v & 0x7F) | 0x80);
      v >>= 7;
    }
    *p++ = static_cast<char>(v);
  }
  void bytes(std::string_view s) {
    varint(s.size());
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    p += s.size();
  }
};

// Reads from a private copy of the input view; the caller commits the
// position only when the whole record decoded.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  std::string_view rest() const { return in_; }

  bool varint(uint64_t& v) {
    v = 0;
    for (size_t i = 0; i < kMaxVarintBytes && i < in_.size(); ++i) {
      const auto b = static_cast<unsigned char>(in_[i]);
      v |= static_cast<uint64_t>(b & 0x7F) << (7 * i);
      if ((b & 0x80) == 0) {
        in_.remove_prefix(i + 1);
        return true;
      }
    }
    return false;
  }
  bool signed_varint(int64_t& v) {
    uint64_t u;
    if (!varint(u)) return false;
    v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  bool dbl(double& v) {
    if (in_.size() < 8) return false;
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits |= static_cast<uint64_t>(static_cast<unsigned char>(in_[i])) << (8 * i);
    v = std::bit_cast<double>(bits);
    in_.remove_prefix(8);
    return true;
  }
  bool bytes(std::string_view& s) {
    uint64_t n;
    if (!varint(n) || n > in_.size()) return false;
    s = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  // A count of pairs: each takes at least two bytes, which bounds it.
  bool count(uint64_t& n) { return varint(n) && n <= in_.size() / 2; }
  // Name-value pairs into *m, or only checked and skipped when m is null.
  bool pairs(std::vector<std::pair<std::string, std::string>>* m) {
    uint64_t n;
    if (!count(n)) return false;
    if (m) m->resize(n);
    for (uint64_t i = 0; i < n; ++i) {
      std::string_view k, v;
      if (!bytes(k) || !bytes(v)) return false;
      if (m) {
        (*m)[i].first.assign(k);
        (*m)[i].second.assign(v);
      }
    }
    return true;
  }
  // The format byte: 1 or 2 (0 when unknown, and nothing is consumed).
  unsigned char format() {
    if (in_.empty()) return 0;
    const auto f = static_cast<unsigned char>(in_[0]);
    if (f != kFormatV1 && f != kFormat) return 0;
    in_.remove_prefix(1);
    return f;
  }

 private:
  std::string_view in_;
};

// Reads one record, in the layout append_binary() writes, into *out; with
// out == nullptr only checks and skips it. The read side's one description
// of the layout, shared by decode_binary() and skip_binary().
bool read_record(Reader& rd, Record* out) {
  double time, wall, cpu, random;
  int64_t status, request_bytes, response_bytes;
  std::string_view text[9];
  const unsigned char format = rd.format();
  const size_t strings = format == kFormatV1 ? 8 : 9;
  bool ok = format != 0 && rd.dbl(time) && rd.dbl(wall) && rd.dbl(cpu) && rd.dbl(random) &&
            rd.signed_varint(status) && status >= INT32_MIN && status <= INT32_MAX &&
            rd.signed_varint(request_bytes) && rd.signed_varint(response_bytes);
  for (size_t i = 0; i < strings; ++i) ok = ok && rd.bytes(text[i]);
  if (!ok) return false;
  if (out) {
    out->id = 0;
    out->time = time;
    out->wall_time = wall;
    out->cpu_time = cpu;
    out->random = random;
    out->status_code = static_cast<int>(status);
    out->request_bytes = request_bytes;
    out->response_bytes = response_bytes;
    std::string* const fields[] = {&out->method,     &out->path,    &out->query,        &out->remote_ip, &out->host,
                                   &out->user_agent, &out->referer, &out->http_version, &out->instance};
    for (size_t i = 0; i < 9; ++i) fields[i]->assign(text[i]);
    out->remote_addr = matcher::IpAddr::parse(out->remote_ip);
  }
  return rd.pairs(out ? &out->headers : nullptr) && rd.pairs(out ? &out->tags : nullptr);
}

}  // namespace

void append_binary(const Record& r, std::string& out) {
  Measure m;
  write_record(r, m);
  const size_t at = out.size();
  out.resize(at + m.n);
  Write w{out.data() + at};
  write_record(r, w);
}

Status decode_binary(std::string_view& in, Record& out) {
  Reader rd(in);
  if (!read_record(rd, &out)) return Status::InvalidArgument("record encoding is truncated or malformed");
  in = rd.rest();
  return Status::Ok();
}

bool skip_binary(std::string_view& in) {
  Reader rd(in);
  if (!read_record(rd, nullptr)) return false;
  in = rd.rest();
  return true;
}

}  // namespace clio
