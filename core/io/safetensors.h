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
// spaces so that the buffer starts at an 8-byte boundary. The file is written atomically through
// io::AtomicFile (core/io/atomic_file.h): to "<path>.tmp.<pid>.<n>", every write, fsync and close
// checked, then renamed over <path>; on any failure the temporary file is removed and an existing
// <path> is left untouched.
//
// glimpse's addition, the checksum (inside the format: PyTorch's safetensors reads these files as
// any other). Unless asked not to, save_safetensors writes one more __metadata__ entry,
//   "glimpse.checksum": "crc32:<8 lower-case hex digits>"
// the CRC-32 (zlib's crc32, polynomial 0xEDB88320) of this byte stream, where u64(x) is x as 8
// little-endian bytes and str(s) is u64(byte length of s) followed by the bytes of s:
//   str("glimpse.safetensors.checksum.v1")
//   u64(number of metadata entries other than glimpse.checksum)
//   for each of them, sorted by key (bytewise): str(key) str(value)
//   u64(number of tensors)
//   for each tensor, sorted by name (bytewise): str(name) str(dtype) u64(rank) u64(dim)... u64(begin) u64(end)
//   the whole data section, bytes [8+N, EOF), as stored (before any dtype conversion)
// So it covers every other metadata key and value, every tensor's name, dtype, shape and offsets,
// and every data byte, independently of the order of the JSON objects and of the header's
// whitespace. A CRC detects corruption (any flipped bit, any burst up to 32 bits) and hand edits;
// it is not a signature against someone who recomputes it on purpose.
// Reading: a file with the key is verified and a mismatch (or a malformed value) is refused with an
// Error "... corrupt: checksum mismatch ..." naming the file; a file without it (PyTorch, an older
// glimpse) loads as before, and SafetensorsFile::has_checksum says so. The key never appears in
// SafetensorsFile::metadata, and callers may not pass it to save_safetensors.
//
// Reading: F32 is loaded as is; F64, F16 and BF16 are converted to float32 (F16 and BF16 exactly,
// F64 rounded to nearest, out-of-range values becoming +-inf). Every other dtype (integers, BOOL,
// F8_*) is refused with an Error naming the tensor and its dtype. Anything the specification does not
// allow is refused with an Error naming the path and the fault: a missing file, a file shorter than
// 8 bytes, a header length beyond the file or above 100 MB, a header that is not a JSON object
// (with the byte offset of the parse error) or that the JSON reader cannot represent (a number like
// 1e400), duplicate names, a shape/dtype that does not match its data_offsets, a shape that breaks
// the rule of core/shape.h (a dim above 2^63 - 1, or a product of max(dim, 1) beyond int64: so
// [0, 2^62, 4] is refused although it is empty), offsets out of bounds, overlapping, leaving a hole,
// or bytes after the last tensor. No exception of the JSON library escapes: each becomes an Error
// naming the file and, where known, the key.
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
  // The "__metadata__" map (empty if absent), without glimpse.checksum.
  std::map<std::string, std::string> metadata;
  // The file carries glimpse.checksum (false: written by PyTorch or an older glimpse).
  bool has_checksum = false;
  // ...and it was verified. After a successful load this equals has_checksum, since a mismatch
  // throws; kept apart so that callers say what they mean.
  bool checksum_verified = false;

  bool contains(const std::string& name) const;
  // The tensor of that name; an unknown name throws an Error listing the names in the file.
  const Tensor& at(const std::string& name) const;
  std::vector<std::string> names() const;
};

// The __metadata__ key of glimpse's checksum.
inline constexpr const char* kSafetensorsChecksumKey = "glimpse.checksum";

// Writes `tensors` (any device, any strides; stored as contiguous F32) and `metadata` to `path`,
// atomically (see above). Names must be unique, and not "__metadata__"; the metadata may not hold
// glimpse.checksum. checksum = false writes a plain file, as PyTorch's writer would (for interop
// tests and for tests of what an unverified file does).
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {}, bool checksum = true);

// Reads and validates the whole file; tensors come back on the CPU, contiguous, float32.
SafetensorsFile load_safetensors(const std::string& path);

namespace detail {
// Test hook, to simulate a crash (a full disk, a killed write) in the middle of a save: when
// bytes >= 0, every later save_safetensors throws an Error once it has written that many bytes of
// the temporary file, going through the same cleanup as a real write error. -1 (the default)
// turns it off. Not thread-safe with concurrent saves; for tests only.
void set_safetensors_fail_after_bytes(int64_t bytes);
// Fuzzing hook: when true, load_safetensors does not verify glimpse.checksum (has_checksum still
// says whether the key is there; checksum_verified stays false), so that a fuzzer's mutations get
// past the checksum to the code behind it. Never set in glimpse itself; for tests and fuzzers only.
void set_safetensors_skip_checksum(bool skip);
}  // namespace detail

}  // namespace glimpse
