// Files written so that nothing is ever lost without a word.
//
// Every file glimpse writes (checkpoints, curves, JSON, PNG overlays, reports) goes through here:
//   1. the bytes go to a temporary file beside the target, "<path>.tmp.<pid>.<n>" (n counts the
//      writes of this process, so two threads or two processes never share a temporary name);
//   2. every write(2) is checked to its last byte (short writes resumed, EINTR retried), then
//      fsync(2) and close(2) are checked too -- a full disk shows at one of these, often only at
//      fsync or close on network and overlay filesystems;
//   3. rename(2) puts it in place (atomic on POSIX), and the directory is fsync'ed so the rename
//      survives a power cut.
// Any failure throws a glimpse::Error naming the target, the step and strerror, removes the
// temporary file, and leaves an existing file at `path` untouched.
//
// A process killed with SIGKILL cannot remove its temporary file; remove_stale_temps() does it at
// the next start (only files whose pid is no longer running are removed).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace glimpse::io {

// One atomic write in steps: construct (creates the temporary file), write() any number of times,
// commit(). Destroyed without commit() (an exception, an early return), it removes the temporary.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // fsync, close, rename into place, fsync the directory.
  void commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }

 private:
  [[noreturn]] void fail(const char* step, int err);
  std::string path_, tmp_;
  int fd_ = -1;
  int64_t written_ = 0;
  int64_t fail_after_ = -1;
  bool committed_ = false;
};

// The whole file at once.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Reads a whole file; an Error names the path when it cannot be opened or read, or when it is
// larger than max_bytes (so that no file can make us allocate without bound).
std::string read_file(const std::string& path, uint64_t max_bytes = uint64_t(1) << 30);

// Removes the temporary files "<path>.tmp.<pid>[.<n>]" left beside `path` by processes that are no
// longer running (a kill -9 mid-write). Returns how many were removed.
int remove_stale_temps(const std::string& path);

// Fails at once, naming the directory and why, when a file cannot be created in `dir` (missing,
// read-only, not a directory): a probe file is created and removed. Lets a long job find an
// unwritable --out before its first hour of work instead of after it.
void check_writable_dir(const std::string& dir);

// The directory part of a path ("." for a bare file name).
std::string parent_dir(const std::string& path);

namespace detail {
// Test hook, to simulate a full disk: when bytes >= 0, every later AtomicFile fails with ENOSPC once
// it has written that many bytes, through the same cleanup as a real write error. -1 turns it off.
void set_write_fail_after_bytes(int64_t bytes);
}  // namespace detail

}  // namespace glimpse::io
