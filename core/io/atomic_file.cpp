// Atomic, checked file writes; see atomic_file.h.
#include "core/io/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace glimpse::io {
namespace {

std::atomic<int64_t> g_fail_after_bytes{-1};
std::atomic<uint64_t> g_sequence{0};

std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "<digits>" or "<digits>.<digits>" -> the pid (first number); 0 when it is not of that form.
long pid_of_suffix(const std::string& s) {
  if (s.empty() || s.size() > 40) return 0;
  long pid = 0;
  size_t i = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) pid = pid * 10 + (s[i] - '0');
  if (i == 0 || pid <= 0) return 0;
  if (i == s.size()) return pid;
  if (s[i] != '.' || i + 1 == s.size()) return 0;
  for (size_t j = i + 1; j < s.size(); ++j)
    if (s[j] < '0' || s[j] > '9') return 0;
  return pid;
}

void fsync_dir(const std::string& dir) {
  // Best effort: some filesystems refuse fsync on a directory; the rename has happened either way.
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  GLIMPSE_CHECK(!path_.empty(), "cannot write a file with an empty name");
  tmp_ = path_ + ".tmp." + std::to_string(static_cast<long>(::getpid())) + "." + std::to_string(g_sequence++);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    const int err = errno;
    GLIMPSE_FAIL("cannot write '", path_, "': creating the temporary file '", tmp_, "' failed: ", std::strerror(err),
                 err == EACCES || err == EROFS ? " (is the directory writable?)"
                 : err == ENOENT               ? " (does the directory exist?)"
                                               : "");
  }
  fail_after_ = g_fail_after_bytes.load();
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::fail(const char* step, int err) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
  GLIMPSE_FAIL("writing '", path_, "' failed at ", step, ": ", std::strerror(err),
               err == ENOSPC   ? " (the disk is full; nothing was written, an existing file is unchanged)"
               : err == EDQUOT ? " (disk quota exceeded; nothing was written, an existing file is unchanged)"
                               : " (nothing was written; an existing file is unchanged)");
}

void AtomicFile::write(const void* data, size_t bytes) {
  GLIMPSE_CHECK(fd_ >= 0 && !committed_, "AtomicFile('", path_, "'): write after commit or failure");
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    size_t chunk = bytes;
    if (fail_after_ >= 0) {
      if (written_ >= fail_after_) fail("write (simulated by the test hook set_write_fail_after_bytes)", ENOSPC);
      chunk = std::min<size_t>(chunk, static_cast<size_t>(fail_after_ - written_));
    }
    const ssize_t n = ::write(fd_, p, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write", errno);
    }
    if (n == 0) fail("write", EIO);
    p += n;
    bytes -= static_cast<size_t>(n);
    written_ += n;
  }
}

void AtomicFile::commit() {
  GLIMPSE_CHECK(fd_ >= 0 && !committed_, "AtomicFile('", path_, "'): commit twice or after a failure");
  if (::fsync(fd_) != 0) fail("fsync", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    GLIMPSE_FAIL("writing '", path_, "' failed at close: ", std::strerror(err),
                 " (nothing was written; an existing file is unchanged)");
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    GLIMPSE_FAIL("cannot put '", path_, "' in place (rename from '", tmp_, "'): ", std::strerror(err));
  }
  committed_ = true;
  fsync_dir(parent_dir(path_));
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

std::string read_file(const std::string& path, uint64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) GLIMPSE_FAIL("cannot read '", path, "': ", std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) GLIMPSE_FAIL("cannot read '", path, "': ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) GLIMPSE_FAIL("cannot read '", path, "': not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes)
    GLIMPSE_FAIL("'", path, "' is ", size, " bytes, more than the limit of ", max_bytes,
                 " bytes for this kind of file");
  std::string out(static_cast<size_t>(size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      GLIMPSE_FAIL("reading '", path, "' failed: ", std::strerror(errno));
    }
    if (n == 0) break;  // shrank while we read: keep what is there
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

int remove_stale_temps(const std::string& path) {
  const std::string dir = parent_dir(path);
  const std::string prefix = base_name(path) + ".tmp.";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const long pid = pid_of_suffix(name.substr(prefix.size()));
    if (pid <= 0 || pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    stale.push_back(dir + "/" + name);
  }
  ::closedir(d);
  int removed = 0;
  for (const auto& f : stale) removed += ::unlink(f.c_str()) == 0;
  return removed;
}

void check_writable_dir(const std::string& dir) {
  const std::string probe = (dir.empty() ? std::string(".") : dir) + "/.glimpse-write-probe." +
                            std::to_string(static_cast<long>(::getpid())) + "." + std::to_string(g_sequence++);
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    const int err = errno;
    GLIMPSE_FAIL("cannot write in the directory '", dir, "': ", std::strerror(err),
                 err == EACCES || err == EROFS ? " (read-only, or no permission: choose another --out)" : "");
  }
  ::close(fd);
  ::unlink(probe.c_str());
}

namespace detail {
void set_write_fail_after_bytes(int64_t bytes) { g_fail_after_bytes.store(bytes); }
}  // namespace detail

}  // namespace glimpse::io
