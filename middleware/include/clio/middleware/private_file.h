// Owner-only files. Every file Clio writes holds secrets (the database) or
// request data (the JSON-lines logs), so it is readable and writable by its
// owner only (0600), whatever the umask.
//
//   auto f = clio::open_private_append("access.jsonl");   // created 0600
//   if (!f.ok()) return f.status();
//   auto repaired = clio::make_private("clio.db-wal");    // true: others could read it
#pragma once

#include <cstdio>
#include <string>

#include "clio/base/status.h"

namespace clio {

// Opens `path` for appending, creating it with mode 0600. An existing
// regular file that group or others may access is made owner-only first.
// kUnavailable naming the path when it cannot be opened or repaired.
Result<std::FILE*> open_private_append(const std::string& path);

// Creates `path` empty with mode 0600 when it does not exist (with
// `create`), or takes the group and other permissions off an existing
// regular file. Returns whether an existing file had to be repaired.
// Devices, pipes and missing files (without `create`) are left alone.
// kUnavailable naming the path when it cannot be created or repaired.
Result<bool> make_private(const std::string& path, bool create = false);

}  // namespace clio
