#include "idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/error.h"

namespace fmnist {
namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

GzFile open(const std::string& path) {
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f)
    GLIMPSE_FAIL("cannot open ", path, ": ", errno ? std::strerror(errno) : "zlib could not allocate its state",
                 " (Fashion-MNIST comes with the Debian package dataset-fashion-mnist; pass --data DIR)");
  return GzFile(f);
}

// Reads exactly `n` bytes or fails naming the file, what was being read and how much was there.
void read_exact(gzFile f, const std::string& path, void* dst, size_t n, const char* what) {
  auto* p = static_cast<unsigned char*>(dst);
  size_t got = 0;
  while (got < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
    const int r = gzread(f, p + got, chunk);
    if (r < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      GLIMPSE_FAIL(path, ": corrupt or unreadable while reading the ", what, " (", msg, ")");
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  if (got != n)
    GLIMPSE_FAIL(path, ": truncated: expected ", n, " bytes of ", what, ", found ", got,
                 " (re-install dataset-fashion-mnist or re-download the file)");
}

uint32_t read_be32(gzFile f, const std::string& path, const char* what) {
  unsigned char b[4];
  read_exact(f, path, b, 4, what);
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
}

// After the payload there must be nothing: a longer file is not the file we think it is.
void expect_end(gzFile f, const std::string& path) {
  unsigned char extra;
  const int r = gzread(f, &extra, 1);
  if (r > 0) GLIMPSE_FAIL(path, ": unexpected data after the last element (is it really an IDX file?)");
  if (r < 0) {
    int code = 0;
    GLIMPSE_FAIL(path, ": corrupt (", gzerror(f, &code), ")");
  }
}

void check_magic(uint32_t magic, uint32_t want, const std::string& path, const char* kind) {
  if (magic == want) return;
  char got[16], exp[16];
  std::snprintf(got, sizeof got, "0x%08x", magic);
  std::snprintf(exp, sizeof exp, "0x%08x", want);
  GLIMPSE_FAIL(path, ": not an IDX ", kind, " file: magic number ", got, ", expected ", exp,
               (magic >> 16) ? " (the file may be compressed in another format or not IDX at all)" : "");
}

}  // namespace

IdxImages read_idx_images(const std::string& path) {
  GzFile f = open(path);
  check_magic(read_be32(f.get(), path, "magic number"), 0x00000803, path, "image (ubyte, 3-d)");
  IdxImages out;
  out.count = read_be32(f.get(), path, "header (image count)");
  out.rows = read_be32(f.get(), path, "header (rows)");
  out.cols = read_be32(f.get(), path, "header (columns)");
  GLIMPSE_CHECK(out.count > 0 && out.count <= 100'000'000, path, ": implausible image count ", out.count);
  GLIMPSE_CHECK(out.rows > 0 && out.rows <= 4096 && out.cols > 0 && out.cols <= 4096, path, ": implausible image size ",
                out.rows, "x", out.cols);
  out.pixels.resize(static_cast<size_t>(out.count * out.rows * out.cols));
  read_exact(f.get(), path, out.pixels.data(), out.pixels.size(), "pixel data");
  expect_end(f.get(), path);
  return out;
}

std::vector<uint8_t> read_idx_labels(const std::string& path, int max_label) {
  GzFile f = open(path);
  check_magic(read_be32(f.get(), path, "magic number"), 0x00000801, path, "label (ubyte, 1-d)");
  const int64_t count = read_be32(f.get(), path, "header (label count)");
  GLIMPSE_CHECK(count > 0 && count <= 100'000'000, path, ": implausible label count ", count);
  std::vector<uint8_t> labels(static_cast<size_t>(count));
  read_exact(f.get(), path, labels.data(), labels.size(), "labels");
  expect_end(f.get(), path);
  for (size_t i = 0; i < labels.size(); ++i)
    GLIMPSE_CHECK(labels[i] < max_label, path, ": label ", int(labels[i]), " at index ", i, " is not a class in [0, ",
                  max_label, ")");
  return labels;
}

}  // namespace fmnist
