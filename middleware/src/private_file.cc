#include "clio/middleware/private_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace clio {
namespace {

Status failure(const std::string& what, const std::string& path) {
  return Status::Unavailable(what + " '" + path + "': " + std::strerror(errno));
}

// Takes group and other bits off the open regular file `fd`; whether it had any.
Result<bool> repair(int fd, const std::string& path) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return failure("cannot read the mode of", path);
  if (!S_ISREG(st.st_mode) || (st.st_mode & 077) == 0) return false;
  if (fchmod(fd, st.st_mode & 0700) != 0) {
    return failure("others may read, and Clio cannot make owner-only,", path);
  }
  return true;
}

}  // namespace

Result<std::FILE*> open_private_append(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return failure("cannot open for writing", path);
  auto repaired = repair(fd, path);
  std::FILE* f = repaired.ok() ? fdopen(fd, "a") : nullptr;
  if (f == nullptr) {
    Status s = repaired.ok() ? failure("cannot open for writing", path) : repaired.status();
    ::close(fd);
    return s;
  }
  return f;
}

Result<bool> make_private(const std::string& path, bool create) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 && errno == ENOENT) {
    if (!create) return false;
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) return make_private(path, false);  // created meanwhile
    if (fd < 0) return failure("cannot create", path);
    ::close(fd);
    return false;
  }
  if (fd < 0) return failure("cannot open", path);
  auto repaired = repair(fd, path);
  ::close(fd);
  return repaired;
}

}  // namespace clio
