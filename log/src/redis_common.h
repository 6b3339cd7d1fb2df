// What the Redis writer and reader share: option checks, key names and the
// entry's field names (the layout is documented in redis_log.h).
#pragma once

#include <string>

#include "clio/base/status.h"
#include "clio/log/redis_log.h"

namespace clio::log::redis {

inline constexpr const char* kFormatVersion = "1";

inline std::string seq_key(const std::string& stream) { return stream + ":seq"; }
inline std::string epoch_key(const std::string& stream) { return stream + ":epoch"; }

// Checks the options and parses the URL.
Result<RedisAddress> check_options(const RedisLogOptions& o);

}  // namespace clio::log::redis
