// safetensors: the tensor file format of Hugging Face (https://github.com/huggingface/safetensors),
// read and written exactly per its specification:
//
//   bytes [0, 8)        N, an unsigned 64-bit little-endian integer: the size of the header
//   bytes [8, 8+N)      the header, UTF-8 JSON starting with '{' and possibly padded at the end with
//                       spaces (0x20):
//                         {"__metadata__": {"key": "value", ...},          (optional, strings only)
//                          "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
//                          ...}
//   bytes [8+N, EOF)    the byte buffer; data_offsets are relative to its start. Each tensor is
//                       row-major and little-endian; the tensors tile the buffer exactly (no gap, no
//                       overlap, nothing after the last one).
//
// Writing: every tensor as F32 (glimpse's only element type), in the order given, header padded with
// spaces so that the buffer starts at an 8-byte boundary. The file is written atomically: to
// "<path>.tmp.<pid>", flushed and fsync'ed, then renamed over <path>; on any failure the temporary
// file is removed and an existing <path> is left untouched.
//
// Reading: F32 is loaded as is; F64, F16 and BF16 are converted to float32 (F16 and BF16 exactly,
// F64 rounded to nearest, out-of-range values becoming +-inf). Every other dtype (integers, BOOL,
// F8_*) is refused with an Error naming the tensor and its dtype. Anything the specification does not
// allow is refused with an Error naming the path and the fault: a missing file, a file shorter than
// 8 bytes, a header length beyond the file or above 100 MB, a header that is not a JSON object
// (with the byte offset of the parse error), duplicate names, a shape/dtype that does not match its
// data_offsets, offsets out of bounds, overlapping, leaving a hole, or bytes after the last tensor.
//
// Big-endian hosts are not supported (static_assert in safetensors.cpp).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace glimpse {

struct SafetensorsFile {
  // In the order of the header's JSON object (which need not be the order of the data).
  std::vector<std::pair<std::string, Tensor>> tensors;
  // The dtype each tensor had in the file ("F32", "F16", ...), before conversion to float32.
  std::map<std::string, std::string> dtypes;
  // The "__metadata__" map (empty if absent).
  std::map<std::string, std::string> metadata;

  bool contains(const std::string& name) const;
  // The tensor of that name; an unknown name throws an Error listing the names in the file.
  const Tensor& at(const std::string& name) const;
  std::vector<std::string> names() const;
};

// Writes `tensors` (any device, any strides; stored as contiguous F32) and `metadata` to `path`,
// atomically (see above). Names must be unique, and not "__metadata__".
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads and validates the whole file; tensors come back on the CPU, contiguous, float32.
SafetensorsFile load_safetensors(const std::string& path);

namespace detail {
// Test hook, to simulate a crash (a full disk, a killed write) in the middle of a save: when
// bytes >= 0, every later save_safetensors throws an Error once it has written that many bytes of
// the temporary file, going through the same cleanup as a real write error. -1 (the default)
// turns it off. Not thread-safe with concurrent saves; for tests only.
void set_safetensors_fail_after_bytes(int64_t bytes);
}  // namespace detail

}  // namespace glimpse
