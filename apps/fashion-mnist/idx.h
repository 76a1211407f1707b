// Reader for the IDX files of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/), gzipped
// or not (zlib's gzread reads both). An IDX file is a big-endian header -- a magic number whose
// third byte is the element type (0x08 = unsigned byte) and fourth the number of dimensions, then
// one uint32 per dimension -- followed by the elements in row-major order.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fmnist {

struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols, row-major
};

// Magic 0x00000803 (ubyte, 3 dims). Throws glimpse::Error naming the path for a missing,
// unreadable, truncated or malformed file.
IdxImages read_idx_images(const std::string& path);
// Magic 0x00000801 (ubyte, 1 dim). Labels must be < max_label.
std::vector<uint8_t> read_idx_labels(const std::string& path, int max_label = 10);

}  // namespace fmnist
