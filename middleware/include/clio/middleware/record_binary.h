// The record's compact binary encoding, for storage: what the inspector's
// store keeps for every record. About a third of the JSON's size (no member
// names, numbers in binary) and cheaper to produce, since it copies strings
// as they are. JSON (record.h) stays the encoding of everything a person or
// a browser reads; this one is what the store keeps and what a record log
// (clio/log) carries between app instances and the console.
//
//   std::string body;
//   clio::append_binary(r, body);                  // one record, appended
//   std::string_view in = body;
//   clio::Record back;
//   clio::Status s = clio::decode_binary(in, back);  // consumes one record
//
// Layout of one record: a format byte (2); time, wall_time, cpu_time and
// random as IEEE-754 doubles, 8 bytes little-endian each; status_code,
// request_bytes and response_bytes as zigzag LEB128 varints; method, path,
// query, remote_ip, host, user_agent, referer, http_version and instance as
// a varint length and the bytes (format 1, written before `instance`
// existed, has no instance: it decodes as ""); the number of headers, then each name and value;
// the number of tags, then each name and value. `id` is not encoded (the
// store knows it from the record's position). Strings are kept byte for
// byte, so decoding gives back exactly what was encoded.
#pragma once

#include <string>
#include <string_view>

#include "clio/base/status.h"
#include "clio/middleware/record.h"

namespace clio {

// Appends r's encoding to `out`. Thread-safe (touches only its arguments).
void append_binary(const Record& r, std::string& out);

// Decodes the record at the front of `in` into `out` (its id is left 0) and
// advances `in` past it. On a truncated or malformed encoding (unknown
// format byte, a length beyond the input) returns kInvalidArgument, leaves
// `in` unchanged and `out` partly overwritten. Allocates no more than the input's size justifies.
// Thread-safe (touches only its arguments).
Status decode_binary(std::string_view& in, Record& out);

// Advances `in` past the record at its front without decoding its strings.
// False, with `in` unchanged, where decode_binary() would fail.
// Thread-safe (touches only its arguments).
bool skip_binary(std::string_view& in);

}  // namespace clio
