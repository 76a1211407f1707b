// What every glimpse fuzz harness shares.
//
// The contract a harness checks: on ANY input bytes the code under test either succeeds or throws
// glimpse::Error (a clear message for the user). Everything else is a finding that libFuzzer
// reports and stops on: a sanitizer report (ASan: out-of-bounds, use-after-free, leaks; UBSan:
// overflow, bad shifts, null arithmetic), an uncaught exception of another type (std::bad_alloc,
// nlohmann's out_of_range, std::length_error: the user would see a bare what() or a terminate),
// a timeout (-timeout) or a memory blow-up (-rss_limit_mb, -malloc_limit_mb).
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace glimpse::fuzz {

// The input as a file that the real file readers open by path: an anonymous in-memory file
// (memfd_create), reached as /proc/self/fd/N, so a million executions never touch the disk.
class InputFile {
 public:
  InputFile(const uint8_t* data, size_t size) {
    fd_ = memfd_create("glimpse-fuzz-input", MFD_CLOEXEC);
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) {
        std::perror("write to memfd");
        std::abort();
      }
      done += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~InputFile() { ::close(fd_); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Runs f; a glimpse::Error is the expected way to refuse bad input. Its message must name what it
// refuses: an empty message is a finding too.
template <typename F>
void refuse_or_succeed(F&& f) {
  try {
    f();
  } catch (const glimpse::Error& e) {
    if (e.what()[0] == '\0') {
      std::fprintf(stderr, "fuzz: glimpse::Error with an empty message\n");
      std::abort();
    }
  }
}

}  // namespace glimpse::fuzz
