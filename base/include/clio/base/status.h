// Status and Result<T>: errors as values across module boundaries.
//
// Every public function of a Clio module that can fail returns a Status or a
// Result<T>; exceptions never cross a module boundary and never run on the
// request path. CivetWeb return codes and SQLite result codes are converted
// at the edge of the module that calls them.
//
//   clio::Result<int> parse_port(std::string_view s);
//   auto port = parse_port(arg);
//   if (!port.ok()) { std::cerr << port.status().message() << "\n"; return 2; }
//   use(*port);
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace clio {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // the caller's input is malformed
  kNotFound,           // the thing named does not exist
  kAlreadyExists,      // the id is taken
  kResourceExhausted,  // a configured limit was reached
  kPermissionDenied,   // credentials were missing or wrong
  kUnavailable,        // a resource (file, database, port) cannot be used
  kInternal,           // a bug or an unexpected failure of a dependency
};

// A code and a message. Cheap to copy when ok. Thread-compatible: const
// methods are thread-safe, non-const methods need external synchronization.
class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-ok Status. Thread-compatible, like Status.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace clio
